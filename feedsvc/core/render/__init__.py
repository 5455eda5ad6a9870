"""Renderers: entries → the bytes of each published document. Pure and deterministic.

The same entries and FeedMeta always give the same bytes, so a rebuild of unchanged seeds
publishes nothing and every ETag stays valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feedsvc.core.choose import Choosable
from feedsvc.model import Entry

# The feed's `updated` when it has no entries: a fixed instant, never the clock.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Paging:
    """RFC 5005 links of one Atom document: the subscription feed, or one archive page."""

    self_url: str
    prev_archive: str | None = None
    next_archive: str | None = None
    # Set on archive pages only: the subscription document (rel="current"), and fh:archive.
    current: str | None = None


def article_date(entry: Entry) -> datetime:
    """The one date a person sees for an entry, in every page and as RSS `pubDate`: the article's
    own (`published`, from the body's date line), else its `updated` (the header stamp)."""
    return (entry.published or entry.updated).astimezone(UTC)


# How the index, the browser pages and the XSL page show that date.
DATE_FORMAT = "%Y-%m-%d %H:%M UTC"


def feed_updated(entries: Sequence[Choosable], now: datetime | None = None) -> datetime:
    """The newest entry's `updated`: the feed changes when its content does, not when it is rebuilt.

    Never later than `now` (the publish), when given: an entry stamped ahead of the clock must not
    date the feed (or its Last-Modified) in the future. Entries, or the builder's Records of them.
    """
    newest: datetime = max((e.updated for e in entries), default=EPOCH)
    return newest if now is None or newest <= now else now
