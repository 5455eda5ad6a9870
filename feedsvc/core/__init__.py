"""The pure core: text in, values out. See README.md in this folder for its rule."""
