"""core/changes.py: what changed, as a pure diff of a scan's stats against the builder's records."""

from __future__ import annotations

from feedsvc.core.changes import diff
from feedsvc.model import Record, SeedFile

NOW = 2_000_000_000.0  # seconds since the epoch


def seed(rel: str, size: int = 10, age: float = 60.0, inode: int = 1) -> SeedFile:
    return SeedFile(f"/seeds/{rel}", rel, size, int((NOW - age) * 1e9), inode)


def record(file: SeedFile, sha: str = "s") -> Record:
    return Record(file.rel, sha, "k-" + file.rel, "id-" + file.rel, "d-" + file.rel, None, None, stat_key=file.stat_key)


def test_an_unchanged_stat_keeps_its_record_unread() -> None:
    a = seed("a.txt")
    changes = diff([a], {"a.txt": record(a)}, {}, NOW, settle=0.5)
    assert list(changes.kept) == ["a.txt"] and changes.to_read == [] and not changes.gone and changes.files == 1


def test_a_changed_or_new_file_is_to_be_read() -> None:
    a, b = seed("a.txt"), seed("b.txt")
    changes = diff([seed("a.txt", size=11), b], {"a.txt": record(a)}, {}, NOW, settle=0.5)
    assert [s.rel for s, _ in changes.to_read] == ["a.txt", "b.txt"] and not changes.kept


def test_the_index_vouches_for_a_hash_only_when_the_stat_matches() -> None:
    a, b = seed("a.txt"), seed("b.txt")
    index = {"a.txt": (a.stat_key, "sha-a"), "b.txt": ((1, 2, 3), "sha-b")}
    changes = diff([a, b], {}, index, NOW, settle=0.0)
    assert changes.to_read == [(a, "sha-a"), (b, None)]


def test_a_young_file_is_deferred_and_its_last_version_kept() -> None:
    a = seed("a.txt")
    young = seed("a.txt", size=99, age=0.1)
    changes = diff([young, seed("new.txt", age=0.3)], {"a.txt": record(a)}, {}, NOW, settle=0.5)
    assert changes.deferred == ["a.txt", "new.txt"] and changes.to_read == []
    assert changes.kept["a.txt"] == record(a) and abs(changes.youngest - 0.1) < 1e-6 and changes.files == 2


def test_a_future_mtime_counts_as_settled() -> None:
    changes = diff([seed("a.txt", age=-5)], {}, {}, NOW, settle=0.5)
    assert not changes.deferred and len(changes.to_read) == 1


def test_remembered_or_indexed_files_not_seen_are_gone() -> None:
    a, b = seed("a.txt"), seed("b.txt")
    changes = diff([a], {"a.txt": record(a), "b.txt": record(b)}, {"c.txt": ((1, 1, 1), "x")}, NOW, settle=0.0)
    assert changes.gone == {"b.txt", "c.txt"} and changes.files == 1


def test_a_hinted_scan_keeps_what_it_does_not_name() -> None:
    a, b, c = seed("a.txt"), seed("b.txt"), seed("c.txt")
    records = {"a.txt": record(a), "b.txt": record(b), "c.txt": record(c)}
    changes = diff({"b.txt": None, "c.txt": seed("c.txt", size=5), "d.txt": seed("d.txt")}, records, {}, NOW, 0.0)
    assert set(changes.kept) == {"a.txt"} and changes.gone == {"b.txt"}
    assert [s.rel for s, _ in changes.to_read] == ["c.txt", "d.txt"] and changes.files == 3
