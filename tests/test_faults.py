"""Faults: a full or read-only disk, a vanishing or unreadable seeds folder, files deleted mid-read or
written slowly. The last good feed keeps being served, /healthz says what is wrong, and the service
recovers by itself once the fault clears.

Tests run as root in CI, where chmod cannot make anything unreadable or read-only. Faults are
injected instead: in-process by patching the I/O function, and in a server subprocess by
`tests/faults/sitecustomize.py` (on its PYTHONPATH), switched on and off by marker files.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import conftest
import feedparser
import pytest
from conftest import SAMPLE, seed_text
from live import Server, alive, feed_env, free_port, running, wait_for
from schemas import validate_atom

import feedsvc.pipeline.load as build_module
import feedsvc.pipeline.workers as pool_module
import feedsvc.publish.writer as publish_module
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import MANIFEST, read_manifest
from feedsvc.service.runner import SettleWait

FEEDSVC = [sys.executable, "-m", "feedsvc"]
FAULTS = Path(__file__).resolve().parent / "faults"


def feed_titles(body: bytes) -> list[str]:
    return [e.title for e in feedparser.parse(body).entries]


def tmp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob(".tmp-*")]


# --- in-process: the Builder under patched I/O ------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT])
def test_unwritable_output_keeps_the_last_feed_and_recovers(tmp_path: Path, make_seed, config, monkeypatch,
                                                            code: int) -> None:
    out = tmp_path / "out"
    make_seed("a.txt", title="First", url="https://e.com/a")
    builder = Builder(config())
    assert builder.build().published
    feed_before, manifest_before = (out / "feed.xml").read_bytes(), (out / MANIFEST).read_bytes()

    real = publish_module.write_atomic
    calls = []

    def failing(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
        calls.append(path.name)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(publish_module, "write_atomic", failing)
    make_seed("b.txt", stamp_ms=1681696099000, title="Second", url="https://e.com/b")
    failed = builder.build()
    assert not failed.ok and not failed.published and calls
    assert os.strerror(code) in failed.error
    assert (out / "feed.xml").read_bytes() == feed_before and (out / MANIFEST).read_bytes() == manifest_before
    # status.json could not be written either: the builder still knows, for /healthz.
    assert builder.last_status is not None and builder.last_status["ok"] is False
    assert builder.last_status["status_file_error"] == os.strerror(code)
    assert json.loads((out / "status.json").read_text())["ok"] is True  # stale on disk, as on a full disk

    monkeypatch.setattr(publish_module, "write_atomic", real)
    recovered = builder.build()  # no seed changed since the failure: the rebuild still publishes
    assert recovered.ok and recovered.published
    assert feed_titles((out / "feed.xml").read_bytes()) == ["Second", "First"]
    assert builder.last_status["ok"] is True and "status_file_error" not in builder.last_status
    assert tmp_files(out) == []


def test_write_failing_midway_leaves_no_temp_file_and_a_complete_feed(tmp_path: Path, make_seed, config,
                                                                      monkeypatch) -> None:
    """ENOSPC at fsync, after the bytes were written into the temp file: the temp file goes."""
    out = tmp_path / "out"
    make_seed("a.txt", title="First", url="https://e.com/a")
    builder = Builder(config())
    builder.build()
    real_fsync = publish_module.os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publish_module.os, "fsync", full)
    make_seed("b.txt", stamp_ms=1681696099000, title="Second", url="https://e.com/b")
    assert not builder.build().ok
    monkeypatch.setattr(publish_module.os, "fsync", real_fsync)
    assert tmp_files(out) == []
    assert validate_atom((out / "feed.xml").read_bytes()) == []
    assert feed_titles((out / "feed.xml").read_bytes()) == ["First"]


def read_where_files_are_read(monkeypatch, read) -> None:
    """Files are read to be hashed (build) and to be processed (pool; on a cold build, only there)."""
    for module in (build_module, pool_module):
        monkeypatch.setattr(module, "read_seed", read)


def test_seed_deleted_mid_read(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """Listed by the scan, gone when opened: left out of this build, no error, the rest published."""
    for name in ("a", "b", "c"):
        make_seed(f"{name}.txt", title=name.upper(), url=f"https://e.com/{name}")
    real = build_module.read_seed

    def vanishing(seed, limit):
        if seed.rel == "b.txt":
            Path(seed.path).unlink()
        return real(seed, limit)

    read_where_files_are_read(monkeypatch, vanishing)
    result = Builder(config()).build()
    assert result.ok and result.published and result.skipped == []
    assert sorted(feed_titles((tmp_path / "out" / "feed.xml").read_bytes())) == ["A", "C"]


def test_seed_truncated_mid_read_is_published_when_complete(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """A file cut short between stat and read (a writer truncating it) is re-read when its stat changes."""
    path = make_seed("a.txt", title="Whole", url="https://e.com/a", body="<p>start</p>" + "<p>x</p>" * 50
                     + "<p>END-OF-ARTICLE</p>")
    full = path.read_bytes()
    real = build_module.read_seed

    def truncating(seed, limit):
        path.write_bytes(full[:70])  # the writer truncates and starts over
        return real(seed, limit)

    read_where_files_are_read(monkeypatch, truncating)
    builder = Builder(config())
    builder.build()
    read_where_files_are_read(monkeypatch, real)
    path.write_bytes(full)
    builder.build()
    body = (tmp_path / "out" / "feed.xml").read_bytes()
    assert b"END-OF-ARTICLE" in body and feed_titles(body) == ["Whole"]


def test_seeds_folder_unlistable_keeps_the_last_feed(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    import feedsvc.pipeline.seeds as seeds_module

    make_seed("a.txt", title="Kept", url="https://e.com/a")
    builder = Builder(config())
    builder.build()
    before = (tmp_path / "out" / "feed.xml").read_bytes()
    real = seeds_module.os.scandir

    def denied(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(seeds_module.os, "scandir", denied)
    failed = builder.build()
    assert not failed.ok and "cannot be listed" in failed.error
    assert (tmp_path / "out" / "feed.xml").read_bytes() == before
    monkeypatch.setattr(seeds_module.os, "scandir", real)
    assert builder.build().ok


def test_settling_never_starves_publishing(tmp_path: Path, make_seed, config) -> None:
    """A folder that always holds a fresh file (a scraper writing every 100 ms) still gets published.

    Regression: the builder deferred the whole build while any file was younger than `settle`,
    with no cap, so such a folder was never published again.
    """
    seeds = tmp_path / "seeds"
    make_seed("old.txt", title="Settled", url="https://e.com/old")
    clock = [time.time() + 10]
    builder = Builder(config(debounce_max=2.0))
    settling = SettleWait(max_wait=2.0)  # the service's rule: wait at most debounce_max in a row
    assert builder.build(settle=0.5, now=clock[0]).published
    published_titles: list[list[str]] = []
    for n in range(40):  # 4 s of a new file every 100 ms, each one fresh when the build runs
        path = make_seed(f"new-{n:02}.txt", stamp_ms=1681696026000 + (n + 1) * 1000, title=f"New {n}",
                         url=f"https://e.com/{n}")
        stamp = clock[0] - 0.001  # just written (an mtime in the future would count as settled)
        os.utime(path, (stamp, stamp))
        wait = settling.may_wait(clock[0])
        result = builder.build(settle=0.5, wait=wait, now=clock[0])
        settling.after(result, clock[0], wait)
        # The files of the last 0.5 s (settle) are still being written: never read, never published.
        assert result.ok and path.relative_to(seeds).as_posix() in result.deferred and len(result.deferred) <= 6
        if result.published:
            published_titles.append(feed_titles((tmp_path / "out" / "feed.xml").read_bytes()))
        clock[0] += 0.1
    # Published about every debounce_max (2 s of the fake clock), never a file younger than settle.
    assert 1 <= len(published_titles) <= 3, published_titles
    for titles in published_titles:
        newest = int(titles[0].split()[1])
        assert titles[-1] == "Settled" and newest >= 10
        assert all(f"New {m}" in titles for m in range(newest))  # every settled file is in
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["ok"] is True and status["deferred"]


def test_settle_still_defers_a_file_being_written(tmp_path: Path, make_seed, config) -> None:
    make_seed("old.txt", title="Settled", url="https://e.com/old")
    now = time.time()
    builder = Builder(config())
    first = builder.build(settle=0.5, now=now + 0.1)  # the file is 0.1 s old
    assert first.waiting and first.deferred == ["old.txt"] and not first.published
    assert not (tmp_path / "out" / "feed.xml").exists()
    assert builder.build(settle=0.5, now=now + 1.0).published


# --- live: `feedsvc serve` with faults injected by tests/faults/sitecustomize.py ---------------


def faulty_env(tmp_path: Path, seeds: Path, out: Path, **extra: str) -> dict[str, str]:
    markers = tmp_path / "faults"
    markers.mkdir(exist_ok=True)
    env = feed_env(tmp_path, seeds, out, FEEDSVC_SCAN_INTERVAL="60", **extra)
    env.update(PYTHONPATH=str(FAULTS), TEST_FAULTS_DIR=str(markers), TEST_FAULTS_OUT=str(out),
               TEST_FAULTS_SEEDS=str(seeds))
    return env


def health(srv: Server) -> dict:
    return json.loads(srv.get("/healthz")[2])


def healthy(srv: Server) -> dict | None:
    """/healthz once it reports a good last build (else None): a predicate for wait_for."""
    state = health(srv)
    return state if state["status"] == "ok" and state["last_build"] and state["last_build"]["ok"] is True else None


def write_seed(folder: Path, name: str, title: str, n: int) -> None:
    conftest.write_seed(folder, name, 1700000000000 + n * 1000, title, f"https://e.com/{name}", f"<p>{title}</p>")


@pytest.mark.live
def test_disk_full_and_read_only_output_live(tmp_path: Path, seeds: Path) -> None:
    out = tmp_path / "out"
    markers = tmp_path / "faults"
    port = free_port()
    env = faulty_env(tmp_path, seeds, out)
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 15, what="first feed")
        for n, (fault, message) in enumerate((("disk-full", "No space left on device"),
                                              ("read-only", "Read-only file system"))):
            _, headers, good = srv.get("/feed.xml")
            (markers / fault).touch()
            write_seed(seeds, f"{fault}.txt", f"During {fault}", n)
            state = wait_for(lambda: (h := health(srv))["status"] == "degraded" and h, 15, what=f"{fault} reported")
            assert message in state["last_build"]["error"], state
            # /healthz names no absolute path: the (absolute) output folder by its key.
            assert state["last_build"]["error"] == f"cannot publish to output directory (output_dir): {message}"
            assert str(tmp_path) not in json.dumps(state)
            assert state["last_build"]["status_file_error"] == message  # status.json was not writable either
            status, again_headers, body = srv.get("/feed.xml")
            assert (status, again_headers["etag"], body) == (200, headers["etag"], good)
            assert f"During {fault}" not in feed_titles(body)
            # The fault clears; no seed changes: the builder's retry publishes by itself.
            (markers / fault).unlink()
            wait_for(lambda f=fault: f"During {f}" in feed_titles(srv.get("/feed.xml")[2]), 15, what="recovery")
            # The feed is published before that build's status is recorded: wait for /healthz to say so.
            state = wait_for(lambda: healthy(srv), 15, what=f"/healthz ok after {fault}")
            assert state["status"] == "ok" and state["last_build"]["ok"] is True
            assert "status_file_error" not in state["last_build"], state
            assert validate_atom(srv.get("/feed.xml")[2]) == []
        assert tmp_files(out) == []
        assert "Traceback" not in srv.log()


@pytest.mark.live
def test_seeds_folder_vanishes_reappears_and_becomes_unreadable_live(tmp_path: Path, seeds: Path) -> None:
    out = tmp_path / "out"
    port = free_port()
    env = faulty_env(tmp_path, seeds, out)  # rescan every 60 s: only events and retries can recover
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 15, what="first feed")
        _, headers, good = srv.get("/feed.xml")

        shutil.rmtree(seeds)
        state = wait_for(lambda: (h := health(srv))["status"] == "degraded" and h, 15, what="vanished reported")
        assert "does not exist" in state["last_build"]["error"]
        assert srv.get("/feed.xml")[1]["etag"] == headers["etag"]

        seeds.mkdir()
        shutil.copy(SAMPLE, seeds / SAMPLE.name)
        write_seed(seeds, "back.txt", "Back again", 1)
        wait_for(lambda: "Back again" in feed_titles(srv.get("/feed.xml")[2]), 15, what="recovery after return")
        assert wait_for(lambda: healthy(srv), 15, what="/healthz ok after return")["status"] == "ok"
        # Regression: inotify watched the deleted folder's inode, so changes in the new folder went
        # unseen until the 60 s rescan. Now the watch is re-armed on the new folder, after the build
        # that saw it return: wait until the service says it watches it again, then write.
        wait_for(lambda: "appeared: watching it again" in srv.log(), 15, what="the watch re-armed")
        write_seed(seeds, "later.txt", "Seen by events", 2)
        written = [time.monotonic()]

        def seen_by_events() -> bool:
            if "Seen by events" in feed_titles(srv.get("/feed.xml")[2]):
                return True
            if time.monotonic() - written[0] > 3:  # the log line comes just before the watch is added
                write_seed(seeds, "later.txt", "Seen by events", 2)  # another event, not a rescan
                written[0] = time.monotonic()
            return False

        wait_for(seen_by_events, 10, what="event in new folder")

        _, headers, good = srv.get("/feed.xml")
        (tmp_path / "faults" / "seeds-unreadable").touch()
        write_seed(seeds, "hidden.txt", "Unlistable", 3)
        # An event about one file needs no listing (the build stats just that file); a new folder
        # asks for a full scan, which must list the seeds folder, and fail.
        (seeds / "new-folder").mkdir()
        state = wait_for(lambda: (h := health(srv))["status"] == "degraded" and h, 15, what="unreadable reported")
        assert "cannot be listed" in state["last_build"]["error"]
        assert srv.get("/feed.xml")[2] == good
        (tmp_path / "faults" / "seeds-unreadable").unlink()
        wait_for(lambda: "Unlistable" in feed_titles(srv.get("/feed.xml")[2]), 15, what="recovery after unreadable")
        # As above: the status of the build that published comes a moment after its feed.
        state = wait_for(lambda: healthy(srv), 15, what="/healthz ok after unreadable")
        assert state["status"] == "ok"
        assert state["etag"] == srv.get("/feed.xml")[1]["etag"]


@pytest.mark.live
def test_slowly_written_seed_is_never_published_half_written(tmp_path: Path, seeds: Path) -> None:
    """A writer appends a chunk every 0.2 s (less than the 0.5 s settle time) for ~2.5 s; readers poll."""
    out = tmp_path / "out"
    port = free_port()
    env = feed_env(tmp_path, seeds, out, FEEDSVC_DEBOUNCE="0.05")
    text = seed_text(1700000000000, "Slow article", "https://e.com/slow",
                     "".join(f"<p>paragraph {n} " + "text " * 40 + "</p>" for n in range(12)) + "<p>END-OF-ARTICLE</p>")
    data = text.encode()
    chunks = [data[i:i + len(data) // 12 + 1] for i in range(0, len(data), len(data) // 12 + 1)]
    seen: list[bytes] = []
    writing = threading.Event()  # set while the file on disk is incomplete
    polls_while_writing = [0]
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        stop = threading.Event()

        def poll() -> None:
            """Polls until it has itself seen the article a few times (the readers' view is what is tested)."""
            deadline = time.monotonic() + 20
            sightings = 0
            while not stop.is_set() and time.monotonic() < deadline and sightings < 3:
                during = writing.is_set()
                body = srv.get("/feed.xml")[2]
                seen.append(body)
                # A poll that began and ended while the file was incomplete saw a half-written state's chance.
                polls_while_writing[0] += during and writing.is_set()
                sightings += b"Slow article" in body
                time.sleep(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            with open(seeds / "slow.txt", "wb") as fh:
                writing.set()
                for chunk in chunks[:-1]:
                    fh.write(chunk)
                    fh.flush()
                    time.sleep(0.2)
                writing.clear()
                fh.write(chunks[-1])
            poller.join(timeout=25)
        finally:
            stop.set()
            poller.join(timeout=25)
        # The status of the build that published the article is written just after its feed:
        # read `skipped` once /healthz's last build is the one whose feed is served.
        state = wait_for(lambda: (h := health(srv))["last_build"] and h["last_build"]["etag"] == h["etag"] and h,
                         15, what="the status of the served feed's build")
        skipped = state["skipped"]
    with_article = [body for body in seen if b"Slow article" in body]
    # Readers polled while the file was incomplete (about 2.4 s of it; a count, not a rate, so a slow
    # machine still passes), and saw the article only once whole.
    assert polls_while_writing[0] >= 5 and with_article
    assert "Slow article" in feed_titles(with_article[-1])  # an entry with that title, not just those bytes
    assert all(b"END-OF-ARTICLE" in body for body in with_article)
    assert skipped == []
    assert "still being written" in (tmp_path / "serve.log").read_text()


def test_manifest_is_read_back_whole(tmp_path: Path, make_seed, config) -> None:
    """Sanity for the checks above: the published manifest points at objects that hash to their ETags."""
    make_seed("a.txt", url="https://e.com/a")
    Builder(config()).build()
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None
    for meta in manifest["documents"].values():
        body = (tmp_path / "out" / "objects" / meta["object"]).read_bytes()
        assert '"' + hashlib.sha256(body).hexdigest()[:32] + '"' == meta["etag"]  # a strong ETag of the bytes


_POOL_CHILD = """
import sys, time
from datetime import UTC, datetime
import feedsvc.pipeline.workers as workers_module
from feedsvc.pipeline.workers import Workers
from feedsvc.model import EntrySettings, SeedFile
workers_module.POOL_MIN_FILES = workers_module.SPAWN_MIN_FILES = {"bleach": 1}
def busy(*args):  # every helper (forked: this process has one thread) busy on its first file
    print("ready", flush=True)
    time.sleep(3600)
workers_module.process_file = busy
workers = Workers(EntrySettings(max_seed_seconds=3600), 1 << 20, datetime.now(UTC), 2)
items = [(SeedFile(f"/nonexistent/{n}", f"{n}.txt", 1, 1, n), b"x") for n in range(200)]
workers.start_for(len(items))
assert workers.running
list(workers.process(items))
"""



@pytest.mark.live
def test_pool_workers_exit_when_their_builder_is_killed(tmp_path: Path) -> None:
    """A builder killed mid-build (SIGKILL, or gunicorn's graceful timeout) leaves no helper
    behind, even one busy on a file: the kernel kills them with it (Linux)."""
    import signal
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", _POOL_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        workers = [int(p) for p in Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()]
        workers = [pid for pid in workers if "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()]
        assert workers and all(alive(pid) for pid in workers)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    try:
        wait_for(lambda: not any(alive(pid) for pid in workers), 15, what="the pool's workers to exit")
    finally:
        for pid in filter(alive, workers):  # the test's own leftovers, should it fail
            os.kill(pid, signal.SIGKILL)
