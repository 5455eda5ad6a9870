"""One build, top-down: scan → what changed → read and process → choose → render and publish.

`build()` is the one function where a build happens; each stage is a module of its own:

    pipeline/seeds.py        which files are seeds, their stats (all, or the paths events named)
    core/changes.py       what changed: a pure diff of those stats against the records
    pipeline/load.py         reading and processing: a Record per changed file (workers.py: the pool);
                          on a cold start, pipeline/newest.py publishes the newest entries first
    core/choose.py        which entries, in which order, which archive pages
    pipeline/feeds.py        the feeds: the top-level one and the declared ones, each chosen from the
                          same Records (core/filters.py) and transformed (core/transform.py)
    pipeline/render_and_publish.py    rendering what changed, and publishing every feed's documents as one version

What the builder remembers between builds is plain data (`Memory`: the records, what it last
published). A bad file is reported once per change of its bytes and skipped; it never stops the
build, and a failed build never replaces the last good feed. `Builder` holds the resources (the
cache file, the compressing threads) and serialises builds; timing (settle, debounce, retry) is
the service's: a build is told how young a file may be, and whether to wait for it.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from feedsvc.config import Config, path_for_log, path_for_public
from feedsvc.core.changes import Changes, diff
from feedsvc.core.choose import by_order, select_entries, split_archive
from feedsvc.core.filters import by_top_folder
from feedsvc.core.outcome import fingerprint
from feedsvc.core.render.documents import fit_feed, oversize_reason
from feedsvc.core.render.xsl import STYLESHEET_PATH
from feedsvc.model import BuildResult, Entry, Feed, FeedMeta, Problem, Record, StatKey
from feedsvc.pipeline.cache import CacheError, MemoryCache, SqliteCache, open_cache
from feedsvc.pipeline.feeds import FeedMemory, feeds_of, folder_warnings
from feedsvc.pipeline.load import Cache, Loaded, Progress, entries_by_key, load
from feedsvc.pipeline.newest import First, publish_newest
from feedsvc.pipeline.render_and_publish import FeedPlan, Published, render_and_publish, zipper
from feedsvc.pipeline.seeds import SeedsDirError, read_limit, scan_seeds, stat_seeds
from feedsvc.pipeline.workers import Workers
from feedsvc.publish.layout import MANIFEST
from feedsvc.publish.static import StaticDirError, lay_out
from feedsvc.publish.writer import write_status

log = logging.getLogger("feedsvc.build")


@dataclass
class Memory:
    """What a builder remembers between builds."""

    records: dict[str, Record] | None = None  # None: nothing built in this process yet
    published: Published = field(default_factory=Published)
    # (the manifest's stat, entries, ETag, until when its date holds) right after this builder's
    # last publish.
    rendered: tuple[StatKey | None, int, str | None, float] | None = None
    feeds: FeedMemory | None = None  # the feeds, their match results and transformed entries


def build(
    config: Config,
    memory: Memory,
    cache: Cache,
    zip_threads: Any,
    *,
    changed: set[str] | None = None,
    complete: dict[str, StatKey] | None = None,
    settle: float = 0.0,
    wait: bool = True,
    now: float | None = None,
    newest_first: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Build and publish once. `changed`: the paths under seeds/ that file events named (only they
    are stat'ed); `settle`: a file modified less than this many seconds ago is not read, unless
    `complete` (rel → stat) says it was whole at that stat; `wait`: with such files, publish
    nothing (`waiting`), else publish without them; `now`: the build's time (seconds since the
    epoch; default the clock's); `newest_first`: publish the newest entries (found by the files'
    headers) before reading the rest (a cold start: readers are waiting)."""
    first = memory.records is None
    now = time.time() if now is None else now
    changes, index = _what_changed(config.seeds_dir, memory, cache, changed, now, settle, complete)
    result = BuildResult(ok=True, files=changes.files, deferred=changes.deferred, youngest=changes.youngest)
    if changes.deferred and wait:
        result.waiting = True
        return result

    settings = config.entry_settings
    at = datetime.fromtimestamp(now, UTC)  # the build's time: files are processed, feeds dated, at it
    feeds = memory.feeds = memory.feeds or FeedMemory.of(_feeds(config))
    result.warnings = folder_warnings(config.seeds_dir, feeds.feeds)
    feeds.warn(result.warnings)
    with Workers(settings, read_limit(settings.max_article_bytes), at, config.build_workers) as workers:
        early, loaded = _load(config, memory, changes, cache, workers, zip_threads, newest_first, progress)
        current = _remember_records(config.seeds_dir, memory, cache, changes, loaded, index, result)
        if not first and not result.changed and _still_ours(memory, config.output_dir, now):
            assert memory.rendered is not None
            result.entries, result.etag = memory.rendered[1], memory.rendered[2]
            return result  # nothing new, and the published state is still ours and true: nothing to render
        memory.rendered = None

        def entries(some: Sequence[Record]) -> dict[str, Entry]:
            return entries_by_key(some, loaded.made, cache, config.seeds_dir, workers)

        plans = _plans(config, feeds, current.values(), cache, entries, at, result)
        cache_path = cache.path if isinstance(cache, SqliteCache) else None
        published, result.etag = render_and_publish(
            config.output_dir, plans, memory.published, workers, cache_path, zip_threads, at
        )
        result.published = published or early.published
    _remember_published(memory, config.output_dir, plans, result, at)
    return result


