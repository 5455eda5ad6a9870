"""Which entries a feed shows, in which order, and how the older ones split into archive pages.

Works on anything that has the fields choosing reads: full Entries, or the builder's light
Records, so 10k files are chosen from without loading any content.

- Order: newest `updated` first; ties broken by the article's own date, the id, the file's path,
  so the order is total and the same seeds give the same feed.
- One entry per article URL (http and https copies are one article): the newer `updated` wins.
- RFC 5005 archives: the newest `max_entries` are the subscription document; all older entries
  are cut into pages of `page_size` counted from the OLDEST, so page 1 holds the oldest and only
  the newest page is partly filled. When new articles arrive, a full page keeps its entries.
  Every entry is in exactly one document.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from feedsvc.model import Page


class Choosable(Protocol):
    """What choosing reads: an Entry, or a builder's light Record of one (no content loaded)."""

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
T = TypeVar("T")


def newest_first(entry: Choosable) -> tuple:
    """The feed's order as a sort key (largest first)."""
    return (entry.updated, entry.published or entry.updated, entry.id, entry.source)


def select_entries(
    entries: Iterable[E], max_entries: int | None = None, key: Callable[[E], Any] = newest_first
) -> list[E]:
    """Newest first, one entry per article URL (the newer `updated` wins), at most `max_entries`.

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


def split_archive(entries: Sequence[T], max_entries: int, page_size: int) -> tuple[list[T], list[Page[T]]]:
    """`entries` newest first (all of them) → (the subscription feed's entries, archive pages oldest first)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    current = list(entries[:max_entries])
    oldest_first = list(reversed(entries[max_entries:]))
    pages = [
        Page(start // page_size + 1, tuple(reversed(oldest_first[start : start + page_size])))
        for start in range(0, len(oldest_first), page_size)
    ]
    return current, pages
