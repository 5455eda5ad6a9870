"""The builder: seed files → published documents (`builder.build` is where a build happens)."""
