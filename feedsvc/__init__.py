"""feedsvc: a folder of article files in, a clean, valid, fast Atom feed out."""

__version__ = "0.1.0"
