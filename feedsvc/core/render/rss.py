"""Entries → RSS 2.0 bytes, with feedgen: the same entries, in the same order, as the Atom feed.

- guid = the Atom id; `isPermaLink="true"` only when that id is the article's URL.
- pubDate = `article_date`: the article's own publication time when known, else its `updated`.
- `content:encoded` carries the full sanitized HTML, `description` the plain-text summary.
- lastBuildDate = the newest entry, never later than the publish (feedgen's default is the clock,
  which would churn the bytes).
- a link post (no content) is its title, link, guid and pubDate: no description, no content.

feedgen's traps: the channel `<link>` is the *last* `fg.link()` call (so self comes first),
`rel="hub"` never reaches RSS (FeedExtras adds it), and `formatRFC2822` switches the
process-wide locale: this runs only in the builder's single thread, never on a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feedsvc import __version__
from feedsvc.core.articles import reader_links
from feedsvc.core.render import article_date, feed_updated
from feedsvc.core.render.xmlparts import add_thumbnail, generator, with_stylesheet
from feedsvc.core.text import xml_safe
from feedsvc.core.urls import canonical_url
from feedsvc.model import Entry, FeedMeta


def _is_permalink(entry: Entry) -> bool:
    return entry.link is not None and entry.id == canonical_url(entry.link)


def render_rss(meta: FeedMeta, entries: Sequence[Entry], self_url: str, updated: datetime | None = None) -> bytes:
    """RSS 2.0 document, UTF-8, with an XML declaration (and the stylesheet instruction if any).

    `lastBuildDate` is `updated`, by default the newest entry's."""
    fg = generator(hub=meta.hub)
    fg.title(meta.title)
    fg.description(meta.subtitle or meta.title)
    fg.language(meta.language)
    fg.author({"name": meta.author})
    fg.generator("feedsvc", version=__version__, uri="https://pypi.org/project/feedsvc/")
    fg.link(href=self_url, rel="self", type="application/rss+xml")
    fg.link(href=meta.alternate_url, rel="alternate", type="text/html")  # last: the channel <link>
    fg.lastBuildDate(updated or feed_updated(entries))
    for entry in entries:
        fe = fg.add_entry(order="append")
        fe.guid(xml_safe(entry.id), permalink=_is_permalink(entry))
        fe.title(xml_safe(entry.title) or "(untitled)")
        link = reader_links(meta, entry.id, entry.link)[0]
        if link:
            fe.link(href=xml_safe(link), rel="alternate", type="text/html")
        fe.pubDate(article_date(entry))
        if entry.content_html or not entry.link:  # a link post is its title and link
            fe.content(xml_safe(entry.content_html), type="html")
            fe.description(xml_safe(entry.summary) or xml_safe(entry.title) or "(untitled)", isSummary=True)
        add_thumbnail(fe, entry, atom=False)
    return with_stylesheet(fg.rss_str(pretty=True, encoding="UTF-8", xml_declaration=True), meta.stylesheet)
