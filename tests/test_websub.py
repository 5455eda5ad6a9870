"""WebSub: pings to a fake hub (a real HTTP server on loopback) after publishes that changed bytes."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import write_seed
from live import wait_for

from feedsvc.pipeline.builder import Builder
from feedsvc.service.websub import Pinger, PingError, post_ping, wait_idle

BASE = "https://feeds.example.org/"
# The documents a WebSub subscriber follows (what the builder service hands its Pinger).
SUBSCRIPTION_FEEDS = ("feed.xml", "feed.rss", "feed.json")
TOPICS = [BASE + name for name in SUBSCRIPTION_FEEDS]


class FakeHub:
    """Records every POST; answers with the next status from `script` (then 202)."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.posts: list[dict[str, list[str]]] = []
        self.content_types: list[str] = []
        self.script = list(script or [])
        self.lock = threading.Lock()
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                with hub.lock:
                    hub.posts.append(form)
                    hub.content_types.append(self.headers.get("Content-Type", ""))
                    status = hub.script.pop(0) if hub.script else 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"

    def topics(self) -> list[str]:
        with self.lock:
            return [form["hub.url"][0] for form in self.posts]


@contextlib.contextmanager
def fake_hub(script: list[int] | None = None) -> Iterator[FakeHub]:
    hub = FakeHub(script)
    thread = threading.Thread(target=hub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        hub.server.shutdown()
        hub.server.server_close()


def test_post_ping_is_a_form_encoded_publish() -> None:
    with fake_hub([202, 400, 503]) as hub:
        assert post_ping(hub.url, BASE + "feed.xml") == 202
        assert hub.posts[0] == {"hub.mode": ["publish"], "hub.url": [BASE + "feed.xml"]}
        assert hub.content_types[0] == "application/x-www-form-urlencoded"
        with pytest.raises(PingError) as bad:
            post_ping(hub.url, BASE + "feed.xml")
        assert bad.value.retry is False  # our mistake: retrying cannot help
        with pytest.raises(PingError) as busy:
            post_ping(hub.url, BASE + "feed.xml")
        assert busy.value.retry is True


def test_unreachable_hub_is_retryable() -> None:
    from live import free_port

    with pytest.raises(PingError) as err:
        post_ping(f"http://127.0.0.1:{free_port()}/", BASE + "feed.xml", timeout=2)
    assert err.value.retry is True


@pytest.fixture
def one_article(tmp_path: Path) -> Path:
    """tmp_path/seeds with one small article, a.txt."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    write_seed(folder, "a.txt", 1700000000000, "A", "https://e.com/a", "<p>a</p>")
    return folder


def test_one_ping_per_changed_feed_and_none_when_nothing_changed(tmp_path: Path, one_article: Path, config) -> None:
    with fake_hub() as hub:
        cfg = config(websub_hub=hub.url)
        pinger = Pinger(hub.url, cfg.base_url, cfg.output_dir, SUBSCRIPTION_FEEDS, backoff=(0.05,))
        builder = Builder(cfg, on_publish=pinger.on_publish)
        try:
            assert builder.build().published
            wait_for(lambda: len(hub.posts) >= 3 and wait_idle(pinger, 5), 10, what="first pings")
            assert sorted(hub.topics()) == sorted(TOPICS)
            # A rebuild that changes nothing publishes nothing and pings nothing.
            assert builder.build().published is False
            (one_article / "a.txt").touch()  # new mtime, same bytes
            assert builder.build().published is False
            # Both builds have run (build() returns when done): whatever they queued, the pinger
            # has sent once it is idle again, and the hub has recorded before answering.
            assert builder.builds == 3
            assert wait_idle(pinger, 5)
            assert len(hub.posts) == 3 and pinger.sent == 3
            # A real change: one more ping per feed, not more.
            write_seed(one_article, "b.txt", 1700000001000, "B", "https://e.com/b", "<p>b</p>")
            assert builder.build().published
            wait_for(lambda: len(hub.posts) >= 6 and wait_idle(pinger, 5), 10, what="second pings")
            assert wait_idle(pinger, 5) and builder.builds == 4
            assert sorted(hub.topics()[3:]) == sorted(TOPICS) and len(hub.posts) == 6 and pinger.sent == 6
        finally:
            pinger.stop()


def test_failed_pings_are_retried_with_backoff_then_given_up() -> None:
    with fake_hub([503, 500, 202, 503, 503, 503, 404]) as hub:
        pinger = Pinger(hub.url, BASE, Path("/nonexistent"), SUBSCRIPTION_FEEDS, backoff=(0.05, 0.1))
        try:
            pinger.queue([BASE + "feed.xml"])
            wait_for(lambda: pinger.sent == 1, 10, what="ping delivered on the third attempt")
            assert hub.topics() == [BASE + "feed.xml"] * 3
            pinger.queue([BASE + "feed.rss"])  # 503 three times: two retries, then dropped
            wait_for(lambda: pinger.dropped == 1 and pinger.idle(), 10, what="ping dropped")
            assert len(hub.posts) == 6
            pinger.queue([BASE + "feed.json"])  # 404: not retried
            wait_for(lambda: pinger.dropped == 2 and pinger.idle(), 10, what="4xx dropped")
            assert len(hub.posts) == 7 and pinger.sent == 1
        finally:
            pinger.stop()


def test_the_build_never_waits_for_the_hub(tmp_path: Path, one_article: Path, config) -> None:
    """A hub that hangs: builds keep publishing at full speed, pings queue up (one per feed)."""
    release = threading.Event()
    calls: list[str] = []

    def hanging_post(hub: str, topic: str) -> int:
        calls.append(topic)
        release.wait(10)
        return 202

    cfg = config(websub_hub="https://hub.example.net/")
    pinger = Pinger(cfg.websub_hub, cfg.base_url, cfg.output_dir, SUBSCRIPTION_FEEDS, post=hanging_post)
    builder = Builder(cfg, on_publish=pinger.on_publish)
    try:
        for n in range(5):
            write_seed(one_article, f"{n}.txt", 1700000000000 + n * 1000, f"N{n}", f"https://e.com/{n}", "<p>n</p>")
            started = time.monotonic()
            assert builder.build().published
            assert time.monotonic() - started < 5  # the hanging hub did not hold the build
        wait_for(lambda: len(calls) == 1, 5, what="the first ping in flight")
        release.set()
        wait_for(lambda: wait_idle(pinger, 5), 10, what="queue drained")
        # Five changes while one ping hung: each feed is pinged at most once per change, and
        # changes queued behind the hanging ping share one ping per feed.
        assert 3 <= len(calls) <= 1 + 3 and len(set(calls)) == 3
    finally:
        release.set()
        pinger.stop()
