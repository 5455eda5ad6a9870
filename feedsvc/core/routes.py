"""The one table of what feedsvc publishes: every document's name, route, content type, and
whether readers subscribe to it (a WebSub topic). Pure data and the rules that read it.

The builder renders these documents (`core/render/documents.py`) and publishes them under their
names; the web side maps a request path onto a name here (`document_name`) and nothing else.

Each Atom or RSS document (feed.xml, feed.rss, each archive page) has a browser page, an HTML
rendering of the same entries published beside it as `<name>.html` (`page_name`). It has no
route of its own: it is the other representation of the document's URL, which the responder
sends to a request that prefers text/html (a browser), so one URL stays one resource.

A declared feed (`[[feeds]]`, named e.g. "world") has the same documents as the top-level feed
(the kinds with `per_feed`), named and routed with its prefix: `world/feed.xml` at
`/world/feed.xml`, `world/archive/<n>.xml`, `world/index.html` at `/world/`, and the browser
pages `world/feed.xml.html`. `/feed.xsl` and `/feeds.opml` (published when feeds are declared)
belong to the site. A feed's name can never be the first segment of a site route (`RESERVED`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from feedsvc.core.articles import ARTICLE_PATH

ATOM_TYPE = "application/atom+xml; charset=utf-8"
RSS_TYPE = "application/rss+xml; charset=utf-8"
JSON_FEED_TYPE = "application/feed+json"
HTML_TYPE = "text/html; charset=utf-8"
XSL_TYPE = "text/xsl; charset=utf-8"
OPML_TYPE = "text/x-opml; charset=utf-8"


@dataclass(frozen=True)
class Kind:
    name: str
    route: str
    content_type: str
    topic: bool  # a subscription feed: a WebSub topic, with a Link header
    per_feed: bool = True  # every declared feed has one, under its prefix (else: the site's only)


DOCUMENTS = (
    Kind("feed.xml", "/feed.xml", ATOM_TYPE, topic=True),
    Kind("feed.rss", "/feed.rss", RSS_TYPE, topic=True),
    Kind("feed.json", "/feed.json", JSON_FEED_TYPE, topic=True),
    Kind("index.html", "/", HTML_TYPE, topic=False),
    Kind("feed.xsl", "/feed.xsl", XSL_TYPE, topic=False, per_feed=False),
    Kind("feeds.opml", "/feeds.opml", OPML_TYPE, topic=False, per_feed=False),
)
# Archive pages: /archive/<n>.xml, named archive/<n>.xml, Atom; n is YYYYMMPPP[NNN] (feedsvc.core.choose).
ARCHIVE_ROUTE = re.compile(r"/(archive/[1-9][0-9]{0,11}\.xml)")
# Each entry's page: /articles/<key>.html, named articles/<key>.html (feedsvc.core.articles).
ARTICLE_ROUTE = re.compile("/" + ARTICLE_PATH.pattern)
ROUTES = {kind.route: kind.name for kind in DOCUMENTS}
# The documents a reader subscribes to (and WebSub topics): the same entries in three formats.
SUBSCRIPTION_FEEDS = tuple(kind.name for kind in DOCUMENTS if kind.topic)
# A declared feed's name: its URL prefix (/world/) and its documents' (world/feed.xml).
FEED_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_ARTICLE_NAME = re.compile(rf"(?:{FEED_NAME.pattern}/)?{ARTICLE_PATH.pattern}")
_PER_FEED = {kind.route: kind.name for kind in DOCUMENTS if kind.per_feed}
_FEED_ROUTE = re.compile(rf"/({FEED_NAME.pattern})(/.*)", re.DOTALL)
# First path segments that are not a feed's: the site's routes (/healthz, /metrics, /static are
# answered or reserved beside the documents), and the output folder's own (objects/).
RESERVED = frozenset(
    {"archive", "articles", "healthz", "metrics", "static", "objects", *(kind.route.strip("/") for kind in DOCUMENTS)}
    - {""}
)


def page_name(name: str) -> str:
    """The name of the browser page published for the Atom or RSS document `name`."""
    return name + ".html"


def document_name(path: str) -> str | None:
    """The published document a request path names, or None: no path maps onto anything else.
    `/<feed>/…` names that feed's document (published only when the feed is declared)."""
    name = ROUTES.get(path)
    if name is None:
        name = _paged(path)
    if name is None and (m := _FEED_ROUTE.fullmatch(path)) and m.group(1) not in RESERVED:
        inner = _PER_FEED.get(m.group(2)) or _paged(m.group(2))
        name = f"{m.group(1)}/{inner}" if inner else None
    return name


def _paged(path: str) -> str | None:
    """An archive page's or an entry's page's name, from its path."""
    m = ARCHIVE_ROUTE.fullmatch(path) or ARTICLE_ROUTE.fullmatch(path)
    return m.group(1) if m else None


def is_article(name: str) -> bool:
    """An entry's page (the top-level feed's, or a declared feed's)."""
    return _ARTICLE_NAME.fullmatch(name) is not None


def is_topic(name: str) -> bool:
    """A subscription feed (top-level or declared): a WebSub topic, whose URL is base_url + name."""
    feed, _, kind = name.rpartition("/")
    return kind in SUBSCRIPTION_FEEDS and (not feed or FEED_NAME.fullmatch(feed) is not None)


def topics(feed_names: Sequence[str]) -> list[str]:
    """The subscription documents of the top-level feed and of each declared feed."""
    return [*SUBSCRIPTION_FEEDS, *(f"{feed}/{kind}" for feed in feed_names for kind in SUBSCRIPTION_FEEDS)]


def subscription_names(prefix: str) -> list[str]:
    """The names of the subscription documents `render_documents` makes for a declared feed."""
    feeds = [kind.name for kind in DOCUMENTS if kind.per_feed]
    return [prefix + name for name in feeds] + [prefix + page_name(name) for name in ("feed.xml", "feed.rss")]
