"""The URL rules, in one place: which URLs an article may carry, and when two URLs are one page.

- `to_uri`: every URL that reaches a feed is a URI (RFC 3986), never a raw IRI (RFC 3987). The
  mapping of RFC 3987 §3.1: a host's non-ASCII labels become IDNA A-labels (UTS 46 mapping,
  IDNA 2008: `例え.テスト` → `xn--r8jz45g.xn--zckzah`; a label IDNA refuses is percent-encoded
  instead, which RFC 3986 allows in a host); everywhere else each character a URI cannot hold
  (non-ASCII, space, controls, `"<>\\^`{|}`) becomes the percent-encoded bytes of its UTF-8.
  Also encoded, because RFC 3986 allows them nowhere there: `[`/`]` outside an IP literal host,
  a `#` after the first, and a `%` not followed by two hex digits (`%25`). Everything else is kept
  as it is, reserved characters and `%XX` escapes included (never decoded, never re-encoded, hex
  case untouched), so a URL that is already a URI comes out byte for byte the same, and
  converting twice is converting once.
- `safe_url`: a URL attribute's value → an absolute http(s)/mailto URI, or None to drop it. The
  scheme is judged after removing whitespace, controls and invisible characters, as a browser
  does, because bleach 6.4.0 keeps `javascript:123`.
- `http_url`: an article link that urllib can take apart, as a URI, or None.
- `canonical_url`, `url_identity`: the same page, the same string (http and https are one page).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import idna

from feedsvc.core.sanitize.policy import PROTOCOLS

_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
# Printable ASCII without spaces: no character in it can be whitespace, control or invisible.
_PLAIN_URL = re.compile(r"[!-_a-~]+\Z")  # printable ASCII, no space, no backtick

# The characters to_uri keeps: RFC 3986's, without "[" and "]" (an IP literal host's only) and "#"
# (the fragment's delimiter, once). "%" too, when it starts an escape (`_LONE_PERCENT` is the rest).
_KEPT = r"A-Za-z0-9\-._~!$&'()*+,;=:/?@%"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# A URI reference that to_uri leaves as it is (with no lone "%"): no IP literal, at most one "#".
_PLAIN_URI = re.compile(rf"[{_KEPT}]*(?:#[{_KEPT}]*)?\Z")
# What to_uri percent-encodes outside the host: any other character, and a "%" that starts no escape.
_NOT_URI = re.compile(rf"{_LONE_PERCENT.pattern}|[^{_KEPT}]")
# scheme, "//" authority, then the rest; only ASCII delimiters count, as in RFC 3986 Appendix B.
_PARTS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*:)?(?://([^/?#]*))?(.*)\Z", re.DOTALL)
_HOST_PORT = re.compile(r"(\[[^\]]*\]|.*?)(:[0-9]*)?\Z", re.DOTALL)
_LABEL_DOTS = re.compile("[.\u3002\uff0e\uff61]")  # the dots UTS 46 maps to "."

# Most URLs in articles: absolute http(s), a plain host name, then kept characters. safe_url
# would keep them as they are (urlsplit has nothing to reject, to_uri nothing to encode), so
# they need no further look.
_SIMPLE_HTTP = re.compile(rf"https?://[A-Za-z0-9.\-]+(?:[/?][{_KEPT}]*)?(?:#[{_KEPT}]*)?\Z")


def _plain(url: str, pattern: re.Pattern[str]) -> bool:
    return pattern.match(url) is not None and ("%" not in url or _LONE_PERCENT.search(url) is None)


def _groups(pattern: re.Pattern[str], text: str) -> tuple[str | None, ...]:
    """The groups of one of the patterns above that match any string (every part optional, DOTALL)."""
    match = pattern.match(text)
    assert match is not None, pattern.pattern
    return match.groups()


def _escape(text: str) -> str:
    """Percent-encode, as UTF-8, every character of `text` a URI cannot hold (see `to_uri`)."""
    return _NOT_URI.sub(lambda m: quote(m.group(), safe="", errors="replace"), text)


def _ascii_label(label: str) -> str:
    """One label of a host name: as it is when ASCII, else its IDNA A-label, else percent-encoded."""
    if label.isascii():
        return _escape(label)
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except UnicodeError:  # idna.IDNAError: not a valid IDN (an emoji, a symbol, too long)
        return _escape(label)  # RFC 3986 allows a host percent-encoded


def _authority(authority: str) -> str:
    userinfo, at, host_port = authority.rpartition("@")
    host, port = _groups(_HOST_PORT, host_port)
    assert host is not None  # its alternative ".*?" always matches
    if host.startswith("[") and host.endswith("]"):
        host = "[" + _escape(host[1:-1]) + "]"
    else:
        host = ".".join(_ascii_label(label) for label in _LABEL_DOTS.split(host))
    return _escape(userinfo) + at + host + (port or "")


def to_uri(url: str) -> str:
    """An IRI (or an already valid URI reference) → a URI reference, by the rule in this module's docstring."""
    if _plain(url, _PLAIN_URI):
        return url
    scheme, authority, rest = _groups(_PARTS, url)
    path, hash_, fragment = (rest or "").partition("#")
    return "".join(
        (
            scheme or "",
            "//" + _authority(authority) if authority is not None else "",
            _escape(path),
            hash_,
            _escape(fragment),  # "#" is not among the kept characters: a second one becomes %23
        )
    )


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")


