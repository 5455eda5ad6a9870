"""Article → feed Entry (stable id, sanitized content, summary), and the choice of entries for a feed."""

from __future__ import annotations

import heapq
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from feedsvc.parse import Article
from feedsvc.sanitize import sanitize, summarize
from feedsvc.text import one_line, xml_safe

Sanitizer = Callable[[str, str | None], tuple[str, str]]

_SEED_NAMESPACE = uuid.UUID("6f1c1b38-6d43-4d8b-9d2e-5b0f6a1f0c4d")
_FIRST_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    link: str | None
    published: datetime | None
    updated: datetime
    content_html: str
    summary: str
    source: str
    image: str | None = None

    @property
    def dedup_key(self) -> str:
        return url_identity(self.link) if self.link else self.id


def canonical_url(url: str) -> str:
    """Case-insensitive parts lowercased, default port and fragment dropped: the same page, the same string."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80 if scheme == "http" else 443) else None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def http_url(url: str | None) -> str | None:
    """`url` if it is an http(s) URL that urllib can take apart (host, port), else None.

    urlsplit raises on "https://[x" (Invalid IPv6 URL) and `.port` on "https://e.com:abc/": a seed's
    link must never turn into an exception that costs the whole article.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def url_identity(url: str) -> str:
    """The canonical URL without its scheme: http:// and https:// copies of an article are one article."""
    canon = canonical_url(url)
    return canon.split(":", 1)[1] if ":" in canon else canon


def entry_id(link: str | None, source: str) -> str:
    """An absolute IRI that survives rebuilds, restarts and edits.

    The article URL when there is one; otherwise a name-based UUID of the file's path relative
    to the seeds directory, so renaming the output directory or the base URL changes nothing.
    """
    if link and urlsplit(link).scheme in ("http", "https"):
        return canonical_url(link)
    return f"urn:uuid:{uuid.uuid5(_SEED_NAMESPACE, source)}"


def make_entry(article: Article, sanitizer: Sanitizer = sanitize, summary_chars: int = 200) -> Entry:
    """Sanitize the article's HTML against its own URL and derive everything a feed entry needs."""
    link = http_url(article.link)
    content, plain = sanitizer(article.body_html, link)
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


class Choosable(Protocol):
    """What choosing reads: an Entry, or a builder's light record of one (no content loaded)."""

    @property
    def id(self) -> Any: ...
    @property
    def dedup_key(self) -> Any: ...
    @property
    def updated(self) -> Any: ...
    @property
    def published(self) -> Any: ...
    @property
    def source(self) -> str: ...


E = TypeVar("E", bound=Choosable)


def newest_first(entry: Choosable) -> tuple:
    """The feed's order as a sort key (largest first)."""
    return (entry.updated, entry.published or entry.updated, entry.id, entry.source)


def select_entries(
    entries: Iterable[E], max_entries: int | None = None, key: Callable[[E], Any] = newest_first
) -> list[E]:
    """Newest first, one entry per article URL (the newer `updated` wins), at most `max_entries`.

    The order is total (ties broken by id, then source path), so the same input gives the same feed.
    `key` must equal `newest_first`; a caller that keeps it precomputed passes a cheaper getter.
    """
    chosen: dict[str, E] = {}
    for entry in entries:
        dedup = entry.dedup_key
        current = chosen.get(dedup)
        if current is None or key(entry) > key(current):
            chosen[dedup] = entry
    if max_entries is not None:
        return heapq.nlargest(max_entries, chosen.values(), key=key)
    return sorted(chosen.values(), key=key, reverse=True)
