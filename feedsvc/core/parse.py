"""Parse one seed file (bytes) into an Article. Pure: no files, no clock.

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
import html
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from feedsvc.core.text import cut_html, one_line, xml_safe
from feedsvc.model import DEFAULT_LEGACY_ENCODINGS, DEFAULT_MAX_ARTICLE_BYTES, MTIME_NOTE, Article


class SeedError(ValueError):
    """The file cannot become an article; the message is the reason shown to the user."""


_DIGITS = re.compile(r"[0-9]+")
_DASHES = re.compile(r"^[-=]{3,}$")
_BODY_DATE = re.compile(
    r"^\s*<div>\s*<i>\s*(?:<br\s*/?>\s*)?"
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s*</i>\s*</div>",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^#{1,6}\s+")
_LINK_TITLE = re.compile(r"\s+(\"[^\"]*\"|'[^']*')$")
_MD_ESCAPABLE = re.compile(r"\\([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
# Epoch stamps outside this window are typos, not dates.
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# A header stamp may be this far ahead of the time of parsing (clocks differ, stamps are rounded).
FUTURE_SLACK = timedelta(days=1)


def decode_seed(data: bytes, legacy_encodings: Sequence[str] = DEFAULT_LEGACY_ENCODINGS) -> tuple[str, list[str]]:
    """Bytes to text: BOMs, UTF-8, UTF-8 with a few stray bytes, or a legacy CJK encoding; never mojibake."""
    notes: list[str] = []
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec), notes
            except UnicodeDecodeError:
                if codec != "utf-8":
                    raise SeedError(f"starts with a {codec} byte-order mark but is not valid {codec}") from None
                data = data[len(bom) :]
                break
    try:
        return data.decode("utf-8"), notes
    except UnicodeDecodeError:
        pass

    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good = sum(1 for ch in lenient if ord(ch) > 0x7F and ch != "\ufffd")
    # Mostly valid UTF-8 with a few broken bytes (a truncated copy, a stray Latin-1 byte): keep it.
    if good >= 4 and bad * 20 <= good:
        notes.append(f"{bad} invalid UTF-8 byte sequence(s) dropped")
        return lenient.replace("\ufffd", ""), notes

    best: tuple[float, str, str] | None = None
    for codec in legacy_encodings:
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        score = _cjk_plausibility(text)
        if best is None or score > best[0]:
            best = (score, codec, text)
    if best is not None and best[0] >= 0.85:
        notes.append(f"decoded as {best[1]} (not valid UTF-8)")
        return best[2], notes
    raise SeedError("not valid UTF-8 and not plausibly any of " + ", ".join(legacy_encodings))


def _cjk_plausibility(text: str) -> float:
    """Share of non-ASCII characters that real CJK prose uses (ideographs, CJK punctuation, full-width forms).

    Decoding Big5 bytes as GB18030 (or the reverse) succeeds but yields kana, bopomofo,
    Latin with diacritics and private-use characters: this ratio tells the two apart.
    """
    wide = [ord(ch) for ch in text if ord(ch) > 0x7F]
    if not wide:
        return 1.0
    plausible = sum(
        1
        for cp in wide
        if 0x4E00 <= cp <= 0x9FFF
        or 0x3000 <= cp <= 0x303F
        or 0xFF00 <= cp <= 0xFFEF
        or 0x2010 <= cp <= 0x2027
        or cp in (0xA0, 0xB7, 0xD7)
    )
    return plausible / len(wide)


def parse_markdown_title(line: str) -> tuple[str, str | None]:
    """`[text](url)` → (text, url); a line that is not a link is a plain title with no link.

    Handles nested/escaped brackets in the text, parentheses in the URL, `<url>` and a trailing "title".
    """
    line = line.strip()
    if line.startswith("#"):
        line = _HEADING.sub("", line)
    if line.startswith("["):
        depth, i = 0, 0
        close = line.find("]")
        if close > 0 and "[" not in line[1:close] and "\\" not in line[1:close]:
            i = close  # where the scan below stops: no nesting and no escape before the first "]"
        else:
            while i < len(line):
                ch = line[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
        if depth == 0 and line[i + 1 : i + 2] == "(" and line.endswith(")"):
            text = line[1:i]
            target = line[i + 2 : -1].strip()
            if target.startswith("<") and ">" in target:
                target = target[1 : target.index(">")]
            else:
                target = _LINK_TITLE.sub("", target) if target.endswith(("\"", "'")) else target
            return _inline_text(text), _clean_url(target)
        # Unbalanced: fall back on the last "](" before a closing parenthesis.
        split = line.rfind("](")
        if split > 0 and line.endswith(")"):
            return _inline_text(line[1:split]), _clean_url(line[split + 2 : -1])
    return _inline_text(line), None


def _inline_text(text: str) -> str:
    """Markdown link text to plain text: backslash escapes, then HTML entities, decoded once."""
    text = _MD_ESCAPABLE.sub(lambda m: m.group(1), text)
    return one_line(xml_safe(html.unescape(text)))


def _clean_url(url: str) -> str | None:
    url = url.strip()
    if not (url.isascii() and url.isprintable()):  # printable ASCII holds no control or format character
        url = "".join(ch for ch in url if unicodedata.category(ch) not in ("Cc", "Cf"))
    url = url.replace(" ", "%20")
    return url or None


class _InvalidStamp(ValueError):
    """A header stamp that cannot be the entry's date; `valid_from`: when a future one becomes valid."""

    def __init__(self, reason: str, valid_from: datetime | None = None) -> None:
        super().__init__(reason)
        self.valid_from = valid_from


