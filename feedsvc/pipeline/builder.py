"""One build, top-down: scan → what changed → read and process → choose → render and publish.

`build()` is the one function where a build happens, and reads as its stages in order; each
stage is a module of its own:

    pipeline/records.py           what changed (the seeds' stats, pipeline/seeds.py, diffed against
                                  the records by core/changes.py), and the records after the build
    pipeline/load.py              reading and processing: a Record per changed file (workers.py:
                                  the pool); on a cold start, pipeline/newest.py publishes the
                                  newest entries first
    pipeline/plans.py             which entries of every feed, in which order, which archive pages
                                  (core/choose.py, core/filters.py); the feeds: pipeline/feeds.py
    pipeline/render_and_publish.py  rendering what changed, and publishing every feed's documents
                                  as one version
    pipeline/reporting.py         what the build says: skipped files, problems, notes, status.json

`BuildContext` (pipeline/context.py) carries what every stage reads. What the builder remembers
between builds is plain data (`Memory`, pipeline/memory.py). A bad file is reported once per
change of its bytes and skipped; it never stops the build, and a failed build never replaces the
last good feed. `Builder` holds the resources (the cache file, the compressing threads) and
serialises builds; timing (settle, debounce, retry) is the service's: a build is told how young a
file may be, and whether to wait for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedsvc.config import Config, path_for_log, path_for_public
from feedsvc.core.changes import Changes
from feedsvc.core.outcome import fingerprint
from feedsvc.core.urls import is_loopback_host
from feedsvc.model import BuildResult, Entry, Record, StatKey
from feedsvc.pipeline.cache import CACHE_FILE, CacheError, MemoryCache, SqliteCache, open_cache
from feedsvc.pipeline.context import BuildContext, Cache, Progress, Zipper, start_zipper
from feedsvc.pipeline.feeds import FeedMemory, configured_feeds, feed_meta, folder_warnings
from feedsvc.pipeline.heap import freeze_heap
from feedsvc.pipeline.load import Loaded, entries_by_key, load
from feedsvc.pipeline.memory import Memory, remember_published, still_ours
from feedsvc.pipeline.newest import First, publish_newest
from feedsvc.pipeline.plans import plans as plan_feeds
from feedsvc.pipeline.records import remember_records, what_changed
from feedsvc.pipeline.render_and_publish import render_and_publish
from feedsvc.pipeline.reporting import duplicate_records, log_build, log_duplicates, status_of
from feedsvc.pipeline.seeds import SeedsDirError, read_limit
from feedsvc.pipeline.workers import Workers
from feedsvc.publish.layout import ManifestStat, Status, manifest_stat
from feedsvc.publish.static import StaticDirError, lay_out
from feedsvc.publish.writer import write_status

__all__ = ["Builder", "Memory", "build", "feed_meta"]

log = logging.getLogger("feedsvc.build")


def build(
    config: Config,
    memory: Memory,
    cache: Cache,
    zipper: Zipper,
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
    changes, index = what_changed(config.seeds_dir, memory, cache, changed, now, settle, complete)
    result = BuildResult(ok=True, files=changes.files, deferred=changes.deferred, youngest=changes.youngest)
    if changes.deferred and wait:
        result.waiting = True
        return result

    settings = config.entry_settings
    at = datetime.fromtimestamp(now, UTC)  # the build's time: files are processed, feeds dated, at it
    feeds = memory.feeds = memory.feeds or FeedMemory.of(configured_feeds(config))
    result.warnings = folder_warnings(config.seeds_dir, feeds.feeds)
    feeds.warn(result.warnings)
    with Workers(settings, read_limit(settings.max_article_bytes), at, config.build_workers) as workers:
        ctx = BuildContext(config, cache, workers, zipper, at, _fingerprint(config), progress)
        early, loaded = _load(ctx, memory, changes, newest_first)
        current = remember_records(ctx, memory, changes, loaded, index, result)
        _note_duplicates(ctx, memory, current.values(), result)
        last = still_ours(memory, config.output_dir, now)
        if not first and not result.changed and last is not None:
            result.entries, result.etag = last.entries, last.etag
            return result  # nothing new, and the published state is still ours and true: nothing to render
        memory.rendered = None

        def entries(some: Sequence[Record]) -> dict[str, Entry]:
            return entries_by_key(ctx, some, loaded.made)

        plans = plan_feeds(ctx, feeds, current.values(), entries, result)
        published, result.etag = render_and_publish(ctx, plans, memory.last_publish)
        result.published = published or early.published
    remember_published(memory, config.output_dir, plans, result, at)
    return result


def _load(ctx: BuildContext, memory: Memory, changes: Changes, newest_first: bool) -> tuple[First, Loaded]:
    """Read and process the files to read: on a cold start (`newest_first`), those whose headers
    promise the newest entries first, published at once (`pipeline/newest.py`), then the rest."""
    records, feeds = memory.records or {}, memory.feeds
    assert feeds is not None
    observe = feeds.matches.observe
    early = First(Loaded())
    if newest_first:
        early = publish_newest(ctx, feeds, changes, observe, memory.last_publish)
    rest = [(seed, sha) for seed, sha in changes.to_read if seed.rel not in early.loaded.records]
    keep, total = ctx.config.max_entries, changes.files
    loaded = load(ctx, rest, records, keep, progress=ctx.progress, total=total, observe=observe, cold=early.cold)
    loaded.merge(early.loaded)
    return early, loaded


def _note_duplicates(ctx: BuildContext, memory: Memory, records: Iterable[Record], result: BuildResult) -> None:
    """Files whose article has the URL of a newer one (only that one is published): notes. Worked
    out again only when the records changed (a rescan that finds nothing new stays cheap)."""
    if memory.duplicates is None or result.changed:
        memory.duplicates = duplicate_records(records)
        memory.told = log_duplicates(ctx.seeds_dir, memory.duplicates, memory.told)
    result.notes += memory.duplicates


def _fingerprint(config: Config) -> str:
    try:
        version = metadata.version(config.sanitizer)
    except metadata.PackageNotFoundError:
        version = "?"
    return fingerprint(config.entry_settings, version)


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
        self.status: Status | None = None
        self._status_json: tuple[Status, dict[str, Any]] | None = None
        self._cache: Cache | None = None
        self._zipper: Zipper | None = None
        self._static_for: ManifestStat | None = None  # the manifest the static tree was last laid out for
        self._lock = threading.Lock()

    @property
    def last_status(self) -> dict[str, Any] | None:
        """The last build of record's status, as status.json holds it (what web processes read)."""
        if self.status is None:
            return None
        if self._status_json is None or self._status_json[0] is not self.status:  # made once per build
            self._status_json = (self.status, self.status.to_json())
        return self._status_json[1]

    @property
    def cache(self) -> Cache:
        if self._cache is None:
            self._cache = open_cache(self.config.output_dir)
        return self._cache

    def _cache_again(self) -> None:
        """After a fall back to memory (a full disk, a locked or unwritable file), try the cache file
        again at each build: it is used again once it opens (the next build reads every file's
        outcome from it, or makes it again)."""
        if not isinstance(self._cache, MemoryCache):
            return
        path = self.config.output_dir / CACHE_FILE
        try:
            cache = SqliteCache(path)
        except (sqlite3.Error, OSError) as exc:
            log.debug("cache %s still unusable: %s", path, exc)
            return
        log.info("cache %s usable again: keeping build results in it", path_for_log(path))
        self._cache, self.memory.records = cache, None

    def close(self) -> None:
        """Release the cache file (checkpointing its write-ahead log) and the compressing threads."""
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
        paths = None if changed is None else set(changed)

        def once(cache: Cache, zipper: Zipper) -> BuildResult:
            return build(
                self.config,
                self.memory,
                cache,
                zipper,
                changed=paths,
                complete=complete,
                settle=settle,
                wait=wait,
                now=now,
                newest_first=newest_first,
                progress=progress,
            )

        with self._lock:
            started = time.perf_counter()
            result = self._build(once)
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
            freeze_heap()
        if result.published and self.on_publish is not None:
            self.on_publish(result)
        return result

    def _build(self, once: Callable[[Cache, Zipper], BuildResult]) -> BuildResult:
        """One build with this builder's resources; with the memory alone when the cache fails."""
        zipper = self._zipper = self._zipper or start_zipper()
        self._cache_again()
        try:
            try:
                return once(self.cache, zipper)
            except CacheError as exc:
                log.warning("cache failed (%s): building from the files, keeping results in memory", exc)
                failed, self._cache, self.memory.records = self._cache, MemoryCache(), None
                if failed is not None:
                    with contextlib.suppress(sqlite3.Error, OSError):
                        failed.close()
                return once(self._cache, zipper)
        except OSError as exc:
            return self._failed(exc)
        except Exception as exc:  # a bug, or a file no check foresaw: a failed build like any other
            return self._unexpected(exc)

    def _lay_out_static(self, static_dir: Path, result: BuildResult) -> None:
        """Right after a publish (or while the tree lags the manifest: its first use, a failed
        layout), lay out the static tree; a failure fails the build of record, which is retried."""
        manifest = manifest_stat(self.config.output_dir)
        if manifest is not None and manifest == self._static_for:
            return
        try:
            lay_out(self.config.output_dir, static_dir)
        except StaticDirError as exc:
            result.ok, result.error, result.public_error = False, str(exc), exc.public
            return
        self._static_for = manifest
        warn_loopback_static(self.config)


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

    def _unexpected(self, exc: Exception) -> BuildResult:
        """An error no stage expected: a failed build, retried by who runs it (the service logs it
        once, as a WARNING); its traceback at DEBUG. What this builder remembered is forgotten (it
        may be half updated): the next build starts from the cache, as a new process would."""
        log.debug("the build failed with an unexpected error", exc_info=exc)
        self.memory = Memory()
        reason = f"{type(exc).__name__}: {exc}"[:500]
        public = reason
        for folder, key in ((self.config.seeds_dir, "seeds_dir"), (self.config.output_dir, "output_dir")):
            for shown in {str(folder.absolute()), str(folder.resolve())}:  # no absolute path in /healthz
                public = public.replace(shown, path_for_public(folder, key))
        return BuildResult(ok=False, error=f"unexpected error: {reason}", public_error=f"unexpected error: {public}")

    def _record(self, result: BuildResult) -> None:
        status = status_of(result)
        try:
            write_status(self.config.output_dir, status)
        except OSError as exc:
            log.warning("cannot write build status to %s: %s", path_for_log(self.config.output_dir), exc)
            # No path: /healthz shows it.
            status = dataclasses.replace(status, status_file_error=exc.strerror or type(exc).__name__)
        self.status = status
        if result.ok:
            log_build(result)


# The base URLs a loopback warning was given for, in this process: one warning each, not one a build.
_warned_loopback: set[str] = set()


def warn_loopback_static(config: Config) -> None:
    """A static tree is served by another server, to readers elsewhere: with a loopback base_url
    (the default), its feeds link to this machine. Said once per process, as a warning."""
    host = urlsplit(config.base_url).hostname or ""
    if not is_loopback_host(host) or config.base_url in _warned_loopback:
        return
    _warned_loopback.add(config.base_url)
    log.warning(
        "static tree %s is laid out with base_url %s: its feeds will carry %s links, which only this "
        "machine can follow; set base_url (FEEDSVC_BASE_URL) to the public address",
        path_for_log(config.static_path) if config.static_path else "",
        config.base_url,
        host,
    )

