"""The Builder and the `feedsvc build` / `feedsvc check` commands, end to end on real files."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest
from conftest import REPO, SAMPLE
from schemas import validate_atom

from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import MANIFEST, OBJECTS, read_manifest


def run_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | (env or {})
    return subprocess.run([sys.executable, "-m", "feedsvc", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.live
def test_build_publishes_the_real_seed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli("build", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "1 entry from 1 file " in done.stdout and "published" in done.stdout
    feed = out / "feed.xml"
    assert stat.S_IMODE(feed.stat().st_mode) == 0o644
    body = feed.read_bytes()
    assert validate_atom(body) == []
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    assert parsed.entries[0].title == "中國防長會見普京 談加強軍事合作"
    assert parsed.entries[0].link.endswith("/a-65338710")
    assert "李尚福" in parsed.entries[0].content[0]["value"]
    assert [p.name for p in out.iterdir() if p.name.startswith(".tmp")] == []


@pytest.mark.live
def test_build_is_byte_identical_and_touches_nothing_when_unchanged(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert run_cli("build", "--out", str(out)).returncode == 0
    first = (out / "feed.xml").read_bytes()
    manifest_stat = (out / MANIFEST).stat()
    again = run_cli("build", "--out", str(out))
    assert "unchanged" in again.stdout
    assert (out / "feed.xml").read_bytes() == first
    assert (out / MANIFEST).stat().st_mtime_ns == manifest_stat.st_mtime_ns
    other = tmp_path / "other"
    assert run_cli("build", "--out", str(other)).returncode == 0
    assert (other / "feed.xml").read_bytes() == first


@pytest.mark.live
def test_bad_files_are_reported_and_skipped(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "garbage.txt").write_bytes(bytes(range(0x80, 0x100)) * 4)
    done = run_cli("build", "--seeds", str(seeds), "--out", str(tmp_path / "out"))
    assert done.returncode == 0
    assert "1 entry from 3 files" in done.stdout
    assert f"skipped {seeds / 'empty.txt'}: empty file" in done.stdout
    assert f"skipped {seeds / 'garbage.txt'}: not valid UTF-8" in done.stdout
    check = run_cli("check", "--seeds", str(seeds))
    assert check.returncode == 1
    assert f"{seeds / 'empty.txt'}: empty file" in check.stdout.splitlines()
    assert run_cli("check").returncode == 0


@pytest.mark.live
def test_missing_seeds_dir_and_bad_config_exit_nonzero(tmp_path: Path) -> None:
    done = run_cli("build", "--seeds", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert not (tmp_path / "out" / "feed.xml").exists()
    bad = run_cli("build", "--out", str(tmp_path / "out"), env={"FEEDSVC_MAX_ENTRIES": "lots"})
    assert bad.returncode == 2
    assert "max_entries (from environment variable FEEDSVC_MAX_ENTRIES)" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.live
def test_max_entries_flag(tmp_path: Path, make_seed) -> None:
    for n in range(5):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 1000, title=f"T{n}", url=f"https://e.com/{n}")
    done = run_cli("build", "--seeds", str(tmp_path / "seeds"), "--out", str(tmp_path / "out"), "--max-entries", "2")
    assert done.returncode == 0, done.stderr
    titles = [e.title for e in feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).entries]
    assert titles == ["T4", "T3"]


def test_incremental_rebuild_reads_only_changed_files(tmp_path: Path, make_seed, config, counted) -> None:
    for n in range(4):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 1000, title=f"T{n}", url=f"https://e.com/{n}")
    builder = Builder(config())
    first = builder.build()
    assert (first.ok, first.entries, first.changed, first.published) == (True, 4, 4, True)

    assert len(counted) == 4
    calls = counted
    calls.clear()
    second = builder.build()
    assert (second.changed, second.published, calls) == (0, False, [])

    make_seed("2.txt", stamp_ms=1681696026000 + 9000, title="T2 edited", url="https://e.com/2")
    (tmp_path / "seeds" / "0.txt").unlink()
    third = builder.build()
    assert calls == ["2.txt"]
    assert (third.entries, third.changed, third.published) == (3, 2, True)
    titles = [e.title for e in feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).entries]
    assert titles == ["T2 edited", "T3", "T1"]

    os.utime(tmp_path / "seeds" / "1.txt", ns=(1, 1))  # touched, same bytes: read, not re-parsed
    fourth = builder.build()
    assert calls == ["2.txt"] and fourth.changed == 0 and not fourth.published


def test_duplicate_urls_across_files(tmp_path: Path, make_seed, config) -> None:
    make_seed("old.txt", stamp_ms=1681696026000, title="Old", url="https://e.com/same")
    make_seed("new.txt", stamp_ms=1681696099000, title="New", url="https://e.com/same")
    result = Builder(config()).build()
    assert result.entries == 1
    assert feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).entries[0].title == "New"


def test_failed_build_keeps_the_last_feed(tmp_path: Path, make_seed, config) -> None:
    make_seed("a.txt", url="https://e.com/a")
    builder = Builder(config())
    assert builder.build().published
    before = (tmp_path / "out" / "feed.xml").read_bytes()
    shutil.rmtree(tmp_path / "seeds")
    failed = builder.build()
    assert not failed.ok and "does not exist" in failed.error
    assert (tmp_path / "out" / "feed.xml").read_bytes() == before
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["ok"] is False and "does not exist" in status["error"]


def test_publish_keeps_previous_objects_and_collects_older(tmp_path: Path, make_seed, config) -> None:
    builder = Builder(config(article_pages=False))
    etags = []
    for n in range(4):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 1000, url=f"https://e.com/{n}")
        assert builder.build().published
        etags.append(read_manifest(tmp_path / "out")["documents"]["feed.xml"]["object"])
    objects = {p.name for p in (tmp_path / "out" / OBJECTS).iterdir()}
    assert etags[-1] in objects and etags[-2] in objects
    assert etags[0] not in objects and etags[1] not in objects
    manifest = read_manifest(tmp_path / "out")
    live = {doc[key] for version in (manifest["documents"], manifest["previous"]) for doc in version.values()
            for key in ("object", "gzip_object")}
    assert objects == live  # exactly the last two versions of every document, identity + gzip each
    # feed.xml/.rss/.json, index and the browser pages of feed.xml and .rss changed; feed.xsl is one object
    assert len(objects) == 2 * (2 * 6 + 1)


def test_leftover_temp_files_are_cleaned(tmp_path: Path, make_seed, config) -> None:
    make_seed("a.txt", url="https://e.com/a")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".tmp-crashed").write_bytes(b"half")
    Builder(config()).build()
    assert not (out / ".tmp-crashed").exists()


def test_unreadable_file_is_reported_and_retried(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    import feedsvc.pipeline.load as build_module
    import feedsvc.pipeline.workers as pool_module

    make_seed("a.txt", url="https://e.com/a")
    real = build_module.read_seed

    def denied(seed, limit):
        raise PermissionError(13, "Permission denied")

    # Root ignores chmod 0, so simulate it where files are read: hashed up front, or processed.
    for module in (build_module, pool_module):
        monkeypatch.setattr(module, "read_seed", denied)
    builder = Builder(config())
    result = builder.build()
    assert result.skipped and result.skipped[0].reason == "cannot read: Permission denied"
    for module in (build_module, pool_module):
        monkeypatch.setattr(module, "read_seed", real)
    assert builder.build().entries == 1

    # Once the cache holds outcomes, files are hashed before processing: the same report from there.
    make_seed("b.txt", url="https://e.com/b")
    monkeypatch.setattr(build_module, "read_seed", denied)
    again = Builder(config()).build()
    assert [p.reason for p in again.skipped] == ["cannot read: Permission denied"] and again.entries == 1


def test_a_cold_build_reads_each_file_once(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """With nothing cached there is nothing to look up by hash: the files are read once, to be processed."""
    import feedsvc.pipeline.load as build_module
    import feedsvc.pipeline.workers as pool_module

    for n in range(3):
        make_seed(f"{n}.txt", url=f"https://e.com/{n}")
    # The pool's reads happen in the build's helper process (forked after this patch): it logs them to a file.
    log = tmp_path / "reads"
    log.touch()
    reads: dict[str, list[str]] = {"build": []}
    for name, module in (("build", build_module), ("pool", pool_module)):

        def counted(seed, limit, real=module.read_seed, name=name):
            if name == "pool":
                with log.open("a") as fh:
                    fh.write(seed.rel + "\n")
            else:
                reads[name].append(seed.rel)
            return real(seed, limit)

        monkeypatch.setattr(module, "read_seed", counted)
    cold = Builder(config()).build()
    assert (cold.entries, cold.changed) == (3, 3) and reads == {"build": []}
    assert log.read_text().split() == ["0.txt", "1.txt", "2.txt"]
    # A new process finds the outcomes by hash: a touched file is read to be hashed, and not processed.
    os.utime(tmp_path / "seeds" / "1.txt", ns=(1, 1))
    warm = Builder(config()).build()
    assert warm.entries == 3 and not warm.published and reads["build"] == ["1.txt"]
    assert len(log.read_text().split()) == 3


def test_what_a_build_keeps_is_frozen_out_of_the_collectors_passes(make_seed, config) -> None:
    """The records a builder keeps are long-lived: after a build they sit in gc's permanent
    generation, which full collections do not walk (at 100k seeds those walks were most of a
    rescan). A record a later build replaces is still freed by reference counting."""
    import gc

    for n in range(5):
        make_seed(f"{n}.txt", stamp_ms=1681696026000 + n * 60000, url=f"https://e.com/{n}")
    builder = Builder(config())
    assert builder.build().published
    records = list(builder.memory.records.values())
    assert len(records) == 5
    walked = {id(o) for o in gc.get_objects(generation=2)}
    assert not walked & {id(r) for r in records}
    assert gc.get_freeze_count() >= len(records)

    make_seed("0.txt", stamp_ms=1681696026000, url="https://e.com/0", body="<p>Edited</p>")
    old = builder.memory.records["0.txt"]
    del records
    assert builder.build().published
    assert builder.memory.records["0.txt"] is not old
    assert sys.getrefcount(old) == 2  # this name and the call's argument: the builder let it go
