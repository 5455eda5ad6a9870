"""Entries → JSON Feed 1.1 bytes: the same entries, in the same order, as the Atom feed.

Keys are written in a fixed order and dates as RFC 3339, so the same entries give the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from feedsvc.core.sanitize.embeds import media_files
from feedsvc.core.text import xml_safe
from feedsvc.model import Entry, FeedMeta

VERSION = "https://jsonfeed.org/version/1.1"


def _date(value: datetime) -> str:
    return value.isoformat()


def _item(entry: Entry, authors: list[dict[str, str]]) -> dict[str, Any]:
    # xml_safe as in the Atom renderer: a lone surrogate would make the UTF-8 encoding fail.
    item: dict[str, Any] = {"id": xml_safe(entry.id)}
    if entry.link:
        item["url"] = xml_safe(entry.link)
    item["title"] = xml_safe(entry.title) or "(untitled)"
    if entry.content_html or not entry.link:
        item["content_html"] = xml_safe(entry.content_html)
    else:  # a link post: JSON Feed needs content_html or content_text
        item["content_text"] = item["title"]
    if entry.summary:
        item["summary"] = xml_safe(entry.summary)
    if entry.image:
        item["image"] = xml_safe(entry.image)
    if media := media_files(entry.content_html):  # each video and audio file of the content
        item["attachments"] = [{"url": xml_safe(url), "mime_type": kind} for url, kind in media]
    if entry.published:
        item["date_published"] = _date(entry.published)
    item["date_modified"] = _date(entry.updated)
    item["authors"] = authors
    return item


def render_jsonfeed(meta: FeedMeta, entries: Sequence[Entry], self_url: str) -> bytes:
    """JSON Feed 1.1 document, UTF-8 (non-ASCII kept as is: half the size for CJK text)."""
    authors = [{"name": meta.author}]
    feed: dict[str, Any] = {
        "version": VERSION,
        "title": meta.title,
        "home_page_url": meta.alternate_url,
        "feed_url": self_url,
    }
    if meta.subtitle:
        feed["description"] = meta.subtitle
    feed["language"] = meta.language
    feed["authors"] = authors
    if meta.hub:
        feed["hubs"] = [{"type": "WebSub", "url": meta.hub}]
    feed["items"] = [_item(entry, authors) for entry in entries]
    return (json.dumps(feed, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
