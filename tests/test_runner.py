"""The builder service in-process: events, polling, the dirty flag, warnings once per change."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import feedparser
import pytest
from conftest import write_seed
from live import wait_for

from feedsvc.pipeline.builder import Builder
from feedsvc.service.runner import BuilderService


def feed_titles(out: Path) -> list[str]:
    path = out / "feed.xml"
    return [e.title for e in feedparser.parse(path.read_bytes()).entries] if path.exists() else []


def write(seeds: Path, name: str, title: str, n: int) -> None:
    write_seed(seeds, name, 1700000000000 + n * 1000, title, f"https://e.com/{name}", "<p>x</p>")


@pytest.fixture
def service_factory(config):
    services: list[BuilderService] = []

    def make(**overrides: object) -> BuilderService:
        service = BuilderService(config(**overrides), settle=0.2)
        services.append(service)
        return service

    yield make
    for service in services:
        service.stop()


def test_polling_observer_follows_changes(tmp_path: Path, make_seed, service_factory) -> None:
    make_seed("a.txt", title="First", url="https://e.com/a")
    service = service_factory(watch="polling", debounce=0.05)
    service.start()
    assert service.watching == "polling"
    wait_for(lambda: feed_titles(tmp_path / "out") == ["First"], 10, what="first build")
    write(tmp_path / "seeds", "b.txt", "Second", 5)
    wait_for(lambda: "Second" in feed_titles(tmp_path / "out"), 10, what="polling picked up a new file")


def test_change_during_a_build_is_not_lost(tmp_path: Path, make_seed, service_factory, monkeypatch) -> None:
    make_seed("a.txt", title="First", url="https://e.com/a")
    service = service_factory(watch="off", debounce=0.05, scan_interval=3600)
    entered, release = threading.Event(), threading.Event()
    real_build = Builder.build

    def slow_first_build(self, *args, **kwargs):
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return real_build(self, *args, **kwargs)

    monkeypatch.setattr(Builder, "build", slow_first_build)
    service.start()
    assert entered.wait(10)
    # The job is running (max_instances=1): a change now must still end up in the feed.
    write(tmp_path / "seeds", "late.txt", "Late change", 9)
    service.notify()
    release.set()
    wait_for(lambda: "Late change" in feed_titles(tmp_path / "out"), 10, what="the late change published")


def test_bad_seed_is_warned_about_once_per_change(tmp_path: Path, make_seed, config, caplog) -> None:
    make_seed("bad.txt", raw=b"")
    builder = Builder(config())
    with caplog.at_level(logging.WARNING, logger="feedsvc.build"):
        builder.build()
        builder.build()
        builder.build()
    assert [r.getMessage() for r in caplog.records].count(f"skipped {tmp_path / 'seeds' / 'bad.txt'}: empty file") == 1
    caplog.clear()
    make_seed("bad.txt", raw=b"\n\n")  # changed, still bad: one new warning
    with caplog.at_level(logging.WARNING, logger="feedsvc.build"):
        builder.build()
        builder.build()
    assert len([r for r in caplog.records if "bad.txt" in r.getMessage()]) == 1


def test_half_written_file_waits_for_settle(tmp_path: Path, make_seed, config) -> None:
    make_seed("a.txt", title="Complete", url="https://e.com/a")
    now = [time.time()]
    builder = Builder(config())
    first = builder.build(settle=5.0, now=now[0])
    assert first.deferred == ["a.txt"] and not first.published
    assert not (tmp_path / "out" / "feed.xml").exists()
    now[0] += 6
    second = builder.build(settle=5.0, now=now[0])
    assert second.published and second.entries == 1


def test_an_unexpected_error_is_a_failed_build_warned_once_and_retried(tmp_path: Path, make_seed, config,
                                                                       caplog, monkeypatch) -> None:
    """Issue 21: any error in a build is a failed build: one WARNING (no traceback at ERROR), its
    reason in status.json and /healthz, retried with backoff; the cold start then publishes."""
    import feedsvc.pipeline.builder as builder_module
    from feedsvc.host import create_app

    make_seed("a.txt", url="https://e.com/a")
    real_build = builder_module.build
    failures = 2

    def failing(cfg, *args, **kwargs):
        nonlocal failures
        if failures:
            failures -= 1
            raise ValueError(f"nothing expected this under {cfg.seeds_dir.absolute()}")
        return real_build(cfg, *args, **kwargs)

    monkeypatch.setattr(builder_module, "build", failing)
    cfg = config()
    service = BuilderService(cfg, settle=0.0)
    delays: list[float] = []
    monkeypatch.setattr(service, "_schedule_in", delays.append)
    caplog.set_level(logging.DEBUG, logger="feedsvc")
    try:
        service._run()
        status = json.loads((cfg.output_dir / "status.json").read_text())
        assert status["ok"] is False and "ValueError: nothing expected this" in status["error"]
        assert str(tmp_path) not in status["error"]  # no absolute path for the world
        response = create_app(cfg, run_builder=False).test_client().get("/healthz")
        assert response.status_code == 503 and "ValueError" in response.json["last_build"]["error"]
        service._run()  # the same reason again: retried quietly, later
        service._run()  # and then it builds
    finally:
        service.builder.close()
    assert delays == [2.0, 4.0]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in warnings] == [logging.WARNING], [r.getMessage() for r in warnings]
    assert "ValueError: nothing expected this" in warnings[0].getMessage() and warnings[0].exc_info is None
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)  # the traceback, at DEBUG
    assert json.loads((cfg.output_dir / "status.json").read_text())["ok"] is True
    assert create_app(cfg, run_builder=False).test_client().get("/healthz").status_code == 200
