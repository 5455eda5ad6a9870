"""Real readers against a live `feedsvc serve`: feedparser, newsboat, headless Chromium, a WebSub hub.

One server for the module (it takes a few seconds to start): 10 articles with images, the newest
4 in the feeds, the rest in RFC 5005 archive pages of 3, a fake WebSub hub on loopback.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.server
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from conftest import SAMPLE, write_seed
from feedparser import http as feedparser_http
from live import Server, feed_env, free_port, running, wait_for
from schemas import validate_atom, validate_jsonfeed
from test_websub import FakeHub, fake_hub

FEEDSVC = [sys.executable, "-m", "feedsvc"]
BASE = "https://feeds.example.org/"
FEEDS = {"/feed.xml": "application/atom+xml; charset=utf-8", "/feed.rss": "application/rss+xml; charset=utf-8",
         "/feed.json": "application/feed+json"}
# Chromium's, for a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"


def write_article(seeds: Path, n: int) -> None:
    body = f'<p>Story number {n}.</p><img src="https://img.example/{n}.png"><p>More.</p>'
    write_seed(seeds, f"story-{n:02}.txt", 1700000000000 + n * 60000, f"Story {n}", f"https://news.example.com/{n}",
               body)


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    with fake_hub() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, hub: FakeHub) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("readers")
    seeds = tmp / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    for n in range(1, 10):
        write_article(seeds, n)
    port = free_port()
    env = feed_env(tmp, seeds, tmp / "out", FEEDSVC_MAX_ENTRIES="4", FEEDSVC_ARCHIVE_PAGE_SIZE="3",
                   FEEDSVC_WEBSUB_HUB=hub.url)
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp / "serve.log") as srv:
        srv.seeds = seeds  # type: ignore[attr-defined]
        yield srv


def csp_hash(style: str) -> str:
    """The CSP source a browser matches an inline <style> against: its text's SHA-256, base64."""
    return "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()


def index_csp(style: str) -> str:
    return (f"default-src 'none'; style-src '{csp_hash(style)}'; img-src 'self'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")


