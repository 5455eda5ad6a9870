"""What a declared feed does to each sanitized entry on its way out: OpenCC conversion of its text,
and image URLs sent through an image proxy (`transform_entry`). Pure: the converter is given as
a function (feedsvc/pipeline/feeds.py makes it; OpenCC reads its dictionaries from files).

- `convert` changes text only: the title, the summary, the text between the content's tags, and
  the `alt` and `title` attributes. Tags, every other attribute and every URL keep their bytes.
  The entry's id and link do not change: it is the same article as in the other feeds.
- `image_proxy` rewrites every image URL the entry carries: each `<img>`'s `src` and every
  candidate of its `srcset`, every candidate of a `<picture>`'s `<source srcset>`, each
  `<video>`'s `poster`, and the entry's image (media:thumbnail, the enclosure, JSON Feed `image`).
  Video and audio files (`src` of `<video>`, `<audio>`, `<source>`) are no images: never proxied.
  `{url}` is the absolute URL,
  `{url_noscheme}` the URL without its `scheme://`, each percent-encoded for a query
  (`quote(url, safe="")`); a URL that already starts with the template's prefix (what comes
  before its first `{`) is left alone, as is anything that is not an http(s) URL.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections.abc import Callable
from urllib.parse import quote

from feedsvc.core.filters import TAG
from feedsvc.core.urls import srcset_spans
from feedsvc.model import Entry

Converter = Callable[[str], str]

# What transformed entries depend on besides the converter and the template: bump it when this
# module's output changes (the key of a transformed entry, and of an archive page, holds it).
TRANSFORM_VERSION = 2
PLACEHOLDERS = ("{url}", "{url_noscheme}")
# An attribute of a sanitized tag: both sanitizer backends write values in double quotes.
_ATTRIBUTE = re.compile(r'(\s)([A-Za-z_:][-A-Za-z0-9_:.]*)="([^"]*)"')
_TEXT_ATTRIBUTES = frozenset({"alt", "title"})
# Per tag, the attributes that hold an image URL (`srcset`: a list of them).
_IMAGE_ATTRIBUTES = {"img": ("src", "srcset"), "source": ("srcset",), "video": ("poster",)}
_IMAGE_TAG = re.compile(r"<(img|source|video)\b", re.IGNORECASE)


def proxied(url: str, template: str) -> str:
    """`url` through the image proxy `template` (see the module docstring)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or url.startswith(template.split("{", 1)[0]):
        return url
    return template.replace("{url}", quote(url, safe="")).replace("{url_noscheme}", quote(rest, safe=""))


def srcset_rewritten(value: str, rewrite: Callable[[str], str]) -> str:
    """Each candidate URL of a `srcset` value rewritten, its descriptors and separators kept
    (`srcset_spans`: the HTML standard's parsing)."""
    return "".join(lead + (rewrite(url) if url else "") + rest for lead, url, rest in srcset_spans(value))


def _attributes(tag: str, change: Callable[[str, str], str | None]) -> str:
    """`tag` with each attribute's value (as written, escaped) replaced by `change(name, value)`
    (None: as it is), so the tag's other bytes stay as they are."""

    def one(m: re.Match[str]) -> str:
        new = change(m.group(2).lower(), m.group(3))
        return m.group(0) if new is None else f'{m.group(1)}{m.group(2)}="{new}"'

    return _ATTRIBUTE.sub(one, tag)


def converted_html(content: str, convert: Converter) -> str:
    """The text between tags and the alt/title attributes converted; tags and URLs as they are.
    Text is converted as written: OpenCC maps Han characters only, so character references
    (`&amp;`) pass through it unchanged."""
    out: list[str] = []
    pos = 0
    for m in TAG.finditer(content):
        out.append(convert(content[pos : m.start()]) if m.start() > pos else "")
        tag = m.group(0)
        if "alt=" in tag or "title=" in tag:
            tag = _attributes(tag, lambda name, value: convert(value) if name in _TEXT_ATTRIBUTES else None)
        out.append(tag)
        pos = m.end()
    out.append(convert(content[pos:]) if pos < len(content) else "")
    return "".join(out)


def proxied_html(content: str, template: str) -> str:
    """Every image URL of the content (see the module docstring) through the image proxy."""

    def change(name: str, value: str) -> str | None:
        url = html.unescape(value)
        new = srcset_rewritten(url, lambda one: proxied(one, template)) if name == "srcset" else proxied(url, template)
        return None if new == url else html.escape(new)

    def tag(m: re.Match[str]) -> str:
        text = m.group(0)
        if (image := _IMAGE_TAG.match(text)) is None:
            return text
        names = _IMAGE_ATTRIBUTES[image.group(1).lower()]
        return _attributes(text, lambda name, value: change(name, value) if name in names else None)

    return TAG.sub(tag, content)


def transform_entry(entry: Entry, convert: Converter | None, image_proxy: str) -> Entry:
    """`entry` as a feed with this converter (None: none) and image proxy ("" = none) publishes it."""
    title, summary, content, image = entry.title, entry.summary, entry.content_html, entry.image
    if convert is not None:
        title, summary, content = convert(title), convert(summary), converted_html(content, convert)
    if image_proxy:
        content = proxied_html(content, image_proxy)
        image = proxied(image, image_proxy) if image else image
    return dataclasses.replace(entry, title=title, summary=summary, content_html=content, image=image)