def _what_changed(
    seeds_dir: Path,
    memory: Memory,
    cache: Cache,
    changed: set[str] | None,
    now: float,
    settle: float,
    complete: dict[str, StatKey] | None,
) -> tuple[Changes, dict[str, tuple[StatKey, str]]]:
    """The stats of the seeds (all of them, or the paths events named) against the records; a new
    process has none yet and compares with the cache's file index instead, which it returns."""
    first = memory.records is None
    index = cache.files(str(seeds_dir.resolve())) if first else {}
    scan = _scan(seeds_dir, None if first else changed)
    return diff(scan, memory.records or {}, index, now, settle, complete), index


def _remember_records(
    seeds_dir: Path,
    memory: Memory,
    cache: Cache,
    changes: Changes,
    loaded: Loaded,
    index: dict[str, tuple[StatKey, str]],
    result: BuildResult,
) -> dict[str, Record]:
    """The records after this build, in memory and in the cache's file index; what changed and
    what is wrong with them, in the result (and in the log, for bytes new to this process)."""
    before = memory.records or {}
    current = memory.records = changes.kept | loaded.records
    result.changed = _count_changed(changes, loaded.records, before, index)
    _remember_files(cache, str(seeds_dir.resolve()), changes, loaded.records, index, prune=result.changed > 0)
    _report(seeds_dir, loaded.fresh)
    result.skipped, result.problems, result.notes = _problems(current.values())
    return current


def _remember_published(
    memory: Memory, out_dir: Path, plans: Sequence[FeedPlan], result: BuildResult, at: datetime
) -> None:
    """What this build published, in the result and in the builder's memory (see `_still_ours`)."""
    result.entries = len(plans[0].current)
    result.feeds = {plan.feed.name: len(plan.current) for plan in plans[1:]}
    until = min((_dated_until(plan.current, at) for plan in plans), default=math.inf)
    memory.rendered = (_manifest_stat(out_dir), result.entries, result.etag, until)


def _load(
    config: Config,
    memory: Memory,
    changes: Changes,
    cache: Cache,
    workers: Workers,
    zip_threads: Any,
    newest_first: bool,
    progress: Progress | None,
) -> tuple[First, Loaded]:
    """Read and process the files to read: on a cold start (`newest_first`), those whose headers
    promise the newest entries first, published at once (`pipeline/newest.py`), then the rest."""
    records, feeds = memory.records or {}, memory.feeds
    assert feeds is not None
    fingerprint_, observe = _fingerprint(config), feeds.matches.observe
    early = First(Loaded())
    if newest_first:
        early = publish_newest(
            config, feeds, changes, cache, workers, fingerprint_, observe, memory.published, zip_threads, progress
        )
    rest = [(seed, sha) for seed, sha in changes.to_read if seed.rel not in early.loaded.records]
    total = changes.files
    loaded = load(rest, records, cache, workers, fingerprint_, config.max_entries, progress, total, observe, early.cold)
    loaded.merge(early.loaded)
    return early, loaded