def feed_page_csp(style: str) -> str:
    """The feed as a browser opens it: only our own /feed.xsl as script, only the page's one style."""
    return (f"default-src 'none'; script-src 'self'; style-src '{csp_hash(style)}'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def served_style(body: bytes) -> str:
    """The text of the one <style> element of a served HTML page, as the browser hashes it (raw text)."""
    styles = re.findall(r"<style>(.*?)</style>", body.decode(), flags=re.DOTALL)
    assert len(styles) == 1, styles
    return styles[0]


NEWEST = ["Story 9", "Story 8", "Story 7", "Story 6"]
ALL = [f"Story {n}" for n in range(9, 0, -1)] + ["中國防長會見普京 談加強軍事合作"]


@pytest.mark.live
def test_feedparser_reads_atom_and_rss_alike(server: Server) -> None:
    parsed = {}
    for path in ("/feed.xml", "/feed.rss"):
        result = feedparser.parse(server.url(path))  # feedparser does its own HTTP
        assert result.status == 200 and result.bozo is False, (path, result.get("bozo_exception"))
        parsed[path] = result
        # feedparser sends the ETag back as readers should, and gets a 304.
        assert feedparser.parse(server.url(path), etag=result.etag).status == 304
    atom, rss = parsed["/feed.xml"], parsed["/feed.rss"]
    assert [e.title for e in atom.entries] == [e.title for e in rss.entries] == NEWEST
    assert [e.id for e in atom.entries] == [e.id for e in rss.entries]
    assert [e.link for e in atom.entries] == [e.link for e in rss.entries]
    for entry in (*atom.entries, *rss.entries):
        number = entry.title.split()[-1]
        assert entry.media_thumbnail == [{"url": f"https://img.example/{number}.png"}]
        assert f"Story number {number}." in entry.content[0]["value"]
    assert validate_atom(server.get("/feed.xml")[2]) == []


@pytest.mark.live
def test_json_feed_is_valid_and_has_the_same_entries(server: Server) -> None:
    # feedparser 6.0.14, the newest release, has no JSON Feed parser: the JSON Feed 1.1 schema checks it.
    status, headers, body = server.get("/feed.json")
    assert status == 200 and headers["content-type"] == "application/feed+json"
    doc = json.loads(body)
    assert validate_jsonfeed(doc) == []
    atom = feedparser.parse(server.get("/feed.xml")[2])
    assert [(i["id"], i["title"], i["url"]) for i in doc["items"]] == [(e.id, e.title, e.link) for e in atom.entries]
    assert [i["image"] for i in doc["items"]] == [f"https://img.example/{t.split()[-1]}.png" for t in NEWEST]


@pytest.mark.live
@pytest.mark.parametrize("path", ["/feed.rss", "/feed.json", "/feed.xsl", "/archive/202304001.xml",
                                  "/archive/202311749002.xml"])
def test_every_document_gets_the_feed_caching_rules(server: Server, path: str) -> None:
    status, headers, body = server.get(path)
    assert status == 200
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert headers["cache-control"] == "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    assert "Accept-Encoding" in headers["vary"]
    assert headers["x-content-type-options"] == "nosniff"
    assert server.get(path, headers={"If-None-Match": headers["etag"]})[:3:2] == (304, b"")
    assert server.get(path, headers={"If-Modified-Since": headers["last-modified"]})[0] == 304
    gz_status, gz_headers, gz_body = server.get(path, headers={"Accept-Encoding": "gzip"})
    assert gz_status == 200 and gzip.decompress(gz_body) == body and gz_headers["etag"] != headers["etag"]
    head = server.get(path, method="HEAD")
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == str(len(body))
    assert server.get(path, method="POST")[0] == 405


@pytest.mark.live
def test_archive_chain_backfills_every_entry_once(server: Server) -> None:
    seen: list[str] = []
    url: str | None = BASE + "feed.xml"
    hops = 0
    while url and hops < 10:
        status, headers, body = server.get("/" + url[len(BASE):])
        assert status == 200 and headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert validate_atom(body) == []
        parsed = feedparser.parse(body)
        seen += [e.title for e in parsed.entries]
        url = next((link["href"] for link in parsed.feed.links if link["rel"] == "prev-archive"), None)
        hops += 1
    assert seen == ALL  # newest first, each exactly once, back to the oldest
    # feed.xml (4), then the pages: Stories 5-1 are a burst of five minutes of November 14th, 2023, in
    # the smallest piece of the month (749), cut into 202311749002 (2) and 202311749001 (3); then
    # 202304001 (the sample, all of April 2023)
    assert hops == 4


@pytest.mark.live
@pytest.mark.parametrize("path", ["/archive/0.xml", "/archive/1.xml", "/archive/202311003.xml", "/archive/01.xml",
                                  "/archive/202311001.xml.gz",
                                  "/archive/1", "/archive/", "/archive/..%2Fmanifest.json", "/archive/%2E%2E/feed.xml",
                                  "/feed.xml/../manifest.json", "/objects"])
def test_unknown_archive_paths_are_404(server: Server, path: str) -> None:
    assert server.get(path)[0] == 404


@pytest.mark.live
def test_browsers_get_the_feed_page_and_readers_the_feed(server: Server) -> None:
    _, feed_headers, feed_body = server.get("/feed.xml")
    status, headers, body = server.get("/feed.xml", headers={"Accept": BROWSER_ACCEPT})
    assert status == 200 and body.startswith(b"<!DOCTYPE html>") and b"Story 9" in body
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest()[:32] + '"' != feed_headers["etag"]
    assert headers["vary"] == feed_headers["vary"] == "Accept, Accept-Encoding"
    assert server.get("/feed.xml", headers={"Accept": BROWSER_ACCEPT, "If-None-Match": headers["etag"]})[0] == 304
    assert headers["content-security-policy"] == index_csp(served_style(body))  # no script at all
    # The XSL stays for whoever applies it: the feed still names it, and it is served.
    assert feed_body.split(b"\n")[1] == b'<?xml-stylesheet type="text/xsl" href="/feed.xsl"?>'
    xsl_status, xsl_headers, _ = server.get("/feed.xsl")
    assert xsl_status == 200 and xsl_headers["content-type"] == "text/xsl; charset=utf-8"
    assert feed_headers["content-security-policy"] == feed_page_csp(served_style(body))


def newsboat_accept(tmp_path: Path) -> str | None:
    """The Accept header newsboat really sends: newsboat fetches a feed from a recording server."""
    seen: list[str | None] = []
    feed = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>http://x.invalid/</link>' \
           b"<description>d</description></channel></rss>"

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Accept"))
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(feed)))
            self.end_headers()
            self.wfile.write(feed)

        def log_message(self, *_args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder) as recorder:
        thread = threading.Thread(target=recorder.serve_forever, daemon=True)
        thread.start()
        try:
            run_newsboat(tmp_path, [f"http://127.0.0.1:{recorder.server_address[1]}/feed.rss"])
        finally:
            recorder.shutdown()
            thread.join(5)
    assert len(seen) == 1
    return seen[0]


