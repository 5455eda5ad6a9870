"""The builder service in-process: events, polling, the dirty flag, warnings once per change."""

from __future__ import annotations

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
