"""Each file's processing has a time budget (`max_seed_seconds`), in a helper process that is
killed past it (pipeline/helpers.py): the file is skipped with that reason, cached by its bytes,
and no file delays another's publish by more than its budget. A stopping service kills its
helpers, so a build busy on a slow file ends at once.

A file is made slow by patching `process_file` in the builder's process before it builds: the
helper processes are forked from it afterwards (tests/conftest.py), so the patch reaches them.
Sleeping, rather than a nesting bomb, keeps the file slow whatever the sanitizer learns.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import conftest
import pytest
from live import alive, feed_env, free_port, parent_of, running, wait_for

import feedsvc.pipeline.helpers as helpers_module
import feedsvc.pipeline.workers as workers_module
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.helpers import Stopped, stop_helpers

SLOW = 3600.0
TOOK_LONGER = "took longer than max_seed_seconds=0.5 s"


def make_slow(monkeypatch: pytest.MonkeyPatch, calls: Path, slow: str = "slow") -> None:
    """Processing a file whose name holds `slow` sleeps; every file processed is logged to `calls`
    (from the helper process, hence a file)."""
    real = workers_module.process_file

    def process(data, seed, *rest):
        with calls.open("a") as fh:
            fh.write(seed.rel + "\n")
        if slow in seed.rel:
            time.sleep(SLOW)
        return real(data, seed, *rest)

    monkeypatch.setattr(workers_module, "process_file", process)


def processed(calls: Path) -> list[str]:
    return calls.read_text().split() if calls.exists() else []


def test_a_slow_file_costs_its_budget_and_is_skipped_with_the_reason(tmp_path, make_seed, config, monkeypatch):
    make_seed("a.txt", stamp_ms=1700000001000, title="A", url="https://e.com/a")
    make_seed("slow.txt", stamp_ms=1700000002000, title="Slow", url="https://e.com/slow")
    make_seed("c.txt", stamp_ms=1700000003000, title="C", url="https://e.com/c")
    calls = tmp_path / "calls"
    make_slow(monkeypatch, calls)
    cfg = config(max_seed_seconds=0.5)
    started = time.monotonic()
    result = Builder(cfg).build()
    assert time.monotonic() - started < 5  # the budget, a fresh helper, the build: not an hour
    assert result.ok and result.published and result.entries == 2
    assert [(Path(s.source).name, s.reason) for s in result.skipped] == [("slow.txt", TOOK_LONGER)]
    health = create_app(cfg, run_builder=False).test_client().get("/healthz").json
    assert [(Path(s["source"]).name, s["reason"]) for s in health["skipped"]] == [("slow.txt", TOOK_LONGER)]

    # Cached by its bytes: a restart does not try it again...
    calls.unlink()
    again = Builder(cfg).build()
    assert [s.reason for s in again.skipped] == [TOOK_LONGER] and again.entries == 2
    assert "slow.txt" not in processed(calls)
    # ...new bytes are tried (and fit once the file is not slow any more)...
    monkeypatch.undo()
    make_seed("slow.txt", stamp_ms=1700000002000, title="Slow", url="https://e.com/slow", body="<p>edited</p>")
    assert Builder(cfg).build().entries == 3


def test_another_budget_tries_a_skipped_file_again(tmp_path, make_seed, config, monkeypatch):
    make_seed("slow.txt", title="Slow", url="https://e.com/slow")
    calls = tmp_path / "calls"
    make_slow(monkeypatch, calls)
    assert [s.reason for s in Builder(config(max_seed_seconds=0.5)).build().skipped] == [TOOK_LONGER]
    skipped = Builder(config(max_seed_seconds=0.3)).build().skipped
    assert [s.reason for s in skipped] == ["took longer than max_seed_seconds=0.3 s"]
    assert processed(calls) == ["slow.txt", "slow.txt"]


def test_a_one_file_rebuild_reuses_its_helper_and_is_not_delayed(tmp_path, make_seed, config, monkeypatch):
    """After a slow file, the next files go on in a fresh helper; a later rebuild reuses the one
    kept (no process start for a one-file rebuild; its cost: benchmarks/seed_budget.py)."""
    for n in range(5):
        make_seed(f"{n}.txt", stamp_ms=1700000000000 + n, title=f"T{n}", url=f"https://e.com/{n}")
    make_seed("0-slow.txt", title="Slow", url="https://e.com/slow")
    calls = tmp_path / "calls"
    make_slow(monkeypatch, calls)
    started: list[int] = []  # helper processes started
    real = helpers_module.Helper.__init__
    monkeypatch.setattr(helpers_module.Helper, "__init__", lambda self, *a: started.append(1) or real(self, *a))
    builder = Builder(config(max_seed_seconds=0.5))
    assert builder.build().entries == 5
    assert len(started) == 2  # the first, killed on the slow file, and the one that went on
    make_seed("new.txt", title="New", url="https://e.com/new")
    calls.unlink()
    result = builder.build(changed=["new.txt"])
    assert result.entries == 6 and len(started) == 2 and processed(calls) == ["new.txt"]


def test_a_helper_that_dies_gets_its_file_once_more(tmp_path, make_seed, config, monkeypatch):
    make_seed("crash-once.txt", stamp_ms=1700000001000, title="Once", url="https://e.com/once")
    make_seed("crash-always.txt", stamp_ms=1700000002000, title="Always", url="https://e.com/always")
    make_seed("fine.txt", stamp_ms=1700000003000, title="Fine", url="https://e.com/fine")
    crashed = tmp_path / "crashed"
    real = workers_module.process_file

    def process(data, seed, *rest):
        if seed.rel == "crash-always.txt" or (seed.rel == "crash-once.txt" and not crashed.exists()):
            crashed.touch()
            os._exit(3)  # as a segfault or the OOM killer would end it
        return real(data, seed, *rest)

    monkeypatch.setattr(workers_module, "process_file", process)
    result = Builder(config()).build()
    assert result.entries == 2
    assert [(Path(s.source).name, s.reason) for s in result.skipped] == [
        ("crash-always.txt", "its processing crashed (twice)")
    ]


def test_stopping_ends_a_build_busy_on_a_slow_file(tmp_path, make_seed, config, monkeypatch):
    make_seed("slow.txt", title="Slow", url="https://e.com/slow")
    make_slow(monkeypatch, tmp_path / "calls")
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            Builder(config(max_seed_seconds=3600)).build()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    stop_helpers()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], Stopped)


@pytest.mark.live
def test_a_slow_file_among_many_costs_its_budget_with_several_helpers(tmp_path, config, monkeypatch):
    """The pool path: chunks of files queued on two helpers; the one on the slow file is replaced,
    its chunk's other files and the chunk queued behind it go on in another."""
    from benchmarks.corpus import write_corpus

    write_corpus(tmp_path / "seeds", 300)
    slow = sorted(p.name for p in (tmp_path / "seeds").iterdir())[5]
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 1})
    make_slow(monkeypatch, tmp_path / "calls", slow=slow)
    started = time.monotonic()
    result = Builder(config(build_workers=2, max_seed_seconds=1)).build()
    assert time.monotonic() - started < 30
    skipped = [(Path(s.source).name, s.reason) for s in result.skipped]
    assert skipped == [(slow, "took longer than max_seed_seconds=1 s")]
    calls = processed(tmp_path / "calls")
    assert len(calls) == 300 and len(set(calls)) == 300  # each file once, none lost with the killed helper


