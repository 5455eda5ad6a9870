"""What the Atom and RSS renderers share: thumbnails, the stylesheet instruction, feed-level extras.

feedgen cannot write an `<?xml-stylesheet?>` instruction, `fh:archive`, or a hub link in RSS
(its `rel="hub"` only reaches Atom); these are added here, deterministically. feedgen 1.0.0
also drops `rel` and `type` from every Atom *entry* link (its serialiser reads them back from
the element it has just created), which would turn an enclosure into a second "alternate"
link: Atom entry links are written by `EntryExtras` instead. feedgen refuses an entry with
neither content nor an alternate link of its own, so a link post (RFC 4287 allows an entry
without content when it has an alternate link) gets an empty content that `EntryExtras` removes.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseEntryExtension, BaseExtension  # type: ignore[import-untyped]  # feedgen ships no types
from feedgen.feed import FeedGenerator  # type: ignore[import-untyped]  # feedgen ships no types
from feedgen.util import xml_elem  # type: ignore[import-untyped]  # feedgen ships no types

from feedsvc.core.sanitize.embeds import media_files
from feedsvc.core.text import xml_safe
from feedsvc.model import Entry

ATOM_NS = "http://www.w3.org/2005/Atom"
FH_NS = "http://purl.org/syndication/history/1.0"

# A fixed table, not `mimetypes`, whose answers depend on the host's /etc/mime.types.
_IMAGE_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "avif": "image/avif",
    "svg": "image/svg+xml",
}
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{3,4})(?=$|[?&#/])")
FALLBACK_IMAGE_TYPE = "image/jpeg"


def image_type(url: str) -> str:
    """A MIME type guessed from the image URL's extension, in its path or else in its query.

    Image proxies (`https://images.weserv.nl/?url=…/x.jpg`) carry the real name in the query.
    Without a known extension the answer is image/jpeg, the most common type of article photos.
    """
    parts = urlsplit(url)
    for text in (parts.path, parts.query):
        for ext in reversed(_EXTENSION.findall(text)):
            if ext.lower() in _IMAGE_TYPES:
                return _IMAGE_TYPES[ext.lower()]
    return FALLBACK_IMAGE_TYPE


def add_thumbnail(fe: Any, entry: Entry, atom: bool) -> None:
    """media:thumbnail plus enclosures. Atom: a `link rel="enclosure"` for the image and for each
    video and audio file of the content, without a length (unknown, and optional in Atom). RSS
    allows one `<enclosure>`: the first video or audio file, else the image, with `length="0"`,
    the RSS Best Practices Profile's value for an unknown size."""
    media = media_files(entry.content_html)
    if entry.image:
        url = xml_safe(entry.image)
        fe.media.thumbnail(url=url, group=None)
        if atom:
            fe.feedsvc.links.append({"href": url, "rel": "enclosure", "type": image_type(url)})
        elif not media:
            fe.enclosure(url, 0, image_type(url))
    if atom:
        for url, kind in media:
            fe.feedsvc.links.append({"href": xml_safe(url), "rel": "enclosure", "type": kind})
    elif media:
        url, kind = media[0]
        fe.enclosure(xml_safe(url), 0, kind)


class EntryExtras(BaseEntryExtension):  # type: ignore[misc]  # feedgen ships no types: its base is Any
    """Atom entry links, with their rel and type, and link posts (see the module docstring)."""

    def __init__(self) -> None:
        self.links: list[dict[str, str]] = []
        self.without_content = False

    def extend_atom(self, entry: Any) -> Any:  # an lxml element, as feedgen passes it
        for attributes in self.links:
            xml_elem("link", entry, **attributes)
        if self.without_content and (content := entry.find("content")) is not None:
            entry.remove(content)
        return entry


class FeedExtras(BaseExtension):  # type: ignore[misc]  # feedgen ships no types: its base is Any
    """Feed-level elements feedgen lacks: fh:archive (Atom) and the hub link (RSS)."""

    def __init__(self) -> None:
        self.archive = False
        self.hub = ""

    def extend_ns(self) -> dict[str, str]:
        return {"fh": FH_NS} if self.archive else {}

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            xml_elem(f"{{{FH_NS}}}archive", feed)
        return feed

    def extend_rss(self, feed: Any) -> Any:
        if self.hub:
            xml_elem(f"{{{ATOM_NS}}}link", feed.find("channel"), href=self.hub, rel="hub")
        return feed


def generator(hub: str = "", archive: bool = False) -> FeedGenerator:
    """A FeedGenerator with the media extension and ours (`fg.feedsvc`, `fe.feedsvc`) loaded."""
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.register_extension("feedsvc", FeedExtras, EntryExtras)
    fg.feedsvc.archive = archive
    fg.feedsvc.hub = hub
    return fg


def with_stylesheet(document: bytes, href: str) -> bytes:
    """Insert `<?xml-stylesheet?>` right after the XML declaration ("" href: unchanged)."""
    if not href:
        return document
    declaration, sep, rest = document.partition(b"?>\n")
    if not declaration.startswith(b"<?xml ") or not sep:
        raise ValueError("expected a document starting with an XML declaration")
    pi = f'<?xml-stylesheet type="text/xsl" href="{href}"?>\n'.encode()
    return declaration + sep + pi + rest
