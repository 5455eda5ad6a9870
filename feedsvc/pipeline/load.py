"""Reading and processing: a Record for every file to read, each file read once.

A file whose hash the cache's index vouches for is looked up, not read. Otherwise it is read and
hashed; when its bytes are the ones remembered or cached, that Record is reused; only new bytes
are processed (in the workers when there are many). A cold build (nothing remembered, nothing
cached) hands the files to the workers unread: hashing them first would find nothing to reuse.
Entries made here are kept for rendering, up to `keep` of the newest, so the documents of this
build need not read them back from the cache; `observe` sees each of them as it is made (the
declared feeds' patterns are matched then, while the entry is in hand).
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from feedsvc.core.outcome import outcome_key
from feedsvc.model import Entry, Outcome, Record, SeedFile
from feedsvc.pipeline.context import BuildContext, Cache, Progress
from feedsvc.pipeline.seeds import read_seed, seed_path
from feedsvc.pipeline.workers import Item

_WRITE_BATCH = 1024  # outcomes written to the cache per transaction
# Records looked up in the cache at a time: the rows and the records they become are not all held
# at once (a new process on 100k files would hold each twice).
_LOOKUP_BATCH = 4096

__all__ = ["Cache", "Loaded", "Observer", "Progress", "entries_by_key", "load"]

Observer = Callable[[Record, Entry], None]


@dataclass
class Loaded:
    records: dict[str, Record] = field(default_factory=dict)
    # Records whose problems and notes are new to this process (to report once).
    fresh: list[Record] = field(default_factory=list)
    # The newest entries made in this build, by cache key.
    made: dict[str, Entry] = field(default_factory=dict)

    def merge(self, other: Loaded) -> None:
        self.records.update(other.records)
        self.fresh += other.fresh
        self.made.update(other.made)


@dataclass(frozen=True)
class _Pass:
    """One loading pass's own inputs, beside the build's context."""

    remembered: Mapping[str, Record]  # the records of the last build
    keep: int  # the newest entries made to keep in hand for rendering
    progress: Progress | None
    total: int  # the files of the build, for `progress`
    observe: Observer | None


def load(
    ctx: BuildContext,
    to_read: Sequence[tuple[SeedFile, str | None]],
    remembered: Mapping[str, Record],
    keep: int,
    *,
    progress: Progress | None = None,
    total: int = 0,
    observe: Observer | None = None,
    cold: bool | None = None,
) -> Loaded:
    """A Record for each of `to_read` (a file and its hash, when the cache's index vouches for it).
    `cold`: nothing was cached when the build began (None: look now)."""
    cache, workers = ctx.cache, ctx.workers
    this = _Pass(remembered, keep, progress, total, observe)
    loaded = Loaded()
    now = workers.now.timestamp()
    cold = not remembered and (cache.is_empty() if cold is None else cold)
    hold_bytes = not cold and len(to_read) < workers.count * 64  # a pooled build lets workers read
    candidates: list[tuple[SeedFile, str, bytes | None]] = []
    unread: list[SeedFile] = []
    for seed, sha in to_read:
        data = None
        if sha is None and cold:
            unread.append(seed)
            continue
        if sha is None:
            try:
                data = read_seed(seed, workers.limit)
            except FileNotFoundError:
                continue  # deleted since the scan
            except OSError as exc:
                _unreadable(loaded, remembered, seed.rel, f"cannot read: {exc.strerror or exc}")
                continue
            sha = hashlib.sha256(data).hexdigest()
        before = remembered.get(seed.rel)
        if before is not None and before.sha == sha and _holds(before, seed, now):
            loaded.records[seed.rel] = replace(before, stat_key=seed.stat_key)
            continue
        candidates.append((seed, sha, data if hold_bytes else None))

    items: list[Item] = []
    for start in range(0, len(candidates), _LOOKUP_BATCH):  # a new process looks up every file: a part at a time
        part = candidates[start : start + _LOOKUP_BATCH]
        keys = {seed.rel: outcome_key(ctx.fingerprint, seed.rel, sha) for seed, sha, _ in part}
        cached = cache.records({keys[seed.rel]: seed.stat_key for seed, _, _ in part})
        for seed, _sha, data in part:
            record = cached.get(keys[seed.rel])
            if record is not None and _holds(record, seed, now):
                loaded.records[seed.rel] = record
                loaded.fresh.append(record)
            else:
                items.append((seed, data))
    items += [(seed, None) for seed in unread]
    _process(ctx, this, items, loaded)
    return loaded


def _holds(record: Record, seed: SeedFile, now: float) -> bool:
    """A record of the same bytes is what they give now: unless its date came from another
    mtime, or it depended on the time (a stamp too far ahead) and that time has passed."""
    return record.mtime_ns in (None, seed.mtime_ns) and record.holds(now)


def _process(ctx: BuildContext, this: _Pass, items: list[Item], loaded: Loaded) -> None:
    """Process the files, record their outcomes in the cache in batches, keep the newest entries.

    The cache writes a batch in another thread (SQLite lets go of the GIL) while this one keeps
    the workers fed: waiting for it here would leave them idle."""
    cache, workers, keep, progress, total = ctx.cache, ctx.workers, this.keep, this.progress, this.total
    done = total - len(items)
    if progress is not None:
        progress(done, total)
    workers.start_for(len(items))
    newest: list[tuple[tuple, str, Entry]] = []  # a min-heap of the `keep` newest made entries
    batch: list[tuple[Record, Outcome]] = []
    with ThreadPoolExecutor(1, thread_name_prefix="feedsvc-cache") as writer:
        writing: Future[None] | None = None
        for chunk, results in workers.process(items):
            for (seed, _), (sha, outcome) in zip(chunk, results, strict=True):
                if outcome is None:
                    continue  # gone while being read: the next build sees the truth
                if not sha:
                    _unreadable(loaded, this.remembered, seed.rel, outcome.problem or "cannot read")
                    continue
                record = Record.of(seed.rel, sha, outcome_key(ctx.fingerprint, seed.rel, sha), outcome, seed)
                loaded.records[seed.rel] = record
                loaded.fresh.append(record)
                batch.append((record, outcome))
                if outcome.entry is not None and this.observe is not None:
                    this.observe(record, outcome.entry)
                if outcome.entry is not None and keep:
                    heapq.heappush(newest, (record.order, record.key, outcome.entry))
                    if len(newest) > keep:
                        heapq.heappop(newest)
            if len(batch) >= _WRITE_BATCH:
                if writing is not None:
                    writing.result()  # one batch at a time: memory stays flat
                writing, batch = writer.submit(cache.put, batch), []
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if writing is not None:
            writing.result()
    cache.put(batch)
    loaded.made.update((key, entry) for _, key, entry in newest)


def _unreadable(loaded: Loaded, remembered: Mapping[str, Record], rel: str, reason: str) -> None:
    record = Record.unreadable(rel, reason)
    loaded.records[rel] = record
    before = remembered.get(rel)
    if before is None or before.readable:
        loaded.fresh.append(record)  # reported once, not on every retry


def entries_by_key(ctx: BuildContext, records: Sequence[Record], made: Mapping[str, Entry]) -> dict[str, Entry]:
    """The full entries of `records`, by cache key: made in this build, else from the cache, else
    (pruned by another process sharing the cache) made again from the file; a record whose entry
    is gone altogether has none."""
    cache, workers = ctx.cache, ctx.workers
    found = {r.key: made[r.key] for r in records if r.key in made}
    found.update(cache.entries([r.key for r in records if r.key not in found]))
    gone: list[Item] = [
        (SeedFile(seed_path(ctx.seeds_dir, r.rel), r.rel, *r.stat_key), None) for r in records if r.key not in found
    ]
    by_rel = {r.rel: r for r in records}
    for chunk, results in workers.process(gone) if gone else ():
        for (seed, _), (sha, outcome) in zip(chunk, results, strict=True):
            record = by_rel[seed.rel]
            if outcome is None or sha != record.sha:
                continue
            cache.put([(record, outcome)])
            if outcome.entry is not None:
                found[record.key] = outcome.entry
    return found
