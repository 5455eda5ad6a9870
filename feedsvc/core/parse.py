"""Parse one seed file (bytes) into an Article. Pure: no files, no clock.

The format is Markdown whose body is raw HTML::

    <!--1681696026000-->            epoch milliseconds (10 digits: seconds)
    [Title text](https://link)      a Markdown link, or a plain title line
    ------                          optional dashes line of any length
                                    optional blank line
    <div><i><br>2023-04-16T13:06:27.989Z</i></div>...   the article's HTML

Liberal in what it accepts, and every liberty it takes is recorded in `Article.notes`.
"""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime

from feedsvc.core.text import one_line, xml_safe
from feedsvc.model import MTIME_NOTE, Article

DEFAULT_LEGACY_ENCODINGS = ("cp950", "big5hkscs", "gb18030")


class SeedError(ValueError):
    """The file cannot become an article; the message is the reason shown to the user."""


_STAMP = re.compile(r"^<!--\s*(\d+)\s*-->$")
_DASHES = re.compile(r"^[-=]{3,}$")
_BODY_DATE = re.compile(
    r"^\s*<div>\s*<i>\s*(?:<br\s*/?>\s*)?"
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s*</i>\s*</div>",
    re.IGNORECASE,
)
_MD_ESCAPABLE = re.compile(r"\\([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
# Epoch stamps outside this window are typos, not dates.
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


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
    line = re.sub(r"^#{1,6}\s+", "", line)
    if line.startswith("["):
        depth, i = 0, 0
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
                target = re.sub(r"\s+(\"[^\"]*\"|'[^']*')$", "", target)
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


def _from_epoch(digits: str) -> datetime:
    value = int(digits)
    # 10 digits is seconds (until 2286); 13 is milliseconds; other lengths guessed by magnitude.
    seconds = value / 1000 if value >= 100_000_000_000 else float(value)
    try:
        stamp = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise SeedError(f"timestamp {digits} is out of range") from None
    if not _EARLIEST <= stamp <= _LATEST:
        raise SeedError(f"timestamp {digits} is out of range ({stamp:%Y-%m-%d})")
    return stamp


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
    max_article_bytes: int = 1_000_000,
    legacy_encodings: Sequence[str] = DEFAULT_LEGACY_ENCODINGS,
) -> Article:
    """One seed file's bytes → an Article, or SeedError with the reason.

    Dates: the header stamp is `updated`; the body's own date line is `published`.
    Without a header stamp, the body date serves for both, and failing that the file's `mtime`.
    """
    if not data.strip():
        raise SeedError("empty file")
    text, notes = decode_seed(data, legacy_encodings)
    text = xml_safe(text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"))

    lines = text.split("\n")
    i = 0

    def skip_blank() -> None:
        nonlocal i
        while i < len(lines) and not lines[i].strip():
            i += 1

    skip_blank()
    stamp: datetime | None = None
    if i < len(lines) and (m := _STAMP.match(lines[i].strip())):
        stamp = _from_epoch(m.group(1))
        i += 1
        skip_blank()
    elif i < len(lines) and lines[i].strip().startswith("<!--"):
        raise SeedError(f"line {i + 1}: unreadable timestamp {lines[i].strip()[:40]!r}")
    else:
        notes.append("no timestamp line")

    if i >= len(lines):
        raise SeedError("no title line")
    title_line = lines[i].strip()
    if title_line.startswith("<"):
        raise SeedError(f"line {i + 1}: expected a title line, found HTML")
    title, link = parse_markdown_title(title_line)
    i += 1
    if i < len(lines) and _DASHES.match(lines[i].strip()):
        i += 1
    body = "\n".join(lines[i:]).strip()
    if not title:
        raise SeedError("empty title")
    if not body:
        raise SeedError("no article body after the header")

    published: datetime | None = None
    if m := _BODY_DATE.match(body):
        published = _parse_iso(m.group(1))
        if published is not None:
            body = body[m.end() :].lstrip()

    encoded_size = len(body.encode("utf-8"))
    if encoded_size > max_article_bytes:
        body = _truncate_html(body, max_article_bytes)
        notes.append(f"body of {encoded_size} bytes truncated to max_article_bytes={max_article_bytes}")

    updated = stamp or published or mtime
    if updated is None:
        raise SeedError("no date: no timestamp line, no date line in the body, no file time")
    if stamp is None:
        notes.append("date taken from the body" if published else MTIME_NOTE)
    return Article(source, title, link, published, updated, body, tuple(notes))


def _truncate_html(body: str, limit: int) -> str:
    """Cut at the last tag boundary under `limit` UTF-8 bytes; the sanitizer closes what stays open."""
    head = body.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
    cut = head.rfind("<")
    return head[:cut] if cut > limit // 2 else head
