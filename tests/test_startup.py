"""What a new user sees when something is wrong at start-up, against the real commands (the venv's
`feedsvc` script): a busy port, a missing seeds folder, relative paths run from another folder, a
failed `build`, `watch` stopping, and /healthz never showing the server's absolute paths."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SAMPLE
from live import BIN, Server, feed_env, free_port, running, wait_for

from feedsvc.pipeline.builder import Builder
from feedsvc.service.runner import RETRY_MAX_SECONDS, RETRY_SECONDS, BuilderService

FEEDSVC = [str(BIN / "feedsvc")]


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | (env or {})
    config = cwd / "feedsvc-test.toml"
    config.touch()
    full_env.setdefault("FEEDSVC_CONFIG", str(config))
    return subprocess.run([*FEEDSVC, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=60)


def lines(log: str, level: str) -> list[str]:
    """The log lines of one level, feedsvc's (`WARNING name:`) and gunicorn's (`[ERROR]`) alike."""
    return [line for line in log.splitlines() if re.search(rf"\b{level}\b", line)]


def health(srv: Server) -> dict:
    return json.loads(srv.get("/healthz")[2])


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """The working directory of the command under test, as the command itself sees it."""
    return tmp_path.resolve()


@pytest.fixture
def seeds_here(here: Path) -> Path:
    """here/seeds with the sample: conftest's `seeds`, under the path the command sees."""
    folder = here / "seeds"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    return folder


# --- a busy port ---------------------------------------------------------------------------------


@pytest.mark.live
def test_a_second_serve_on_a_busy_port_says_so_in_one_line(here: Path, seeds_here: Path) -> None:
    port = free_port()
    env = feed_env(here, seeds_here, here / "out")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, here / "first.log"):
        started = time.monotonic()
        second = run(["serve", "--port", str(port), "--out", str(here / "out2")], here, env)
        print(f"a second feedsvc serve on a busy port exited after {time.monotonic() - started:.2f} s")
    assert second.returncode == 2, second.stderr
    assert second.stdout == ""
    assert len(second.stderr.splitlines()) == 1, second.stderr
    line = second.stderr.strip()
    assert f"127.0.0.1:{port}" in line and "already in use" in line, line
    assert "--port" in line and "FEEDSVC_PORT" in line, line
    assert "ERROR" not in line and "Connection in use" not in line


# --- a missing seeds folder under serve ----------------------------------------------------------


@pytest.mark.live
def test_serve_without_a_seeds_folder_warns_once_retries_quietly_and_recovers(here: Path) -> None:
    port = free_port()
    env = feed_env(here, Path("seeds"), Path("out"))  # relative, to the working directory `here`
    args = [*FEEDSVC, "serve", "--port", str(port)]
    with running(args, env, port, here / "serve.log", ready=False, cwd=here) as srv:
        srv.wait_ready("/healthz", status=503)
        # Three failed builds: the first, then retries after 2 s and 4 s (about 6 s in all).
        state = wait_for(lambda: ((h := health(srv))["last_build"] or {}).get("number", 0) >= 3 and h, 20,
                         what="three failed builds")
        status, _, body = srv.get("/healthz")
        log = srv.log()
        assert status == 503 and state["status"] == "unavailable"
        assert state["last_build"]["ok"] is False
        assert state["last_build"]["error"] == "seeds directory seeds does not exist"
        assert str(here) not in body.decode()
        assert lines(log, "ERROR") == [] and "Traceback" not in log, log
        warnings = lines(log, "WARNING")
        assert len(warnings) == 1, log
        assert f"seeds directory seeds (relative to {here}) does not exist" in warnings[0]
        assert "nothing published yet" in warnings[0]

        # The folder appears (with a seed): the quiet retry notices it, and the feed is published.
        (here / "seeds").mkdir()
        shutil.copy(SAMPLE, here / "seeds" / SAMPLE.name)
        srv.wait_ready("/feed.xml", status=200, timeout=20)
        _, headers, feed = srv.get("/feed.xml")
        assert health(srv)["status"] == "ok"

        # It goes missing after a publish: one more warning, the last feed stays served.
        shutil.rmtree(here / "seeds")
        wait_for(lambda: ((h := health(srv))["last_build"] or {}).get("number", 0) >= state["last_build"]["number"]
                 + 4 and h["status"] == "degraded", 30, what="three failed builds after the folder went")
        assert srv.get("/feed.xml")[1]["etag"] == headers["etag"] and srv.get("/feed.xml")[2] == feed
        log = srv.log()
    assert lines(log, "ERROR") == [] and "Traceback" not in log, log
    warnings = lines(log, "WARNING")
    assert len(warnings) == 2, log
    assert "does not exist" in warnings[1] and "the last published feed stays" in warnings[1]


