"""RFC 5005 archive pages: their names and their links (feedsvc.core.choose splits the entries into
pages; feedsvc.core.render.documents renders each page's Atom document and browser page from the
same `page_paging`).

The newest `max_entries` are the subscription document; all older entries are cut into pages of
`page_size` counted from the OLDEST entry, so page 1 holds the oldest `page_size`, page 2 the
next, and only the newest page is partly filled. When new articles arrive, entries flow from the
feed into the newest page; a full page keeps its entries, so its bytes and ETag stay (it changes
once more, when a newer page appears and it gains its `next-archive` link). Every entry is in
exactly one document. Editing or deleting an archived article moves the entries after it by one
place, so the pages from there on change too: correct, just not free.
"""

from __future__ import annotations

from feedsvc.core.render import Paging
from feedsvc.model import Entry, FeedMeta, Page


def archive_name(number: int) -> str:
    return f"archive/{number}.xml"


def subscription_paging(meta: FeedMeta, newest_page: int | None) -> Paging:
    """The feed's own links: self, and prev-archive to the newest page."""
    return Paging(meta.self_url, prev_archive=meta.url(archive_name(newest_page)) if newest_page else None)


def page_paging(meta: FeedMeta, page: Page[Entry], newest: int) -> Paging:
    """An archive page's links; `newest` is the number of the newest page (it has no next-archive)."""
    number = page.number
    return Paging(
        self_url=meta.url(archive_name(number)),
        prev_archive=meta.url(archive_name(number - 1)) if number > 1 else None,
        next_archive=meta.url(archive_name(number + 1)) if number < newest else None,
        current=meta.self_url,
    )
