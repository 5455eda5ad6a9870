"""Article → feed Entry: a stable id, sanitized content, a summary, the first image; and the cap
on the content's size in the feeds."""

from __future__ import annotations

import dataclasses
import html
import re
import uuid
from urllib.parse import urlsplit

from feedsvc.core.sanitize import Sanitizer, get_sanitizer
from feedsvc.core.sanitize.tracking import untrack_html, untrack_url
from feedsvc.core.text import cut_html, one_line, summarize, summary_reads, xml_safe
from feedsvc.core.urls import canonical_url, http_url
from feedsvc.model import DEFAULT_SANITIZER, DEFAULT_STRIP_TRACKING, DEFAULT_SUMMARY_CHARS, Article, Entry

_SEED_NAMESPACE = uuid.UUID("6f1c1b38-6d43-4d8b-9d2e-5b0f6a1f0c4d")
_FIRST_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.IGNORECASE)
# A video's poster is the entry's image when the content has no <img> (VOA's and DW's video news).
_FIRST_POSTER = re.compile(r"<video\b[^>]*?\bposter=\"([^\"]+)\"", re.IGNORECASE)
# The last paragraph of a content cut by `cap_content`, linking to the whole article.
CONTINUE_READING = "Continue reading →"


def entry_id(link: str | None, source: str) -> str:
    """An absolute IRI that survives rebuilds, restarts and edits.

    The article URL when there is one; otherwise a name-based UUID of the file's path relative
    to the seeds directory, so renaming the output directory or the base URL changes nothing.
    """
    if link and urlsplit(link).scheme in ("http", "https"):
        return canonical_url(link)
    return f"urn:uuid:{uuid.uuid5(_SEED_NAMESPACE, source)}"


def make_entry(
    article: Article,
    sanitizer: Sanitizer | None = None,
    summary_chars: int = DEFAULT_SUMMARY_CHARS,
    strip_tracking: bool = DEFAULT_STRIP_TRACKING,
) -> Entry:
    """Sanitize the article's HTML (with `sanitizer`, bleach by default) against its own URL and
    derive everything a feed entry needs. With `strip_tracking`, tracking pixels and tracking query
    parameters go from the content and the link; the id is always derived from the link as the
    seed writes it, so it never changes with this setting."""
    link = http_url(article.link)
    sanitize = sanitizer or get_sanitizer(DEFAULT_SANITIZER)
    content, plain = sanitize(article.body_html, link, text_limit=summary_reads(summary_chars))
    shown_link = link
    if strip_tracking:
        content = untrack_html(content)
        shown_link = untrack_url(link) if link else link
    m = _FIRST_IMG.search(content) or _FIRST_POSTER.search(content)
    image = m.group(1).replace("&amp;", "&") if m else None
    return Entry(
        id=entry_id(link, article.source),
        title=one_line(xml_safe(article.title)) or "(untitled)",
        link=shown_link,
        published=article.published,
        updated=article.updated,
        content_html=content,
        summary=summarize(plain, summary_chars),
        source=article.source,
        image=image,
    )


def cap_content(entry: Entry, max_bytes: int, sanitizer: Sanitizer) -> tuple[Entry, str | None]:
    """`entry` with its content at most about `max_bytes` (UTF-8): longer content is cut before a
    tag, closed again by the sanitizer, and ends with a paragraph linking to the article (when it
    has a link). Returns the entry and, when cut, the problem to report."""
    content = entry.content_html
    if len(content) * 4 <= max_bytes or (size := len(content.encode("utf-8"))) <= max_bytes:
        return entry, None
    tail = f'<p><a href="{html.escape(entry.link)}">{CONTINUE_READING}</a></p>' if entry.link else ""
    room = max_bytes - len(tail.encode("utf-8"))
    budget = room
    for _attempt in range(8):  # the closing tags the sanitizer adds can overshoot: cut shorter
        cut = sanitizer(cut_html(content, budget), entry.link, text_limit=0)[0]  # the HTML only
        over = len(cut.encode("utf-8")) - room
        if over <= 0:
            break
        budget -= over + 64
    problem = f"content of {size} bytes cut to max_entry_bytes={max_bytes}"
    if tail:
        problem += ", ending with a link to the article"
    return dataclasses.replace(entry, content_html=cut + tail), problem
