"""Rendering and publishing one build's documents, doing only the work that changed.

- The subscription documents are rendered every build that changed anything; a body equal to
  the one published is not compressed again, a new one is gzipped in another thread while the
  next renders (zlib lets go of the GIL).
- An archive page is planned from light Records. Its composition key (what its bytes are made
  of: the feed's metadata, its entries' cache keys, its number and its neighbours' numbers, which
  its links name) decides: a page already published with the same key
  (the manifest keeps each page's key, so this holds for a new process too) is a `Reuse`, whose
  bytes are neither read, nor held, nor hashed; a new one is rendered, by the workers when many
  changed (they read the entries from the cache file and write the objects), else here. A page
  is two documents, its Atom document and its browser page (`page_name`), published with the
  same key and reused or rendered together.
- If another writer's publish replaced or collected pages meant to be reused, `publish` raises
  Stale before writing anything, and every page is rendered here and published again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from feedsvc.build.workers import Workers, archive_document, default_workers
from feedsvc.core.render.archive import archive_name
from feedsvc.core.render.documents import page_name, render_documents
from feedsvc.core.render.html import PAGE_TEMPLATE_KEY
from feedsvc.model import Document, Entry, FeedMeta, Page, Record, Reuse, Stored
from feedsvc.publish.layout import compress, etag_for, read_manifest
from feedsvc.publish.writer import Stale, publish

log = logging.getLogger("feedsvc.build")

Planned = Callable[[], Document | Reuse | Stored]
EntriesOf = Callable[[Sequence[Record]], list[Entry]]


@dataclass
class Published:
    """What this builder last published: the archive pages' composition keys (None: not known
    yet, read from the manifest) and every body's SHA-256, by document name."""

    page_keys: dict[str, str] | None = None
    shas: dict[str, str] = field(default_factory=dict)


def render_and_publish(
    out_dir: Path,
    meta: FeedMeta,
    current: Sequence[Entry],
    pages: Sequence[Page[Record]],
    entries_of: EntriesOf,
    memory: Published,
    workers: Workers,
    cache_path: Path | None,
    zipper: ThreadPoolExecutor,
    now: datetime,
) -> tuple[bool, str]:
    """Publish the documents of `current` and `pages` at the build's time `now` (the feeds are
    never dated later). Returns (published, the feed's ETag)."""
    newest = pages[-1].number if pages else None
    subscription = render_documents(meta, current, newest, now)
    planned = [_compressed(document, memory, zipper) for document in subscription]
    archive = _archive(out_dir, meta, pages, entries_of, memory, workers, cache_path)
    try:
        published = publish(out_dir, [d() for d in planned + archive])
    except Stale as exc:
        log.info("%s: rendering them again", exc)
        memory.page_keys = {}
        archive = _archive(out_dir, meta, pages, entries_of, memory, None, None)
        published = publish(out_dir, [d() for d in planned + archive])
    memory.page_keys = {d.name: d.source_key for d in (p() for p in archive)}
    return published, etag_for(subscription[0].body)


def _compressed(document: Document, memory: Published, zipper: ThreadPoolExecutor) -> Callable[[], Document]:
    sha = hashlib.sha256(document.body).hexdigest()
    unchanged = memory.shas.get(document.name) == sha
    memory.shas[document.name] = sha
    gz = None if unchanged else zipper.submit(compress, document.body)

    def done() -> Document:
        return document if gz is None else dataclasses.replace(document, gzip=gz.result())

    return functools.cache(done)


def _archive(
    out_dir: Path,
    meta: FeedMeta,
    pages: Sequence[Page[Record]],
    entries_of: EntriesOf,
    memory: Published,
    workers: Workers | None,
    cache_path: Path | None,
) -> list[Planned]:
    """Every archive page: a Reuse where its composition is already published, else rendered."""
    if memory.page_keys is None:
        published = (read_manifest(out_dir) or {}).get("documents", {})
        memory.page_keys = {name: doc.get("source_key", "") for name, doc in published.items()}
    keys = [page_key(meta, page) for page in pages]
    todo = [(p, k) for p, k in zip(pages, keys, strict=True) if any(memory.page_keys.get(n) != k for n in _names(p))]
    made: dict[int, Sequence[Document | Stored]] = {}
    if workers is not None and cache_path is not None:
        tasks = [(dataclasses.replace(page, entries=tuple(r.key for r in page.entries)), key) for page, key in todo]
        made.update(workers.render_pages(cache_path, out_dir, meta, tasks))
    for page, key in todo:
        if page.number not in made:
            full = dataclasses.replace(page, entries=tuple(entries_of(page.entries)))
            made[page.number] = archive_document(meta, full, key)
    planned: list[Planned] = []
    for page, key in zip(pages, keys, strict=True):
        if page.number in made:
            planned += [_given(document) for document in made[page.number]]
        else:
            planned += [functools.partial(Reuse, name, key) for name in _names(page)]
    return planned


def _names(page: Page[Record]) -> tuple[str, str]:
    """The documents of an archive page: its Atom document and its browser page."""
    name = archive_name(page.number)
    return name, page_name(name)


def page_key(meta: FeedMeta, page: Page[Record]) -> str:
    """What an archive page's bytes are made from, and nothing else: the feed's metadata, its
    number, its neighbours' numbers (its prev-archive and next-archive links), its entries'
    cache keys, and the browser page's template."""
    return hashlib.sha256(
        repr((meta, page.number, page.older, page.newer, [r.key for r in page.entries], PAGE_TEMPLATE_KEY)).encode()
    ).hexdigest()


def _given(document: Document | Stored) -> Planned:
    return lambda: document


def zipper() -> ThreadPoolExecutor:
    """The threads that compress new bodies while the next one renders."""
    return ThreadPoolExecutor(max_workers=default_workers(), thread_name_prefix="feedsvc-gzip")