def _plans(
    config: Config,
    feeds: FeedMemory,
    records: Iterable[Record],
    cache: Cache,
    entries: Callable[[Sequence[Record]], dict[str, Entry]],
    at: datetime,
    result: BuildResult,
) -> list[FeedPlan]:
    """Every feed's entries and archive pages, chosen from the same Records: all of them are
    chosen once (one per article URL, newest first); each declared feed keeps those of its
    folder that its patterns pass, in that order. All records, not only the newest max_entries:
    the older ones fill the RFC 5005 archive."""
    chosen = select_entries((r for r in records if r.id is not None), key=by_order)
    feeds.matches.complete(chosen, cache, entries)
    folders = by_top_folder(chosen) if any(feed.folder for feed in feeds.feeds) else {}
    plans = []
    for feed in feeds.feeds:
        candidates = folders.get(feed.folder.partition("/")[0], []) if feed.folder else chosen
        selected = feeds.matches.select(feed, candidates)
        newest, pages = feeds.split(feed, selected, config.archive_page_size)
        plan = FeedPlan(feed, newest, pages, feeds.transformed.entries_of(feed, entries))
        plans.append(_fitted(plan, selected, config, at, result))
    return plans


def _fitted(plan: FeedPlan, selected: list[Record], config: Config, at: datetime, result: BuildResult) -> FeedPlan:
    """The plan whose subscription documents stay at or under `max_feed_bytes`: when they would be
    larger, the newest entries that fit stay (at least one) and the rest go to the archive,
    reported as a problem."""
    current = plan.entries_of(plan.current)
    keep = fit_feed(plan.feed.meta, current, at, config.max_feed_bytes)
    if keep == len(current):
        return plan
    name = plan.feed.prefix + "feed.xml"
    result.problems.append(Problem(name, oversize_reason(len(current), keep, config.max_feed_bytes)))
    log.warning("%s: %s", name, result.problems[-1].reason)
    newest, pages = split_archive(selected, keep, config.archive_page_size)
    return dataclasses.replace(plan, current=newest, pages=pages)


def _scan(seeds_dir: Path, changed: set[str] | None) -> Any:
    """Every seed file, or (for paths that events named) rel → SeedFile or None."""
    hinted = None if changed is None else stat_seeds(seeds_dir, changed)
    return scan_seeds(seeds_dir) if hinted is None else hinted



def _fingerprint(config: Config) -> str:
    try:
        version = metadata.version(config.sanitizer)
    except metadata.PackageNotFoundError:
        version = "?"
    return fingerprint(config.entry_settings, version)


def _remember_files(
    cache: Cache,
    root: str,
    changes: Changes,
    new: dict[str, Record],
    index: dict[str, tuple[StatKey, str]],
    prune: bool,
) -> None:
    """The cache's file index: each readable file's stat and hash, for the next process."""
    upserts = {
        rel: (r.stat_key, r.sha) for rel, r in new.items() if r.readable and index.get(rel) != (r.stat_key, r.sha)
    }
    cache.save_files(root, upserts, changes.gone)
    if prune and cache.needs_pruning(len(changes.kept) + len(new)):
        cache.prune({r.key for r in (changes.kept | new).values() if r.key})


def _count_changed(
    changes: Changes, new: dict[str, Record], before: dict[str, Record], index: dict[str, tuple[StatKey, str]]
) -> int:
    """Files gone, plus files whose bytes differ from the ones remembered (or indexed), or whose
    same bytes now give another date (from a new mtime, or a stamp that became valid)."""

    def changed(rel: str, record: Record) -> bool:
        if rel in before:
            return (record.sha, record.updated) != (before[rel].sha, before[rel].updated)
        return rel not in index or record.sha != index[rel][1]

    return len(changes.gone) + sum(1 for rel, r in new.items() if r.readable and changed(rel, r))