def test_failed_builds_back_off_and_warn_once_per_reason(tmp_path: Path, config, caplog) -> None:
    service = BuilderService(config(scan_interval=60.0, watch="off"))  # no file events: only retries
    delays: list[float] = []
    service._schedule_in = delays.append  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.DEBUG, logger="feedsvc.watch"):
            for _ in range(5):
                service._run()
            (tmp_path / "seeds").mkdir()
            service._run()
            shutil.rmtree(tmp_path / "seeds")
            service._run()
    finally:
        service.stop()
    assert delays == [RETRY_SECONDS, 2 * RETRY_SECONDS, RETRY_MAX_SECONDS, RETRY_MAX_SECONDS, RETRY_MAX_SECONDS,
                      RETRY_SECONDS]  # the success in between schedules nothing, and resets the backoff
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and all("does not exist" in m for m in warned), warned
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("succeeded after 5 failed attempt(s)" in r.getMessage() for r in caplog.records)


# --- `feedsvc build` and relative paths from another folder -------------------------------------


@pytest.mark.live
def test_build_prints_a_failure_once(here: Path) -> None:
    done = run(["build", "--seeds", "nope", "--out", "out"], here)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"feedsvc build: seeds directory nope (relative to {here}) does not exist"]


@pytest.mark.live
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--seeds", "nope"], "feedsvc: seeds directory nope (relative to {cwd}) does not exist"),
        (["build", "--out", "afile/out"],
         "feedsvc build: cannot publish to output directory afile/out (relative to {cwd}): Not a directory"),
        (["serve", "--out", "afile"], "feedsvc serve: output directory afile (relative to {cwd}) is not a directory"),
        (["watch", "--out", "afile/out"],
         "feedsvc watch: output directory afile/out (relative to {cwd}): Not a directory"),
    ],
    ids=["check-seeds", "build-output", "serve-output", "watch-output"],
)
def test_relative_paths_say_which_working_directory(here: Path, seeds_here: Path, args: list[str],
                                                    message: str) -> None:
    (here / "afile").write_text("a file, not a folder")
    if "--seeds" not in args:
        args = [*args, "--seeds", "seeds"]
    done = run(args, here, {"FEEDSVC_PORT": str(free_port())})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [message.format(cwd=here)]


@pytest.mark.live
def test_watch_without_a_seeds_folder_names_the_working_directory(here: Path) -> None:
    env = feed_env(here, Path("seeds"), Path("out"))
    srv = Server([*FEEDSVC, "watch"], env, 0, here / "watch.log", cwd=here)
    try:
        wait_for(lambda: "does not exist" in srv.log(), 20, what="the warning")
    finally:
        srv.stop()
    log = srv.log_path.read_text()
    warnings = lines(log, "WARNING")
    assert len(warnings) == 1 and f"seeds directory seeds (relative to {here}) does not exist" in warnings[0], log
    assert lines(log, "ERROR") == []


# --- `watch` says it stopped ---------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_watch_logs_that_it_stopped(here: Path, seeds_here: Path, sig: signal.Signals) -> None:
    env = feed_env(here, seeds_here, here / "out")
    srv = Server([*FEEDSVC, "watch"], env, 0, here / "watch.log")
    try:
        wait_for(lambda: "published" in srv.log(), 20, what="the first build")
        os.killpg(srv.proc.pid, sig)
        assert srv.proc.wait(timeout=20) == 0
    finally:
        srv.stop()
    log = srv.log_path.read_text()
    stopped = [line for line in log.splitlines() if "stopped" in line]
    assert len(stopped) == 1 and f"INFO feedsvc.watch: feedsvc watch stopped ({sig.name})" in stopped[0], log
    assert lines(log, "ERROR") == [] and "Traceback" not in log, log


