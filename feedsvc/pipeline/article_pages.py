"""Every entry's page (`/articles/<key>.html`), rendered only where its composition changed.

A feed's pages follow its order: its newest Records, then its archive pages' (newest first). A
page's bytes are made of its entry, the feed's metadata, and its neighbours' keys and titles (its
newer and older links), so its composition key is the hash of exactly those: the template's key,
the feed's metadata and transform, its entry's id and cache key, and each neighbour's id and
cache key (which decide the neighbour's URL and title). A new article changes its own page's key
and its neighbours', and no other: publishing it into 100k entries renders three pages, rewrites
the index shards they are in (`feedsvc.publish.article_index`) and reuses every other shard
whole, unread.

Pages are planned from light Records; the changed ones are loaded from the cache in batches,
rendered, compressed and written as objects at once (`store_many`), so only their rows stay
in memory. They are served from disk, as archive pages are.

The top-level feed has pages; a declared feed that converts or proxies its entries has its own
(under its prefix); any other declared feed links to the top-level feed's pages. A cold start's
first publish renders none: it keeps those published (the index as it is), and new ones come
with the full build that follows (`FeedPlan.articles`).
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from feedsvc.core.articles import page_url
from feedsvc.core.render.html import Near, render_article_page
from feedsvc.core.routes import HTML_TYPE
from feedsvc.model import Document, Entry, Feed, FeedMeta, Page, Record
from feedsvc.pipeline.cache import CacheError, SqliteCache
from feedsvc.pipeline.feeds import EntriesOf, transformer
from feedsvc.pipeline.helpers import END, Overrun
from feedsvc.pipeline.page_keys import Keyed
from feedsvc.pipeline.workers import ARCHIVE_GZIP_LEVEL, Workers
from feedsvc.publish.article_index import write_shards
from feedsvc.publish.layout import ArticleShard, ManifestRow, Shard, Stored, compress, shard_of, shard_rows
from feedsvc.publish.writer import store_many

log = logging.getLogger("feedsvc.build")

# Pages go to the worker processes when at least this many changed, this many per task.
POOL_MIN_PAGES = 64
POOL_BATCH = 128
# Pages rendered per batch: their entries and neighbours are loaded together, then dropped.
BATCH = 256
# Shards rewritten at a time (of 256 a feed): their pages are rendered and their objects written,
# then only their names are kept, so a cold build's memory does not grow with the number of pages.
GROUP = 32


def with_pages(feed_name: str, meta: FeedMeta, transforms: bool) -> bool:
    """Whether a feed publishes its entries' pages: the top-level feed, and a declared feed that
    transforms its entries (the others link to the top-level feed's)."""
    return bool(meta.pages_url) and (not feed_name or transforms)


def feed_order(current: Sequence[Record], pages: Sequence[Page[Record]]) -> list[Record]:
    """A feed's Records in its order, newest first, one per id."""
    seen: set[str] = set()
    order: list[Record] = []
    for record in itertools.chain(current, (r for page in reversed(pages) for r in page.entries)):
        if record.id is not None and record.id not in seen:
            seen.add(record.id)
            order.append(record)
    return order


@dataclass(frozen=True)
class Pool:
    """Where the changed pages may be rendered besides this process: the build's worker
    processes, which read the entries from the cache file (None: the cache is in memory)."""

    workers: Workers
    cache: Path | None


def plan_articles(
    out_dir: Path,
    feed: Feed,
    order: Sequence[Record],
    entries_of: EntriesOf,
    published: Mapping[str, Shard],
    keyed: Keyed,
    pool: Pool | None = None,
) -> list[ArticleShard]:
    """A feed's entries' pages (`order`: `feed_order`, keyed by `key_pages`), as shards of the
    pages' index (`feedsvc.publish.article_index`; `published`: the current index). A shard whose
    pages have the composition keys published is reused whole, unread; in any other, a page whose
    row has its key is carried over, and the rest are rendered and stored now: by the worker
    processes when many changed (`pool`), else (or what they could not) here."""
    keys, names = keyed.keys, keyed.names
    shards: list[ArticleShard] = []
    todo: list[tuple[str, list[int]]] = []
    for shard, indices in keyed.groups.items():
        key = keyed.shard_keys[shard]
        current = published.get(shard)
        if current is not None and current.key == key:
            shards.append(ArticleShard(shard, key, base=current.object))
        else:
            todo.append((shard, indices))
    for start in range(0, len(todo), GROUP):
        group = todo[start : start + GROUP]
        shards += _rewrite(out_dir, feed, order, entries_of, published, group, keys, names, pool)
    return shards


def _rewrite(
    out_dir: Path,
    feed: Feed,
    order: Sequence[Record],
    entries_of: EntriesOf,
    published: Mapping[str, Shard],
    group: Sequence[tuple[str, list[int]]],
    keys: Sequence[str],
    names: Sequence[str],
    pool: Pool | None,
) -> list[ArticleShard]:
    """A group of shards whose pages changed: a page whose published row has its key is carried
    over, the others are rendered and stored; then the shards' objects are written, and only
    their names are kept (a shard that has no page left is left out of the index)."""
    carried: dict[str, dict[str, ManifestRow]] = {}
    changed: list[int] = []
    for shard, indices in group:
        rows = shard_rows(out_dir, published.get(shard))
        kept = carried[shard] = {names[i]: rows[names[i]] for i in indices if _same(rows.get(names[i]), keys[i])}
        changed += [i for i in indices if names[i] not in kept]
    for stored in _rendered(out_dir, feed, order, entries_of, changed, keys, names, pool):
        carried[shard_of(stored.name)][stored.name] = stored.row
    written = write_shards(out_dir, carried)
    return [
        ArticleShard(shard, written=written[shard], base=current.object if (current := published.get(shard)) else None)
        for shard in carried
        if shard in written
    ]


def _same(row: ManifestRow | None, key: str) -> bool:
    return row is not None and row.source_key == key


def _rendered(
    out_dir: Path,
    feed: Feed,
    order: Sequence[Record],
    entries_of: EntriesOf,
    changed: list[int],
    keys: Sequence[str],
    names: Sequence[str],
    pool: Pool | None,
) -> Iterator[Stored]:
    """The changed pages, rendered and stored (an entry gone from the cache: no page)."""
    if pool is not None and pool.cache is not None and len(changed) >= POOL_MIN_PAGES:
        done, changed = _pooled(pool.workers, pool.cache, out_dir, feed, order, changed, keys, names)
        yield from done
    for batch in _render(feed.meta, order, changed, keys, names, entries_of):
        yield from store_many(out_dir, batch)


class Job(NamedTuple):
    """One page for a worker: its name and key, its entry's cache key, its neighbours' (id, cache
    key), its date."""

    name: str
    source_key: str
    entry: str
    newer: tuple[str, str] | None
    older: tuple[str, str] | None
    updated: datetime


def _pooled(
    workers: Workers,
    cache: Path,
    out_dir: Path,
    feed: Feed,
    order: Sequence[Record],
    changed: Sequence[int],
    keys: Sequence[str],
    names: Sequence[str],
) -> tuple[list[Stored], list[int]]:
    """The changed pages the workers rendered and stored, and those left for this process."""
    near = [(r.id or "", r.key) for r in order]
    jobs = [
        Job(names[i], keys[i], order[i].key, near[i - 1] if i else None, near[i + 1] if i + 1 < len(order) else None,
            _updated(order, i))
        for i in changed
    ]
    batches = [(changed[s : s + POOL_BATCH], jobs[s : s + POOL_BATCH]) for s in range(0, len(jobs), POOL_BATCH)]
    ran = workers.run_tasks([(article_task, [batch], (cache, out_dir, feed)) for _, batch in batches])
    done: list[Stored] = []
    left: list[int] = []
    for index, (indices, _) in enumerate(batches):
        result = ran[index][0] if ran is not None else None
        results: list[Stored | None] = [None] * len(indices)  # no pool, or its helper died twice
        if result is not None and not isinstance(result, Overrun):
            results = result
        done += [stored for stored in results if stored is not None]
        left += [i for i, stored in zip(indices, results, strict=True) if stored is None]
    return done, left


_readers: dict[Path, SqliteCache] = {}


def article_task(batches: Sequence[Sequence[Job]], cache: Path, out_dir: Path, feed: Feed) -> Iterator[tuple[str, Any]]:
    """A helper's task: (END, the batch's stored pages, None for each left to the builder) for each batch."""
    for jobs in batches:
        yield END, render_articles(cache, out_dir, feed, jobs)


def render_articles(cache: Path, out_dir: Path, feed: Feed, jobs: Sequence[Job]) -> list[Stored | None]:
    """In a worker: pages from the entries in the cache file (transformed as the feed does), their
    objects written to `out_dir`. None for a page whose entry is not there (the builder renders it)."""
    try:
        reader = _readers.get(cache) or _readers.setdefault(cache, SqliteCache(cache, readonly=True))
        wanted = {job.entry for job in jobs}
        found = reader.entries(sorted(wanted))
        # Neighbours are linked by title only: their content is neither loaded nor transformed.
        found.update(reader.headlines(sorted({n[1] for job in jobs for n in (job.newer, job.older) if n} - wanted)))
    except (CacheError, sqlite3.Error):
        return [None] * len(jobs)
    apply = transformer(feed)
    made: dict[str, Entry] = {}

    def entry_of(key: str) -> Entry | None:
        if key not in made and key in found:
            made[key] = found[key] if apply is None else apply(found[key])
        return made.get(key)

    def near(given: tuple[str, str] | None) -> Near | None:
        entry = entry_of(given[1]) if given else None
        return Near(page_url(feed.meta, entry.id) or "", entry.title) if entry else None

    documents: dict[str, Document] = {}
    for job in jobs:
        entry = entry_of(job.entry)
        if entry is not None:
            body = render_article_page(feed.meta, entry, near(job.newer), near(job.older))
            gz = compress(body, ARCHIVE_GZIP_LEVEL)
            page = Document(job.name, body, HTML_TYPE, job.updated, job.source_key, in_memory=False, gzip=gz)
            documents[job.name] = page
    stored = {s.name: s for s in store_many(out_dir, list(documents.values()))}
    return [stored.get(job.name) for job in jobs]


def _render(
    meta: FeedMeta,
    order: Sequence[Record],
    changed: Sequence[int],
    keys: Sequence[str],
    names: Sequence[str],
    entries_of: EntriesOf,
) -> Iterator[list[Document]]:
    """The changed pages' documents, a batch at a time (an entry gone from the cache: no page)."""
    for start in range(0, len(changed), BATCH):
        batch = changed[start : start + BATCH]
        needed = sorted({j for i in batch for j in (i - 1, i, i + 1) if 0 <= j < len(order)})
        loaded = {e.id: e for e in entries_of([order[j] for j in needed])}
        documents = []
        for i in batch:
            entry = loaded.get(order[i].id or "")
            if entry is not None:
                newer = _near(meta, loaded, order, i - 1)
                older = _near(meta, loaded, order, i + 1)
                documents.append(article_document(meta, entry, newer, older, names[i], keys[i], order, i))
        yield documents


def _near(meta: FeedMeta, loaded: dict[str, Entry], order: Sequence[Record], j: int) -> Near | None:
    if not 0 <= j < len(order) or (entry := loaded.get(order[j].id or "")) is None:
        return None
    return Near(page_url(meta, entry.id) or "", entry.title)


def article_document(
    meta: FeedMeta,
    entry: Entry,
    newer: Near | None,
    older: Near | None,
    name: str,
    key: str,
    order: Sequence[Record],
    i: int,
) -> Document:
    """An entry's page, compressed, dated by the newest of its entry and its neighbours (its bytes
    change with them)."""
    body = render_article_page(meta, entry, newer, older)
    gz = compress(body, ARCHIVE_GZIP_LEVEL)
    return Document(name, body, HTML_TYPE, max(entry.updated, _updated(order, i)), key, in_memory=False, gzip=gz)


def _updated(order: Sequence[Record], i: int) -> datetime:
    """A page's date: the newest of its entry's and its neighbours' (its bytes change with them)."""
    return max(r.updated for r in order[max(i - 1, 0) : i + 2] if r.updated is not None)
