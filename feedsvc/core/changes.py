"""What changed: the files a scan saw, against what the builder remembers. Pure.

The rule:
- a file whose (size, mtime, inode) equals its record's is unchanged: its record is kept, unread,
  unless the record depended on the time and `now` is past it (`Record.holds`);
- a file modified less than `settle` seconds ago may still be being written: it is deferred (its
  previous record, if any, is kept) and not read; unless it is known to be complete: its stat is
  the one seen when it was closed after writing or renamed into place (`complete`);
- every other file is to be read. When the builder remembers nothing yet (a new process), the
  cache's file index stands in: a file whose stat matches the index comes with the hash the index
  vouches for, so it is looked up, not read;
- a file that was remembered (or indexed) and is neither seen nor deferred is gone.

A scan is either full (every seed file) or hinted (only the paths file events named, each a
SeedFile or None for gone); a hinted scan keeps every record it does not name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from feedsvc.model import Record, SeedFile, StatKey


@dataclass
class Changes:
    kept: dict[str, Record] = field(default_factory=dict)
    # Files to read, each with the hash the cache's index vouches for (None: read it to know).
    to_read: list[tuple[SeedFile, str | None]] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    deferred: list[str] = field(default_factory=list)
    youngest: float = 0.0  # the age of the youngest deferred file, in seconds
    files: int = 0  # seed files in the folder after this scan


def diff(
    scan: Sequence[SeedFile] | Mapping[str, SeedFile | None],
    records: Mapping[str, Record],
    index: Mapping[str, tuple[StatKey, str]],
    now: float,
    settle: float,
    complete: Mapping[str, StatKey] | None = None,
) -> Changes:
    """`scan`: a full scan (a sequence) or a hinted one (rel → SeedFile or None). `now` and every
    mtime in seconds since the epoch. `complete`: rel → the stat of a file known to be whole."""
    complete = complete or {}
    changes = Changes(youngest=settle)
    if isinstance(scan, Mapping):
        seen = [seed for seed in scan.values() if seed is not None]
        changes.kept = dict(records)  # all but the named paths (a copy in C, then a few removals)
        for rel in scan:
            changes.kept.pop(rel, None)
    else:
        seen = list(scan)
    for seed in seen:
        record = records.get(seed.rel)
        if record is not None and record.stat_key == seed.stat_key and record.holds(now):
            changes.kept[seed.rel] = record
            continue
        age = now - seed.mtime_ns / 1e9
        if settle and 0 <= age < settle and complete.get(seed.rel) != seed.stat_key:
            changes.deferred.append(seed.rel)
            changes.youngest = min(changes.youngest, age)
            if record is not None:
                changes.kept[seed.rel] = record
            continue
        indexed = index.get(seed.rel)
        changes.to_read.append((seed, indexed[1] if indexed is not None and indexed[0] == seed.stat_key else None))
    remembered = records.keys() | index.keys()
    if isinstance(scan, Mapping):
        remembered &= scan.keys()
    reading = {seed.rel for seed, _ in changes.to_read}
    changes.gone = remembered - changes.kept.keys() - reading - set(changes.deferred)
    changes.files = len(changes.kept) + len(reading) + sum(1 for rel in changes.deferred if rel not in changes.kept)
    return changes