def _report(seeds_dir: Path, fresh: Iterable[Record]) -> None:
    """Warn about a skipped file, or a problem in a published one, when its bytes are new to this
    process, not on every tick; notes are information."""
    for record in fresh:
        if not (record.problem or record.problems or record.notes):
            continue  # nearly every record (a new process finds all of them fresh)
        source = seeds_dir / record.rel
        if record.problem:
            log.warning("skipped %s: %s", source, record.problem)
        for problem in record.problems:
            log.warning("%s: %s", source, problem)
        for note in record.notes:
            log.info("%s: %s", source, note)


def _problems(records: Iterable[Record]) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(skipped files, problems in published files, notes), each named relative to the seeds folder."""
    skipped: list[Problem] = []
    problems: list[Problem] = []
    notes: list[Problem] = []
    # Named relative to the seeds folder (/healthz shows them). Few records have anything to say,
    # and a rebuild walks all of them: those few are picked out first.
    for record in [r for r in records if r.id is None or r.problems or r.notes]:
        if record.id is None:
            skipped.append(Problem(record.rel, record.problem or "skipped"))
        problems += [Problem(record.rel, problem) for problem in record.problems]
        notes += [Problem(record.rel, note) for note in record.notes]
    return skipped, problems, notes


def _still_ours(memory: Memory, out_dir: Path, now: float) -> bool:
    """The manifest is the one this builder wrote last (no other writer published since), and
    its documents' date still holds at `now` (see `_dated_until`)."""
    return memory.rendered is not None and memory.rendered[0] == _manifest_stat(out_dir) and now < memory.rendered[3]


def _dated_until(newest: Sequence[Record], at: datetime) -> float:
    """Until when the subscription documents rendered at `at` hold: for ever, unless their newest
    entry is stamped ahead of `at`, which dated them at `at` instead (never in the future). Then
    they are rendered again once that stamp has passed, and dated by it, as any replica that
    builds later dates them: replicas that built at different times agree again."""
    ahead = max((r.updated for r in newest if r.updated is not None), default=None)
    return ahead.timestamp() if ahead is not None and ahead > at else math.inf


def _freeze_heap() -> None:
    """What builds keep (a Record per file) is long-lived plain data without cycles. Collected once
    and frozen (`gc.freeze`) after each build, it is no longer walked by the collector's full
    passes, which otherwise ran during every later build (at 100k seeds, most of a rescan's time)
    and in this process's serving threads. A record that a later build replaces is still freed at
    once, by reference counting; the collector keeps collecting everything created since."""
    gc.collect()
    gc.freeze()


def _manifest_stat(out_dir: Path) -> StatKey | None:
    try:
        st = os.stat(out_dir / MANIFEST)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _feeds(config: Config) -> tuple[Feed, ...]:
    return feeds_of(feed_meta(config), config.max_entries, config.feeds, config.base_url)


def feed_meta(config: Config) -> FeedMeta:
    return FeedMeta(
        id=config.self_url,
        title=config.title,
        self_url=config.self_url,
        alternate_url=config.alternate_url,
        subtitle=config.subtitle,
        author=config.author,
        language=config.language,
        hub=config.websub_hub,
        stylesheet=STYLESHEET_PATH if config.stylesheet else "",
    )


