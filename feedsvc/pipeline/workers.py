"""The build's worker processes: seed files → outcomes, archive pages → stored objects.

`Workers` is the pool with its own small lifecycle: a build asks for it when it has enough
files to pay for starting processes, keeps it for its archive pages, and stops it when it ends.
Without a pool the same functions run in the builder's process. They take only picklable
arguments (SeedFile, bytes, settings, paths, Feed): a worker reads the files and the cache
itself and writes the pages' objects, so a cold build's bytes and a long history's pages never
go through a pipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from feedsvc.core.outcome import process_file
from feedsvc.core.render.documents import render_archive_page
from feedsvc.model import Document, EntrySettings, Feed, Outcome, Page, SeedFile
from feedsvc.pipeline.cache import CacheError, SqliteCache
from feedsvc.pipeline.feeds import transformer
from feedsvc.pipeline.seeds import read_seed
from feedsvc.publish.layout import Stored, compress
from feedsvc.publish.writer import store

log = logging.getLogger("feedsvc.build")

# Below this many files to process, starting worker processes costs more than it saves. Measured
# here (2 cores, bleach ~2 ms a file, nh3 ~0.3 ms): a forked pool already wins at a few hundred
# files; a spawned one (threaded service) needs ~1 s to import and loses below ~2000.
POOL_MIN_FILES = {"bleach": 200, "nh3": 2000}
SPAWN_MIN_FILES = {"bleach": 2000, "nh3": 20000}
# Files per task sent to a worker: one pickle round trip per chunk, small enough to show progress.
CHUNK = 64
# Archive pages go to the pool when at least this many changed, this many per task.
POOL_MIN_PAGES = 8
PAGES_PER_TASK = 4
# Archive pages are many, large and rarely fetched: level 2 compresses them twice as fast as 6
# (four times as fast as 9) for about 40% more compressed bytes (measured on the benchmark corpus);
# a cold build compresses every page.
ARCHIVE_GZIP_LEVEL = 2

# How often a worker checks that its builder still runs.
PARENT_CHECK_SECONDS = 1.0

# A file to process: the bytes the builder already read, or None for the worker to read them.
Item = tuple[SeedFile, bytes | None]
# What became of it: the hash of the bytes processed ("" = unreadable) and the Outcome (None = vanished).
Result = tuple[str, Outcome | None]
# An archive page to render: the page with its entries' cache keys (newest first), its composition key.
PageTask = tuple[Page[str], str]


def process_files(items: Sequence[Item], settings: EntrySettings, limit: int, now: datetime) -> list[Result]:
    """Read (where not read yet), hash and process files at the build's time `now`. A file that
    cannot be read gives sha "" and an Outcome saying why; one that vanished, (sha "", None)."""
    results: list[Result] = []
    for seed, data in items:
        if data is None:
            try:
                data = read_seed(seed, limit)
            except FileNotFoundError:
                results.append(("", None))
                continue
            except OSError as exc:
                results.append(("", Outcome(None, f"cannot read: {exc.strerror or exc}")))
                continue
        try:
            outcome = process_file(data, seed, settings, limit, now)
        except Exception as exc:  # one file's problem (its name, its stat), never the build's
            outcome = Outcome(None, f"internal error: {type(exc).__name__}: {exc}")
        results.append((hashlib.sha256(data).hexdigest(), outcome))
    return results


def archive_document(feed: Feed, page: Page, source_key: str) -> tuple[Document, ...]:
    """One archive page of `feed` (its entries as the feed publishes them): its Atom document and
    its browser page, rendered and compressed."""
    return tuple(
        dataclasses.replace(document, gzip=compress(document.body, ARCHIVE_GZIP_LEVEL))
        for document in render_archive_page(feed.meta, page, source_key, feed.prefix)
    )


_readers: dict[Path, SqliteCache] = {}

T = TypeVar("T")


def page_with(page: Page[Any], entries: tuple[T, ...]) -> Page[T]:
    """The same archive page holding other items for its entries (Records, their cache keys, Entries)."""
    return Page(page.number, entries, page.older, page.newer)


def render_pages(cache: Path, out_dir: Path, feed: Feed, pages: Sequence[PageTask]) -> list[tuple[Stored, ...] | None]:
    """Archive pages of `feed` from the entries in the cache file (transformed as the feed does),
    their documents' objects written to `out_dir`.

    None for a page whose entries are not all there (another process pruned them), which the
    builder then renders itself.
    """
    reader = _readers.get(cache)
    try:
        if reader is None:
            reader = _readers[cache] = SqliteCache(cache, readonly=True)
        documents: list[tuple[Stored, ...] | None] = []
        apply = transformer(feed)
        for listed, source_key in pages:  # listed: the page, its entries named by their cache keys
            found = reader.entries(listed.entries)
            if len(found) != len(listed.entries):
                documents.append(None)
                continue
            entries = tuple(found[key] if apply is None else apply(found[key]) for key in listed.entries)
            page = page_with(listed, entries)
            documents.append(tuple(store(out_dir, d) for d in archive_document(feed, page, source_key)))
        return documents
    except (CacheError, sqlite3.Error):
        return [None] * len(pages)


def _take(futures: list[Future[list[Result]] | None], index: int) -> list[Result]:
    """A finished chunk's results, dropping its future: a cold build must not hold every entry."""
    future, futures[index] = futures[index], None
    assert future is not None
    return future.result()


