"""Entries → Atom 1.0 bytes, with feedgen.

feedgen's traps are handled here: every `updated` is set explicitly (its default is the clock),
entries are appended in our order (its default prepends), content is `type="html"`.
"""

from __future__ import annotations

from collections.abc import Sequence

from feedgen.feed import FeedGenerator

from feedsvc import __version__
from feedsvc.entry import Entry
from feedsvc.render import FeedMeta, feed_updated
from feedsvc.text import xml_safe


def _generator(meta: FeedMeta, entries: Sequence[Entry]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(meta.id)
    fg.title(meta.title)
    if meta.subtitle:
        fg.subtitle(meta.subtitle)
    fg.author({"name": meta.author})
    fg.language(meta.language)
    fg.link(href=meta.alternate_url, rel="alternate", type="text/html")
    fg.link(href=meta.self_url, rel="self", type="application/atom+xml")
    fg.generator("feedsvc", version=__version__, uri="https://pypi.org/project/feedsvc/")
    fg.updated(feed_updated(entries))
    for entry in entries:
        fe = fg.add_entry(order="append")
        # Entries from make_entry are already clean; this guard keeps one odd string from
        # sinking the whole document, whoever built the Entry.
        fe.id(xml_safe(entry.id))
        fe.title(xml_safe(entry.title) or "(untitled)")
        if entry.link:
            fe.link(href=xml_safe(entry.link), rel="alternate", type="text/html")
        fe.updated(entry.updated)
        if entry.published:
            fe.published(entry.published)
        fe.author({"name": meta.author})
        fe.content(xml_safe(entry.content_html), type="html")
        if entry.summary:
            fe.summary(xml_safe(entry.summary))
    return fg


def render_atom(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """Atom 1.0 document, UTF-8, with an XML declaration."""
    return _generator(meta, entries).atom_str(pretty=True, encoding="UTF-8", xml_declaration=True)
