"""RFC 5005 archive pages: their names and their links (feedsvc.core.choose splits the entries into
pages, by periods of time; feedsvc.core.render.documents renders each page's Atom document and
browser page from the same `page_paging`).

A page is named by its number, `archive/YYYYMMPPP.xml`: the month (UTC) of its entries'
`updated`, and the piece of that month it covers (`archive/202304001.xml` is all of April 2023,
`202304003` its second half; see feedsvc.core.choose). So a page's name and entries depend on
its own period's entries alone, and its links on which pages exist around it. Each page links to the
next older page (`prev-archive`; none on the oldest), the next newer one (`next-archive`; none on
the newest, whose newer neighbour is /feed.xml), to /feed.xml (`current`), and carries
`fh:archive`. /feed.xml links to the newest page with `prev-archive`.
"""

from __future__ import annotations

from feedsvc.core.render import Paging
from feedsvc.model import Entry, FeedMeta, Page


def archive_name(number: int) -> str:
    return f"archive/{number}.xml"


def subscription_paging(meta: FeedMeta, newest_page: int | None) -> Paging:
    """The feed's own links: self, and prev-archive to the newest page."""
    return Paging(meta.self_url, prev_archive=meta.url(archive_name(newest_page)) if newest_page else None)


def page_paging(meta: FeedMeta, page: Page[Entry]) -> Paging:
    """An archive page's links: to its neighbours `page.older` and `page.newer`, and to the feed."""
    return Paging(
        self_url=meta.url(archive_name(page.number)),
        prev_archive=meta.url(archive_name(page.older)) if page.older is not None else None,
        next_archive=meta.url(archive_name(page.newer)) if page.newer is not None else None,
        current=meta.self_url,
    )
