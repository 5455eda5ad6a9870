"""`feedsvc serve` for real, with its builder attacked: stopped by SIGSTOP (/healthz says
`stalled`, and names no stopped builder), and its output folder deleted while it serves (one
builder, never two)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE, seed_text
from live import Server, feed_env, free_port, parent_of, running, wait_for

pytestmark = pytest.mark.live

FEEDSVC = [sys.executable, "-m", "feedsvc"]


def health(srv: Server) -> tuple[int, dict]:
    status, _, body = srv.get("/healthz", timeout=5)
    return status, json.loads(body)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if parent_of(int(entry.name)) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def builder_children(master: int) -> list[int]:
    """The live builder processes under `master`: its workers' spawned children (not the
    resource trackers), zombies and stopped ones left out."""
    found = []
    for worker in children(master):
        for child in children(worker):
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if b"spawn_main" in cmdline and state not in "ZXT":
                found.append(child)
    return found


def test_a_stopped_builder_is_stalled_and_never_named(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_STALL_SECONDS="2")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        builder = wait_for(lambda: health(srv)[1]["builder_pid"], 15, what="a builder named in /healthz")
        os.kill(builder, signal.SIGSTOP)
        try:
            # A seed waits, and the builder cannot build it.
            (seeds / "waiting.txt").write_text(seed_text(1700000000000, "Waiting", "https://e.com/w", "<p>w</p>"))

            def stalled() -> dict | None:
                status, body = health(srv)
                return body if status == 503 and body["status"] == "stalled" else None

            body = wait_for(stalled, 20, interval=0.2, what="/healthz 503 stalled")
            assert f"pid {builder}" in body["reason"] and "seeds wait" in body["reason"]
            assert body["builder_pid"] is None  # a stopped process is no live builder
        finally:
            os.kill(builder, signal.SIGCONT)

        def recovered() -> dict | None:
            status, body = health(srv)
            return body if status == 200 and body["status"] == "ok" and body["last_build"]["files"] == 2 else None

        body = wait_for(recovered, 20, interval=0.2, what="/healthz back to 200 ok")
        assert body["builder_pid"] == builder and "reason" not in body


def test_output_folder_deleted_while_serving_one_builder(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    port = free_port()
    env = feed_env(tmp_path, seeds, out)
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        master = srv.proc.pid
        old = wait_for(lambda: health(srv)[1]["builder_pid"], 15, what="a builder named in /healthz")
        leader = parent_of(old)
        wait_for(lambda: len(children(master)) == 2, 15, what="two workers")
        waiting = next(pid for pid in children(master) if pid != leader)
        out.rename(tmp_path / "deleted")  # the folder goes at once (a builder may be writing into it)
        shutil.rmtree(tmp_path / "deleted", ignore_errors=True)
        os.kill(waiting, signal.SIGKILL)  # gunicorn starts another worker: it finds no lock file

        def settled() -> int | None:
            builders = builder_children(master)
            named = health(srv)[1]["builder_pid"]
            return named if builders == [named] and (out / "feed.xml").exists() else None

        new = wait_for(settled, 30, interval=0.2, what="one builder, named, and a feed in the new folder")
        log = srv.log()
        assert f"[{leader}] WARNING feedsvc.leader: pid {leader}: lock file" in log
        if new != old:
            # The old builder stopped before the new one started: never two.
            stopped = log.index(f"builder process {old} stopped")
            assert stopped < log.index(f"builder started in pid {new}")
        assert builder_children(master) == [new]
        # Every build after the deletion is the one builder's.
        after = log[log.index("lock file"):]
        assert {int(p) for p in re.findall(r"\[(\d+)\] INFO feedsvc\.build: build:", after)} <= {new}
