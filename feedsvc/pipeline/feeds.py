"""The feeds of a build, and what choosing and rendering them needs beyond the pure rules
(`core/filters.py`, `core/transform.py`).

A seed is read, parsed and sanitized once, however many feeds take it: every feed is chosen from
the same Records, and rendered from the same cached entries.

- `feed_meta`, `configured_feeds`, `feeds_of`: the top-level feed (name "") and the declared
  ones, as data, each with its FeedMeta.
- `Matches`: whether each entry is in each filtering feed (its folder and its include/exclude),
  worked out once per entry version (outcome key) and feed (`filters_key`): for the entries made
  in a build as they come from the workers (`observe`), else from the cache's table of match
  results, else (new patterns, or a cache made before them) from the cached entries, in
  batches. Remembered as one small int per record (a bit per filtering feed) in memory, and per
  feed in the cache, so neither a rebuild nor a new process loads any content to choose.
- `Transformed`: entries as a converting or proxying feed publishes them, kept in an LRU keyed
  by (entry key, transform key), so an unchanged entry is not converted again on every build.
- `converter`: an OpenCC converter (it reads its dictionaries from files).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from feedsvc.config import Config
from feedsvc.core.articles import ARTICLES
from feedsvc.core.choose import split_archive
from feedsvc.core.filters import filters_key, in_folder, matches, searchable
from feedsvc.core.render.xsl import STYLESHEET_PATH
from feedsvc.core.transform import TRANSFORM_VERSION, Converter, transform_entry
from feedsvc.model import Entry, Feed, FeedMeta, FeedSpec, Page, Record

log = logging.getLogger("feedsvc.build")

EntriesOf = Callable[[Sequence[Record]], list[Entry]]
EntriesByKey = Callable[[Sequence[Record]], Mapping[str, Entry]]
_BATCH = 500  # entries loaded from the cache at a time to match


@functools.lru_cache(maxsize=16)
def converter(name: str) -> Converter:
    """The OpenCC converter of configuration `name` (t2s, s2t, …), made once per process."""
    import opencc

    return opencc.OpenCC(name).convert


def _opencc_version() -> str:
    import opencc

    return str(getattr(opencc, "__version__", "?"))


def transform_key(feed: Feed) -> str:
    """What a feed's transformed entries depend on besides the entry: "" when it transforms nothing."""
    if not any(feed.transform):
        return ""
    version = _opencc_version() if feed.convert else ""
    return hashlib.sha256(repr((TRANSFORM_VERSION, feed.transform, version)).encode()).hexdigest()[:16]


def transformer(feed: Feed) -> Callable[[Entry], Entry] | None:
    """The function a feed applies to each entry (None: it publishes them as they are)."""
    if not any(feed.transform):
        return None
    convert = converter(feed.convert) if feed.convert else None
    return lambda entry: transform_entry(entry, convert, feed.image_proxy)


def declared_meta(top: FeedMeta, spec: FeedSpec, base_url: str) -> FeedMeta:
    """A declared feed's metadata: its own URLs under /<name>/, its title, subtitle and language
    (converted when the feed converts), the rest the top-level feed's. Its entries' pages are its
    own (/<name>/articles/) when it converts or proxies them, else the top-level feed's."""
    convert = converter(spec.convert) if spec.convert else (lambda text: text)
    home = base_url.rstrip("/") + f"/{spec.name}/"
    own_pages = spec.convert or spec.image_proxy
    return FeedMeta(
        id=home + "feed.xml",
        title=convert(spec.title),
        self_url=home + "feed.xml",
        alternate_url=home,
        subtitle=convert(spec.subtitle),
        author=top.author,
        language=spec.language,
        hub=top.hub,
        stylesheet=top.stylesheet,
        pages_url=(home + ARTICLES if own_pages else top.pages_url) if top.pages_url else "",
        entry_link=spec.entry_link or top.entry_link,
    )


def feed_meta(config: Config) -> FeedMeta:
    """The top-level feed's metadata, from the configuration."""
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
        pages_url=config.base_url.rstrip("/") + "/" + ARTICLES if config.article_pages else "",
        entry_link=config.entry_link,
    )


def configured_feeds(config: Config) -> tuple[Feed, ...]:
    """The feeds the configuration declares: the top-level one first, then `[[feeds]]` in order."""
    return feeds_of(feed_meta(config), config.max_entries, config.feeds, config.base_url)


def feeds_of(top: FeedMeta, max_entries: int, specs: Sequence[FeedSpec], base_url: str) -> tuple[Feed, ...]:
    """The feeds one build publishes: the top-level feed first, then the declared ones in order."""
    declared = [
        Feed(
            spec.name,
            declared_meta(top, spec, base_url),
            spec.max_entries,
            spec.folder,
            spec.include,
            spec.exclude,
            spec.convert,
            spec.image_proxy,
        )
        for spec in specs
    ]
    return (Feed("", top, max_entries), *declared)


def folder_warnings(seeds_dir: Path, feeds: Iterable[Feed]) -> list[str]:
    """A declared feed whose folder is not there (yet): it has no entries until seeds arrive."""
    return [
        f"feed {feed.name}: folder {feed.folder} does not exist in the seeds folder (yet): no entries"
        for feed in feeds
        if feed.folder and not (seeds_dir / feed.folder).is_dir()
    ]


