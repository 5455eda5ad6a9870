"""Issue 21, items 3 and 5: one file can fail only itself, never the build.

A file name that is not valid UTF-8 is published (or skipped with a reason) under a printable,
escaped name, on a cold build, on a restart and through `feedsvc build`. A seed swapped between
the scan and the read (a symlink to an outside secret, a FIFO) is never read: the swap happens at
a deterministic point, right after the scan returns, with no sleeps.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from conftest import REPO, seed_text

import feedsvc.pipeline.newest as newest_module
import feedsvc.pipeline.records as records_module
import feedsvc.pipeline.workers as workers_module
from feedsvc.config import Config
from feedsvc.model import BuildResult
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.seeds import SeedSkipped, read_head, read_seed, scan_seeds, seed_path, seed_rel

BAD = "bad\udcffname.txt"  # b"bad\xffname.txt", as Python gives a name that is not UTF-8
SKIP = "skip\udcfe%me.txt"  # not UTF-8 either, and skipped: no link, no body
SECRET = "TOPSECRET-7f3a9c1e"
# Long enough for a promptly answering build, short enough that a blocked read fails the test.
PROMPT = 30


def links(out: Path) -> list[str]:
    return [entry.link for entry in feedparser.parse((out / "feed.xml").read_bytes()).entries]


def write(seeds: Path, name: str, url: str | None, body: str = "<p>body</p>", stamp: int = 1681696026000) -> None:
    seeds.mkdir(parents=True, exist_ok=True)
    (seeds / name).write_text(seed_text(stamp, name.encode("utf-8", "backslashreplace").decode(), url, body))


def written_json_is_utf8(out: Path) -> dict:
    raw = (out / "status.json").read_bytes()
    return json.loads(raw.decode("utf-8"))  # strict: a lone surrogate written as is fails here


def test_a_name_that_is_not_utf8_is_published_on_a_cold_build(tmp_path: Path, config: Callable[..., Config]) -> None:
    seeds = tmp_path / "seeds"
    write(seeds, "good.txt", "https://e.com/good")
    write(seeds, BAD, "https://e.com/bad")
    write(seeds, SKIP, None, body="")
    result = Builder(config()).build()
    assert result.ok and result.published, result.error
    out = tmp_path / "out"
    assert sorted(links(out)) == ["https://e.com/bad", "https://e.com/good"]
    assert [p.source for p in result.skipped] == ["skip%FE%25me.txt"]
    status = written_json_is_utf8(out)
    assert [p["source"] for p in status["skipped"]] == ["skip%FE%25me.txt"]
    assert all(p.source.isprintable() for p in result.skipped)


def test_a_restart_on_a_published_folder_still_publishes_new_seeds(
    tmp_path: Path, config: Callable[..., Config]
) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    write(seeds, "good.txt", "https://e.com/good")
    assert Builder(config()).build().published
    write(seeds, BAD, "https://e.com/bad")
    write(seeds, "new.txt", "https://e.com/new", stamp=1681696027000)
    restarted = Builder(config())  # a new process: the cache and the published folder are there
    result = restarted.build()
    assert result.ok and result.published, result.error
    assert sorted(links(out)) == ["https://e.com/bad", "https://e.com/good", "https://e.com/new"]
    # File events name the file as the file system does: the builder then scans.
    write(seeds, SKIP, None, body="")
    write(seeds, "newer.txt", "https://e.com/newer", stamp=1681696028000)
    result = restarted.build(changed={SKIP, "newer.txt"})
    assert result.ok, result.error
    assert "https://e.com/newer" in links(out)
    assert [p["source"] for p in written_json_is_utf8(out)["skipped"]] == ["skip%FE%25me.txt"]


@pytest.mark.live
def test_feedsvc_build_names_the_file_and_exits_0(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    write(seeds, "good.txt", "https://e.com/good")
    write(seeds, BAD, "https://e.com/bad")
    write(seeds, SKIP, None, body="")
    (tmp_path / "empty.toml").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    done = subprocess.run(
        [sys.executable, "-m", "feedsvc", "build", "--config", str(tmp_path / "empty.toml"), "--seeds", str(seeds),
         "--out", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, timeout=120,
    )
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")  # strict: printable output
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert f"skipped {seeds / 'skip%FE%25me.txt'}: " in stdout
    assert "2 entries from 3 files" in stdout


def test_escaped_names_are_their_bytes(tmp_path: Path) -> None:
    assert seed_rel("plain/a%b.txt") == "plain/a%b.txt"  # valid UTF-8 stays as it is
    assert seed_rel(BAD) == "bad%FFname.txt"
    assert seed_rel(SKIP) == "skip%FE%25me.txt"
    (tmp_path / BAD).write_text("x")
    assert seed_path(tmp_path, "bad%FFname.txt") == os.path.join(tmp_path, BAD)
    (tmp_path / "bad%FFname.txt").write_text("real")  # a real file of that name wins the name
    assert [(s.rel, read_seed(s, 100)) for s in scan_seeds(tmp_path)] == [("bad%FFname.txt", b"real")]


# Swaps between the scan and the read.


def outside_secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    write(outside, "a.txt", "https://e.com/secret", body=f"<p>{SECRET}</p>")
    return outside


def swap_after_scan(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> list[int]:
    """Run `swap` when the builder's scan returns, before anything is read; the scans seen."""
    real_scan = records_module.scan_seeds
    scans: list[int] = []

    def scan_then_swap(seeds_dir: Path):
        found = real_scan(seeds_dir)
        scans.append(len(found))
        swap()
        return found

    monkeypatch.setattr(records_module, "scan_seeds", scan_then_swap)
    return scans


