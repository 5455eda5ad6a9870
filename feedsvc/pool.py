"""The work a build hands to other processes: seed files → outcomes, archive pages → stored objects.

Both run in pool workers (or inline) and take only picklable arguments: paths, keys, Config,
FeedMeta. A worker reads the files and the cache itself and writes the pages' objects, so the
builder never ships a cold build's bytes or a long history's pages through a pipe, and stays
free to keep the cache.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from feedsvc.cache import CacheError, SqliteCache
from feedsvc.config import Config
from feedsvc.outcome import Job, Outcome, ProcessSeed, process_job
from feedsvc.publish import Document, Stored, compress, store
from feedsvc.render import FeedMeta
from feedsvc.render.archive import Page
from feedsvc.render.documents import render_archive_page
from feedsvc.seeds import SeedFile, read_seed

# Archive pages are many, large and rarely fetched: level 6 compresses them twice as fast as 9
# for about 1% more bytes (measured on the benchmark corpus).
ARCHIVE_GZIP_LEVEL = 6


@dataclass(frozen=True)
class Task:
    """One file for a worker, and the hash the builder saw ("" = not hashed yet: the worker's counts)."""

    seed: SeedFile
    sha: str = ""


def run_tasks(
    tasks: Sequence[Task], config: Config, limit: int, process: ProcessSeed | None = None
) -> list[tuple[str, Outcome | None]]:
    """Read and process files: (hash of the bytes read, Outcome).

    The Outcome is None when the file vanished, or changed since the builder hashed it (the next
    build sees the truth). A file that cannot be read gives sha "" and an Outcome saying why.
    """
    results: list[tuple[str, Outcome | None]] = []
    for task in tasks:
        seed = task.seed
        try:
            data = read_seed(seed, limit)
        except FileNotFoundError:
            results.append(("", None))
            continue
        except OSError as exc:
            results.append(("", Outcome(None, f"cannot read: {exc.strerror or exc}")))
            continue
        sha = hashlib.sha256(data).hexdigest()
        if task.sha and sha != task.sha:
            results.append((sha, None))
            continue
        job = Job(data, seed.rel, seed.mtime_ns, seed.size)
        results.append((sha, process_job(job, config, limit, process)))
    return results


@dataclass(frozen=True)
class PageTask:
    """One archive page to render: its number, its entries' cache keys (newest first), its composition key."""

    number: int
    keys: tuple[str, ...]
    source_key: str


def archive_document(meta: FeedMeta, page: Page, newest: int, source_key: str) -> Document:
    """One archive page, rendered and compressed: read from disk when served, not held in memory."""
    rendered = render_archive_page(meta, page, newest)
    return Document(
        rendered.name,
        rendered.body,
        rendered.content_type,
        rendered.last_modified,
        source_key,
        in_memory=False,
        gzip=compress(rendered.body, ARCHIVE_GZIP_LEVEL),
    )


_readers: dict[Path, SqliteCache] = {}


def render_pages(
    cache: Path, out_dir: Path, meta: FeedMeta, newest: int, pages: Sequence[PageTask]
) -> list[Stored | None]:
    """Archive pages from the entries in the cache file, their objects written to `out_dir`.

    None for a page whose entries are not all there (another process pruned them), which the
    builder then renders itself.
    """
    reader = _readers.get(cache)
    try:
        if reader is None:
            reader = _readers[cache] = SqliteCache(cache, readonly=True)
        documents: list[Stored | None] = []
        for task in pages:
            found = reader.entries(task.keys)
            if len(found) != len(task.keys):
                documents.append(None)
                continue
            page = Page(task.number, tuple(found[key] for key in task.keys))
            documents.append(store(out_dir, archive_document(meta, page, newest, task.source_key)))
        return documents
    except (CacheError, sqlite3.Error):
        return [None] * len(pages)


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
