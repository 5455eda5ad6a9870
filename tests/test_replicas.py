"""Replicas that agree: two `feedsvc serve` processes, each with its own output folder, on one seeds
folder, publish the same bytes, ETags and headers for every document and every representation, so
a reader behind a load balancer keeps getting 304s whichever replica answers. Loopback only,
every wait bounded."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLE, seed_text
from live import Server, feed_env, free_port, wait_for

from feedsvc.pipeline.builder import Builder

pytestmark = pytest.mark.live

FEEDSVC = [sys.executable, "-m", "feedsvc"]
# Chromium's: a browser gets the feed page at a feed's URL.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
           "Accept-Encoding": "gzip, deflate, br"}
# Identity and gzip, for a reader (no Accept, or a feed reader's) and a browser.
VARIANTS = ({}, {"Accept-Encoding": "gzip"}, {"Accept": "application/atom+xml, */*;q=0.1"}, BROWSER,
            {"Accept": BROWSER["Accept"]})
MONTH_MS = 30 * 86400 * 1000
OLD = 1_600_000_000  # an mtime well in the past: no file is young, and mtime-dated ones stay put


def write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path, (OLD, OLD))


@pytest.fixture
def replica_seeds(tmp_path: Path) -> Path:
    """Enough articles over several months for archive pages; one without a stamp (dated by its
    mtime), one link post."""
    folder = tmp_path / "seeds"
    (folder / "sub").mkdir(parents=True)
    write(folder / SAMPLE.name, SAMPLE.read_text(encoding="utf-8"))
    for n in range(8):
        write(folder / f"a{n}.txt", seed_text(1_650_000_000_000 + n * MONTH_MS // 2, f"Article {n}",
                                              f"https://e.com/{n}", f"<p>Body {n}</p><img src='/i{n}.png'>"))
    write(folder / "sub" / "nostamp.txt", "[No stamp](https://e.com/nostamp)\n\n<p>dated by its mtime</p>\n")
    write(folder / "link.txt", "<!--1660000000000-->\n[Just a link](https://e.com/link)\n")
    return folder


@dataclass
class Replica:
    server: Server
    out: Path

    def documents(self) -> set[str]:
        """The names in its manifest."""
        return set(json.loads((self.out / "manifest.json").read_bytes())["documents"])


@pytest.fixture
def start(tmp_path: Path, replica_seeds: Path) -> Iterator[Callable[..., list[Replica]]]:
    """Starts `feedsvc serve` replicas on `seeds`, each with its own output folder, on free ports."""
    started: list[Server] = []

    def replicas(*names: str) -> list[Replica]:
        made = []
        for name in names:
            port, out = free_port(), tmp_path / f"out-{name}"
            env = feed_env(tmp_path, replica_seeds, out, FEEDSVC_MAX_ENTRIES="4", FEEDSVC_ARCHIVE_PAGE_SIZE="2")
            log = tmp_path / f"{name}-{len(started)}.log"
            started.append(Server([*FEEDSVC, "serve", "--port", str(port)], env, port, log))
            made.append(Replica(started[-1], out))
        for replica in made:
            replica.server.wait_ready()
        return made

    try:
        yield replicas
    finally:
        for server in started:
            server.stop()


def paths(names: set[str]) -> list[str]:
    """Every URL of the documents `names`: a browser page is the other representation of its feed's URL."""
    return sorted("/" if name == "index.html" else "/" + name for name in names if not name.endswith(".html")
                  or name == "index.html")


