"""The records of a build: what changed since the last one (the seeds' stats against the records,
or a new process's cache index), and the records after it, remembered in memory and in the
cache's file index for the next process."""

from __future__ import annotations

from pathlib import Path

from feedsvc.core.changes import Changes, diff
from feedsvc.model import BuildResult, Record, SeedFile, StatKey
from feedsvc.pipeline.context import BuildContext, Cache
from feedsvc.pipeline.load import Loaded
from feedsvc.pipeline.memory import Memory
from feedsvc.pipeline.reporting import log_fresh, reports_of
from feedsvc.pipeline.seeds import scan_seeds, stat_seeds

# The cache's file index: each readable file's stat and hash, by path under the seeds folder.
FileIndex = dict[str, tuple[StatKey, str]]


def what_changed(
    seeds_dir: Path,
    memory: Memory,
    cache: Cache,
    changed: set[str] | None,
    now: float,
    settle: float,
    complete: dict[str, StatKey] | None,
) -> tuple[Changes, FileIndex]:
    """The stats of the seeds (all of them, or the paths events named) against the records; a new
    process has none yet and compares with the cache's file index instead, which it returns."""
    first = memory.records is None
    index = cache.files(str(seeds_dir.resolve())) if first else {}
    scan = _scan(seeds_dir, None if first else changed)
    return diff(scan, memory.records or {}, index, now, settle, complete), index


def _scan(seeds_dir: Path, changed: set[str] | None) -> list[SeedFile] | dict[str, SeedFile | None]:
    """Every seed file, or (for paths that events named) rel → SeedFile or None."""
    hinted = None if changed is None else stat_seeds(seeds_dir, changed)
    return scan_seeds(seeds_dir) if hinted is None else hinted


def remember_records(
    ctx: BuildContext, memory: Memory, changes: Changes, loaded: Loaded, index: FileIndex, result: BuildResult
) -> dict[str, Record]:
    """The records after this build, in memory and in the cache's file index; what changed and
    what is wrong with them, in the result (and in the log, for bytes new to this process)."""
    seeds_dir, cache = ctx.seeds_dir, ctx.cache
    before = memory.records or {}
    current = memory.records = changes.kept | loaded.records
    result.changed = _count_changed(changes, loaded.records, before, index)
    _remember_files(cache, str(seeds_dir.resolve()), changes, loaded.records, index, prune=result.changed > 0)
    log_fresh(seeds_dir, loaded.fresh)
    result.skipped, result.problems, result.notes = reports_of(current.values())
    return current


def _remember_files(
    cache: Cache, root: str, changes: Changes, new: dict[str, Record], index: FileIndex, prune: bool
) -> None:
    """The cache's file index: each readable file's stat and hash, for the next process."""
    upserts = {
        rel: (r.stat_key, r.sha) for rel, r in new.items() if r.readable and index.get(rel) != (r.stat_key, r.sha)
    }
    cache.save_files(root, upserts, changes.gone)
    if prune and cache.needs_pruning(len(changes.kept) + len(new)):
        cache.prune({r.key for r in (changes.kept | new).values() if r.key})


def _count_changed(changes: Changes, new: dict[str, Record], before: dict[str, Record], index: FileIndex) -> int:
    """Files gone, plus files whose bytes differ from the ones remembered (or indexed), or whose
    same bytes now give another date (from a new mtime, or a stamp that became valid)."""

    def changed(rel: str, record: Record) -> bool:
        if rel in before:
            return (record.sha, record.updated) != (before[rel].sha, before[rel].updated)
        return rel not in index or record.sha != index[rel][1]

    return len(changes.gone) + sum(1 for rel, r in new.items() if r.readable and changed(rel, r))
