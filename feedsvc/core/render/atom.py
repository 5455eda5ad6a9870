"""Entries → Atom 1.0 bytes, written directly.

The bytes are those feedgen 1.0.0 wrote (lxml, pretty-printed), which this module replaced:
`tests/test_atom_bytes.py` keeps that rendering and compares. Writing them directly costs about
a fifth: a cold build renders an Atom document for every archive page, and a rebuild one for
the feed. Strings are escaped as libxml2 escapes them: in text `&`, `<`, `>` and CR; in attribute
values also `"`, tab and LF. Every `updated` is given (never the clock), the entries keep our
order, content is `type="html"`, and a link post (no content, an alternate link) has no
`<content>`, as RFC 4287 §4.1.1.1 allows. Every string from an entry goes through `xml_safe`, so
one odd string cannot sink the document, whoever built the Entry. The same function renders the
subscription feed and each RFC 5005 archive page (`Paging`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from feedsvc import __version__
from feedsvc.core.render import Paging, feed_updated
from feedsvc.core.render.xmlparts import ATOM_NS, image_type
from feedsvc.core.text import xml_safe
from feedsvc.model import Entry, FeedMeta

FH_NS = "http://purl.org/syndication/history/1.0"
MEDIA_NS = "http://search.yahoo.com/mrss/"
ATOM_TYPE = "application/atom+xml"
GENERATOR = f'  <generator uri="https://pypi.org/project/feedsvc/" version="{__version__}">feedsvc</generator>\n'


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return value.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;")


def _element(indent: str, name: str, value: str, attributes: str = "") -> str:
    """`<name …>value</name>`, or `<name …/>` for an empty value (as lxml writes an element without text)."""
    if not value:
        return f"{indent}<{name}{attributes}/>\n"
    return f"{indent}<{name}{attributes}>{_text(value)}</{name}>\n"


def _link(indent: str, href: str, rel: str, kind: str) -> str:
    return f'{indent}<link href="{_attr(href)}" rel="{rel}" type="{_attr(kind)}"/>\n'


def _author(indent: str, name: str) -> str:
    return f"{indent}<author>\n{indent}  <name>{_text(name)}</name>\n{indent}</author>\n" if name else ""


def _entry(entry: Entry, author: str) -> str:
    parts = [
        "  <entry>\n",
        _element("    ", "id", xml_safe(entry.id)),
        _element("    ", "title", xml_safe(entry.title) or "(untitled)"),
        f"    <updated>{entry.updated.isoformat()}</updated>\n",
        _author("    ", author),
    ]
    if entry.content_html or not entry.link:  # a link post: its alternate link stands for the content
        parts.append(_element("    ", "content", xml_safe(entry.content_html), ' type="html"'))
    if entry.summary:
        parts.append(_element("    ", "summary", xml_safe(entry.summary)))
    if entry.published:
        parts.append(f"    <published>{entry.published.isoformat()}</published>\n")
    image = xml_safe(entry.image) if entry.image else None
    if image is not None:
        parts.append(f'    <media:thumbnail url="{_attr(image)}"/>\n' if image else "    <media:thumbnail/>\n")
    if entry.link:
        parts.append(_link("    ", xml_safe(entry.link), "alternate", "text/html"))
    if image is not None:  # an enclosure without a length: the size is not known
        parts.append(_link("    ", image, "enclosure", image_type(image)))
    parts.append("  </entry>\n")
    return "".join(parts)


def render_atom(
    meta: FeedMeta, entries: Sequence[Entry], paging: Paging | None = None, updated: datetime | None = None
) -> bytes:
    """Atom 1.0 document, UTF-8, with an XML declaration (and the stylesheet instruction if any).

    Without `paging` it is the subscription feed with no archives. The feed's `updated` is
    `updated`, by default its newest entry's. An archive page (`paging.current` set) is a
    document of its own: its own id, `rel="current"` to the feed, and `fh:archive`.
    """
    paging = paging or Paging(meta.self_url)
    updated = updated or feed_updated(entries)
    archive = paging.current is not None
    parts = ["<?xml version='1.0' encoding='UTF-8'?>\n"]
    if meta.stylesheet:
        parts.append(f'<?xml-stylesheet type="text/xsl" href="{meta.stylesheet}"?>\n')
    namespaces = f' xmlns:media="{MEDIA_NS}"' + (f' xmlns:fh="{FH_NS}"' if archive else "") + f' xmlns="{ATOM_NS}"'
    language = f' xml:lang="{_attr(meta.language)}"' if meta.language else ""
    parts += [
        f"<feed{namespaces}{language}>\n",
        _element("  ", "id", paging.self_url if archive else meta.id),
        _element("  ", "title", meta.title),
        f"  <updated>{updated.isoformat()}</updated>\n",
        _author("  ", meta.author),
        _link("  ", meta.alternate_url, "alternate", "text/html"),
        _link("  ", paging.self_url, "self", ATOM_TYPE),
    ]
    if paging.current:
        parts.append(_link("  ", paging.current, "current", ATOM_TYPE))
    elif meta.hub:
        parts.append(f'  <link href="{_attr(meta.hub)}" rel="hub"/>\n')
    if paging.prev_archive:
        parts.append(_link("  ", paging.prev_archive, "prev-archive", ATOM_TYPE))
    if paging.next_archive:
        parts.append(_link("  ", paging.next_archive, "next-archive", ATOM_TYPE))
    parts.append(GENERATOR)
    if meta.subtitle:
        parts.append(_element("  ", "subtitle", meta.subtitle))
    if archive:
        parts.append("  <fh:archive/>\n")
    parts += [_entry(entry, meta.author) for entry in entries]
    parts.append("</feed>\n")
    return "".join(parts).encode("utf-8")
