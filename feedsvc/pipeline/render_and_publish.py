"""Rendering and publishing one build's documents, doing only the work that changed.

Every feed of the build (the top-level one, and each declared one: a `FeedPlan`) is rendered
from its chosen Records the same way, and all their documents are published together, as one
version (a declared feed's documents are named with its prefix, `world/feed.xml`).

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
- A declared feed's subscription documents are keyed the same way (`subscription_key`): a change
  renders the feeds whose entries it changes, and the top-level feed (rendered every build, as
  before), not every feed.
- If another writer's publish replaced or collected pages meant to be reused, `publish` raises
  Stale before writing anything, and every page is rendered here and published again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from feedsvc import __version__
from feedsvc.core.render import feed_updated
from feedsvc.core.render.archive import archive_name
from feedsvc.core.render.documents import render_documents
from feedsvc.core.render.html import PAGE_TEMPLATE_KEY, TEMPLATES_KEY
from feedsvc.core.routes import page_name, subscription_names
from feedsvc.model import Document, Feed, FeedMeta, Page, Record, Reuse
from feedsvc.pipeline.article_pages import Pool, feed_order, plan_articles, with_pages
from feedsvc.pipeline.context import BuildContext, Zipper
from feedsvc.pipeline.feeds import EntriesOf, transform_key
from feedsvc.pipeline.page_keys import Keyed, key_pages
from feedsvc.pipeline.workers import archive_document, page_with
from feedsvc.publish.layout import ArticleShard, Shard, Stored, compress, etag_for, load_manifest
from feedsvc.publish.writer import Stale, begin_storing, end_storing, publish_manifest

log = logging.getLogger("feedsvc.build")

Planned = Callable[[], Document | Reuse | Stored]


@dataclass
class LastPublish:
    """What this builder last published: the composition keys of the documents published by them
    (archive pages, a declared feed's subscription documents; None: not known yet, read from the
    manifest) and every body's SHA-256, by document name."""

    page_keys: dict[str, str] | None = None
    shas: dict[str, str] = field(default_factory=dict)
    # The entry pages' index as published (None: not known yet, read from the manifest).
    shards: dict[str, Shard] | None = None
    # Each feed's entry pages as the last build keyed them (only the pages that moved are keyed again).
    pages: dict[str, Keyed] = field(default_factory=dict)
    # Each feed's last archive pages and their keys: the same pages (a feed none of whose records
    # changed) are not keyed again.
    keyed: dict[str, tuple[Sequence[Page[Record]], list[str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class FeedPlan:
    """One feed's part of a build: its newest Records, its archive pages, and how to load its
    entries (as it publishes them: converted, proxied)."""

    feed: Feed
    current: Sequence[Record]
    pages: Sequence[Page[Record]]
    entries_of: EntriesOf
    articles: bool = True  # its entries' pages too (not in a cold start's first publish)


def render_and_publish(ctx: BuildContext, plans: Sequence[FeedPlan], last: LastPublish) -> tuple[bool, str]:
    """Publish the documents of every feed in `plans` (the top-level feed first) at the build's
    time (the feeds are never dated later). Returns (published, the top-level feed's ETag)."""
    listing = [plan.feed.meta for plan in plans] if len(plans) > 1 else []
    top = plans[0]
    newest = top.pages[-1].number if top.pages else None
    subscription = render_documents(top.feed.meta, top.entries_of(top.current), newest, ctx.at, "", listing)
    planned: list[Planned] = [_compressed(document, last, ctx.zipper) for document in subscription]
    copies = [plan.feed.prefix + "feed.xml" for plan in plans]
    # A build that died while storing pages left them unnamed: this publish sweeps them.
    storing = all(plan.articles for plan in plans)
    sweep = storing and begin_storing(ctx.out_dir)
    try:
        known = _by_composition(ctx, plans, last, pooled=True)
        articles = _articles(ctx, plans, last)
        manifest = publish_manifest(ctx.out_dir, [d() for d in planned + known], copies, articles, sweep)
    except Stale as exc:
        log.info("%s: rendering them again", exc)
        last.page_keys, last.shards = {}, None
        known = _by_composition(ctx, plans, last, pooled=False)
        articles = _articles(ctx, plans, last, pooled=False)
        manifest = publish_manifest(ctx.out_dir, [d() for d in planned + known], copies, articles, sweep)
    if storing:
        end_storing(ctx.out_dir)
    last.page_keys = {d.name: d.source_key for d in (p() for p in known)}
    if manifest is not None:
        last.shards = manifest.articles
    return manifest is not None, etag_for(subscription[0].body)


def _read_published(ctx: BuildContext, last: LastPublish) -> None:
    """What a new builder (or one another writer raced) knows of the published state: the
    manifest's composition keys and entry pages' index."""
    if last.page_keys is None or last.shards is None:
        manifest = load_manifest(ctx.out_dir)
        if last.page_keys is None:
            rows = manifest.documents if manifest is not None else {}
            last.page_keys = {name: row.source_key for name, row in rows.items()}
        if last.shards is None:
            last.shards = manifest.articles if manifest is not None else {}


def _by_composition(ctx: BuildContext, plans: Sequence[FeedPlan], last: LastPublish, pooled: bool) -> list[Planned]:
    """The documents known by their composition key: every feed's archive pages, and each declared
    feed's subscription documents (the top-level feed's are rendered every time, as before).
    `pooled`: the workers may render pages (from the cache file); else they are rendered here."""
    _read_published(ctx, last)
    keys = [_page_keys(plan, last) for plan in plans]
    todo = [_changed(plan, plan_keys, last) for plan, plan_keys in zip(plans, keys, strict=True)]
    made: dict[tuple[str, int], Sequence[Document | Stored]] = {}
    if pooled and ctx.cache_path is not None:
        jobs = [(plan.feed, [(_by_keys(page), key) for page, key in t]) for plan, t in zip(plans, todo, strict=True)]
        made.update(ctx.workers.render_pages(ctx.cache_path, ctx.out_dir, jobs))
    planned: list[Planned] = []
    for plan, plan_keys, plan_todo in zip(plans, keys, todo, strict=True):
        planned += _archive(plan, plan_keys, plan_todo, made)
    for plan in plans[1:]:
        planned += _subscription(plan, last, ctx.zipper, ctx.at)
    return planned


def _articles(
    ctx: BuildContext, plans: Sequence[FeedPlan], last: LastPublish, pooled: bool = True
) -> list[ArticleShard] | None:
    """The entry pages' index: the shards of every feed's pages that it publishes itself
    (`feedsvc.pipeline.article_pages`); None (the index stays as published) in a cold start's first
    publish, which has none yet. `pooled`: the workers may render them (from the cache file)."""
    if not all(plan.articles for plan in plans):
        return None
    _read_published(ctx, last)
    assert last.shards is not None
    pool = Pool(ctx.workers, ctx.cache_path) if pooled else None
    shards: list[ArticleShard] = []
    for plan in plans:
        feed = plan.feed
        if with_pages(feed.name, feed.meta, any(feed.transform)):
            order = feed_order(plan.current, plan.pages)
            keyed = last.pages[feed.name] = key_pages(feed, order, last.pages.get(feed.name))
            shards += plan_articles(ctx.out_dir, feed, order, plan.entries_of, last.shards, keyed, pool)
    return shards


def _subscription(plan: FeedPlan, last: LastPublish, zipper: Zipper, now: datetime) -> list[Planned]:
    """A declared feed's subscription documents: a Reuse when their composition is published (a
    change in one folder renders the feeds that hold it, not every feed), else rendered."""
    feed, newest = plan.feed, plan.pages[-1].number if plan.pages else None
    key = subscription_key(feed, plan.current, newest, now)
    names = subscription_names(feed.prefix)
    assert last.page_keys is not None
    if all(last.page_keys.get(name) == key for name in names):
        return [functools.partial(Reuse, name, key) for name in names]
    documents = render_documents(feed.meta, plan.entries_of(plan.current), newest, now, feed.prefix)
    # Read from their object files when a 200 needs the body, as archive pages are: web processes
    # hold the top-level feed's documents only, so their memory does not grow with the feeds.
    return [_compressed(dataclasses.replace(d, source_key=key, in_memory=False), last, zipper) for d in documents]


def subscription_key(feed: Feed, current: Sequence[Record], newest_page: int | None, now: datetime) -> str:
    """What a declared feed's subscription documents are made from: its metadata and name, its
    entries' cache keys, its newest archive page (the prev-archive link), its date (the newest
    entry's, never later than `now`), the templates, and what it does to its entries."""
    updated = feed_updated(current, now)
    parts: tuple[object, ...] = (feed.meta, feed.prefix, newest_page, [r.key for r in current], updated)
    parts += (TEMPLATES_KEY, __version__, transform_key(feed))
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _compressed(document: Document, last: LastPublish, zipper: Zipper) -> Callable[[], Document]:
    sha = hashlib.sha256(document.body).hexdigest()
    unchanged = last.shas.get(document.name) == sha
    last.shas[document.name] = sha
    gz = None if unchanged else zipper.submit(compress, document.body)

    def done() -> Document:
        return document if gz is None else dataclasses.replace(document, gzip=gz.result())

    return functools.cache(done)


def _page_keys(plan: FeedPlan, last: LastPublish) -> list[str]:
    keyed = last.keyed.get(plan.feed.name)
    if keyed is None or keyed[0] is not plan.pages:
        keyed = last.keyed[plan.feed.name] = (plan.pages, [page_key(plan.feed, page) for page in plan.pages])
    return keyed[1]


def _changed(plan: FeedPlan, keys: Sequence[str], last: LastPublish) -> list[tuple[Page[Record], str]]:
    """A feed's archive pages whose composition is not the one published, with their keys."""
    assert last.page_keys is not None
    published = last.page_keys
    return [
        (page, key)
        for page, key in zip(plan.pages, keys, strict=True)
        if any(published.get(name) != key for name in _names(plan.feed, page))
    ]


def _archive(
    plan: FeedPlan,
    keys: Sequence[str],
    todo: Sequence[tuple[Page[Record], str]],
    made: dict[tuple[str, int], Sequence[Document | Stored]],
) -> list[Planned]:
    """Every archive page of a feed: a Reuse where its composition is already published, else
    rendered (by the workers, `made`, or here)."""
    feed = plan.feed
    for page, key in todo:
        if (feed.name, page.number) not in made:
            full = page_with(page, tuple(plan.entries_of(page.entries)))
            made[(feed.name, page.number)] = archive_document(feed, full, key)
    planned: list[Planned] = []
    for page, key in zip(plan.pages, keys, strict=True):
        if (feed.name, page.number) in made:
            planned += [_given(document) for document in made[(feed.name, page.number)]]
        else:
            planned += [functools.partial(Reuse, name, key) for name in _names(feed, page)]
    return planned


def _by_keys(page: Page[Record]) -> Page[str]:
    """A page as a worker gets it: its entries named by their cache keys."""
    return page_with(page, tuple(r.key for r in page.entries))


def _names(feed: Feed, page: Page[Record]) -> tuple[str, str]:
    """The documents of an archive page: its Atom document and its browser page."""
    name = feed.prefix + archive_name(page.number)
    return name, page_name(name)


def page_key(feed: Feed, page: Page[Record]) -> str:
    """What an archive page's bytes are made from, and nothing else: the feed's metadata, its
    number, its neighbours' numbers (its prev-archive and next-archive links), its entries'
    cache keys, the browser page's template, and what the feed does to its entries (if anything)."""
    common = _meta_key(feed.meta, PAGE_TEMPLATE_KEY)
    parts: tuple = (common, page.number, page.older, page.newer, [r.key for r in page.entries])
    if any(feed.transform):
        parts += (transform_key(feed),)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def _meta_key(meta: FeedMeta, template_key: str) -> str:
    """The part of every page key that is the same for all of a feed's pages (its metadata, the
    browser page's template), written out once per feed, not once per page and build."""
    return repr((meta, template_key))


def _given(document: Document | Stored) -> Planned:
    return lambda: document
