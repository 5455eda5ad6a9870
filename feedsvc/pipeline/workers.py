"""The build's helper processes: seed files → outcomes, archive pages → stored objects.

`Workers` is one build's share of the helper processes (pipeline/helpers.py): every file is
processed in one of them, within its time budget (`max_seed_seconds`), never in the builder's
process, which could not be stopped mid-file. A build with few files uses one helper, kept
alive between builds; a build with enough files to pay for starting more uses one per core,
and them for its archive pages too. The tasks take only picklable arguments (SeedFile, bytes,
settings, paths, Feed): a helper reads the files and the cache itself and writes the pages'
objects, so a cold build's bytes and a long history's pages never go through a pipe.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from feedsvc.core.outcome import process_file
from feedsvc.core.render.documents import render_archive_page
from feedsvc.model import Document, EntrySettings, Feed, Outcome, Page, SeedFile
from feedsvc.pipeline.cache import CacheError, SqliteCache
from feedsvc.pipeline.feeds import transformer
from feedsvc.pipeline.helpers import BEGIN, END, Crew, Overrun, Task
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

# A file to process: the bytes the builder already read, or None for the worker to read them.
Item = tuple[SeedFile, bytes | None]
# What became of it: the hash of the bytes processed ("" = unreadable) and the Outcome (None = vanished).
Result = tuple[str, Outcome | None]
# An archive page to render: the page with its entries' cache keys (newest first), its composition key.
PageTask = tuple[Page[str], str]


def process_files(items: Sequence[Item], settings: EntrySettings, limit: int, now: datetime) -> list[Result]:
    """Read (where not read yet), hash and process files at the build's time `now`, in this
    process (no time budget: what a helper runs). A file that cannot be read gives sha "" and an
    Outcome saying why; one that vanished, (sha "", None)."""
    return [value for kind, value in file_task(items, settings, limit, now) if kind == END]


def file_task(
    items: Sequence[Item], settings: EntrySettings, limit: int, now: datetime
) -> Iterator[tuple[str, Any]]:
    """A helper's task: for each file, (BEGIN, the hash of its bytes) once read, then (END, Result)."""
    for seed, data in items:
        if data is None:
            try:
                data = read_seed(seed, limit)
            except FileNotFoundError:
                yield END, ("", None)
                continue
            except OSError as exc:
                yield END, ("", Outcome(None, f"cannot read: {exc.strerror or exc}"))
                continue
            except Exception as exc:  # its name, its stat: this file's problem, not the helper's end
                yield END, ("", Outcome(None, f"cannot read: {type(exc).__name__}: {exc}"))
                continue
        sha = hashlib.sha256(data).hexdigest()
        yield BEGIN, sha
        try:
            outcome = process_file(data, seed, settings, limit, now)
        except Exception as exc:  # one file's problem (its name, its stat), never the build's
            outcome = Outcome(None, f"internal error: {type(exc).__name__}: {exc}")
        yield END, (sha, outcome)


def overrun_result(overrun: Overrun, budget: float) -> Result:
    """What a file past its budget (or whose process died twice) became: skipped, with the reason.
    Keyed by its bytes (the hash its helper began with) it is cached as other outcomes are, and
    retried only when they change; not yet read, it is unreadable this time (retried next build)."""
    if overrun.reason == "timeout":
        reason = f"took longer than max_seed_seconds={budget:g} s"
    else:
        reason = "its processing crashed (twice)"
    if overrun.began is None:
        return "", Outcome(None, f"cannot read: {reason}")
    return overrun.began, Outcome(None, reason)


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


def page_task(pages: Sequence[PageTask], cache: Path, out_dir: Path, feed: Feed) -> Iterator[tuple[str, Any]]:
    """A helper's task: (END, the page's stored documents, or None) for each page."""
    for page in pages:
        yield END, render_pages(cache, out_dir, feed, [page])[0]


def pool_context() -> multiprocessing.context.BaseContext:
    """`fork` from a single-threaded process (`feedsvc build`): workers start at once, imports done.

    The service builds in threaded processes (gunicorn, APScheduler), where forking can copy a
    lock held by another thread: there, `spawn` (workers import afresh, ~0.5 s, paid once per
    cold build).
    """
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Workers:
    """The helper processes of one build (see pipeline/helpers.py): one for a few files, as many
    as there are cores for many. Every file is processed in one, within `max_seed_seconds`."""

    def __init__(self, settings: EntrySettings, limit: int, now: datetime, count: int = 0) -> None:
        """`now`: the build's time, which the files are processed at."""
        self.settings = settings
        self.limit = limit
        self.now = now
        self.count = count or default_workers()
        self._crew = Crew(1, pool_context)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether several helpers share the build (a pool)."""
        return self._crew.size > 1

    def start_for(self, files: int) -> None:
        """Use several helpers when `files` are enough to pay for starting them."""
        workers = min(self.count, max(1, files // CHUNK))
        table = POOL_MIN_FILES if pool_context().get_start_method() == "fork" else SPAWN_MIN_FILES
        if workers >= 2 and files >= table.get(self.settings.sanitizer, 2000):
            self._crew.size = max(self._crew.size, workers)

    def stop(self) -> None:
        self._crew.close()

    def process(self, items: Sequence[Item]) -> Iterator[tuple[Sequence[Item], list[Result]]]:
        """(chunk, its results), in order. A bounded window of chunks is in flight, so the helpers
        stay busy and memory stays flat. A file past its budget is skipped, saying so."""
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        args = (self.settings, self.limit, self.now)
        budget = self.settings.max_seed_seconds
        tasks = [(file_task, chunk, args) for chunk in chunks]
        for index, results in self._crew.run(tasks, budget, window=8 * self._crew.size):
            yield chunks[index], [
                overrun_result(r, budget) if isinstance(r, Overrun) else cast(Result, r) for r in results
            ]

    def run_tasks(self, tasks: Sequence[Task]) -> list[list[Any]] | None:
        """Each task's results from the helpers, with no budget (an item whose helper died twice is
        an `Overrun`), or None when the build has no pool: the caller then does the work itself."""
        if not self.running:
            return None
        results: list[list[Any]] = [[] for _ in tasks]
        for index, done in self._crew.run(tasks, None):
            results[index] = done
        return results

    def render_pages(
        self, cache: Path, out_dir: Path, jobs: Sequence[tuple[Feed, Sequence[PageTask]]]
    ) -> dict[tuple[str, int], tuple[Stored, ...]]:
        """(feed name, page number) → its documents, stored, for the pages the helpers rendered
        (none unless the build had several, or for few pages). Every feed's pages are in flight together."""
        made: dict[tuple[str, int], tuple[Stored, ...]] = {}
        if not self.running or sum(len(tasks) for _, tasks in jobs) < POOL_MIN_PAGES:
            return made
        batches = [
            (feed, tasks[i : i + PAGES_PER_TASK]) for feed, tasks in jobs for i in range(0, len(tasks), PAGES_PER_TASK)
        ]
        work = [(page_task, batch, (cache, out_dir, feed)) for feed, batch in batches]
        for index, documents in self._crew.run(work, None):
            feed, batch = batches[index]
            for (page, _), document in zip(batch, documents, strict=True):
                if document is not None and not isinstance(document, Overrun):
                    made[(feed.name, page.number)] = document
        return made
