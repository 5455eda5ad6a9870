"""Entries → Atom 1.0 bytes, with feedgen.

feedgen's traps are handled here: every `updated` is set explicitly (its default is the clock),
entries are appended in our order (its default prepends), content is `type="html"`. A link
post (no content, an alternate link) has no `<content>`, as RFC 4287 §4.1.1.1 allows.
The same function renders the subscription feed and each RFC 5005 archive page (`Paging`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]  # feedgen ships no types

from feedsvc import __version__
from feedsvc.core.articles import reader_links
from feedsvc.core.render import Paging, feed_updated
from feedsvc.core.render.xmlparts import add_thumbnail, generator, with_stylesheet
from feedsvc.core.text import xml_safe
from feedsvc.model import Entry, FeedMeta


def _generator(meta: FeedMeta, entries: Sequence[Entry], paging: Paging, updated: datetime) -> FeedGenerator:
    archive = paging.current is not None
    fg = generator(archive=archive)
    # An archive page is a document of its own: its own id, and rel="current" to the feed.
    fg.id(paging.self_url if archive else meta.id)
    fg.title(meta.title)
    if meta.subtitle:
        fg.subtitle(meta.subtitle)
    fg.author({"name": meta.author})
    fg.language(meta.language)
    fg.link(href=meta.alternate_url, rel="alternate", type="text/html")
    fg.link(href=paging.self_url, rel="self", type="application/atom+xml")
    if paging.current:
        fg.link(href=paging.current, rel="current", type="application/atom+xml")
    elif meta.hub:
        fg.link(href=meta.hub, rel="hub")
    if paging.prev_archive:
        fg.link(href=paging.prev_archive, rel="prev-archive", type="application/atom+xml")
    if paging.next_archive:
        fg.link(href=paging.next_archive, rel="next-archive", type="application/atom+xml")
    fg.generator("feedsvc", version=__version__, uri="https://pypi.org/project/feedsvc/")
    fg.updated(updated)
    for entry in entries:
        fe = fg.add_entry(order="append")
        # Entries from make_entry are already clean; this guard keeps one odd string from
        # sinking the whole document, whoever built the Entry.
        fe.id(xml_safe(entry.id))
        fe.title(xml_safe(entry.title) or "(untitled)")
        link, via = reader_links(meta, entry.id, entry.link)
        if link:
            fe.feedsvc.links.append({"href": xml_safe(link), "rel": "alternate", "type": "text/html"})
        if via:
            fe.feedsvc.links.append({"href": xml_safe(via), "rel": "via", "type": "text/html"})
        fe.updated(entry.updated)
        if entry.published:
            fe.published(entry.published)
        fe.author({"name": meta.author})
        fe.content(xml_safe(entry.content_html), type="html")
        # A link post: its alternate link stands for the content (feedgen cannot see that link).
        fe.feedsvc.without_content = not entry.content_html and bool(entry.link)
        if entry.summary:
            fe.summary(xml_safe(entry.summary))
        add_thumbnail(fe, entry, atom=True)
    return fg


def render_atom(
    meta: FeedMeta, entries: Sequence[Entry], paging: Paging | None = None, updated: datetime | None = None
) -> bytes:
    """Atom 1.0 document, UTF-8, with an XML declaration (and the stylesheet instruction if any).

    Without `paging` it is the subscription feed with no archives. The feed's `updated` is
    `updated`, by default its newest entry's.
    """
    fg = _generator(meta, entries, paging or Paging(meta.self_url), updated or feed_updated(entries))
    return with_stylesheet(fg.atom_str(pretty=True, encoding="UTF-8", xml_declaration=True), meta.stylesheet)
