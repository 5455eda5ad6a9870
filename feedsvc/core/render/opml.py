"""Feeds → an OPML 2.0 subscription list (`/feeds.opml`): one `outline` per feed, the top-level one
first, with `text` and `title`, `type="rss"` (what OPML readers expect of any feed), `xmlUrl`
(the Atom document), `htmlUrl` (the feed's web page), and `description` and `language`.
No dates: the same feeds give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from feedsvc.core.text import xml_safe
from feedsvc.model import FeedMeta


def _outline(meta: FeedMeta) -> str:
    attributes = {"type": "rss", "text": meta.title, "title": meta.title, "xmlUrl": meta.self_url}
    attributes["htmlUrl"] = meta.alternate_url
    if meta.subtitle:
        attributes["description"] = meta.subtitle
    attributes["language"] = meta.language
    return "<outline " + " ".join(f"{k}={quoteattr(xml_safe(v))}" for k, v in attributes.items()) + "/>"


def render_opml(title: str, feeds: Sequence[FeedMeta]) -> bytes:
    """The OPML document listing `feeds`, UTF-8."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"<head><title>{escape(xml_safe(title))}</title></head>",
        "<body>",
        *(_outline(meta) for meta in feeds),
        "</body>",
        "</opml>",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")
