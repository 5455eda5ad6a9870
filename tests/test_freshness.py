"""A file closed after writing, or renamed into place, is complete: read at once, without the
settle wait. A file modified but still open, and whatever the polling observer sees, still wait."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import feedparser
import pytest
from conftest import seed_text
from live import wait_for
from watchdog.events import (
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from feedsvc.core.changes import diff
from feedsvc.model import BuildResult, SeedFile
from feedsvc.service.events import SeedEvents
from feedsvc.service.runner import COMPLETE_DEBOUNCE, STORM_FILES, BuilderService

# Longer than any test waits: a file that had to settle would not be published in time.
LONG_SETTLE = 60.0


def text(title: str, n: int = 1) -> str:
    return seed_text(1_700_000_000_000 + n * 1000, title, f"https://e.com/{n}", f"<p>{title}</p>")


def feed_titles(out: Path) -> list[str]:
    path = out / "feed.xml"
    return [e.title for e in feedparser.parse(path.read_bytes()).entries] if path.exists() else []


class Recorded:
    """The results of a service's builds, as they come."""

    def __init__(self) -> None:
        self.results: list[BuildResult] = []
        self.lock = threading.Lock()

    def __call__(self, result: BuildResult) -> None:
        with self.lock:
            self.results.append(result)

    def deferred(self, rel: str) -> bool:
        with self.lock:
            return any(rel in r.deferred for r in self.results)


@pytest.fixture
def service(tmp_path: Path, config):
    made: list[BuilderService] = []

    def make(watch: str = "inotify", settle: float = LONG_SETTLE) -> tuple[BuilderService, Recorded]:
        (tmp_path / "seeds").mkdir(exist_ok=True)
        recorded = Recorded()
        svc = BuilderService(config(watch=watch, scan_interval=3600), on_result=recorded, settle=settle)
        made.append(svc)
        svc.start()
        assert svc.watching == watch
        wait_for(lambda: recorded.results, 10, what="the first build")
        return svc, recorded

    yield make
    for svc in made:
        svc.stop()


def test_a_file_closed_after_writing_is_published_without_the_settle_wait(tmp_path: Path, service) -> None:
    _, recorded = service()
    (tmp_path / "seeds" / "a.txt").write_text(text("Closed"))
    wait_for(lambda: "Closed" in feed_titles(tmp_path / "out"), 20, what="the closed file published")
    assert not recorded.deferred("a.txt")


def test_a_file_still_open_is_waited_for(tmp_path: Path, service) -> None:
    _, recorded = service()
    path = tmp_path / "seeds" / "open.txt"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text("Written, still open"))
        fh.flush()
        wait_for(lambda: recorded.deferred("open.txt"), 20, what="a build deferring the open file")
        assert "Written, still open" not in feed_titles(tmp_path / "out")
    # Closed now: complete, published without waiting out the (long) settle time.
    wait_for(lambda: "Written, still open" in feed_titles(tmp_path / "out"), 20, what="the file once closed")


def test_a_rename_into_place_is_published_without_the_settle_wait(tmp_path: Path, service) -> None:
    _, recorded = service()
    seeds = tmp_path / "seeds"
    (seeds / ".draft.txt.tmp").write_text(text("Renamed in", 1))  # an ignored name, then the real one
    os.replace(seeds / ".draft.txt.tmp", seeds / "renamed.txt")
    outside = tmp_path / "elsewhere.txt"  # from outside the watched folder, same file system
    outside.write_text(text("Moved in", 2))
    os.replace(outside, seeds / "moved.txt")
    wait_for(lambda: {"Renamed in", "Moved in"} <= set(feed_titles(tmp_path / "out")), 20, what="both published")
    assert not recorded.deferred("renamed.txt") and not recorded.deferred("moved.txt")


def test_the_polling_observer_still_settles(tmp_path: Path, service) -> None:
    _, recorded = service(watch="polling", settle=3.0)  # it polls every second: the file is younger
    (tmp_path / "seeds" / "p.txt").write_text(text("Polled"))
    wait_for(lambda: recorded.deferred("p.txt"), 10, what="the polled file deferred")
    wait_for(lambda: "Polled" in feed_titles(tmp_path / "out"), 20, what="the polled file once settled")


def test_which_events_say_a_file_is_complete(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.txt").write_text("x")
    st = os.stat(seeds / "a.txt")
    stat = (st.st_size, st.st_mtime_ns, st.st_ino)
    calls: list[tuple[list[str] | None, dict]] = []
    inotify = SeedEvents(str(seeds), lambda paths, complete: calls.append((paths, dict(complete))), completion=True)
    a = str(seeds / "a.txt")
    for event in (FileCreatedEvent(a), FileModifiedEvent(a), FileClosedEvent(a), FileClosedNoWriteEvent(a),
                  FileMovedEvent(str(seeds / ".a.txt.swp"), a), FileMovedEvent("", a), FileMovedEvent(a, "")):
        inotify.on_any_event(event)
    assert calls == [(["a.txt"], {}), (["a.txt"], {}), (["a.txt"], {"a.txt": stat}),  # closed-no-write: ours
                     (["a.txt"], {"a.txt": stat}), (["a.txt"], {"a.txt": stat}), (["a.txt"], {})]
    calls.clear()
    polling = SeedEvents(str(seeds), lambda paths, complete: calls.append((paths, dict(complete))))
    polling.on_any_event(FileMovedEvent(str(seeds / "b.txt"), a))
    assert calls == [(["b.txt", "a.txt"], {})]


def test_complete_files_are_not_deferred_while_their_stat_holds() -> None:
    now = 2_000_000_000.0
    young = SeedFile("/s/a.txt", "a.txt", 10, int((now - 0.1) * 1e9), 7)
    assert diff([young], {}, {}, now, settle=0.5).deferred == ["a.txt"]
    assert diff([young], {}, {}, now, settle=0.5, complete={"a.txt": young.stat_key}).deferred == []
    grown = young._replace(size=11)  # written again since it was closed
    assert diff([grown], {}, {}, now, settle=0.5, complete={"a.txt": young.stat_key}).deferred == ["a.txt"]


def test_complete_files_get_the_short_debounce_unless_many_change(tmp_path: Path, config) -> None:
    svc = BuilderService(config(watch="off", debounce=0.25, debounce_max=2.0))
    svc.notify(["a.txt"], {})
    assert svc._quiet_after == 0.25  # a write may follow
    svc.notify(["a.txt"], {"a.txt": (1, 2, 3)})
    assert svc._quiet_after == COMPLETE_DEBOUNCE and svc._complete == {"a.txt": (1, 2, 3)}
    svc.notify(["a.txt"], {})
    assert svc._complete == {}  # written again: not known whole any more
    for n in range(STORM_FILES):
        svc.notify([f"s{n}.txt"], {f"s{n}.txt": (1, 2, 3)})
    assert svc._quiet_after == 0.25  # a storm: the normal debounce batches it
    svc.stop()
