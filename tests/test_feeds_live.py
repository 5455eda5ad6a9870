"""Declared feeds on a live `feedsvc serve`: newsboat subscribed to a feed's own URL, feedparser over
HTTP, and WebSub pings for the topics that changed (a fake hub on loopback)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from conftest import write_seed
from live import Server, feed_env, free_port, running, wait_for
from test_readers import run_newsboat
from test_websub import FakeHub, fake_hub

pytestmark = pytest.mark.live

BASE = "https://feeds.example.org/"
CONFIG = """
[[feeds]]
name = "world"
title = "World news"
folder = "world"
convert = "t2s"

[[feeds]]
name = "asia"
folder = "asia"
"""


def write(seeds: Path, rel: str, n: int, title: str) -> None:
    url = "https://news.example.com/" + rel.removesuffix(".txt")
    write_seed(seeds, rel, 1700000000000 + n * 60000, title, url, f"<p>{title}。</p>")


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with fake_hub() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("feeds-live")
    seeds = tmp / "seeds"
    for n in range(1, 4):
        write(seeds, f"world/w{n}.txt", n, f"國際新聞 {n}")
        write(seeds, f"asia/a{n}.txt", 10 + n, f"亞洲新聞 {n}")
    (tmp / "feedsvc-test.toml").write_text(CONFIG)
    port = free_port()
    env = feed_env(tmp, seeds, tmp / "out", FEEDSVC_MAX_ENTRIES="2", FEEDSVC_WEBSUB_HUB=hub.url)
    with running([sys.executable, "-m", "feedsvc", "serve", "--port", str(port)], env, port, tmp / "serve.log") as srv:
        srv.seeds = seeds  # type: ignore[attr-defined]
        srv.wait_ready("/world/feed.xml")
        yield srv


def test_newsboat_subscribes_to_a_feeds_own_url(server: Server, tmp_path: Path) -> None:
    url = server.url("/world/feed.xml")
    (tmp_path / "atom").mkdir()
    (tmp_path / "both").mkdir()
    output, rows = run_newsboat(tmp_path / "atom", [url])
    assert output == "2 unread articles"
    assert [title for feed, title in rows if feed == url] == ["国际新闻 3", "国际新闻 2"]  # converted (t2s)
    output, rows = run_newsboat(tmp_path / "both", [url, server.url("/world/feed.rss")])
    assert output == "2 unread articles"  # Atom and RSS of the feed: the same two articles, by their ids
    assert sorted(title for _, title in rows) == ["国际新闻 2", "国际新闻 3"]


def test_feedparser_reads_a_feed_over_http_and_gets_304(server: Server) -> None:
    parsed = feedparser.parse(server.url("/asia/feed.xml"))
    assert parsed.status == 200 and not parsed.bozo
    assert [e.title for e in parsed.entries] == ["亞洲新聞 3", "亞洲新聞 2"]
    assert parsed.feed.title == "feedsvc — asia"  # not given: the top level's, with its name
    assert feedparser.parse(server.url("/asia/feed.xml"), etag=parsed.etag).status == 304


def test_websub_pings_the_topics_that_changed(server: Server, hub: FakeHub) -> None:
    kinds = ("feed.xml", "feed.rss", "feed.json")
    first = {BASE + prefix + kind for prefix in ("", "world/", "asia/") for kind in kinds}
    wait_for(lambda: set(hub.topics()) == first, 15, what="the first publish's pings")
    assert len(hub.topics()) == 9
    write(server.seeds, "world/w9.txt", 30, "國際新聞 9")  # type: ignore[attr-defined]  # the newest of all
    wait_for(lambda: len(hub.topics()) >= 15, 15, what="pings after a change in world/")
    # The top-level feed and world/ changed; asia/ did not.
    assert sorted(hub.topics()[9:]) == sorted(BASE + prefix + kind for prefix in ("", "world/") for kind in kinds)
    status, headers, _ = server.get("/world/feed.xml")
    assert status == 200 and headers["link"] == f'<{hub.url}>; rel="hub", <{BASE}world/feed.xml>; rel="self"'