def assert_never_read(out: Path) -> None:
    for path in out.rglob("*"):  # the documents, the objects, cache.sqlite3, -wal, -shm
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def replace_with_symlink(target: Path, path: Path) -> None:
    temporary = path.with_name(".swap")
    os.symlink(target, temporary)
    if path.is_dir():
        path.rename(path.with_name(".old"))
    os.replace(temporary, path)


@pytest.mark.parametrize("where", ["file", "folder"])
def test_a_symlink_swapped_in_after_the_scan_is_not_followed(
    tmp_path: Path, config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    outside = outside_secret(tmp_path)
    write(seeds, "good.txt", "https://e.com/good")
    write(seeds / "sub", "a.txt", "https://e.com/a")
    if where == "file":
        scans = swap_after_scan(monkeypatch, lambda: replace_with_symlink(outside / "a.txt", seeds / "sub" / "a.txt"))
    else:
        scans = swap_after_scan(monkeypatch, lambda: replace_with_symlink(outside, seeds / "sub"))
    result = Builder(config()).build()
    assert scans == [2]
    assert result.ok and result.published, result.error
    assert links(out) == ["https://e.com/good"]
    assert [p.source for p in result.skipped] == ["sub/a.txt"]
    assert "symbolic link" in result.skipped[0].reason
    assert_never_read(out)


def test_a_fifo_swapped_in_after_the_scan_is_skipped_at_once(
    tmp_path: Path, config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    write(seeds, "good.txt", "https://e.com/good")
    write(seeds, "a.txt", "https://e.com/a")
    fifo = seeds / "a.txt"

    def swap() -> None:
        os.mkfifo(seeds / ".fifo")
        os.replace(seeds / ".fifo", fifo)

    swap_after_scan(monkeypatch, swap)
    results: list[BuildResult] = []
    build = threading.Thread(target=lambda: results.append(Builder(config()).build()), daemon=True)
    build.start()
    build.join(PROMPT)
    try:
        assert not build.is_alive(), "the build blocks on a FIFO"
    finally:
        if build.is_alive():  # let a blocked open() return, so the thread ends
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    result = results[0]
    assert result.ok and result.published, result.error
    assert links(out) == ["https://e.com/good"]
    assert [(p.source, "FIFO" in p.reason) for p in result.skipped] == [("a.txt", True)]
    status = written_json_is_utf8(out)
    assert [p["source"] for p in status["skipped"]] == ["a.txt"]


def prompt(call: Callable[[], object]) -> BaseException | None:
    """What `call` raised, within PROMPT seconds (a blocked call fails the test instead of hanging)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            raised.append(None)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(PROMPT)
    assert not thread.is_alive(), "the read blocks"
    return raised[0]


def test_reads_check_what_the_scan_saw(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds = tmp_path / "seeds"
    outside = outside_secret(tmp_path)
    seeds.mkdir()
    for name in ("fifo.txt", "sock.txt", "link.txt", "same.txt"):
        (seeds / name).write_text("scanned")
    scanned = {seed.rel: seed for seed in scan_seeds(seeds)}
    (seeds / ".new").write_text("another file under the same name")  # while the scanned one holds its inode
    os.replace(seeds / ".new", seeds / "same.txt")
    for name in ("fifo.txt", "sock.txt", "link.txt"):
        (seeds / name).unlink()
    os.mkfifo(seeds / "fifo.txt")
    monkeypatch.chdir(seeds)  # a socket's path must be short
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("sock.txt")
        os.symlink(outside / "a.txt", seeds / "link.txt")
        for name, reason in (("fifo.txt", "FIFO"), ("sock.txt", "socket"), ("link.txt", "symbolic link")):
            for read in (lambda s: read_seed(s, 1 << 20), read_head):
                raised = prompt(lambda read=read, name=name: read(scanned[name]))
                assert isinstance(raised, SeedSkipped) and reason in str(raised), (name, raised)
        assert isinstance(prompt(lambda: read_seed(scanned["same.txt"], 100)), FileNotFoundError)


def test_symlinks_inside_the_seeds_folder_still_read(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    (seeds / "real" / "deep").mkdir(parents=True)
    (seeds / "real" / "deep" / "a.txt").write_text("article")
    os.symlink(seeds / "real" / "deep" / "a.txt", seeds / "alias.txt")
    os.symlink("real/deep", seeds / "linked")
    found = {seed.rel: seed for seed in scan_seeds(seeds)}
    assert sorted(found) == ["alias.txt", "linked/a.txt"]  # a folder is walked once
    for seed in found.values():
        assert read_seed(seed, 1 << 20) == b"article"
        assert read_head(seed, 3) == b"art"


@pytest.mark.live
def test_worker_processes_read_and_report_such_files_too(
    tmp_path: Path, config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, with the files read in a process pool (SeedFile pickled to the workers)."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    for n in range(4):
        write(seeds, f"good{n}.txt", f"https://e.com/good{n}")
    write(seeds, BAD, "https://e.com/bad")
    write(seeds, "a.txt", "https://e.com/a")
    outside = outside_secret(tmp_path)
    monkeypatch.setattr(workers_module, "CHUNK", 1)
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 0, "nh3": 0})
    monkeypatch.setattr(workers_module, "SPAWN_MIN_FILES", {"bleach": 0, "nh3": 0})
    started = []
    real_stop = workers_module.Workers.stop

    def stop(self: workers_module.Workers) -> None:
        started.append(self.running)
        real_stop(self)

    monkeypatch.setattr(workers_module.Workers, "stop", stop)
    swap_after_scan(monkeypatch, lambda: replace_with_symlink(outside / "a.txt", seeds / "a.txt"))
    result = Builder(config()).build()
    assert True in started  # the files went to worker processes
    assert result.ok and result.published, result.error
    assert sorted(links(out)) == ["https://e.com/bad"] + [f"https://e.com/good{n}" for n in range(4)]
    assert [p.source for p in result.skipped] == ["a.txt"]
    assert_never_read(out)


def test_a_cold_start_publishes_newest_first_past_such_files(
    tmp_path: Path, config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first publish of a cold start reads each file's head (read_head) before the rest: a
    name that is not UTF-8 and a FIFO swapped in after the scan cost only themselves there too."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    for n in range(3):
        write(seeds, f"good{n}.txt", f"https://e.com/good{n}", stamp=1681696026000 + n * 1000)
    write(seeds, BAD, "https://e.com/bad", stamp=1681696030000)
    write(seeds, "a.txt", "https://e.com/a", stamp=1681696031000)
    monkeypatch.setattr(newest_module, "MIN_FILES", 2)  # a first publish, however few the files

    def swap() -> None:
        os.mkfifo(seeds / ".fifo")
        os.replace(seeds / ".fifo", seeds / "a.txt")

    heads: list[str] = []
    real_read_head = newest_module.read_head

    def counted_read_head(seed, *args):
        heads.append(seed.rel)
        return real_read_head(seed, *args)

    monkeypatch.setattr(newest_module, "read_head", counted_read_head)
    swap_after_scan(monkeypatch, swap)
    results: list[BuildResult] = []
    build = threading.Thread(target=lambda: results.append(Builder(config()).build(newest_first=True)), daemon=True)
    build.start()
    build.join(PROMPT)
    try:
        assert not build.is_alive(), "the cold start blocks on a FIFO"
    finally:
        if build.is_alive():
            os.close(os.open(seeds / "a.txt", os.O_WRONLY | os.O_NONBLOCK))
    assert sorted(heads) == ["a.txt", "bad%FFname.txt", "good0.txt", "good1.txt", "good2.txt"]
    result = results[0]
    assert result.ok and result.published, result.error
    assert links(out)[0] == "https://e.com/bad"
    assert len(links(out)) == 4
    assert [p.source for p in result.skipped] == ["a.txt"]
