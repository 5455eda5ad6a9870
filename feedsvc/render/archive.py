"""RFC 5005 archived feeds: which entries go to /feed.xml and which to each archive page.

The newest `max_entries` are the subscription document; all older entries are cut into pages of
`page_size` counted from the OLDEST entry, so page 1 holds the oldest `page_size`, page 2 the
next, and only the newest page is partly filled. When new articles arrive, entries flow from the
feed into the newest page; a full page keeps its entries, so its bytes and ETag stay (it changes
once more, when a newer page appears and it gains its `next-archive` link). Every entry is in
exactly one document. Editing or deleting an archived article moves the entries after it by one
place, so the pages from there on change too: correct, just not free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from feedsvc.entry import Entry
from feedsvc.render import FeedMeta, Paging
from feedsvc.render.atom import render_atom

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One archive page's items: Entries to render, or the builder's light records to plan with."""

    number: int  # 1 = the oldest entries
    entries: tuple[T, ...]  # newest first, like every document


def archive_name(number: int) -> str:
    return f"archive/{number}.xml"


def split_archive(entries: Sequence[T], max_entries: int, page_size: int) -> tuple[list[T], list[Page[T]]]:
    """`entries` newest first (all of them) → (the subscription feed's entries, archive pages oldest first).

    Works on anything in feed order, so the builder can plan pages from light records and load
    full entries only for the pages whose composition changed.
    """
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    current = list(entries[:max_entries])
    oldest_first = list(reversed(entries[max_entries:]))
    pages = [
        Page(start // page_size + 1, tuple(reversed(oldest_first[start : start + page_size])))
        for start in range(0, len(oldest_first), page_size)
    ]
    return current, pages


def subscription_paging(meta: FeedMeta, newest_page: int | None) -> Paging:
    """The feed's own links: self, and prev-archive to the newest page."""
    return Paging(meta.self_url, prev_archive=meta.url(archive_name(newest_page)) if newest_page else None)


def render_page(meta: FeedMeta, page: Page[Entry], newest: int) -> bytes:
    """One archive document; `newest` is the number of the newest page (it has no next-archive)."""
    number = page.number
    paging = Paging(
        self_url=meta.url(archive_name(number)),
        prev_archive=meta.url(archive_name(number - 1)) if number > 1 else None,
        next_archive=meta.url(archive_name(number + 1)) if number < newest else None,
        current=meta.self_url,
    )
    return render_atom(meta, page.entries, paging)