# --- /healthz names files relative to the seeds folder ------------------------------------------


@pytest.mark.live
def test_healthz_with_an_absolute_seeds_dir_shows_no_absolute_path(here: Path, seeds_here: Path) -> None:
    (seeds_here / "empty.txt").write_bytes(b"")
    (seeds_here / "sub").mkdir()
    (seeds_here / "sub" / "garbage.txt").write_bytes(bytes(range(0x80, 0x100)) * 4)
    out = here / "out"
    port = free_port()
    env = feed_env(here, seeds_here, out)
    assert seeds_here.is_absolute() and out.is_absolute()
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, here / "serve.log") as srv:
        state = wait_for(lambda: (h := health(srv))["status"] == "ok" and h, 20, what="the first feed")
        assert sorted(s["source"] for s in state["skipped"]) == ["empty.txt", "sub/garbage.txt"]
        assert state["last_build"]["skipped"] == state["skipped"]
        assert str(here) not in srv.get("/healthz")[2].decode()
        assert str(here) not in (out / "status.json").read_text()
        # The logs keep the full path (the line is written as the build reports; wait for it).
        wait_for(lambda: f"skipped {seeds_here / 'empty.txt'}: empty file" in srv.log(), 10, what="the skip logged")

        shutil.rmtree(seeds_here)
        state = wait_for(lambda: (h := health(srv))["status"] == "degraded" and h, 20, what="the failure")
        assert state["last_build"]["error"] == "seeds directory (seeds_dir) does not exist"
        assert str(here) not in srv.get("/healthz")[2].decode()
        assert str(here) not in (out / "status.json").read_text()
        wait_for(lambda: f"seeds directory {seeds_here} does not exist" in srv.log(), 10, what="the failure logged")


def test_build_result_names_files_relative_to_the_seeds_folder(tmp_path: Path, make_seed, config) -> None:
    seeds = tmp_path / "seeds"
    make_seed("good.txt", url="https://e.com/a")
    make_seed("deep/empty.txt", raw=b"")
    make_seed("noted.txt", raw=b"[No date](https://e.com/n)\n------\n\n<p>x</p>\n")
    builder = Builder(config())
    result = builder.build()
    assert result.ok and [(p.source, p.reason) for p in result.skipped] == [("deep/empty.txt", "empty file")]
    assert {p.source for p in result.notes} == {"noted.txt"}
    status = (tmp_path / "out" / "status.json").read_text()
    assert str(tmp_path) not in status and json.loads(status)["skipped"][0]["source"] == "deep/empty.txt"
    fresh = make_seed("deep/fresh.txt", url="https://e.com/f")
    waiting = builder.build(settle=60.0, wait=True)
    assert waiting.deferred == [fresh.relative_to(seeds).as_posix()] == ["deep/fresh.txt"]


def test_a_build_longer_than_the_scan_interval_logs_no_warning(tmp_path: Path, config, caplog, monkeypatch) -> None:
    """A cold build that outlasts `scan_interval` is not a fault: the scheduler's skipped runs say
    nothing, and the build says how far it got, at INFO."""
    import feedsvc.service.runner as runner

    monkeypatch.setattr(runner, "PROGRESS_EVERY", 0.3)
    (tmp_path / "seeds").mkdir()
    shutil.copy(SAMPLE, tmp_path / "seeds" / SAMPLE.name)
    done: list[object] = []
    service = BuilderService(config(scan_interval=0.5, watch="off"), on_result=done.append)
    real_build = service.builder.build

    def slow_build(**options):  # 2 s, four scan intervals, over 2,000 pretend files
        for step in range(20):
            if options.get("progress") is not None:
                options["progress"](step * 100, 2000)
            time.sleep(0.1)
        return real_build(**options)

    service.builder.build = slow_build  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        service.start()
        try:
            wait_for(lambda: done, 15, what="the slow build")
            time.sleep(0.6)  # a scan interval after it, too
        finally:
            service.stop()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [], [f"{r.name}: {r.getMessage()}" for r in warnings]
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("building: ")]
    assert progress and re.fullmatch(r"building: [\d,]+ of 2,000 files", progress[0]), progress
