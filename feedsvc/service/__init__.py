"""The builder service: one loop that decides when to build (file events, the interval rescan,
settling, retries), the election of one builder per output folder, and WebSub pings."""
