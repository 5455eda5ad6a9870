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
dies between writing new objects and the manifest leaves those objects behind, unnamed: a mark
in the output folder says pages are being stored (`writer.begin_storing`), and the build that
finds it left over sweeps them (`sweep_articles`), reading every shard once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from feedsvc.publish.layout import (
    ARTICLE_OBJECTS,
    OBJECTS,
    SHARD_SUFFIX,
    TMP_PREFIX,
    ArticleShard,
    Manifest,
    ManifestRow,
    Shard,
    Stale,
    digest,
    read_shard,
    shard_bytes,
    shard_key,
    shard_rows,
    write_many,
)


@dataclass(frozen=True)
class IndexUpdate:
    """A publish's entry pages' index (`articles`), the objects it stopped naming (`released`), and
    the objects the previous publish released that it does not name again (`collect`: delete them)."""

    articles: dict[str, Shard]
    released: tuple[str, ...]
    collect: tuple[str, ...]


def write_shards(out_dir: Path, shards: Mapping[str, Mapping[str, ManifestRow]]) -> dict[str, Shard]:
    """Write these shards' objects (their rows, by shard name; `write_many`) and return each
    one's `Shard`. A shard without rows has none: it is left out of the index."""
    written: dict[str, Shard] = {}
    files: dict[str, bytes] = {}
    for name, rows in shards.items():
        if rows:
            data = shard_bytes(dict(rows))
            shard = Shard(digest(data), shard_key((page, row.source_key) for page, row in rows.items()))
            written[name], files[shard.object + SHARD_SUFFIX] = shard, data
    if files:
        folder = out_dir / OBJECTS / ARTICLE_OBJECTS
        folder.mkdir(parents=True, exist_ok=True)
        write_many(folder, files)  # the publish syncs the folder once
    return written


def update_index(out_dir: Path, old: Manifest | None, shards: Sequence[ArticleShard] | None) -> IndexUpdate:
    """The new index, from the shards a build planned. `shards` None: the index stays as
    published (a cold start's first publish, which has no pages yet). Every shard of the old index
    that `shards` does not name is gone (its feed has no pages any more, or the shard no page).

    Raises Stale when a shard was planned from another index than the current one (another writer
    published meanwhile), or a rewritten shard names an object that is gone (a publish collected
    it after this build found it there). In a new output folder (no manifest) nothing was ever
    collected, so a cold build's shards are not read back."""
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
        if shard.written is None:
            articles[shard.name] = before[shard.name]
            continue
        articles[shard.name] = shard.written
        if old is None:
            continue
        try:
            rows = read_shard(out_dir, shard.written)
        except (OSError, ValueError):
            raise Stale([shard.name]) from None
        old_rows = shard_rows(out_dir, before.get(shard.name))
        gone = [name for name, row in rows.items() if old_rows.get(name) != row and not _there(out_dir, row)]
        if gone:
            raise Stale(gone)
        dropped |= _objects(before.get(shard.name), old_rows.values())
        named |= _objects(shard.written, rows.values())
    for name in before.keys() - {shard.name for shard in shards}:
        dropped |= _objects(before[name], shard_rows(out_dir, before[name]).values())
    return IndexUpdate(articles, tuple(sorted(dropped - named)), tuple(sorted(pending - named)))


def collect(out_dir: Path, names: Iterable[str]) -> None:
    """Delete these objects (names relative to objects/) if they are still there."""
    objects = out_dir / OBJECTS
    for name in names:
        with contextlib.suppress(OSError):
            os.unlink(objects / name)


def sweep_articles(out_dir: Path, manifest: Manifest, alive: Callable[[str], bool]) -> int:
    """Delete every object under objects/articles/ that `manifest`'s index does not name and that
    it has not just released (the previous version's, which a reader may still read), and every
    temp file whose writer is gone (`alive`: whether a temp file's writer still runs): what a
    build killed before its publish left. Reads every shard; deletes no object when one cannot be
    read. Returns how many files it deleted."""
    live = set(manifest.released)
    for shard in manifest.articles.values():
        try:
            rows = read_shard(out_dir, shard)
        except (OSError, ValueError):
            return 0  # never delete what may be named
        live |= _objects(shard, rows.values())
    deleted = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(out_dir / OBJECTS / ARTICLE_OBJECTS) as entries:
        for entry in entries:
            if entry.name.startswith(TMP_PREFIX) and alive(entry.name):
                continue
            if not entry.name.startswith(TMP_PREFIX) and f"{ARTICLE_OBJECTS}/{entry.name}" in live:
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                deleted += 1
    return deleted


def _planned_from(shard: ArticleShard, current: Shard | None) -> bool:
    """An unchanged shard is the current one (the same pages, the same keys); a rewritten one was
    made from the current one's rows."""
    if shard.written is None:
        return current is not None and current.key == shard.key
    return (current.object if current is not None else None) == shard.base


def _objects(shard: Shard | None, rows: Iterable[ManifestRow]) -> set[str]:
    """The objects a shard names (relative to objects/): its rows' and its own."""
    names = {name for row in rows for name in row.objects}
    if shard is not None:
        names.add(f"{ARTICLE_OBJECTS}/{shard.object}{SHARD_SUFFIX}")
    return names


def _there(out_dir: Path, row: ManifestRow) -> bool:
    return all((out_dir / OBJECTS / name).is_file() for name in row.objects)
