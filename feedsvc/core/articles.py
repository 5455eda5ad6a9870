"""Every entry's own page: its key, its name and URL, and what its page may load.

An entry's page is `/articles/<key>.html` (a declared feed that converts or proxies its entries
has its own, `/<name>/articles/<key>.html`). `<key>` is `article_key(entry.id)`: the first 20 hex
digits (80 bits) of the SHA-256 of the entry's id. The id never changes when the article is
edited, and the hash needs no state, so the key is the same across rebuilds, replicas and hosts.

Collisions: with n entries, the chance that any two of 80-bit keys collide is at most
n² / 2⁸¹ (the birthday bound): about 4·10⁻¹⁵ at 100k entries and 4·10⁻¹³ at a million. A
collision would make two entries share one page (the newer wins, see
`feedsvc.pipeline.article_pages`); it is never an error.
"""

from __future__ import annotations

import hashlib
import re

import feedsvc.core.sanitize.policy as policy
from feedsvc.model import FeedMeta

KEY_LENGTH = 20
ARTICLES = "articles/"
# The path of an entry's page under its feed's prefix: articles/<key>.html.
ARTICLE_PATH = re.compile(rf"(articles/[0-9a-f]{{{KEY_LENGTH}}}\.html)")

# The hosts an entry's page may frame (https only): exactly the embed players the sanitizer keeps
# (`policy.EMBED_PROVIDERS`, YouTube's rewritten to its no-cookie host), and the page's
# Content-Security-Policy (`frame-src`) is made from it.
FRAME_HOSTS: frozenset[str] = frozenset(policy.EMBED_PROVIDERS) - policy.YOUTUBE_HOSTS

# Languages written right to left (the primary subtag of the feed's `language`).
_RTL = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ku", "ps", "sd", "ug", "ur", "yi"})


def article_key(entry_id: str) -> str:
    """The key of an entry's page: stable for its id, URL-safe, lower-case hex."""
    return hashlib.sha256(entry_id.encode("utf-8")).hexdigest()[:KEY_LENGTH]


def article_name(entry_id: str, prefix: str = "") -> str:
    """The published document name of an entry's page (`prefix`: a declared feed's "world/")."""
    return f"{prefix}{ARTICLES}{article_key(entry_id)}.html"


def page_url(meta: FeedMeta, entry_id: str) -> str | None:
    """The public URL of an entry's page in the feed `meta`, or None when the feed has no pages."""
    if not meta.pages_url:
        return None
    return f"{meta.pages_url}{article_key(entry_id)}.html"


def text_direction(language: str) -> str:
    """`rtl` or `ltr`, from a BCP 47 language tag."""
    return "rtl" if language.split("-")[0].lower() in _RTL else "ltr"


def original_label(language: str) -> str:
    """What the link to the original article says, in the feed's language."""
    primary = language.split("-")[0].lower()
    return "原文" if primary in ("zh", "ja") else "Original"


def reader_links(meta: FeedMeta, entry_id: str, origin: str | None) -> tuple[str | None, str | None]:
    """(the link a feed reader opens, the original's link when that is the page): with
    `entry_link = "page"` the entry's page and its origin (Atom rel="via", JSON Feed
    `external_url`); else the origin and None. The id is never touched."""
    page = page_url(meta, entry_id) if meta.entry_link == "page" else None
    return (page, origin) if page else (origin, None)
