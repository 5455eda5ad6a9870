"""A cold start's first publish: the newest entries, found by the files' header lines.

With nothing published yet (a new deploy, an ephemeral disk), readers should not wait for every
file to be sanitized. The first bytes of each file (`read_head`: its stamp, title and dashes
lines, the body's date line) promise its `updated` date, the feed's first sort key
(`parse_header`). The files that promise the newest `max_entries` are processed for real, and
checked: one that turns out skipped, dated otherwise, or the same article as a newer one (dedup
by URL), makes room for the next promise, until the newest `max_entries` processed entries are at
least as new as every promise left. Those are published as the top-level feed's subscription
documents, without archive pages yet (the declared feeds, which filter and transform, follow). A
folder with few files to read (MIN_FILES) is built whole at once instead.

`build()` then processes the rest and publishes everything, exactly as a full build would: a
header that promised wrong is right by then. The files processed here are not processed again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from feedsvc.core.changes import Changes
from feedsvc.core.choose import by_order, select_entries
from feedsvc.core.parse import parse_header
from feedsvc.core.render.documents import fit_feed
from feedsvc.model import Entry, Record, SeedFile
from feedsvc.pipeline.context import BuildContext
from feedsvc.pipeline.feeds import FeedMemory
from feedsvc.pipeline.load import Loaded, Observer, entries_by_key, load
from feedsvc.pipeline.render_and_publish import FeedPlan, LastPublish, render_and_publish
from feedsvc.pipeline.reporting import plural
from feedsvc.pipeline.seeds import read_head
from feedsvc.pipeline.workers import Workers

log = logging.getLogger("feedsvc.build")

# Promises taken at least this many at a time: a few skipped files or duplicates cost no extra round.
_BATCH = 8
# At most this many times `max_entries` files are processed here: past that (many files promising
# the same date, many skipped ones) the first publish goes out with what it has.
_MOST = 4
# Fewer files to read than this build quickly enough (a second or so) to be published at once,
# archives and all, without a first publish.
MIN_FILES = 500

# The `updated` a header promises, and the file.
Promise = tuple[datetime, SeedFile, str | None]


@dataclass
class First:
    """What the first publish did: the files it processed, whether it published, and whether
    nothing was cached before it (None: no first publish)."""

    loaded: Loaded
    published: bool = False
    cold: bool | None = None


def publish_newest(
    ctx: BuildContext, feeds: FeedMemory, changes: Changes, observe: Observer, last: LastPublish
) -> First:
    """Process the files whose headers promise the newest entries of the top-level feed, and
    publish its documents with them (unless there are fewer than MIN_FILES files to read). The
    declared feeds, which filter and transform, follow with the full build."""
    first = First(Loaded(), cold=ctx.cache.is_empty())
    if len(changes.to_read) < MIN_FILES:
        return first
    top = feeds.feeds[0]
    promises = _promises(changes.to_read, ctx.workers)
    done = 0
    while True:
        newest = _newest(changes.kept | first.loaded.records, top.max_entries)
        end = _enough(promises, done, newest, top.max_entries)
        if end == done:
            break
        batch = [(seed, sha) for _, seed, sha in promises[done:end]]
        first.loaded.merge(load(ctx, batch, {}, top.max_entries, observe=observe))
        done = end
    count = plural(len(newest), "entry", "entries")
    log.info("first publish: the newest %s, from %d of %d files", count, done, changes.files)

    def entries(some: Sequence[Record]) -> dict[str, Entry]:
        return entries_by_key(ctx, some, first.loaded.made)

    entries_of = feeds.transformed.entries_of(top, entries)
    keep = fit_feed(top.meta, entries_of(newest), ctx.at, ctx.config.max_feed_bytes)
    plan = FeedPlan(top, newest[:keep], [], entries_of, articles=False)  # pages come with the full build
    first.published, _etag = render_and_publish(ctx, [plan], last)
    if ctx.progress is not None:
        ctx.progress(len(changes.kept) + done, changes.files)
    return first


def _promises(to_read: Sequence[tuple[SeedFile, str | None]], workers: Workers) -> list[Promise]:
    """Every readable header's promise, newest first."""
    settings = workers.settings
    promises: list[Promise] = []
    for seed, sha in to_read:
        try:
            head = read_head(seed)
        except OSError:
            continue  # the build proper reports it
        mtime = datetime.fromtimestamp(seed.mtime_ns / 1e9, tz=UTC)
        updated = parse_header(
            head, mtime, whole=len(head) >= seed.size, legacy_encodings=settings.legacy_encodings, now=workers.now
        )
        if updated is not None:
            promises.append((updated, seed, sha))
    promises.sort(key=_promised, reverse=True)
    return promises


def _promised(promise: Promise) -> datetime:
    return promise[0]


def _newest(records: dict[str, Record], max_entries: int) -> list[Record]:
    return select_entries((r for r in records.values() if r.id is not None), max_entries, key=by_order)



def _enough(promises: Sequence[Promise], done: int, newest: Sequence[Record], max_entries: int) -> int:
    """Up to where the promises must be processed: enough to fill `max_entries`, then every one
    that could still rank among them (promising an `updated` not older than the last one's: the
    order's other keys are known after processing only); `done` are processed already."""
    last = min(len(promises), _MOST * max_entries + _BATCH)
    if len(newest) < max_entries:
        return min(last, done + max(max_entries - len(newest), _BATCH))
    floor = newest[-1].updated
    assert floor is not None  # a published record is dated
    end = done
    while end < last and promises[end][0] >= floor:
        end += 1
    return end
