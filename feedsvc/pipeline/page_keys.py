"""Each entry page's composition key, name and shard, and each shard's key, remembered between
builds so that a file event hashes only the pages that moved.

A page's composition key (`feedsvc.pipeline.article_pages`) is the hash of what every page of its
feed shares (its metadata and transform, the template, the version: hashed once and copied), then
of its newer neighbour, itself and its older neighbour, each written as `<length of id>:<id><cache
key>` (cache keys have one length), so that no two compositions write the same bytes.

A file event adds, edits or removes a few entries. Every other page has the same entry and the
same neighbours as in the last build: it keeps its key, name and shard, unhashed, and a shard none
of whose pages moved keeps its key. `Keyed` is what one build computed, and what the next one
starts from (`key_pages(..., last)`); without it, or when what every page shares changed,
everything is computed afresh.
"""

from __future__ import annotations

import functools
import hashlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from feedsvc import __version__
from feedsvc.core.articles import article_name
from feedsvc.core.render.html import ARTICLE_TEMPLATE_KEY
from feedsvc.model import Feed, Record
from feedsvc.pipeline.feeds import transform_key
from feedsvc.publish.layout import shard_key, shard_of

Near = tuple[str, str]  # an entry in a feed's order: (its id, its cache key)


@dataclass(frozen=True)
class Keyed:
    """A feed's pages as one build keyed them, by position in the feed's order; `moved`: the
    shards whose pages moved since the `Keyed` it started from (None: it started from none)."""

    common: str
    order: list[Near]
    keys: list[str]
    names: list[str]
    shards: list[str]
    moved: frozenset[str] | None
    shard_keys: dict[str, str]

    @functools.cached_property
    def groups(self) -> dict[str, list[int]]:
        """Each shard's positions; a name taken by a newer entry (two ids whose keys collide,
        `feedsvc.core.articles`) is the newer one's page."""
        by_shard: dict[str, list[int]] = {}
        duplicates = len(set(self.names)) != len(self.names)
        taken: set[str] = set()
        for i, shard in enumerate(self.shards):
            if duplicates:
                if self.names[i] in taken:
                    continue
                taken.add(self.names[i])
            by_shard.setdefault(shard, []).append(i)
        return by_shard


def key_pages(feed: Feed, order: Sequence[Record], last: Keyed | None) -> Keyed:
    """Key a feed's pages (`order`: newest first, one per id), from `last` where nothing moved."""
    shared = (feed.meta, feed.prefix, transform_key(feed), ARTICLE_TEMPLATE_KEY, __version__)
    common = hashlib.sha256(repr(shared).encode())
    stamp = common.hexdigest()
    memo = last if last is not None and last.common == stamp else None
    near: list[Near] = [(r.id or "", r.key) for r in order]
    keys: list[str] = []
    names: list[str] = []
    shards: list[str] = []
    moved: set[str] = set()
    start, end, lo, hi = _middle(near, memo.order if memo is not None else None)
    if memo is not None:  # the unmoved head: the same positions as before
        keys += memo.keys[:start]
        names += memo.names[:start]
        shards += memo.shards[:start]
    where = {memo.order[j][0]: j for j in range(lo, hi)} if memo is not None else {}
    for i in range(start, end):
        j = where.get(near[i][0])
        if memo is not None and j is not None and _unmoved(near, i, memo.order, j):
            keys.append(memo.keys[j])
            names.append(memo.names[j])
            shards.append(memo.shards[j])
            continue
        page = common.copy()
        page.update(f"{_part(near, i - 1)}\x01{_part(near, i)}\x01{_part(near, i + 1)}".encode())
        keys.append(page.hexdigest())
        names.append(article_name(near[i][0], feed.prefix))
        shards.append(sys.intern(shard_of(names[-1])))  # one string per shard (256), not per page
        moved.add(shards[-1])
    if memo is not None:  # the unmoved tail, and what left the middle
        keys += memo.keys[hi:]
        names += memo.names[hi:]
        shards += memo.shards[hi:]
        gone = where.keys() - {near[i][0] for i in range(start, end)}
        moved.update(memo.shards[where[entry]] for entry in gone)
    keyed = Keyed(stamp, near, keys, names, shards, frozenset(moved) if memo is not None else None, {})
    _key_shards(keyed, memo.shard_keys if memo is not None else {})
    return keyed


def _middle(near: list[Near], before: list[Near] | None) -> tuple[int, int, int, int]:
    """Where two orders differ: (start, end) in `near`, (lo, hi) in `before`. Outside it they are
    the same entries between the same neighbours: the common head but its last entry (whose older
    neighbour may be new), the common tail but its first. A few comparisons in C a position."""
    if before is None:
        return 0, len(near), 0, 0
    n, m = len(near), len(before)
    head = _common(zip(near, before, strict=False), min(n, m))
    tail = _common(zip(reversed(near[head:]), reversed(before[head:]), strict=False), min(n, m) - head)
    start = max(head - 1, 0)
    return start, n - max(tail - 1, 0), start, m - max(tail - 1, 0)


def _common(pairs: Iterable[tuple[Near, Near]], most: int) -> int:
    """How many pairs, from the first, are equal."""
    return next((i for i, (a, b) in enumerate(pairs) if a != b), most)


def _unmoved(near: Sequence[Near], i: int, before: Sequence[Near], j: int) -> bool:
    """The same entry between the same neighbours."""
    return (
        before[j] == near[i]
        and (before[j - 1] if j else None) == (near[i - 1] if i else None)
        and (before[j + 1] if j + 1 < len(before) else None) == (near[i + 1] if i + 1 < len(near) else None)
    )


def _key_shards(keyed: Keyed, before: Mapping[str, str]) -> None:
    """Each shard's key: the one before for a shard none of whose pages moved, else hashed."""
    for shard, indices in keyed.groups.items():
        known = before.get(shard) if keyed.moved is not None and shard not in keyed.moved else None
        keyed.shard_keys[shard] = known or shard_key((keyed.names[i], keyed.keys[i]) for i in indices)


def _part(order: Sequence[Near], i: int) -> str:
    if not 0 <= i < len(order):
        return ""
    entry, key = order[i]
    return f"{len(entry)}:{entry}{key}"