BOMBS = {
    "div": b"<div>" * 200_000,
    "b": b"<b>" * 330_000,
    "font-p": b"<font><p>" * 100_000,
}


@pytest.mark.parametrize("sanitizer", ["bleach", "nh3"])
def test_a_nesting_bomb_costs_at_most_its_budget(tmp_path, make_seed, config, sanitizer):
    """A 1 MB bomb is published (flattened) or skipped past its budget: either way within it, and
    the other files are published."""
    pytest.importorskip(sanitizer)
    make_seed("good.txt", stamp_ms=1700000009000, title="Good", url="https://e.com/good")
    for n, (name, body) in enumerate(BOMBS.items()):
        raw = b"<!--%d-->\n[Bomb](https://e.com/%s)\n\n" % (1700000000000 + n, name.encode()) + body
        (tmp_path / "seeds" / f"bomb-{name}.txt").write_bytes(raw)
    started = time.monotonic()
    result = Builder(config(max_seed_seconds=1, sanitizer=sanitizer)).build()
    assert time.monotonic() - started < len(BOMBS) * 1 + 5
    assert result.ok and result.published
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    skipped = {Path(s["source"]).name: s["reason"] for s in status["skipped"]}
    assert set(skipped.values()) <= {"took longer than max_seed_seconds=1 s"}
    assert result.entries + len(skipped) == len(BOMBS) + 1


