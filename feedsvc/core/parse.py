"""Parse one seed file (bytes) into an Article: the header layout. Pure: no files, no clock.

Rule: an optional stamp line, then the title line (never HTML), then an optional dashes line, and
the rest is the body; blank lines may come between. Each line's own rule lives beside: bytes to text
in `encodings.py`, the title line in `title.py`, the stamp and the body's date line in `dates.py`,
and what refuses a file in `errors.py`. This module puts them together (`parse_seed`) and says which
date a file's first bytes promise (`parse_header`).

The format is Markdown whose body is raw HTML::

    <!--1681696026000-->            epoch milliseconds (10 digits: seconds)
    [Title text](https://link)      a Markdown link, or a plain title line
    ------                          optional dashes line of any length
                                    optional blank line
    <div><i><br>2023-04-16T13:06:27.989Z</i></div>...   the article's HTML

Liberal in what it accepts: every liberty it takes is recorded in `Article.notes`, and whatever
the user should fix although the article is published (an invalid stamp, a truncated body) in
`Article.problems`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from feedsvc.core.dates import FUTURE_SLACK, Stamp, body_date, header_stamp
from feedsvc.core.encodings import decode_seed, whole_characters
from feedsvc.core.errors import SeedError
from feedsvc.core.text import cut_html, xml_safe
from feedsvc.core.title import parse_markdown_title
from feedsvc.model import DEFAULT_LEGACY_ENCODINGS, DEFAULT_MAX_ARTICLE_BYTES, MTIME_NOTE, Article

# What callers import from here; each rule lives in its own module.
__all__ = [
    "DEFAULT_LEGACY_ENCODINGS",
    "FUTURE_SLACK",
    "SeedError",
    "decode_seed",
    "parse_header",
    "parse_markdown_title",
    "parse_seed",
]

_DASHES = re.compile(r"^[-=]{3,}$")


def parse_seed(
    data: bytes,
    source: str,
    mtime: datetime | None = None,
    *,
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
    legacy_encodings: Sequence[str] = DEFAULT_LEGACY_ENCODINGS,
    now: datetime | None = None,
) -> Article:
    """One seed file's bytes → an Article, or SeedError with the reason.

    Dates: the header stamp is `updated`; the body's own date line is `published`. Without a
    valid header stamp (none, or one that is invalid: garbage, out of range, more than a day
    after `now`), the body date serves for both, and failing that the file's `mtime`. A header
    with a link and no body is a link post (`body_html` ""); with no link, nothing to publish.
    """
    if not data.strip():
        raise SeedError("empty file")
    text, notes = decode_seed(data, legacy_encodings)
    lines = _lines(text)
    head = _header(lines, now)
    notes += head.stamp.notes if head.stamped else ["no timestamp line"]
    problems: list[str] = []
    title, link = parse_markdown_title(head.title_line)
    body = "\n".join(lines[head.body:]).strip()
    if not title:
        raise SeedError("empty title")
    if not body and link is None:
        raise SeedError("no article body after the header, and the title has no link: nothing to publish")

    published, body = body_date(body)
    # A character is at most 4 bytes of UTF-8: most bodies are surely under the limit uncounted.
    if len(body) * 4 > max_article_bytes and (encoded_size := len(body.encode("utf-8"))) > max_article_bytes:
        body = cut_html(body, max_article_bytes)
        problems.append(f"body of {encoded_size} bytes truncated to max_article_bytes={max_article_bytes}")

    stamp = head.stamp
    updated = stamp.when or published or mtime
    if updated is None:
        raise SeedError(f"{stamp.invalid or 'no timestamp line'}, and no date line in the body or file time")
    if stamp.when is None:
        dated = "date taken from the body" if published else MTIME_NOTE
        if stamp.invalid:
            problems.insert(0, f"{stamp.invalid}; {dated}")
        else:
            notes.append(dated)
    return Article(source, title, link, published, updated, body, tuple(notes), tuple(problems), stamp.valid_until)


def parse_header(
    head: bytes,
    mtime: datetime | None = None,
    *,
    whole: bool = True,
    legacy_encodings: Sequence[str] = DEFAULT_LEGACY_ENCODINGS,
    now: datetime | None = None,
) -> datetime | None:
    """The `updated` date a seed file's first bytes promise, as `parse_seed` gives it for the whole
    file: from the stamp line, else the body's date line, else `mtime`. None when they say there is
    nothing to publish, or cannot be decoded. `whole`: `head` is the whole file; else a character
    cut at its end is left out.

    A promise, not the truth: the whole file may decode otherwise, or turn out to be skipped.
    """
    if (stamped := _first_line_stamp(head, now)) is not None:
        return stamped  # what most seeds start with: nothing else decides `updated`
    if not whole:
        head = whole_characters(head)
    try:
        text, _notes = decode_seed(head, legacy_encodings)
        lines = _lines(text)
        head_lines = _header(lines, now)
    except SeedError:
        return None
    published, _body = body_date("\n".join(lines[head_lines.body :]).strip())
    return head_lines.stamp.when or published or mtime


def _first_line_stamp(head: bytes, now: datetime | None) -> datetime | None:
    """The instant of a valid stamp on the first line, when that line is ASCII (so it decodes the
    same in every encoding `decode_seed` may pick but UTF-16, which does not start with it)."""
    start = len(codecs.BOM_UTF8) if head.startswith(codecs.BOM_UTF8) else 0
    if not head.startswith(b"<!--", start):
        return None
    ends = [i for i in (head.find(b"\n", start), head.find(b"\r", start)) if i >= 0]  # both end a line
    line = head[start : min(ends)] if ends else b""
    if not line.isascii():
        return None
    return header_stamp(xml_safe(line.decode("ascii")).strip(), now).when


def _lines(text: str) -> list[str]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return xml_safe(text.lstrip("\ufeff")).split("\n")


class _Header(NamedTuple):
    """What the lines before the body say: the stamp (if there is a stamp line), the title line,
    where the body starts."""

    stamp: Stamp
    stamped: bool
    title_line: str
    body: int


def _header(lines: list[str], now: datetime | None) -> _Header:
    i = _skip_blank(lines, 0)
    stamp, stamped = Stamp(), False
    if i < len(lines) and lines[i].strip().startswith("<!--"):
        stamp, stamped = header_stamp(lines[i].strip(), now), True
        i = _skip_blank(lines, i + 1)
    if i >= len(lines):
        raise SeedError("no title line")
    title_line = lines[i].strip()
    if title_line.startswith("<"):
        raise SeedError(f"line {i + 1}: expected a title line, found HTML")
    i += 1
    if i < len(lines) and _DASHES.match(lines[i].strip()):
        i += 1
    return _Header(stamp, stamped, title_line, i)


def _skip_blank(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i
