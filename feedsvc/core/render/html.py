"""Entries → the small HTML index page served at `/`: title, newest entries, feed autodiscovery.

Rendered at build time like the feed (the web side only serves bytes). The page carries no
script and its only style is inline, allowed by hash in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from jinja2 import Environment

from feedsvc.model import Entry, FeedMeta

STYLE = (
    "body{font:16px/1.6 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "h1{font-size:1.6rem;margin-bottom:.2rem}.sub{color:#666;margin-top:0}ol{padding-left:1.2rem}"
    "li{margin:.5rem 0}time{color:#666;font-size:.9rem;margin-left:.4rem}"
    ".subscribe{background:#f4f4f4;padding:.6rem .9rem;border-radius:6px}code{word-break:break-all}"
    ".summary{color:#444;margin:.2rem 0 0;font-size:.95rem}"
)
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

_TEMPLATE = """<!DOCTYPE html>
<html lang="{{ meta.language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ meta.title }}</title>
<link rel="alternate" type="application/atom+xml" title="{{ meta.title }} (Atom)" href="/feed.xml">
<link rel="alternate" type="application/rss+xml" title="{{ meta.title }} (RSS)" href="/feed.rss">
<link rel="alternate" type="application/feed+json" title="{{ meta.title }} (JSON Feed)" href="/feed.json">
<style>{{ style }}</style>
</head>
<body>
<h1>{{ meta.title }}</h1>
{% if meta.subtitle %}<p class="sub">{{ meta.subtitle }}</p>{% endif %}
<p class="subscribe">Subscribe: paste <code>{{ meta.self_url }}</code> into your feed reader
(also as <a href="/feed.rss">RSS</a> and <a href="/feed.json">JSON Feed</a>).</p>
<ol>
{% for e in entries %}<li>{% if e.link %}<a href="{{ e.link }}">{{ e.title }}</a>{% else %}{{ e.title }}{% endif %}
<time datetime="{{ e.updated.isoformat() }}">{{ e.updated.strftime("%Y-%m-%d %H:%M UTC") }}</time></li>
{% else %}<li>No articles yet.</li>
{% endfor %}</ol>
</body>
</html>
"""

_env = Environment(autoescape=True, keep_trailing_newline=True)
_template = _env.from_string(_TEMPLATE)


def render_index(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    """The index page, UTF-8."""
    return _template.render(meta=meta, entries=entries, style=STYLE).encode("utf-8")
