"""The entry pages' index, published with the manifest: which objects each page is, by shard.

Entry pages are many (one per entry: 100k at 100k seeds) and each is two objects, so they are not
rows of manifest.json, which every publish writes and every web process loads. Their rows are
kept in shards (`layout.Shard`: a folder's pages whose keys start with the same two hex digits),
each an immutable object under objects/articles/, named by the manifest. A web process reads the
shard of a page asked for; a build rewrites only the shards whose pages changed.

Collection: the full sweep of objects/ (`writer._collect_garbage`) never looks into
objects/articles/, whose files would make each publish cost the archive's size. Instead each
publish lists the objects its index stopped naming (`released`, kept in the manifest beside the
index), and the next publish deletes them unless it names them again: the previous version's
objects stay while a reader may still be reading it, as for every other document. A publish that
dies between writing new objects and the manifest leaves those objects behind, unnamed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedsvc.publish.layout import (
    ARTICLE_OBJECTS,
    OBJECTS,
    SHARD_SUFFIX,
    ArticleShard,
    Manifest,
    ManifestRow,
    Shard,
    Stale,
    digest,
    shard_bytes,
    shard_key,
    shard_path,
    shard_rows,
    write_atomic,
)


@dataclass(frozen=True)
class IndexUpdate:
    """A publish's entry pages' index (`articles`), the objects it stopped naming (`released`), and
    the objects the previous publish released that it does not name again (`collect`: delete them)."""

    articles: dict[str, Shard]
    released: tuple[str, ...]
    collect: tuple[str, ...]


def update_index(out_dir: Path, old: Manifest | None, shards: Sequence[ArticleShard] | None) -> IndexUpdate:
    """Write the changed shards' objects and return the new index. `shards` None: the index stays
    as published (a cold start's first publish, which has no pages yet). Every shard of the old
    index that `shards` does not name is gone (its feed has no pages any more). Raises Stale when a
    shard was planned from another index than the current one (another writer published meanwhile)
    or a new row's objects are gone."""
    before = old.articles if old is not None else {}
    pending = set(old.released) if old is not None else set()
    if shards is None:
        return IndexUpdate(dict(before), (), tuple(sorted(pending)))
    stale = [shard.name for shard in shards if not _planned_from(shard, before.get(shard.name))]
    if stale:
        raise Stale(stale)
    articles: dict[str, Shard] = {}
    dropped: set[str] = set()  # what the old versions of the rewritten shards named
    named: set[str] = set()  # what their new versions name
    for shard in shards:
        if shard.rows is None:
            articles[shard.name] = before[shard.name]
            continue
        old_rows = shard_rows(out_dir, before.get(shard.name))
        gone = [name for name, row in shard.rows.items() if old_rows.get(name) != row and not _there(out_dir, row)]
        if gone:
            raise Stale(gone)
        dropped |= _objects(before.get(shard.name), old_rows.values())
        if shard.rows:
            written = _write_shard(out_dir, shard.rows)
            articles[shard.name] = written
            named |= _objects(written, shard.rows.values())
    for name in before.keys() - {shard.name for shard in shards}:
        dropped |= _objects(before[name], shard_rows(out_dir, before[name]).values())
    return IndexUpdate(articles, tuple(sorted(dropped - named)), tuple(sorted(pending - named)))


def collect(out_dir: Path, names: Iterable[str]) -> None:
    """Delete these objects (names relative to objects/) if they are still there."""
    objects = out_dir / OBJECTS
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(objects / name)


def _planned_from(shard: ArticleShard, current: Shard | None) -> bool:
    """An unchanged shard is the current one (the same pages, the same keys); a rewritten one was
    made from the current one's rows."""
    if shard.rows is None:
        return current is not None and current.key == shard.key
    return (current.object if current is not None else None) == shard.base


def _write_shard(out_dir: Path, rows: Mapping[str, ManifestRow]) -> Shard:
    data = shard_bytes(dict(rows))
    shard = Shard(digest(data), shard_key((name, row.source_key) for name, row in rows.items()))
    path = shard_path(out_dir, shard)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data, sync_dir=False)  # the caller syncs the folder once
    return shard


def _objects(shard: Shard | None, rows: Iterable[ManifestRow]) -> set[str]:
    """The objects a shard names (relative to objects/): its rows' and its own."""
    names = {name for row in rows for name in row.objects}
    if shard is not None:
        names.add(f"{ARTICLE_OBJECTS}/{shard.object}{SHARD_SUFFIX}")
    return names


def _there(out_dir: Path, row: ManifestRow) -> bool:
    return all((out_dir / OBJECTS / name).is_file() for name in row.objects)
