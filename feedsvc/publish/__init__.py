"""Publishing (`writer`) and reading (`reader`) the published state, laid out as `layout` says."""
