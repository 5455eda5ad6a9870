"""No tracker passed on to readers (`strip_tracking`, on by default): sanitized HTML → without them.

- Tracking pixels go: an `<img>` of at most 1×1 (both `width` and `height` given), or one whose
  URL is on `policy.TRACKER_IMAGES` (Medium's `/_/stat`, `pixel.wp.com`, FeedBurner's `/~r/`, …).
- Tracking query parameters go from every URL attribute and every `srcset` candidate:
  `policy.TRACKING_PARAMETERS` and names starting with `policy.TRACKING_PARAMETER_PREFIXES`
  (`utm_*`). `untrack_url` does the same for the entry's link (its id never changes: see
  `feedsvc.core.entry`).

It reads either backend's output (double-quoted attribute values), so both give the same result.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

import feedsvc.core.sanitize.policy as policy
from feedsvc.core.urls import srcset_candidates, untracked

_TAG_BODY = r'[^>"]*(?:"[^"]*"[^>"]*)*'
_TAG = re.compile(rf"<(?P<name>[a-z][a-z0-9]*)\b(?P<body>{_TAG_BODY})>")
_ATTRIBUTE = re.compile(r'(\s)([^\s=>/]+)="([^"]*)"')
_SIZE = re.compile(r'\s(width|height)="\s*([0-9]+)(?:\.[0-9]*)?(?:px)?\s*"')
_SRC = re.compile(r'\ssrc="([^"]*)"')
# A quick look before the regex pass: could the HTML hold a tracking parameter or pixel at all?
_PARAM_HINT = re.compile(
    "[?&;](?:"
    + "|".join(re.escape(p) for p in policy.TRACKING_PARAMETER_PREFIXES)
    + "|"
    + "|".join(re.escape(n) + "=" for n in sorted(policy.TRACKING_PARAMETERS))
    + ")",
    re.IGNORECASE,
)
_IMG = re.compile(rf"<img\b({_TAG_BODY})>")
_TRACKER_HOSTS = frozenset(tracker.split("/", 1)[0] for tracker in policy.TRACKER_IMAGES)
_URL_ATTRIBUTES = policy.URL_ATTRIBUTES
_SRCSET = policy.SRCSET_ATTRIBUTES


def untrack_url(url: str) -> str:
    """`url` without its tracking query parameters."""
    return untracked(url, policy.TRACKING_PARAMETERS, policy.TRACKING_PARAMETER_PREFIXES)


def is_tracker_image(url: str) -> bool:
    """Is `url` (absolute) on the declared list of tracker hosts and paths?"""
    parts = urlsplit(url)
    where = parts.netloc.lower() + parts.path
    return where.startswith(policy.TRACKER_IMAGES)


def _pixel(body: str) -> bool:
    """Is this `<img>` (its serialised attributes) a tracking pixel?"""
    if ' width="' in body and ' height="' in body:
        sizes = dict(_SIZE.findall(body))
        if len(sizes) == 2 and all(int(value) <= 1 for value in sizes.values()):
            return True
    if any(host in body for host in _TRACKER_HOSTS):
        src = _SRC.search(body)
        return src is not None and is_tracker_image(html.unescape(src.group(1)))
    return False


def _untrack_attributes(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(2).lower()
        if name not in _URL_ATTRIBUTES and name not in _SRCSET:
            return m.group(0)
        value = html.unescape(m.group(3))
        if name in _SRCSET:
            new = ", ".join(
                f"{untrack_url(url)} {descriptor}".rstrip() for url, descriptor in srcset_candidates(value)
            )
        else:
            new = untrack_url(value)
        return m.group(0) if new == value else f'{m.group(1)}{m.group(2)}="{html.escape(new)}"'

    return _ATTRIBUTE.sub(one, body)


def untrack_html(safe_html: str) -> str:
    """Sanitized HTML without tracking pixels and tracking query parameters (see the module docstring)."""
    if "<img" in safe_html and any(_pixel(m.group(1)) for m in _IMG.finditer(safe_html)):
        safe_html = _IMG.sub(lambda m: "" if _pixel(m.group(1)) else m.group(0), safe_html)
    if _PARAM_HINT.search(safe_html) is None:
        return safe_html

    def tag(m: re.Match[str]) -> str:
        body = m.group("body")
        if "=" not in body:
            return m.group(0)
        new = _untrack_attributes(body)
        return m.group(0) if new == body else f"<{m.group('name')}{new}>"

    return _TAG.sub(tag, safe_html)