def safe_url(value: str, base: str | None) -> str | None:
    """A URL attribute's value → an absolute http(s)/mailto URI (`to_uri`), or None to drop the attribute.

    The scheme is judged with whitespace, controls and invisible characters removed,
    as a browser would, so `jav&#x09;ascript:` or `java\\u200bscript:` cannot slip past.
    """
    if _plain(value, _SIMPLE_HTTP):
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
    return to_uri(url) if url is not None and _well_formed(url) else None


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
    host = f"[{host}]" if ":" in host else host  # urllib drops an IPv6 literal's brackets
    port = parts.port if parts.port not in (None, 80 if scheme == "http" else 443) else None
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def http_url(url: str | None) -> str | None:
    """`url` as a URI (`to_uri`) if it is an http(s) URL that urllib can take apart (host, port), else None.

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
    return to_uri(url) if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def url_identity(url: str) -> str:
    """The canonical URL without its scheme: http:// and https:// copies of an article are one article."""
    canon = canonical_url(url)
    return canon.split(":", 1)[1] if ":" in canon else canon


# A srcset candidate's descriptor: a width ("480w") or a pixel density ("2x", "1.5x").
_DESCRIPTOR = re.compile(r"[0-9]+(?:\.[0-9]+)?[wx]\Z")


def srcset_spans(value: str) -> Iterator[tuple[str, str, str]]:
    """A `srcset` value cut as the HTML standard parses it, into (what precedes a candidate: spaces
    and commas; its URL, a run of non-space characters less trailing commas; what follows up to
    the next candidate: those commas, or its descriptors). Joined, the spans are the value; the
    last one may be a separator alone (URL "")."""
    pos, end = 0, len(value)
    while pos < end:
        start = pos
        while pos < end and (value[pos].isspace() or value[pos] == ","):
            pos += 1
        if pos == end:
            yield value[start:], "", ""
            return
        stop = pos
        while stop < end and not value[stop].isspace():
            stop += 1
        url = value[pos:stop].rstrip(",")
        after = stop
        if value[stop - 1] != ",":  # descriptors follow, up to the next comma
            comma = value.find(",", stop)
            after = end if comma < 0 else comma
        yield value[start:pos], url, value[pos + len(url) : after]
        pos = after


def srcset_candidates(value: str) -> list[tuple[str, str]]:
    """A `srcset` value → its (url, descriptor) candidates (`srcset_spans`)."""
    return [(url, rest.lstrip(",").strip()) for _, url, rest in srcset_spans(value) if url]


def safe_srcset(value: str, base: str | None) -> str | None:
    """A `srcset` value with each candidate URL through `safe_url` (http(s) only: images), rewritten as
    "url descriptor, …"; candidates with a bad URL or descriptor go. None when none is left."""
    kept: list[str] = []
    for url, descriptor in srcset_candidates(value):
        safe = safe_url(url, base)
        if safe is None or not safe.lower().startswith(("http://", "https://")):
            continue
        if descriptor and not _DESCRIPTOR.match(descriptor):
            continue
        safe = safe.replace(",", "%2C")  # a comma would end the URL for a srcset parser
        kept.append(f"{safe} {descriptor}" if descriptor else safe)
    return ", ".join(kept) if kept else None


def largest_candidate(value: str) -> str | None:
    """The URL of a `srcset`'s largest candidate (by width, else density; the first on a tie)."""
    best: tuple[float, float] | None = None
    url_of_best: str | None = None
    for url, descriptor in srcset_candidates(value):
        width = float(descriptor[:-1]) if descriptor.endswith("w") else 0.0
        density = float(descriptor[:-1]) if descriptor.endswith("x") else 1.0
        if best is None or (width, density) > best:
            best, url_of_best = (width, density), url
    return url_of_best


def untracked(url: str, names: frozenset[str], prefixes: tuple[str, ...]) -> str:
    """`url` without the query parameters that only track (a name in `names`, or starting with one
    of `prefixes`, compared in lowercase). Everything else keeps its bytes; no query left, no "?"."""
    if "?" not in url:
        return url
    head, _, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    params = query.split("&")
    kept = [p for p in params if not _tracks(p.partition("=")[0].lower(), names, prefixes)]
    if len(kept) == len(params):
        return url
    return head + ("?" + "&".join(kept) if kept else "") + hash_ + fragment


def _tracks(name: str, names: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return name in names or name.startswith(prefixes)


def is_loopback_host(host: str) -> bool:
    """A host name or address that only this machine can reach: localhost (and *.localhost, RFC
    6761) or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
