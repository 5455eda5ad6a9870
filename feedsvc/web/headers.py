"""The HTTP security headers every response carries, and the Content-Security-Policy strings.

Every HTML page (the index, and the browser page a browser gets at a feed's URL) runs no script
at all, and its only style is the inline `feedsvc.core.render.html.STYLE`, allowed by its hash.
The Atom and RSS documents get the same policy plus `script-src 'self'`: a client that still
applies their `<?xml-stylesheet?>` loads the XSL, a same-origin "script" in CSP terms, whose
page has the same style.
"""

from __future__ import annotations

from feedsvc.core.articles import FRAME_HOSTS
from feedsvc.core.render.html import ARTICLE_STYLE_HASH, STYLE_HASH

CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
FEED_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'self'; style-src '{STYLE_HASH}'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

# An entry's page shows the article's images (over https) and frames from the embed allow-list
# (`FRAME_HOSTS`, https only); everything else as strict as every other page: no script at all.
_FRAMES = " ".join(f"https://{host}" for host in sorted(FRAME_HOSTS))
ARTICLE_CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{ARTICLE_STYLE_HASH}'; img-src 'self' https:; "
    + (f"frame-src {_FRAMES}; " if _FRAMES else "")
    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_COMMON = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"))
_HTML = (*_COMMON, ("Content-Security-Policy", CONTENT_SECURITY_POLICY))
_OTHER = (*_COMMON, ("Content-Security-Policy", FEED_CONTENT_SECURITY_POLICY))
_ARTICLE = (*_COMMON, ("Content-Security-Policy", ARTICLE_CONTENT_SECURITY_POLICY))


def security_headers_for(content_type: str | None) -> list[tuple[str, str]]:
    """Every response's security headers. A feed rendered through the XSL is a page too."""
    html = (content_type or "").split(";")[0].strip() == "text/html"
    return list(_HTML if html else _OTHER)


def article_headers() -> list[tuple[str, str]]:
    """The security headers of an entry's page (`ARTICLE_CONTENT_SECURITY_POLICY`)."""
    return list(_ARTICLE)