class Matches:
    """Include/exclude results of every entry for the feeds that filter (see the module docstring)."""

    def __init__(self, feeds: Sequence[Feed]) -> None:
        self.filtering = [feed for feed in feeds if any(feed.filters)]
        self.keys = [filters_key(feed.folder, *feed.filters) for feed in self.filtering]
        self._bit = {feed.name: 1 << i for i, feed in enumerate(self.filtering)}
        self.bits: dict[str, int] = {}  # outcome key → the feeds (bits) whose patterns it passes
        self._unsaved: dict[str, int] = {}
        self._read_cache = False

    def observe(self, record: Record, entry: Entry) -> None:
        """An entry made in this build: match it now, while it is in hand."""
        if self.filtering:
            self.bits[record.key] = self._unsaved[record.key] = self._match(record.rel, entry)

    def _match(self, rel: str, entry: Entry) -> int:
        """The bits of the feeds that take the entry: its folder's feeds whose patterns it passes
        (a file's path is part of its outcome key, so its folder is too)."""
        mine = [(i, feed) for i, feed in enumerate(self.filtering) if in_folder(rel, feed.folder)]
        if not mine:
            return 0
        text = searchable(entry.title, entry.content_html)
        return sum(1 << i for i, feed in mine if matches(text, *feed.filters))

    def complete(self, records: Iterable[Record], cache: Any, entries: EntriesByKey) -> None:
        """Match every entry of `records` not matched yet, and store what is new in the cache."""
        if not self.filtering:
            return
        live = [r for r in records if r.id is not None]
        todo = [r for r in live if r.key not in self.bits]
        if todo and not self._read_cache:
            self._read_cache = True
            self._from_cache({r.key for r in todo}, cache)
            todo = [r for r in todo if r.key not in self.bits]
        for start in range(0, len(todo), _BATCH):
            batch = todo[start : start + _BATCH]
            found = entries(batch)
            for record in batch:
                if (entry := found.get(record.key)) is not None:
                    self.bits[record.key] = self._unsaved[record.key] = self._match(record.rel, entry)
        if self._unsaved:
            for i, key in enumerate(self.keys):
                cache.save_matches(key, {k: bool(bits >> i & 1) for k, bits in self._unsaved.items()})
            self._unsaved = {}
        if len(self.bits) > 2 * len(live) + 1000:  # versions no file has any more
            self.bits = {r.key: self.bits[r.key] for r in live if r.key in self.bits}

    def _from_cache(self, wanted: set[str], cache: Any) -> None:
        """The results the cache holds for `wanted` (a new process), for the entries it holds for every feed."""
        hits: dict[str, int] = {}
        seen: dict[str, int] = {}
        for i, filters in enumerate(self.keys):
            for key, hit in cache.matches(filters):
                if key in wanted:
                    seen[key] = seen.get(key, 0) + 1
                    if hit:
                        hits[key] = hits.get(key, 0) | 1 << i
        for key, count in seen.items():
            if count == len(self.keys):
                self.bits[key] = hits.get(key, 0)

    def select(self, feed: Feed, chosen: Sequence[Record]) -> list[Record]:
        """The records of `chosen` in `feed` (by its folder and patterns), in their order; `chosen`
        may be only those of its top folder (`by_top_folder`)."""
        bit = self._bit.get(feed.name)
        if bit is not None:  # the bits say both: the folder is part of a filtering feed's match
            bits = self.bits
            return [r for r in chosen if bits.get(r.key, 0) & bit]
        if not feed.folder:
            return list(chosen)
        under = feed.folder + "/"
        return [r for r in chosen if r.rel.startswith(under)]


class Transformed:
    """Entries as converting or proxying feeds publish them: an LRU of (entry key, transform key)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lru: OrderedDict[tuple[str, str], Entry] = OrderedDict()

    def entries_of(self, feed: Feed, entries: EntriesByKey) -> EntriesOf:
        """The feed's entries of some records, in their order (those that exist)."""
        apply, tkey = transformer(feed), transform_key(feed)

        def of(records: Sequence[Record]) -> list[Entry]:
            if apply is None:
                found = entries(records)
                return [found[r.key] for r in records if r.key in found]
            todo = [r for r in records if (r.key, tkey) not in self._lru]
            for key, entry in (entries(todo) if todo else {}).items():
                self._lru[(key, tkey)] = apply(entry)
            out = []
            for record in records:
                if (transformed := self._lru.get((record.key, tkey))) is not None:
                    self._lru.move_to_end((record.key, tkey))
                    out.append(transformed)
            while len(self._lru) > self.size:
                self._lru.popitem(last=False)
            return out

        return of


@dataclass
class FeedMemory:
    """What a builder remembers of its feeds between builds."""

    feeds: tuple[Feed, ...]
    matches: Matches
    transformed: Transformed
    warned: set[str] = field(default_factory=set)
    # Each feed's last records and their split (newest, archive pages): unchanged, not split again.
    splits: dict[str, tuple[list[Record], tuple[list[Record], list[Page[Record]]]]] = field(default_factory=dict)

    @classmethod
    def of(cls, feeds: tuple[Feed, ...]) -> FeedMemory:
        size = 2 * sum(f.max_entries for f in feeds if any(f.transform)) + 64
        return cls(feeds, Matches(feeds), Transformed(size))

    def split(self, feed: Feed, records: list[Record], page_size: int) -> tuple[list[Record], list[Page[Record]]]:
        """`split_archive` of a feed's records, remembered while they are the same records."""
        last = self.splits.get(feed.name)
        same = last is not None and len(last[0]) == len(records)
        if last is not None and same and all(a is b for a, b in zip(last[0], records, strict=True)):
            return last[1]
        result = split_archive(records, feed.max_entries, page_size)
        self.splits[feed.name] = (records, result)
        return result

    def warn(self, warnings: Sequence[str]) -> None:
        """Log each warning when it first appears, not on every build."""
        for warning in warnings:
            if warning not in self.warned:
                log.warning("%s", warning)
        self.warned = set(warnings)
