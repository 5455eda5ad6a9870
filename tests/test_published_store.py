"""PublishedStore under concurrent first requests (a regression: they got 503 while a feed existed)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from feedsvc.publish import Document, PublishedStore, publish


def test_requests_during_the_first_load_wait_for_it(tmp_path: Path, monkeypatch) -> None:
    publish(tmp_path, [Document("feed.xml", b"<feed/>", "application/atom+xml", datetime(2024, 1, 1, tzinfo=UTC))])
    store = PublishedStore(tmp_path, check_interval=60)
    loading, release = threading.Event(), threading.Event()
    real_load = store._load

    def slow_load():
        loading.set()
        release.wait(10)
        return real_load()

    monkeypatch.setattr(store, "_load", slow_load)
    first: list[object] = []
    loader = threading.Thread(target=lambda: first.append(store.snapshot))
    loader.start()
    assert loading.wait(10)
    second: list[object] = []
    waiter = threading.Thread(target=lambda: second.append(store.snapshot))
    waiter.start()
    waiter.join(0.2)
    release.set()
    loader.join(10)
    waiter.join(10)
    assert first[0] is not None
    assert second == [first[0]]  # not None: it waited for the load instead of answering 503
