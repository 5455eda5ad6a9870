"""Entries → HTML: the index page at `/`, and the page a browser gets at a feed's URL.

Rendered at build time like the feeds (the web side only serves bytes). Neither page carries
any script, and their only style is the inline `STYLE`, allowed by its hash in the
Content-Security-Policy (feedsvc/web/headers.py); the XSL page uses the same style.

- The index: the title, the newest entries, feed autodiscovery. With declared feeds, the
  top-level index also lists every feed (the top-level one first) with its links, and has
  autodiscovery links for each; a declared feed's own index (`/world/`) links with absolute URLs.
- The feed page (`render_feed_page`), published beside `/feed.xml`, `/feed.rss` and each archive
  page and sent to a request that prefers text/html (a browser): the document's title, each
  entry's title (linked), date and summary, and how to subscribe, or, on an archive page, that
  it is one, with its links to the current feed and the older and newer pages (the same
  `Paging` as the Atom document). Only text from the feed, never the articles' HTML.

Every page shows one date per entry, `article_date` in `DATE_FORMAT`.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from jinja2 import DictLoader, Environment

from feedsvc.core.articles import original_label, page_url, text_direction
from feedsvc.core.render import DATE_FORMAT, Paging, article_date
from feedsvc.model import Entry, FeedMeta

STYLE = (
    "body{font:16px/1.6 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}ol{padding-left:1.2rem}"
    "li{margin:.5rem 0}time{color:#666;font-size:.9rem;margin-left:.4rem;white-space:nowrap}"
    ".subscribe{background:#f4f4f4;padding:.6rem .9rem;border-radius:6px}.subscribe p{margin:.3rem 0}"
    # The feed's URL is never broken: one line, scrolled sideways if the box is too narrow,
    # selected whole by one click.
    ".url{display:block;white-space:nowrap;overflow-x:auto;user-select:all;background:#fff;"
    "padding:.2rem .4rem;border:1px solid #ddd;border-radius:4px}"
    ".summary{color:#444;margin:.2rem 0 0;font-size:.95rem}nav a{margin-right:1rem}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# An entry's page: the same, and its content fits the column (images, media and frames shrink,
# long words and code do not widen the page).
ARTICLE_STYLE = STYLE + (
    ".content img,.content video,.content iframe{max-width:100%;height:auto}"
    ".content{overflow-wrap:break-word}.content pre{overflow-x:auto}.feed{color:#666}"
    "nav.near{display:flex;justify-content:space-between;gap:1rem;border-top:1px solid #ddd;padding-top:.6rem}"
)
ARTICLE_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(ARTICLE_STYLE.encode()).digest()).decode()

_HEAD = """{% macro entry_title(e) %}{% set page = page_of(e) %}{% if page %}<a href="{{ page }}">{{ e.title }}</a>\
 {% if e.link %}<small><a href="{{ e.link }}">{{ original }}</a></small>{% endif %}\
{% elif e.link %}<a href="{{ e.link }}">{{ e.title }}</a>{% else %}{{ e.title }}{% endif %}{% endmacro %}<!DOCTYPE html>
<html lang="{{ meta.language }}"{% if dir == "rtl" %} dir="rtl"{% endif %}>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{{ meta.title }}{% endblock %}</title>
{% block links %}<link rel="alternate" type="application/atom+xml" title="{{ meta.title }} (Atom)" href="{{ atom }}">
<link rel="alternate" type="application/rss+xml" title="{{ meta.title }} (RSS)" href="{{ rss }}">
<link rel="alternate" type="application/feed+json" title="{{ meta.title }} (JSON Feed)" href="{{ json }}">
{% endblock %}<style>{{ style }}</style>
</head>
<body>
<h1>{{ meta.title }}</h1>
{% if meta.subtitle %}<p class="sub">{{ meta.subtitle }}</p>{% endif %}
{% block main %}{% endblock %}</body>
</html>
"""

_INDEX = """{% extends "head" %}{% block links %}{{ super() }}{% for f in feeds[1:] %}\
<link rel="alternate" type="application/atom+xml" title="{{ f.title }} (Atom)" href="{{ f.atom }}">
<link rel="alternate" type="application/rss+xml" title="{{ f.title }} (RSS)" href="{{ f.rss }}">
<link rel="alternate" type="application/feed+json" title="{{ f.title }} (JSON Feed)" href="{{ f.json }}">
{% endfor %}{% endblock %}{% block main %}<div class="subscribe">
<p>Subscribe: paste this address into your feed reader (also as <a href="{{ rss }}">RSS</a> and
<a href="{{ json }}">JSON Feed</a>):</p>
<code class="url">{{ meta.self_url }}</code>
</div>
{% if feeds %}<h2>Feeds</h2>
<ul>
{% for f in feeds %}<li><a href="{{ f.index }}">{{ f.title }}</a>{% if f.subtitle %}: {{ f.subtitle }}{% endif %}
(<a href="{{ f.atom }}">Atom</a>, <a href="{{ f.rss }}">RSS</a>, <a href="{{ f.json }}">JSON Feed</a>)</li>
{% endfor %}</ul>
<p>All of them as an <a href="{{ opml }}">OPML subscription list</a>.</p>
<h2>Newest articles</h2>
{% endif %}<ol>
{% for e in entries %}<li>{{ entry_title(e) }}
<time datetime="{{ e|iso }}">{{ e|when }}</time></li>
{% else %}<li>No articles yet.</li>
{% endfor %}</ol>
{% if older and meta.pages_url %}<nav><a href="{{ older }}">Older articles</a></nav>
{% endif %}{% endblock %}"""

_PAGE = """{% extends "head" %}
{% block title %}{{ meta.title }} ({{ "archive page" if paging.current else "web feed" }}){% endblock %}
{% block links %}{% if paging.current %}<link rel="alternate" type="application/atom+xml" \
title="{{ meta.title }} (Atom)" href="{{ paging.current }}">
{% else %}{{ super() }}{% endif %}{% endblock %}
{% block main %}{% if paging.current %}<div class="subscribe">
<p><strong>This is an archive page</strong> of older articles.
<a href="{{ paging.current }}">The current feed</a> is the one to subscribe to.</p>
</div>
{% else %}<div class="subscribe">
<p><strong>This is a web feed</strong> ({{ format }}). To subscribe, copy its address into your feed reader:</p>
<code class="url">{{ paging.self_url }}</code>
<p>The same articles as <a href="{{ atom }}">Atom</a>, <a href="{{ rss }}">RSS</a> or
<a href="{{ json }}">JSON Feed</a>, and as a <a href="{{ index }}">web page</a>.</p>
</div>
{% endif %}<ol>
{% for e in entries %}<li>{{ entry_title(e) }}
<time datetime="{{ e|iso }}">{{ e|when }}</time>
{% if e.summary %}<p class="summary">{{ e.summary }}</p>{% endif %}</li>
{% else %}<li>No articles yet.</li>
{% endfor %}</ol>
{% if paging.prev_archive or paging.next_archive %}<nav>\
{% if paging.prev_archive %}<a href="{{ paging.prev_archive }}">Older articles</a>{% endif %}\
{% if paging.next_archive %}<a href="{{ paging.next_archive }}">Newer articles</a>{% endif %}</nav>
{% endif %}{% endblock %}"""

_ARTICLE = """{% extends "head" %}
{% block title %}{{ entry.title }} · {{ meta.title }}{% endblock %}
{% block links %}<link rel="canonical" href="{{ canonical }}">
{{ super() }}{% endblock %}
{% block main %}<article>
<h2>{{ entry.title }}</h2>
<p class="sub"><time datetime="{{ entry|iso }}">{{ entry|when }}</time>\
{% if entry.link %} · <a href="{{ entry.link }}">{{ original }}</a>{% endif %}\
 · <a class="feed" href="{{ feed_page }}">{{ meta.title }}</a></p>