def _from_stamp(line: str, now: datetime | None) -> tuple[datetime, bool]:
    """A `<!--…-->` header line → (its instant, whether it counted seconds), or _InvalidStamp.

    10 digits are seconds (until 2286), 13 milliseconds; other lengths are guessed by magnitude.
    Valid: a whole number of (milli)seconds from 1990 to 2200, at most FUTURE_SLACK after `now`
    (when given): a stamp further ahead would make the entry the newest for years.
    """
    if not line.endswith("-->") or len(line) < 7:
        raise _InvalidStamp("not a comment closed on its line")
    digits = line[4:-3].strip()
    if not _DIGITS.fullmatch(digits):
        raise _InvalidStamp("not a number of milliseconds since 1970")
    if len(digits) > 20:  # int() refuses past 4300 digits; a date needs at most 13
        raise _InvalidStamp("out of range")
    value = int(digits)
    in_seconds = value < 100_000_000_000
    try:
        stamp = datetime.fromtimestamp(value if in_seconds else value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _InvalidStamp("out of range") from None
    if not _EARLIEST <= stamp <= _LATEST:
        raise _InvalidStamp(f"out of range ({stamp:%Y-%m-%d}; valid from 1990 to 2200)")
    if now is not None and stamp > now + FUTURE_SLACK:
        raise _InvalidStamp(f"{stamp:%Y-%m-%d %H:%M} UTC is more than a day in the future", stamp - FUTURE_SLACK)
    return stamp, in_seconds


def _parse_iso(text: str) -> datetime | None:
    text = text.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    stamp = stamp.astimezone(UTC)
    return stamp if _EARLIEST <= stamp <= _LATEST else None


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

    published, body = _body_date(body)
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
        head = _whole_characters(head)
    try:
        text, _notes = decode_seed(head, legacy_encodings)
        lines = _lines(text)
        head_lines = _header(lines, now)
    except SeedError:
        return None
    published, _body = _body_date("\n".join(lines[head_lines.body :]).strip())
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
    return _header_stamp(xml_safe(line.decode("ascii")).strip(), now).when


def _whole_characters(head: bytes) -> bytes:
    """`head` without a UTF-8 sequence (or a UTF-16 unit) cut at its end."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head[: len(head) - len(head) % 2]
    for back in range(1, min(4, len(head)) + 1):
        byte = head[-back]
        if byte < 0x80:
            return head  # ASCII: whatever came before it is whole
        if byte >= 0xC0:  # the lead byte of a sequence of `need` bytes
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return head if back >= need else head[:-back]
    return head


def _lines(text: str) -> list[str]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return xml_safe(text.lstrip("\ufeff")).split("\n")


class _Header(NamedTuple):
    """What the lines before the body say: the stamp (if there is a stamp line), the title line,
    where the body starts."""

    stamp: _Stamp
    stamped: bool
    title_line: str
    body: int


def _header(lines: list[str], now: datetime | None) -> _Header:
    i = _skip_blank(lines, 0)
    stamp, stamped = _Stamp(), False
    if i < len(lines) and lines[i].strip().startswith("<!--"):
        stamp, stamped = _header_stamp(lines[i].strip(), now), True
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


def _body_date(body: str) -> tuple[datetime | None, str]:
    """The body's own date line (`published`), and the body without it."""
    if m := _BODY_DATE.match(body):
        published = _parse_iso(m.group(1))
        if published is not None:
            return published, body[m.end() :].lstrip()
    return None, body


class _Stamp(NamedTuple):
    """What a header stamp line gave: its instant, or why it is invalid (and when a future one
    becomes valid); the notes it leaves."""

    when: datetime | None = None
    invalid: str | None = None
    valid_until: datetime | None = None
    notes: tuple[str, ...] = ()


def _header_stamp(line: str, now: datetime | None) -> _Stamp:
    try:
        when, in_seconds = _from_stamp(line, now)
    except _InvalidStamp as exc:
        return _Stamp(invalid=f"invalid timestamp {line[:40]!r}: {exc}", valid_until=exc.valid_from)
    return _Stamp(when, notes=("timestamp in seconds, not milliseconds",) if in_seconds else ())


def _skip_blank(lines: list[str], i: int) -> int:
    while i < len(lines) and not lines[i].strip():
        i += 1
    return i