@pytest.mark.live
def test_readers_accept_headers_get_the_feed_bytes_and_etag(server: Server, tmp_path: Path) -> None:
    """newsboat's (recorded), feedparser's, curl's and none: the feed's bytes and ETag, exactly."""
    accepts = {"newsboat": newsboat_accept(tmp_path), "feedparser": feedparser_http.ACCEPT_HEADER, "curl": "*/*",
               "none": None}
    assert accepts["newsboat"] == "*/*"  # newsboat 2.21 sends libcurl's default
    for path in ("/feed.xml", "/feed.rss", "/archive/202311749001.xml"):
        _, plain_headers, plain = server.get(path)
        assert plain_headers["etag"] == '"' + hashlib.sha256(plain).hexdigest()[:32] + '"'
        for reader, accept in accepts.items():
            status, headers, body = server.get(path, headers={"Accept": accept} if accept else {})
            assert (status, body, headers["etag"]) == (200, plain, plain_headers["etag"]), (path, reader)
            assert headers["content-type"] == plain_headers["content-type"] != "text/html; charset=utf-8"


@pytest.mark.live
def test_websub_discovery_and_pings(server: Server, hub: FakeHub) -> None:
    for path in FEEDS:
        headers = server.get(path)[1]
        assert headers["link"] == f'<{hub.url}>; rel="hub", <{BASE}{path[1:]}>; rel="self"', path
    assert "link" not in server.get("/archive/202311749001.xml")[1] and "link" not in server.get("/")[1]
    assert feedparser.parse(server.get("/feed.xml")[2]).feed.links[2] == {"href": hub.url, "rel": "hub",
                                                                           "type": "text/html"}
    # The first publish pinged each feed once.
    wait_for(lambda: len(hub.posts) >= 3, 10, what="pings after the first publish")
    assert sorted(hub.topics()) == sorted(BASE + p[1:] for p in FEEDS)
    assert all(form["hub.mode"] == ["publish"] for form in hub.posts)
    # A new article: the builder publishes and pings each feed once more.
    write_article(server.seeds, 10)  # type: ignore[attr-defined]
    wait_for(lambda: len(hub.posts) >= 6, 15, what="pings after a change")
    wait_for(lambda: feedparser.parse(server.get("/feed.xml")[2]).entries[0].title == "Story 10", 10,
             what="the new article served")
    assert sorted(hub.topics()[3:]) == sorted(BASE + p[1:] for p in FEEDS)
    (server.seeds / "story-10.txt").unlink()  # type: ignore[attr-defined]
    wait_for(lambda: len(hub.posts) >= 9, 15, what="pings after the removal")
    assert len(hub.posts) == 9


NEWSBOAT_ITEMS = "SELECT feedurl, title FROM rss_item ORDER BY pubDate DESC"


