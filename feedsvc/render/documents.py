"""Entries → every document one build publishes: the feeds, the archive pages, the index, the stylesheet.

The one list of what feedsvc serves. The builder calls `render_documents` (and
`render_archive_page` for the archive pages that changed) and publishes the result as one
version; the web side's routes map URLs onto these names.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedsvc.entry import Entry
from feedsvc.render import FeedMeta, Rendered, feed_updated
from feedsvc.render.archive import Page, archive_name, render_page, split_archive, subscription_paging
from feedsvc.render.atom import render_atom
from feedsvc.render.html import render_index
from feedsvc.render.jsonfeed import render_jsonfeed
from feedsvc.render.rss import render_rss
from feedsvc.render.xsl import FEED_XSL

ATOM_TYPE = "application/atom+xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json"
HTML_TYPE = "text/html; charset=utf-8"
XSL_TYPE = "text/xsl; charset=utf-8"
# The documents a reader subscribes to (and WebSub topics): the same entries in three formats.
SUBSCRIPTION_FEEDS = ("feed.xml", "feed.rss", "feed.json")


def render_documents(meta: FeedMeta, current: Sequence[Entry], newest_page: int | None = None) -> list[Rendered]:
    """The subscription documents for `current` (the newest `max_entries`); /feed.xml links to the
    newest archive page, `newest_page`, with prev-archive."""
    updated = feed_updated(current)
    documents = [
        Rendered("feed.xml", render_atom(meta, current, subscription_paging(meta, newest_page)), ATOM_TYPE, updated),
        Rendered("feed.rss", render_rss(meta, current, meta.url("feed.rss")), RSS_TYPE, updated),
        Rendered("feed.json", render_jsonfeed(meta, current, meta.url("feed.json")), JSON_FEED_TYPE, updated),
        Rendered("index.html", render_index(meta, current), HTML_TYPE, updated),
    ]
    if meta.stylesheet:
        documents.append(Rendered("feed.xsl", FEED_XSL, XSL_TYPE, updated))
    return documents


def render_archive_page(meta: FeedMeta, page: Page[Entry], newest: int) -> Rendered:
    return Rendered(archive_name(page.number), render_page(meta, page, newest), ATOM_TYPE, feed_updated(page.entries))


def render_all(meta: FeedMeta, entries: Sequence[Entry], max_entries: int, archive_page_size: int) -> list[Rendered]:
    """Every document from ALL entries, deduplicated, newest first (`select_entries(entries, None)`).

    /feed.xml, /feed.rss, /feed.json and / carry the newest `max_entries`; the older ones are
    in the archive pages, each exactly once. (The builder does the same page by page, rendering
    only the pages whose entries changed.)
    """
    current, pages = split_archive(entries, max_entries, archive_page_size)
    newest = pages[-1].number if pages else 0
    archive = [render_archive_page(meta, page, newest) for page in pages]
    return render_documents(meta, current, newest or None) + archive
