"""Text hygiene shared by every stage that lets strings reach the XML output, and the summary rule."""

from __future__ import annotations

import re

# XML 1.0 forbids these; lxml (and so feedgen) refuses the whole document when one is present.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(text: str) -> str:
    """Remove characters that XML 1.0 cannot carry (C0 controls, U+FFFE/FFFF, lone surrogates)."""
    return _XML_ILLEGAL.sub("", text)


def one_line(text: str) -> str:
    """Collapse all whitespace runs to single spaces and trim: for titles and summaries."""
    # str.split() cuts at the runs of exactly the characters `\s` matches (str.isspace), in C.
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` characters, at a word boundary when one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"


def summary_reads(limit: int) -> int:
    """How much of a text `summarize(text, limit)` needs (`limit` ≥ 1): for a text without runs of
    whitespace or whitespace at its ends (a sanitizer's), any prefix of at least this many
    characters gives the summary of the whole. (Both are then longer than `limit`, so both are cut
    by `shorten`, which reads the first `limit` characters and whether there are more.)"""
    return limit + 2


def summarize(plain_text: str, limit: int = 200) -> str:
    """The first `limit` characters of an article's visible text, for <summary>."""
    # one_line of a prefix is a prefix of one_line of the whole: a long enough one is all we need.
    head = one_line(plain_text[: 4 * limit + 8])
    return shorten(head if len(head) > limit or 4 * limit + 8 >= len(plain_text) else one_line(plain_text), limit)


def cut_html(html: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes of `html`, cut before the last tag that starts under the limit
    (so no tag is cut in half); the sanitizer then closes the elements left open."""
    head = html.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    cut = head.rfind("<")
    return head[:cut] if cut > limit // 2 else head