def pool_context() -> multiprocessing.context.BaseContext:
    """`fork` from a single-threaded process (`feedsvc build`): workers start at once, imports done.

    The service builds in threaded processes (gunicorn, APScheduler), where forking can copy a
    lock held by another thread: there, `spawn` (workers import afresh, ~0.5 s, paid once per
    cold build).
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _exit_with_parent(parent: int) -> None:
    """A worker's initializer: exit once the builder that started it is gone (killed mid-build:
    the pool's queues never tell its workers, which hold both ends of them)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)

    threading.Thread(target=watch, name="feedsvc-parent", daemon=True).start()


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Workers:
    """The worker processes of one build (or none: everything then runs in this process)."""

    def __init__(self, settings: EntrySettings, limit: int, now: datetime, count: int = 0) -> None:
        """`now`: the build's time, which the files are processed at."""
        self.settings = settings
        self.limit = limit
        self.now = now
        self.count = count or default_workers()
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._pool is not None

    def start_for(self, files: int) -> None:
        """Start the processes when `files` are enough to pay for them."""
        workers = min(self.count, max(1, files // CHUNK))
        context = pool_context()
        table = POOL_MIN_FILES if context.get_start_method() == "fork" else SPAWN_MIN_FILES
        if workers >= 2 and files >= table.get(self.settings.sanitizer, 2000) and self._pool is None:
            self._pool = ProcessPoolExecutor(
                workers, mp_context=context, initializer=_exit_with_parent, initargs=(os.getpid(),)
            )

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def process(self, items: Sequence[Item]) -> Iterator[tuple[Sequence[Item], list[Result]]]:
        """(chunk, its results), in order. A bounded window of chunks is in flight, so the workers
        stay busy and memory stays flat; a broken pool hands the rest to this process."""
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        done = 0
        if self._pool is not None:
            try:
                window = 8 * self.count
                futures: list[Future[list[Result]] | None] = []
                for chunk in chunks:
                    futures.append(self._pool.submit(process_files, chunk, self.settings, self.limit, self.now))
                    while len(futures) - done >= window or (len(futures) == len(chunks) and done < len(chunks)):
                        results = _take(futures, done)
                        yield chunks[done], results
                        done += 1
            except (BrokenProcessPool, OSError) as exc:
                log.warning("process pool failed (%s): processing the rest in this process", exc)
                self.stop()
        for chunk in chunks[done:]:
            yield chunk, process_files(chunk, self.settings, self.limit, self.now)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T] | None:
        """`fn(*args)` in a worker process (picklable arguments), or None without a pool: the
        caller then runs it in this process."""
        return None if self._pool is None else self._pool.submit(fn, *args)

    def render_pages(
        self, cache: Path, out_dir: Path, jobs: Sequence[tuple[Feed, Sequence[PageTask]]]
    ) -> dict[tuple[str, int], tuple[Stored, ...]]:
        """(feed name, page number) → its documents, stored, for the pages the pool rendered (none
        without a pool, or for few pages). Every feed's pages are in flight together."""
        made: dict[tuple[str, int], tuple[Stored, ...]] = {}
        if self._pool is None or sum(len(tasks) for _, tasks in jobs) < POOL_MIN_PAGES:
            return made
        batches = [
            (feed, tasks[i : i + PAGES_PER_TASK]) for feed, tasks in jobs for i in range(0, len(tasks), PAGES_PER_TASK)
        ]
        try:
            futures = [self._pool.submit(render_pages, cache, out_dir, feed, batch) for feed, batch in batches]
            for (feed, batch), future in zip(batches, futures, strict=True):
                for (page, _), document in zip(batch, future.result(), strict=True):
                    if document is not None:
                        made[(feed.name, page.number)] = document
        except (BrokenProcessPool, OSError) as exc:
            log.warning("archive pages in the process pool failed (%s): rendering them in this process", exc)
            self.stop()
        return made
