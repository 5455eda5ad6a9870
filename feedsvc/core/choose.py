"""Which entries a feed shows, in which order, and how the older ones split into archive pages.

Works on anything that has the fields choosing reads: full Entries, or the builder's light
Records, so 10k files are chosen from without loading any content.

- Order: newest `updated` first; ties broken by the article's own date, the id, the file's path,
  so the order is total and the same seeds give the same feed.
- One entry per article URL (http and https copies are one article): the newer `updated` wins.
- RFC 5005 archives (§4: an archive document's entries SHOULD NOT change): the newest
  `max_entries` are the subscription document; every older entry is on exactly one archive page.
  Pages are by calendar month (UTC, of `updated`, the sort key, so a month is a run of the
  order): a month's archived entries, cut into pages of `page_size` counted from the month's
  oldest entry, so only a month's newest page is partly filled. A page's number is `YYYYMMNNN`
  (`page_number`; 202304001 is April 2023's first page): it fits the route's nine digits, reads
  as a date and sorts by time. A page's number and entries depend on its own month's entries
  alone, its links on which pages are next to it, so:
  - a new article pushes the feed's oldest entry onto the newest page (or a new page after it,
    whose older neighbour then gains its next-archive link);
  - a backdated article changes the page it lands on, plus, when it opens a page (its month had
    no page, or a full last page), that page's neighbours' links. Where its month spans several
    pages, the month's later pages shift by one entry each: counting from the oldest keeps new
    articles, the common case, to one page. An archived article edited or deleted does the same to
    the month it leaves (and to the one it joins);
  - every other page keeps its entries, its number and its links, so its bytes and its ETag.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC
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


# NNN, a page's place in its month, has three digits: a month's 999th page holds the rest of it.
PAGES_PER_MONTH = 999


def page_number(year: int, month: int, place: int) -> int:
    """`YYYYMMNNN`: the month's `place`-th page (1 = its oldest). Nine digits for the years
    1000-9999 (fewer before), never a leading 0; sorting the numbers sorts the pages by time."""
    return (year * 100 + month) * 1000 + place


def split_archive(entries: Sequence[E], max_entries: int, page_size: int) -> tuple[list[E], list[Page[E]]]:
    """`entries` newest first (all of them) → (the subscription feed's entries, archive pages
    oldest first, each with its neighbours' numbers)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    current = list(entries[:max_entries])
    oldest_first = list(reversed(entries[max_entries:]))
    planned: list[tuple[int, list[E]]] = []
    for (year, month), group in itertools.groupby(oldest_first, key=_month):
        items = list(group)
        cuts = range(0, min(len(items), PAGES_PER_MONTH * page_size), page_size)
        for place, start in enumerate(cuts, 1):
            end = start + page_size if place < PAGES_PER_MONTH else len(items)
            planned.append((page_number(year, month, place), items[start:end]))
    numbers = [None, *(number for number, _ in planned), None]
    pages = [
        Page(number, tuple(reversed(items)), older=numbers[i], newer=numbers[i + 2])
        for i, (number, items) in enumerate(planned)
    ]
    return current, pages


def _month(entry: Choosable) -> tuple[int, int]:
    updated = entry.updated.astimezone(UTC)
    return updated.year, updated.month
