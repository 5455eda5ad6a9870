"""Which entries a feed shows, in which order, and how the older ones split into archive pages.

Works on anything that has the fields choosing reads: full Entries, or the builder's light
Records, so 10k files are chosen from without loading any content.

- Order: newest `updated` first; ties broken by the article's own date, the id, the file's path,
  so the order is total and the same seeds give the same feed.
- One entry per article URL (http and https copies are one article): the newer `updated` wins.
- RFC 5005 archives (§4: an archive document's entries SHOULD NOT change): the newest
  `max_entries` are the subscription document; every older entry is on exactly one archive page.
  Pages are periods of time, so a page's entries depend on its period's entries alone:
  - a calendar month (UTC, of `updated`, the sort key) is one page while it holds at most
    `page_size` archived entries;
  - a fuller month is halved in time (its first and second half), and each half again, until
    every piece holds at most `page_size`. Empty pieces have no page. Halving stops at 1/512 of
    a month (~1.5 h); a burst of more than `page_size` entries in such a piece (files copied in
    at once, all dated by their mtime) is cut into pages counted from its oldest entry.
  A page's number is `YYYYMMPPP` (`page_number`): the month, and the piece's place in that
  binary tree (1 = the whole month, 2 and 3 its halves, 2p and 2p+1 the halves of piece p), so
  it names the same period in every process and replica; a burst's pages are `YYYYMMPPPNNN`. So:
  - a new article pushes the feed's oldest entry onto the newest page (which, when full, splits
    into its halves; a new month opens a page after it, whose older neighbour gains a link);
  - a backdated article changes the one page whose period it falls in (or splits it into its
    halves), plus the links of the pages next to a page that appears or goes;
  - every other page keeps its entries, its number and its links, so its bytes and its ETag.
  An archived article edited or deleted does the same to the page it leaves and the one it joins.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
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


def newest_first(entry: Choosable) -> tuple[Any, ...]:
    """The feed's order as a sort key (largest first)."""
    return (entry.updated, entry.published or entry.updated, entry.id, entry.source)


# The key of Choosables that carry their `newest_first` key precomputed as `.order` (Records):
# a C-level getter, as a rebuild sorts every record.
by_order: Callable[[Any], tuple[Any, ...]] = operator.attrgetter("order")


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


def page_number(year: int, month: int, piece: int, burst: int = 0) -> int:
    """`YYYYMMPPP`: piece `piece` of the month (1 = the whole month; 2p, 2p+1 = the halves of p);
    `YYYYMMPPPNNN` for page `burst` (1 = its oldest) of a smallest piece too full to halve."""
    number = (year * 100 + month) * 1000 + piece
    return number * 1000 + burst if burst else number


# Pieces are numbered 1 … 999 within a month: halving stops where a piece's halves would not fit.
MAX_PIECE = 999
# A burst's pages are numbered 1 … 999: its 999th page holds the rest of it.
MAX_BURST = 999


def split_archive(entries: Sequence[E], max_entries: int, page_size: int) -> tuple[list[E], list[Page[E]]]:
    """`entries` newest first (all of them) → (the subscription feed's entries, archive pages
    oldest first, each with its neighbours' numbers)."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    current = list(entries[:max_entries])
    oldest_first = list(reversed(entries[max_entries:]))
    planned: list[tuple[int, list[E]]] = []
    for (year, month), group in itertools.groupby(oldest_first, key=_month):
        start = datetime(year, month, 1, tzinfo=UTC)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        for piece, burst, items in _pieces(list(group), start, end, 1, page_size):
            planned.append((page_number(year, month, piece, burst), items))
    numbers = [None, *(number for number, _ in planned), None]
    pages = [
        Page(number, tuple(reversed(items)), older=numbers[i], newer=numbers[i + 2])
        for i, (number, items) in enumerate(planned)
    ]
    return current, pages


def _pieces(
    items: list[E], start: datetime, end: datetime, piece: int, page_size: int
) -> Iterator[tuple[int, int, list[E]]]:
    """(piece, burst page or 0, entries) of the non-empty pieces of [start, end) holding `items`
    (oldest first), oldest first."""
    if len(items) <= page_size:
        yield piece, 0, items
        return
    if 2 * piece + 1 > MAX_PIECE:
        for burst, first in enumerate(range(0, len(items), page_size), 1):
            yield piece, min(burst, MAX_BURST), items[first : first + page_size if burst < MAX_BURST else None]
            if burst == MAX_BURST:
                return
        return
    middle = start + (end - start) / 2
    split = next((i for i, item in enumerate(items) if item.updated >= middle), len(items))
    if split:
        yield from _pieces(items[:split], start, middle, 2 * piece, page_size)
    if split < len(items):
        yield from _pieces(items[split:], middle, end, 2 * piece + 1, page_size)


def _month(entry: Choosable) -> tuple[int, int]:
    updated = entry.updated
    if updated.tzinfo is not UTC:  # nearly always UTC already: a rebuild walks every entry
        updated = updated.astimezone(UTC)
    return updated.year, updated.month
