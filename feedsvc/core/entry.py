"""Article → feed Entry: a stable id, sanitized content, a summary, the first image."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from feedsvc.core.sanitize import Sanitizer, get_sanitizer
from feedsvc.core.text import one_line, summarize, xml_safe
from feedsvc.core.urls import canonical_url, http_url
from feedsvc.model import Article, Entry

_SEED_NAMESPACE = uuid.UUID("6f1c1b38-6d43-4d8b-9d2e-5b0f6a1f0c4d")
_FIRST_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def entry_id(link: str | None, source: str) -> str:
    """An absolute IRI that survives rebuilds, restarts and edits.

    The article URL when there is one; otherwise a name-based UUID of the file's path relative
    to the seeds directory, so renaming the output directory or the base URL changes nothing.
    """
    if link and urlsplit(link).scheme in ("http", "https"):
        return canonical_url(link)
    return f"urn:uuid:{uuid.uuid5(_SEED_NAMESPACE, source)}"


def make_entry(article: Article, sanitizer: Sanitizer | None = None, summary_chars: int = 200) -> Entry:
    """Sanitize the article's HTML (with `sanitizer`, bleach by default) against its own URL and
    derive everything a feed entry needs."""
    link = http_url(article.link)
    content, plain = (sanitizer or get_sanitizer("bleach"))(article.body_html, link)
    image = m.group(1).replace("&amp;", "&") if (m := _FIRST_IMG.search(content)) else None
    return Entry(
        id=entry_id(link, article.source),
        title=one_line(xml_safe(article.title)) or "(untitled)",
        link=link,
        published=article.published,
        updated=article.updated,
        content_html=content,
        summary=summarize(plain, summary_chars),
        source=article.source,
        image=image,
    )
