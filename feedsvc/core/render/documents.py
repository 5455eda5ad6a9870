"""Entries → the bytes of every document of one build (the table of documents is `core/routes.py`).

The builder calls `render_documents` (and `render_archive_page` for the archive pages that
changed) and publishes the result as one version. `fit_feed` finds how many entries keep the
subscription documents under `max_feed_bytes`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from feedsvc.core.choose import split_archive
from feedsvc.core.render import feed_updated
from feedsvc.core.render.archive import archive_name, page_paging, subscription_paging
from feedsvc.core.render.atom import render_atom
from feedsvc.core.render.html import render_feed_page, render_index
from feedsvc.core.render.jsonfeed import render_jsonfeed
from feedsvc.core.render.opml import render_opml
from feedsvc.core.render.rss import render_rss
from feedsvc.core.render.xsl import FEED_XSL
from feedsvc.core.routes import ATOM_TYPE, HTML_TYPE, JSON_FEED_TYPE, OPML_TYPE, RSS_TYPE, XSL_TYPE, page_name
from feedsvc.model import Document, Entry, FeedMeta, Page


def render_documents(
    meta: FeedMeta,
    current: Sequence[Entry],
    newest_page: int | None,
    now: datetime | None,
    prefix: str = "",
    feeds: Sequence[FeedMeta] = (),
) -> list[Document]:
    """The subscription documents for `current` (the newest `max_entries`); /feed.xml links to the
    newest archive page, `newest_page`, with prev-archive, and each has its browser page.

    `prefix` ("world/") names a declared feed's documents; its index page links with absolute
    URLs. `feeds`: every feed's metadata, the top-level one first, when feeds are declared: the
    top-level index lists them, and /feeds.opml is published (the top-level feed's documents only).

    Their date (Atom `updated`, RSS `lastBuildDate`, `last_modified`) is the newest entry's, but
    never later than `now`, the build's time (None: the newest entry's): an entry stamped ahead of
    the clock must not date the feed in the future, where date-based polling would freeze.
    """
    updated = feed_updated(current, now)
    paging = subscription_paging(meta, newest_page)
    rss_paging = dataclasses.replace(paging, self_url=meta.url("feed.rss"))
    older = meta.url(archive_name(newest_page)) if newest_page is not None else None
    index = render_index(meta, current, feeds[1:] if not prefix else (), absolute=bool(prefix), older=older)
    atom_page = render_feed_page(meta, current, paging, "Atom")
    rss_page = render_feed_page(meta, current, rss_paging, "RSS")
    documents = [
        Document(prefix + "feed.xml", render_atom(meta, current, paging, updated), ATOM_TYPE, updated),
        Document(prefix + "feed.rss", render_rss(meta, current, rss_paging.self_url, updated), RSS_TYPE, updated),
        Document(prefix + "feed.json", render_jsonfeed(meta, current, meta.url("feed.json")), JSON_FEED_TYPE, updated),
        Document(prefix + "index.html", index, HTML_TYPE, updated),
        Document(prefix + page_name("feed.xml"), atom_page, HTML_TYPE, updated),
        Document(prefix + page_name("feed.rss"), rss_page, HTML_TYPE, updated),
    ]
    if meta.stylesheet and not prefix:
        documents.append(Document("feed.xsl", FEED_XSL, XSL_TYPE, updated))
    if feeds and not prefix:
        documents.append(Document("feeds.opml", render_opml(meta.title, feeds), OPML_TYPE, updated))
    return documents


def fit_feed(meta: FeedMeta, current: Sequence[Entry], now: datetime | None, max_bytes: int) -> int:
    """How many of `current` (newest first) the subscription documents (Atom, RSS, JSON Feed) hold
    with each at most `max_bytes`: all of them, or the most that fit, at least one. Measured with
    the longest prev-archive link a page number can make, so the final documents are no larger."""
    paging = subscription_paging(meta, 10**12 - 1)

    def fits(count: int) -> bool:
        some, updated = current[:count], feed_updated(current[:count], now)
        return all(
            len(body) <= max_bytes
            for body in (
                render_atom(meta, some, paging, updated),
                render_rss(meta, some, meta.url("feed.rss"), updated),
                render_jsonfeed(meta, some, meta.url("feed.json")),
            )
        )

    if len(current) <= 1 or _surely_under(current, max_bytes) or fits(len(current)):
        return len(current)
    low, high = 1, len(current) - 1  # the most that fit lies in [low, high]; one always stays
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


# What a document holds besides its entries, and each entry besides its strings: a generous
# upper bound of the markup, the dates, the author and the links' attributes.
_DOCUMENT_OVERHEAD = 4000
_ENTRY_OVERHEAD = 1500


def _escaped_size(text: str) -> int:
    """An upper bound of `text`'s UTF-8 size once escaped for XML or JSON (`&quot;` is the longest)."""
    special = sum(text.count(ch) for ch in "<>&\"'\\\n")
    return len(text.encode()) + 5 * special


def _surely_under(current: Sequence[Entry], max_bytes: int) -> bool:
    """Whether each subscription document is certainly at most `max_bytes`, without rendering it:
    an upper bound of the bytes of each (one holds each entry's content once, its summary and
    title once, its links and image a few times)."""
    bound = _DOCUMENT_OVERHEAD
    for entry in current:
        bound += _ENTRY_OVERHEAD + sum(map(_escaped_size, (entry.content_html, entry.summary, entry.title, entry.id)))
        bound += 3 * len(entry.link or "") + 4 * len(entry.image or "")
        if bound > max_bytes:
            return False
    return True


def oversize_reason(entries: int, kept: int, max_bytes: int) -> str:
    return (
        f"the subscription documents would be over max_feed_bytes={max_bytes} with {entries} entries: "
        f"the newest {kept} stay, {entries - kept} moved to the archive"
    )


def render_archive_page(
    meta: FeedMeta, page: Page[Entry], source_key: str = "", prefix: str = ""
) -> tuple[Document, Document]:
    """One archive page: its Atom document and its browser page, from the same links. Both are read
    from disk when served (`in_memory=False`), not held by web processes."""
    name, paging, updated = prefix + archive_name(page.number), page_paging(meta, page), feed_updated(page.entries)
    return (
        Document(name, render_atom(meta, page.entries, paging), ATOM_TYPE, updated, source_key, in_memory=False),
        Document(
            page_name(name),
            render_feed_page(meta, page.entries, paging, "Atom"),
            HTML_TYPE,
            updated,
            source_key,
            in_memory=False,
        ),
    )


def render_all(
    meta: FeedMeta,
    entries: Sequence[Entry],
    max_entries: int,
    archive_page_size: int,
    now: datetime | None = None,
) -> list[Document]:
    """Every document from ALL entries, chosen and newest first (`select_entries(entries)`), at the
    time `now` (see `render_documents`).

    /feed.xml, /feed.rss, /feed.json and / (and the browser pages of the first two) carry the
    newest `max_entries`; the older ones are in the archive pages, each exactly once. (The
    builder does the same page by page, rendering only the pages whose entries changed; this is
    the reference its tests and benchmarks compare with.)
    """
    current, pages = split_archive(entries, max_entries, archive_page_size)
    archive = [document for page in pages for document in render_archive_page(meta, page)]
    return render_documents(meta, current, pages[-1].number if pages else None, now) + archive