<div class="content">
{{ entry.content_html|safe }}
</div>
</article>
<nav class="near"><span>{% if newer %}<a rel="prev" href="{{ newer.url }}">← {{ newer.title }}</a>{% endif %}</span>\
<span>{% if older %}<a rel="next" href="{{ older.url }}">{{ older.title }} →</a>{% endif %}</span></nav>
{% endblock %}"""

# What a feed page's bytes depend on besides its entries and links: a published archive page is
# reused only while this is the same (feedsvc.pipeline.render_and_publish.page_key), so a new template or
# style (and so a new STYLE_HASH in the CSP) never leaves old pages behind.
PAGE_TEMPLATE_KEY = hashlib.sha256(repr((_HEAD, _PAGE, STYLE, DATE_FORMAT)).encode()).hexdigest()[:16]
# The same for the documents of a declared feed's subscription (its index and feed pages).
TEMPLATES_KEY = hashlib.sha256(repr((_HEAD, _INDEX, _PAGE, STYLE, DATE_FORMAT)).encode()).hexdigest()[:16]
# The same for an entry's page (feedsvc.pipeline.article_pages).
ARTICLE_TEMPLATE_KEY = hashlib.sha256(repr((_HEAD, _ARTICLE, ARTICLE_STYLE, DATE_FORMAT)).encode()).hexdigest()[:16]

_env = Environment(
    loader=DictLoader({"head": _HEAD, "index": _INDEX, "page": _PAGE, "article": _ARTICLE}),
    autoescape=True,
    keep_trailing_newline=True,
)
_env.filters["when"] = lambda entry: article_date(entry).strftime(DATE_FORMAT)
_env.filters["iso"] = lambda entry: article_date(entry).isoformat()


# The index links to the documents beside it; a feed page with the feed's own (absolute) URLs, as
# its Paging does.
_INDEX_URLS = {"atom": "/feed.xml", "rss": "/feed.rss", "json": "/feed.json"}


def _common(meta: FeedMeta) -> dict[str, object]:
    """What every page's template reads besides its own: the style, the text's direction, and how
    an entry's title links (to its page, with a small link to the original; else the original)."""
    return {
        "style": STYLE,
        "dir": text_direction(meta.language),
        "original": original_label(meta.language),
        "page_of": lambda entry: page_url(meta, entry.id),
    }


