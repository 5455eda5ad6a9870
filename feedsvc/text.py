"""Text hygiene shared by every stage that lets strings reach the XML output."""

from __future__ import annotations

import re

# XML 1.0 forbids these; lxml (and so feedgen) refuses the whole document when one is present.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SPACE_RUN = re.compile(r"\s+")


def xml_safe(text: str) -> str:
    """Remove characters that XML 1.0 cannot carry (C0 controls, U+FFFE/FFFF, lone surrogates)."""
    return _XML_ILLEGAL.sub("", text)


def one_line(text: str) -> str:
    """Collapse all whitespace runs to single spaces and trim: for titles and summaries."""
    return _SPACE_RUN.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"