# --- live: `feedsvc serve`, a seed made slow by tests/faults/sitecustomize.py ----------------------

FAULTS = Path(__file__).resolve().parent / "faults"
FEEDSVC = [sys.executable, "-m", "feedsvc"]


def slow_env(tmp_path: Path, seeds: Path, budget: str) -> dict[str, str]:
    markers = tmp_path / "faults"
    markers.mkdir(exist_ok=True)
    (markers / "slow-seeds").touch()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_MAX_SEED_SECONDS=budget)
    env.update(PYTHONPATH=str(FAULTS), TEST_FAULTS_DIR=str(markers), TEST_FAULTS_SLOW="1")
    return env


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (walking /proc, as tests/live.py's `parent_of` reads it)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = parent_of(int(entry.name))
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found



@pytest.mark.live
def test_serve_skips_a_slow_seed_and_lists_it_in_healthz(tmp_path: Path, seeds: Path) -> None:
    conftest.write_seed(seeds, "slow.txt", title="Slow", url="https://e.com/slow")
    port = free_port()
    with running([*FEEDSVC, "serve", "--port", str(port)], slow_env(tmp_path, seeds, "1"), port,
                 tmp_path / "serve.log") as srv:
        state = wait_for(lambda: (h := json.loads(srv.get("/healthz")[2])).get("skipped") and h, 20, what="the skip")
        assert [(Path(s["source"]).name, s["reason"]) for s in state["skipped"]] == [
            ("slow.txt", "took longer than max_seed_seconds=1 s")]
        assert srv.get("/feed.xml")[0] == 200
        assert "Traceback" not in srv.log()


@pytest.mark.live
def test_serve_busy_on_a_slow_seed_leaves_no_process_on_sigterm(tmp_path: Path, seeds: Path) -> None:
    """The builder waits on a helper that sleeps for an hour (budget: an hour); SIGTERM to the
    master alone, as a process manager sends it: within 10 s no process of the service remains."""
    conftest.write_seed(seeds, "slow.txt", title="Slow", url="https://e.com/slow")
    port = free_port()
    env = slow_env(tmp_path, seeds, "3600")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log", ready=False) as srv:
        wait_for(lambda: (tmp_path / "faults" / "slow-started").exists(), 30, what="the builder busy on slow.txt")
        below = descendants(srv.proc.pid)
        assert len(below) >= 3, below  # web workers, the builder, its helper
        os.kill(srv.proc.pid, signal.SIGTERM)
        started = time.monotonic()
        wait_for(lambda: not alive(srv.proc.pid) and not any(alive(p) for p in below), 10, what="every process gone")
        assert time.monotonic() - started < 10
        srv.proc.wait(5)
        assert "build job failed" not in srv.log()


def test_an_error_reading_one_file_in_a_helper_is_that_files_problem(tmp_path, make_seed, config, monkeypatch):
    """A helper survives any error of one file's read (the helper reads on a cold build)."""
    make_seed("odd.txt", stamp_ms=1700000001000, title="Odd", url="https://e.com/odd")
    make_seed("fine.txt", stamp_ms=1700000002000, title="Fine", url="https://e.com/fine")
    real = workers_module.read_seed

    def read(seed, limit):
        if seed.rel == "odd.txt":
            raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")
        return real(seed, limit)

    monkeypatch.setattr(workers_module, "read_seed", read)
    result = Builder(config()).build()
    assert result.entries == 1
    assert [(Path(s.source).name, s.reason.split(":")[:2]) for s in result.skipped] == [
        ("odd.txt", ["cannot read", " UnicodeEncodeError"])
    ]