def answers(server: Server, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
    status, got, body = server.get(path, headers=headers)
    return status, sorted((k, v) for k, v in got.items() if k != "date"), body


def assert_agree(first: Replica, *others: Replica) -> list[str]:
    """The replicas publish the same documents, and answer every URL in every variant with the same
    status, headers (but Date) and bytes. Returns the URLs."""
    names = first.documents()
    assert all(other.documents() == names for other in others)
    urls = paths(names)
    assert {"/", "/feed.xml", "/feed.rss", "/feed.json", "/feed.xsl"} < set(urls)
    assert sum(url.startswith("/archive/") for url in urls) >= 3, urls
    for url in urls:
        for headers in VARIANTS:
            status, got, body = answers(first.server, url, headers)
            assert status == 200 and dict(got)["etag"], (url, headers)
            for other in others:
                theirs = answers(other.server, url, headers)
                assert theirs[1] == got, (url, headers, set(theirs[1]) ^ set(got))
                assert theirs == (status, got, body), (url, headers)
    # The browser renditions are there, and differ from the feed.
    feed, page = answers(first.server, "/feed.xml", {}), answers(first.server, "/feed.xml", BROWSER)
    assert dict(page[1])["content-type"].startswith("text/html") and dict(page[1])["etag"] != dict(feed[1])["etag"]
    return urls


def on_all(replicas: Sequence[Replica], path: str, text: bytes) -> None:
    """Wait (bounded) until every replica serves `text` at `path`."""
    for server in (r.server for r in replicas):
        wait_for(lambda s=server: text in s.get(path)[2], timeout=20, what=f"{text!r} at {server.base}{path}")


def test_replicas_publish_the_same_bytes_and_etags(start: Callable[..., list[Replica]], replica_seeds: Path) -> None:
    a, b = start("a", "b")
    assert_agree(a, b)

    # An edit of an archived article: its page changes, on both alike.
    page = next(p for p in paths(a.documents()) if b"Article 1<" in a.server.get(p)[2])
    assert page.startswith("/archive/")
    (replica_seeds / "a1.txt").write_text(seed_text(1_650_000_000_000 + MONTH_MS // 2, "Article 1, edited",
                                            "https://e.com/1", "<p>Edited</p>"))
    on_all((a, b), page, b"Article 1, edited")
    assert_agree(a, b)

    # A new article: the feed's oldest entry moves onto the archive pages.
    (replica_seeds / "new.txt").write_text(seed_text(1_700_000_000_000, "A new article", "https://e.com/new",
                                                     "<p>New</p>"))
    on_all((a, b), "/feed.xml", b"A new article")
    assert_agree(a, b)

    # A replica restarted on its output folder (its cache, its manifest's pages reused) and one
    # added now (a cold build of the edited seeds) agree with the one that built every change.
    b.server.stop()
    restarted, added = start("b", "c")
    urls = assert_agree(a, restarted, added)

    # A reader alternating between the replicas, with the validators one of them sent: 304s.
    servers = (a.server, restarted.server, added.server)
    for url in urls:
        for headers in VARIANTS:
            _, got, _ = a.server.get(url, headers=headers)
            for n in range(4):
                status, _, body = servers[n % 3].get(url, headers=headers | {"If-None-Match": got["etag"]})
                assert (status, body) == (304, b""), (url, headers, n)
                since = {"If-Modified-Since": got["last-modified"]}
                assert servers[(n + 1) % 3].get(url, headers=headers | since)[0] == 304, (url, headers, n)


def test_replicas_that_built_at_different_times_agree_once_an_entry_ahead_is_due(
    tmp_path: Path, make_seed, config
) -> None:
    """An entry stamped ahead of the clock (valid up to a day ahead) dates the feeds at the build
    instead, so two replicas that built at different times differ; each renders again once the
    stamp has passed (a rescan, with nothing changed), and both are then dated by the stamp."""
    start = time.time()
    make_seed("ahead.txt", stamp_ms=int((start + 3600) * 1000), title="Ahead", url="https://e.com/ahead")
    make_seed("past.txt", title="Past", url="https://e.com/past")
    a, b = (Builder(config(output_dir=str(tmp_path / name))) for name in ("out-a", "out-b"))
    assert a.build(now=start).published and b.build(now=start + 600).published
    assert a.build(now=start + 1800).published is False  # nothing changed, the stamp is still ahead
    feed = [(builder.config.output_dir / "feed.xml").read_bytes() for builder in (a, b)]
    assert feed[0] != feed[1]  # dated 10 minutes apart

    first, second = a.build(now=start + 3601), b.build(now=start + 3700)
    assert first.published and second.published and first.changed == second.changed == 0
    assert first.etag == second.etag
    assert (a.config.output_dir / "feed.xml").read_bytes() == (b.config.output_dir / "feed.xml").read_bytes()
    assert a.build(now=start + 7200).published is False  # and once dated by the stamp, they hold