class Builder:
    """The resources of a process's builds, and their order: one build at a time, from any thread.

    Keeps the cache file and the compressing threads open between builds, falls back to memory
    when the cache fails, logs each build's line and writes status.json.
    """

    def __init__(self, config: Config, on_publish: Callable[[BuildResult], None] | None = None) -> None:
        self.config = config
        self.on_publish = on_publish
        self.memory = Memory()
        self.builds = 0
        # The last build of record as status.json should hold it, even when writing it failed
        # (disk full, read-only): the web side of this process reports it from memory.
        self.last_status: dict[str, Any] | None = None
        self._cache: Cache | None = None
        self._zipper: Any = None
        self._static_for: StatKey | None = None  # the manifest the static tree was last laid out for
        self._lock = threading.Lock()

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            self._cache = open_cache(self.config.output_dir)
        return self._cache

    def close(self) -> None:
        """Release the cache file and the compressing threads."""
        with self._lock:
            if self._cache is not None:
                self._cache.close()
                self._cache = None
            if self._zipper is not None:
                self._zipper.shutdown()
                self._zipper = None

    def build(
        self,
        progress: Progress | None = None,
        changed: Iterable[str] | None = None,
        settle: float = 0.0,
        wait: bool = True,
        now: float | None = None,
        complete: dict[str, StatKey] | None = None,
        newest_first: bool = False,
    ) -> BuildResult:
        """Build and publish once (see `build`); a result with `waiting` set published nothing."""
        options: dict[str, Any] = {
            "changed": None if changed is None else set(changed),
            "complete": complete,
            "settle": settle,
            "wait": wait,
            "now": now,
            "newest_first": newest_first,
        }
        with self._lock:
            started = time.perf_counter()
            self._zipper = self._zipper or zipper()
            try:
                try:
                    result = build(self.config, self.memory, self.cache, self._zipper, progress=progress, **options)
                except CacheError as exc:
                    log.warning("cache failed (%s): building from the files, keeping results in memory", exc)
                    self._cache, self.memory.records = MemoryCache(), None
                    result = build(self.config, self.memory, self._cache, self._zipper, progress=progress, **options)
            except OSError as exc:
                result = self._failed(exc)
            if result.ok and not result.waiting and self.config.static_path is not None:
                self._lay_out_static(self.config.static_path, result)
            result.duration = time.perf_counter() - started
            result.finished_at = datetime.now(UTC)
            self.builds += 1
            result.number = self.builds
            if result.waiting and result.ok:
                log.info("build deferred: %d file(s) still being written", len(result.deferred))
                return result  # not a build of record: the status and the feed stay as they are
            self._record(result)
            _freeze_heap()
        if result.published and self.on_publish is not None:
            self.on_publish(result)
        return result

    def _lay_out_static(self, static_dir: Path, result: BuildResult) -> None:
        """Right after a publish (or while the tree lags the manifest: its first use, a failed
        layout), lay out the static tree; a failure fails the build of record, which is retried."""
        manifest = _manifest_stat(self.config.output_dir)
        if manifest is not None and manifest == self._static_for:
            return
        try:
            lay_out(self.config.output_dir, static_dir)
        except StaticDirError as exc:
            result.ok, result.error, result.public_error = False, str(exc), exc.public
            return
        self._static_for = manifest

    def _failed(self, exc: OSError) -> BuildResult:
        """A failed build's result; who ran it says so (the service logs it, `feedsvc build` prints it)."""
        if isinstance(exc, SeedsDirError):
            return BuildResult(ok=False, error=str(exc), public_error=exc.public)
        out, reason = self.config.output_dir, exc.strerror or type(exc).__name__
        return BuildResult(
            ok=False,
            error=f"cannot publish to output directory {path_for_log(out)}: {exc.strerror or exc}",
            public_error=f"cannot publish to output directory {path_for_public(out, 'output_dir')}: {reason}",
        )

    def _record(self, result: BuildResult) -> None:
        status = {**result.as_status(), "pid": os.getpid()}
        try:
            write_status(self.config.output_dir, status)
        except OSError as exc:
            log.warning("cannot write build status to %s: %s", path_for_log(self.config.output_dir), exc)
            status["status_file_error"] = exc.strerror or type(exc).__name__  # no path: /healthz shows it
        self.last_status = status
        if result.ok:
            figures = {
                "entries": result.entries,
                "files": result.files,
                "changed": result.changed,
                "skipped": len(result.skipped),
                "problems": len(result.problems),
                "duration_ms": round(result.duration * 1000, 1),
                "result": "published" if result.published else "unchanged",
                "etag": result.etag,
            }
            # The figures as fields too, for log_format = "json" (feedsvc/logs.py).
            log.info(
                "build: %(entries)d entries from %(files)d files, %(changed)d changed, %(skipped)d skipped, "
                "%(problems)d problems, %(duration_ms).0f ms, %(result)s %(etag)s",
                figures,
                extra=figures,
            )
