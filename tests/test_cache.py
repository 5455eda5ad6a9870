"""The persistent cache, the light records, event-hinted rebuilds and the process pool."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import feedparser
import pytest
from schemas import validate_atom

import feedsvc.pipeline.render_and_publish as documents_module
import feedsvc.pipeline.workers as workers_module
from benchmarks.corpus import write_corpus
from feedsvc.core.sanitize import policy
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.cache import CACHE_FILE, MemoryCache, SqliteCache
from feedsvc.publish.layout import read_manifest


def feed(tmp_path: Path) -> bytes:
    return (tmp_path / "out" / "feed.xml").read_bytes()


def test_a_new_process_resanitizes_nothing_unchanged(tmp_path, make_seed, config, counted) -> None:
    for n in range(5):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 1000, title=f"T{n}", url=f"https://e.com/{n}")
    first = Builder(config()).build()
    assert first.published and len(counted) == 5
    before = feed(tmp_path)
    assert isinstance(Builder(config()).cache, SqliteCache)

    again = Builder(config()).build()  # a restart: a new Builder on the same output directory
    assert (again.ok, again.changed, again.published, again.entries) == (True, 0, False, 5)
    assert len(counted) == 5
    assert feed(tmp_path) == before

    make_seed("2.txt", stamp_ms=1681696099000, title="T2 edited", url="https://e.com/2")
    (tmp_path / "seeds" / "0.txt").unlink()
    third = Builder(config()).build()
    assert counted[5:] == ["2.txt"] and third.changed == 2
    assert [e.title for e in feedparser.parse(feed(tmp_path)).entries] == ["T2 edited", "T4", "T3", "T1"]


def test_entries_from_the_cache_render_the_same_bytes(tmp_path, make_seed, config, sample_bytes) -> None:
    make_seed("sample.txt", raw=sample_bytes)
    make_seed("tz.txt", body='<div><i><br>2023-04-16T13:06:27+08:00</i></div><p>x</p>', url="https://e.com/tz")
    Builder(config()).build()
    fresh = feed(tmp_path)
    (tmp_path / "out" / "feed.xml").unlink()
    (tmp_path / "out" / "manifest.json").unlink()
    Builder(config()).build()  # every entry now comes from SQLite
    assert feed(tmp_path) == fresh
    assert validate_atom(fresh) == []


def test_a_policy_or_backend_change_invalidates_the_cache(tmp_path, make_seed, config, counted,
                                                           monkeypatch) -> None:
    for n in range(3):
        make_seed(f"{n}.txt", url=f"https://e.com/{n}")
    Builder(config()).build()
    Builder(config()).build()
    assert len(counted) == 3
    monkeypatch.setattr(policy, "VERSION", policy.VERSION + 1)
    Builder(config()).build()
    assert len(counted) == 6
    result = Builder(config(sanitizer="nh3")).build()
    assert len(counted) == 9 and result.ok and result.entries == 3


def test_an_mtime_dated_entry_is_not_served_stale(tmp_path, make_seed, config) -> None:
    path = make_seed("nodate.txt", raw=b"[No date](https://e.com/n)\n\n<p>body</p>\n")
    os.utime(path, ns=(1_600_000_000 * 10**9, 1_600_000_000 * 10**9))
    Builder(config()).build()
    assert feedparser.parse(feed(tmp_path)).entries[0].updated.startswith("2020-09-13")
    os.utime(path, ns=(1_700_000_000 * 10**9, 1_700_000_000 * 10**9))  # same bytes, new date
    Builder(config()).build()
    assert feedparser.parse(feed(tmp_path)).entries[0].updated.startswith("2023-11-14")


def test_a_corrupt_cache_is_started_afresh(tmp_path, make_seed, config) -> None:
    make_seed("a.txt", url="https://e.com/a")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / CACHE_FILE).write_bytes(b"this is not a database" * 100)
    builder = Builder(config())
    assert builder.build().entries == 1
    assert isinstance(builder.cache, SqliteCache)


def test_an_unusable_cache_falls_back_to_memory(tmp_path, make_seed, config) -> None:
    make_seed("a.txt", url="https://e.com/a")
    (tmp_path / "out" / CACHE_FILE).mkdir(parents=True)  # a directory where the file should be
    builder = Builder(config())
    result = builder.build()
    assert result.ok and result.entries == 1 and isinstance(builder.cache, MemoryCache)
    make_seed("b.txt", url="https://e.com/b")
    assert builder.build().entries == 2


def test_the_builder_holds_no_article_content(tmp_path, config) -> None:
    """Memory grows with max_entries, not with the corpus: the records carry no HTML."""
    paths = write_corpus(tmp_path / "seeds", 60)
    builder = Builder(config(max_entries=5))
    assert builder.build().files == 60
    content = sum(p.stat().st_size for p in paths)
    held = len(pickle.dumps(list(builder.memory.records.values())))
    assert held < content / 10, (held, content)


def test_an_event_hint_builds_like_a_full_scan(tmp_path, make_seed, config, counted) -> None:
    for n in range(4):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 1000, title=f"T{n}", url=f"https://e.com/{n}")
    make_seed("sub/s.txt", title="S", url="https://e.com/s")
    builder = Builder(config())
    builder.build()
    make_seed("new.txt", stamp_ms=1681696099000, title="New", url="https://e.com/new")
    (tmp_path / "seeds" / "1.txt").unlink()
    make_seed("sub/s.txt", title="S edited", url="https://e.com/s")
    hinted = builder.build(changed=["new.txt", "1.txt", "sub/s.txt"])
    assert sorted(counted[5:]) == ["new.txt", "sub/s.txt"]
    assert (hinted.files, hinted.changed, hinted.entries) == (5, 3, 5)
    by_hint = feed(tmp_path)
    full = Builder(config(output_dir=str(tmp_path / "full"))).build()
    assert full.files == 5 and (tmp_path / "full" / "feed.xml").read_bytes() == by_hint
    assert builder.build(changed=["sub"]).files == 5  # a folder: only a full scan will do


@pytest.mark.live
def test_the_process_pool_gives_the_same_feed(tmp_path, config, monkeypatch) -> None:
    write_corpus(tmp_path / "seeds", 150)
    (tmp_path / "seeds" / "bad.txt").write_bytes(b"")
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 1})
    monkeypatch.setattr(workers_module, "SPAWN_MIN_FILES", {"bleach": 1})
    used: list[int] = []
    real = workers_module.ProcessPoolExecutor
    monkeypatch.setattr(workers_module, "ProcessPoolExecutor", lambda n, **kw: used.append(n) or real(n, **kw))
    progress: list[tuple[int, int]] = []
    pooled = Builder(config(build_workers=2)).build(progress=lambda done, total: progress.append((done, total)))
    assert used == [2] and pooled.entries == 50 and len(pooled.skipped) == 1
    assert progress[-1] == (151, 151) and len(progress) > 2
    inline = Builder(config(build_workers=1, output_dir=str(tmp_path / "inline"))).build()
    assert used == [2] and inline.entries == 50
    assert (tmp_path / "inline" / "feed.xml").read_bytes() == feed(tmp_path)


@pytest.mark.live
def test_the_process_pool_renders_the_archive_pages(tmp_path, config, monkeypatch) -> None:
    """Many changed pages are rendered, compressed and written by the workers: the same documents
    as rendered in the builder, objects in place, nothing rendered in the builder's process."""
    write_corpus(tmp_path / "seeds", 150)
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 1})
    monkeypatch.setattr(workers_module, "SPAWN_MIN_FILES", {"bleach": 1})
    monkeypatch.setattr(workers_module, "POOL_MIN_PAGES", 1)
    inline = Builder(config(build_workers=1, archive_page_size=10, output_dir=str(tmp_path / "inline")))
    assert inline.build().published

    def not_here(*args):
        raise AssertionError("an archive page was rendered in the builder's process")

    monkeypatch.setattr(documents_module, "archive_document", not_here)
    pooled = Builder(config(build_workers=2, archive_page_size=10))
    assert pooled.build().published
    mine, theirs = read_manifest(tmp_path / "out")["documents"], read_manifest(tmp_path / "inline")["documents"]
    pages = sorted(name for name in mine if name.startswith("archive/"))  # each with its browser page
    # 100 archived, at most 10 a page: at least 10 pages (pieces of time may hold fewer)
    assert len(pages) >= 2 * 10 and pages == sorted(n for n in theirs if n.startswith("archive/"))
    for name in pages:
        assert mine[name]["etag"] == theirs[name]["etag"] and mine[name]["in_memory"] is False
        body = (tmp_path / "out" / "objects" / mine[name]["object"]).read_bytes()
        gz = (tmp_path / "out" / "objects" / mine[name]["gzip_object"]).read_bytes()
        assert gzip.decompress(gz) == body and len(body) == mine[name]["size"] and len(gz) == mine[name]["gzip_size"]


def test_the_cache_file_is_used_again_after_a_transient_error(tmp_path, make_seed, config, monkeypatch) -> None:
    """Issue 21: a transient disk full switched to the in-memory cache for good."""
    import sqlite3

    make_seed("a.txt", url="https://e.com/a")
    opened = SqliteCache._open
    failures = [sqlite3.OperationalError("database or disk is full")]

    def open_once_failing(path: Path) -> sqlite3.Connection:
        if failures:
            raise failures.pop()
        return opened(path)

    monkeypatch.setattr(SqliteCache, "_open", staticmethod(open_once_failing))
    builder = Builder(config())
    first = builder.build()
    assert first.ok and first.entries == 1 and isinstance(builder.cache, MemoryCache)
    make_seed("b.txt", url="https://e.com/b")
    again = builder.build()
    assert again.ok and again.entries == 2 and isinstance(builder.cache, SqliteCache)
    assert not builder.cache.is_empty()  # the build's results are in the file now
    builder.close()
