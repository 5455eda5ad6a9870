"""What the renderers share: image types, and for RSS (feedgen) thumbnails, the hub link and the
stylesheet instruction.

feedgen cannot write an `<?xml-stylesheet?>` instruction or a hub link in RSS (its `rel="hub"`
only reaches Atom); these are added here, deterministically. The Atom documents are written
directly (`feedsvc.core.render.atom`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import xml_elem

from feedsvc.core.text import xml_safe
from feedsvc.model import Entry

ATOM_NS = "http://www.w3.org/2005/Atom"

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


def add_thumbnail(fe: Any, entry: Entry) -> None:
    """media:thumbnail plus an `<enclosure length="0">` (RSS requires a length; 0 is the RSS Best
    Practices Profile's value for an unknown size)."""
    if not entry.image:
        return
    url = xml_safe(entry.image)
    fe.media.thumbnail(url=url, group=None)
    fe.enclosure(url, 0, image_type(url))


class FeedExtras(BaseExtension):
    """What feedgen lacks in RSS: the hub link."""

    def __init__(self) -> None:
        self.hub = ""

    def extend_rss(self, feed):  # type: ignore[no-untyped-def]
        if self.hub:
            xml_elem(f"{{{ATOM_NS}}}link", feed.find("channel"), href=self.hub, rel="hub")
        return feed


def generator(hub: str = "") -> FeedGenerator:
    """A FeedGenerator with the media extension and ours (`fg.feedsvc`) loaded."""
    fg = FeedGenerator()
    fg.load_extension("media")
    fg.register_extension("feedsvc", FeedExtras)
    fg.feedsvc.hub = hub  # type: ignore[attr-defined]
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
