"""The URL rules, in one place: which URLs an article may carry, and when two URLs are one page.

- `safe_url`: a URL attribute's value → an absolute http(s)/mailto URL, or None to drop it. The
  scheme is judged after removing whitespace, controls and invisible characters, as a browser
  does, because bleach 6.4.0 keeps `javascript:123`.
- `http_url`: an article link that urllib can take apart, or None.
- `canonical_url`, `url_identity`: the same page, the same string (http and https are one page).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urljoin, urlsplit, urlunsplit

from feedsvc.core.sanitize.policy import PROTOCOLS

_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
# Printable ASCII without spaces: no character in it can be whitespace, control or invisible.
_PLAIN_URL = re.compile(r"[!-_a-~]+\Z")  # printable ASCII, no space, no backtick
# Most URLs in articles: absolute http(s), a plain host name, then plain characters. safe_url
# would keep them as they are (urlsplit has nothing to reject), so they need no further look.
_SIMPLE_HTTP = re.compile(r"https?://[A-Za-z0-9.\-]+(?:[/?#][!-_a-~]*)?\Z")


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")


def safe_url(value: str, base: str | None) -> str | None:
    """A URL attribute's value → an absolute http(s)/mailto URL, or None to drop the attribute.

    The scheme is judged with whitespace, controls and invisible characters removed,
    as a browser would, so `jav&#x09;ascript:` or `java\\u200bscript:` cannot slip past.
    """
    if _SIMPLE_HTTP.match(value):
        return value
    if _PLAIN_URL.match(value):
        probe, cleaned = value.lower(), value  # nothing invisible to remove: the common case, fast
    else:
        # Backticks go too: legacy IE took them as quotes, so "`vbscript:" must not pass as relative.
        probe = "".join(ch for ch in value if not _invisible(ch) and ch != "`").lower()
        if not probe:
            return None
        cleaned = "".join(
            ch for ch in value.strip() if not (unicodedata.category(ch) in ("Cc", "Cf") or ch in "\t\n\r")
        )
        cleaned = cleaned.replace(" ", "%20")
    # Judged without non-ASCII characters either, as bleach judges: `java\ufffdscript:` (from `java&#0;script:`)
    # or `java\u3164script:` is no relative path to keep.
    if m := _SCHEME.match(probe if probe.isascii() else "".join(ch for ch in probe if ch.isascii())):
        url = cleaned if m.group(1) in PROTOCOLS else None
    elif base is None:
        url = cleaned if not cleaned.startswith("//") else "https:" + cleaned
    else:
        try:
            url = urljoin(base, cleaned)
        except ValueError:
            return None  # e.g. "//[x": urllib raises "Invalid IPv6 URL"; no browser can follow it either
    return url if url is not None and _well_formed(url) else None


def _well_formed(url: str) -> bool:
    """Every URL we emit can be taken apart again (host, port), by us and by the readers."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return not parts.scheme or parts.scheme.lower() in PROTOCOLS


def canonical_url(url: str) -> str:
    """Case-insensitive parts lowercased, default port and fragment dropped: the same page, the same string."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80 if scheme == "http" else 443) else None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def http_url(url: str | None) -> str | None:
    """`url` if it is an http(s) URL that urllib can take apart (host, port), else None.

    urlsplit raises on "https://[x" (Invalid IPv6 URL) and `.port` on "https://e.com:abc/": a seed's
    link must never turn into an exception that costs the whole article.
    """
    if not url:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def url_identity(url: str) -> str:
    """The canonical URL without its scheme: http:// and https:// copies of an article are one article."""
    canon = canonical_url(url)
    return canon.split(":", 1)[1] if ":" in canon else canon
