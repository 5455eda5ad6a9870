"""The Procfile deployment: gunicorn with 4 workers runs exactly one builder, and another takes over."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import time
from pathlib import Path

import feedparser
from conftest import REPO, SAMPLE, seed_text
from live import BIN, feed_env, free_port, parent_of, running, wait_for


def procfile_command(name: str) -> list[str]:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"no {name}: line in the Procfile")


def build_lines(log: str) -> list[tuple[int, str]]:
    """(pid, line) for every completed build logged by any process."""
    return [(int(m.group(1)), m.group(0)) for m in re.finditer(r"\[(\d+)\] INFO feedsvc\.pipeline: build: .*", log)]


def test_four_workers_one_builder_and_takeover(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    port = free_port()
    env = feed_env(tmp_path, seeds, out, PORT=str(port), WEB_CONCURRENCY="4")
    command = procfile_command("web")
    assert command[0] == "gunicorn"
    command[0] = str(BIN / "gunicorn")
    # The Procfile binds 0.0.0.0:$PORT for a platform router; this test stays on loopback.
    command += ["--bind", f"127.0.0.1:{port}"]

    with running(command, env, port, tmp_path / "gunicorn.log") as srv:
        wait_for(lambda: len(re.findall(r"Booting worker with pid", srv.log())) >= 4, 20, what="4 workers")
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="first publish")
        time.sleep(1.0)  # let every worker finish starting: all of them have joined the election now

        (seeds / "new.txt").write_text(seed_text(1700000000000, "Fresh article", "https://e.com/fresh", "<p>x</p>"))

        def everyone_sees_it() -> bool:
            # Many requests spread over the workers: each must serve the new feed.
            return all(
                "Fresh article" in [e.title for e in feedparser.parse(srv.get("/feed.xml")[2]).entries]
                for _ in range(12)
            )

        wait_for(everyone_sees_it, 15, what="the new seed in every worker's feed")
        # The build's log line follows its publish: wait for it too, not just for the feed.
        wait_for(lambda: any("from 2 files" in line for _, line in build_lines(srv.log())), 10, what="its log line")
        builds = build_lines(srv.log())
        builders = {pid for pid, _ in builds}
        assert len(builders) == 1, builds
        fresh_builds = [line for _, line in builds if "from 2 files" in line]
        assert len(fresh_builds) == 1, builds  # read and built once, by one process
        leader = builders.pop()
        health = json.loads(srv.get("/healthz")[2])
        assert health["builder_pid"] == leader

        # The elected worker builds in a child process (the builder). Kill that worker outright:
        # its builder goes with it, another worker takes over the lock, and its own child builds.
        worker = parent_of(leader)
        assert worker in {int(p) for p in re.findall(r"Booting worker with pid: (\d+)", srv.log())}
        os.kill(worker, signal.SIGKILL)
        (seeds / "after.txt").write_text(seed_text(1700000001000, "After takeover", "https://e.com/after", "<p>y</p>"))
        wait_for(
            lambda: "After takeover" in [e.title for e in feedparser.parse(srv.get("/feed.xml")[2]).entries],
            20,
            what="a feed built by the new leader",
        )
        new_builders = wait_for(lambda: {pid for pid, _ in build_lines(srv.log())} - {leader}, 10,
                                what="the new leader's build log line")
        assert len(new_builders) == 1
        assert json.loads(srv.get("/healthz")[2])["builder_pid"] in new_builders
