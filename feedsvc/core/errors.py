"""The error a seed file raises when it cannot become an article.

Rule: every rule set of the parse (encodings, title, dates, header layout) refuses a file with this
one error, whose message is the reason shown to the user; a liberty taken is a note, never an error.
"""

from __future__ import annotations


class SeedError(ValueError):
    """The file cannot become an article; the message is the reason shown to the user."""