def run_newsboat(
    tmp_path: Path, urls: list[str], config: str = "", query: str = NEWSBOAT_ITEMS
) -> tuple[str, list[tuple[Any, ...]]]:
    """newsboat with a private HOME and `config`: reload every feed, print the unread count, read
    its cache (`query` over it)."""
    binary = shutil.which("newsboat")
    assert binary, "newsboat is not installed (Debian package newsboat, listed in .ci/apt-packages)"
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (tmp_path / "urls").write_text("\n".join(urls) + "\n")
    (tmp_path / "config").write_text(config)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local/share"), "LANG": "C.UTF-8", "TERM": "dumb"}
    done = subprocess.run([binary, "-u", str(tmp_path / "urls"), "-c", str(tmp_path / "cache.db"),
                           "-C", str(tmp_path / "config"), "-x", "reload", "print-unread"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "cache.db") as db:
        rows = db.execute(query).fetchall()
    return done.stdout.strip(), rows


@pytest.mark.live
@pytest.mark.parametrize("path", ["/feed.xml", "/feed.rss"])
def test_newsboat_reports_every_entry(server: Server, tmp_path: Path, path: str) -> None:
    output, rows = run_newsboat(tmp_path, [server.url(path)])
    titles = [title for feed, title in rows if feed == server.url(path)]
    assert output == f"{len(NEWEST)} unread articles"
    assert titles == NEWEST


@pytest.mark.live
def test_newsboat_sees_atom_and_rss_as_the_same_articles(server: Server, tmp_path: Path) -> None:
    """newsboat keys articles by guid/id: both subscriptions together are still 4 articles, not 8."""
    output, rows = run_newsboat(tmp_path, [server.url("/feed.xml"), server.url("/feed.rss")])
    assert output == f"{len(NEWEST)} unread articles"
    assert sorted(title for _, title in rows) == sorted(NEWEST)


def chromium(tmp_path: Path, url: str, *extra: str) -> tuple[str, list[str]]:
    """Headless Chromium (Debian's; never a downloaded browser): the rendered DOM and console messages."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed (Debian package chromium, listed in .ci/apt-packages)"
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *extra, url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


@pytest.mark.live
def test_chromium_shows_the_index_page(server: Server, tmp_path: Path) -> None:
    _, headers, body = server.get("/")
    assert headers["content-security-policy"] == index_csp(served_style(body))
    dom, console = chromium(tmp_path, server.url("/"), "--dump-dom")
    assert console == []  # no error, no CSP violation
    for title in NEWEST:
        assert f">{title}</a>" in dom
    assert 'href="/feed.rss"' in dom and 'href="/feed.json"' in dom


@pytest.mark.live
@pytest.mark.parametrize("path", ["/feed.xml", "/feed.rss", "/archive/202311749001.xml"])
def test_chromium_shows_the_feed_page_without_xslt(server: Server, tmp_path: Path, path: str) -> None:
    """Chromium with its own settings (its XSLT deprecation banner not switched off): the feed page,
    which uses no XSLT, so nothing on it says XSLT, and the console reports nothing at all."""
    dom, console = chromium(tmp_path, server.url(path), "--dump-dom")
    assert console == []  # no error, no CSP violation, no deprecation notice
    assert "xslt" not in dom.lower()  # no banner
    assert "<h1>" in dom and "&lt;feed" not in dom and "&lt;rss" not in dom  # a page, not XML source
    archive = path.startswith("/archive/")
    for title in ALL[-4:-1] if archive else NEWEST:  # the burst's older page: Stories 3-1
        assert f">{title}</a>" in dom, title  # linked titles, in a rendered page
    if archive:
        assert "This is an archive page" in dom and f'href="{BASE}feed.xml">The current feed</a>' in dom
        assert f'href="{BASE}archive/202311749002.xml">Newer articles</a>' in dom
    else:
        assert f'<code class="url">{BASE}{path[1:]}</code>' in dom  # the address to subscribe to, whole
        assert f'href="{BASE}archive/202311749002.xml">Older articles</a>' in dom


@pytest.mark.live
def test_chromium_screenshot_of_the_feed_page(server: Server, tmp_path: Path) -> None:
    """The README's "See it" command, run for real."""
    shot = tmp_path / "feed.png"
    _, console = chromium(tmp_path, server.url("/feed.xml"), f"--screenshot={shot}", "--window-size=1200,900",
                          "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert console == []


def test_stylesheet_switched_off(tmp_path: Path, config) -> None:
    from feedsvc.host import create_app
    from feedsvc.pipeline.builder import Builder

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write_article(seeds, 1)
    cfg = config(stylesheet=False)
    assert Builder(cfg).build().published
    client = create_app(cfg, run_builder=False).test_client()
    for path in ("/feed.xml", "/feed.rss"):
        response = client.get(path)
        assert response.status_code == 200 and b"xml-stylesheet" not in response.data
        # The browser page needs no stylesheet: a browser still gets it.
        assert client.get(path, headers={"Accept": BROWSER_ACCEPT}).mimetype == "text/html"
    assert client.get("/feed.xsl").status_code == 404
    assert client.get("/feed.json").status_code == 200