def _urls(meta: FeedMeta) -> dict[str, str]:
    return {"atom": meta.self_url, "rss": meta.url("feed.rss"), "json": meta.url("feed.json"), "index": meta.url("")}


def _listed(meta: FeedMeta) -> dict[str, str]:
    return {"title": meta.title, "subtitle": meta.subtitle, **_urls(meta)}


def render_index(
    meta: FeedMeta,
    entries: Sequence[Entry],
    feeds: Sequence[FeedMeta] = (),
    absolute: bool = False,
    older: str | None = None,
) -> bytes:
    """The index page, UTF-8. `feeds`: the declared feeds, listed after this one, with
    autodiscovery links (the top-level index); `absolute`: link this feed's documents by their
    full URLs (a declared feed's index, at /world/), not by their paths from the site's root.
    `older`: the newest archive page's URL, linked as "Older articles" (a browser gets its page)."""
    urls = _urls(meta) if absolute else _INDEX_URLS
    listed = [_listed(m) for m in (meta, *feeds)] if feeds else []
    page = _env.get_template("index").render(
        meta=meta, entries=entries, feeds=listed, opml=meta.url("feeds.opml"), older=older, **urls, **_common(meta)
    )
    return page.encode("utf-8")


def render_feed_page(meta: FeedMeta, entries: Sequence[Entry], paging: Paging, format_name: str) -> bytes:
    """The browser's page for one feed document (`format_name`: "Atom" or "RSS"), with its `paging`:
    its `self_url` is the address to subscribe to; an archive page's (`current` set) links back."""
    page = _env.get_template("page").render(
        meta=meta, entries=entries, paging=paging, format=format_name, **_urls(meta), **_common(meta)
    )
    return page.encode("utf-8")


@dataclass(frozen=True)
class Near:
    """A neighbour of an entry in its feed's order, as its page links to it."""

    url: str
    title: str


def render_article_page(meta: FeedMeta, entry: Entry, newer: Near | None, older: Near | None) -> bytes:
    """An entry's own page: its title, date, full (sanitized) content, a link to the original and
    back to the feed's page, and links to the `newer` and `older` entries in the feed's order.
    Its canonical URL is the original's (the page's own for an entry without one)."""
    own = page_url(meta, entry.id) or meta.alternate_url
    page = _env.get_template("article").render(
        meta=meta,
        entry=entry,
        canonical=entry.link or own,
        feed_page=meta.self_url,
        newer=newer,
        older=older,
        **_urls(meta),
        **{**_common(meta), "style": ARTICLE_STYLE},
    )
    return page.encode("utf-8")
