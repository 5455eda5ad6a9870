"""Entry pages on live servers (issue 23): every page and every link on it answers 200 through
`feedsvc serve` and through nginx on the static tree; newsboat gets the page's URL with
entry_link = "page"; Chromium renders a page (Chinese text, no CSP violation, no script)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SAMPLE, write_seed
from live import BIN, feed_env, free_port, http, running
from lxml import html as lxml_html
from test_readers import BROWSER_ACCEPT, chromium, run_newsboat, write_article
from test_static_nginx import nginx

PAGES = {"FEEDSVC_ARTICLE_PAGES": "true"}  # opt-in (config: article_pages)

pytestmark = pytest.mark.live

PAGE = re.compile(r"/articles/[0-9a-f]{20}\.html")


def corpus(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    for n in range(1, 10):
        write_article(seeds, n)
    return seeds


def page_links(base: str, body: bytes) -> tuple[list[str], list[str]]:
    """(this site's links on a page, as paths; the links elsewhere)."""
    hrefs = [str(h) for h in lxml_html.fromstring(body).xpath("//a/@href|//link/@href")]
    ours = sorted({h.removeprefix(base.rstrip("/")) for h in hrefs if h.startswith(base)})
    return ours, [h for h in hrefs if not h.startswith(base)]


def walk(base: str, get: Callable[[str, str], tuple[int, dict[str, str], bytes]]) -> set[str]:
    """Every entry's page reached from the index and the feed pages, each link on it fetched once."""
    status, _, body = get("/", BROWSER_ACCEPT)
    assert status == 200
    todo, seen, pages = ["/", "/feed.xml", "/feed.rss"], set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        status, headers, body = get(path, BROWSER_ACCEPT)
        assert status == 200, path
        if not headers.get("content-type", "").startswith("text/html"):
            continue
        ours, others = page_links(base, body)
        if PAGE.fullmatch(path):
            pages.add(path)
            assert others, path  # the original (not fetched: the origin is not reachable from a test)
        todo += [p for p in ours if p not in seen and (PAGE.fullmatch(p) or p.startswith(("/archive/", "/feed.")))]
    return pages


def test_every_page_and_its_links_answer_200_on_a_live_server(tmp_path: Path) -> None:
    seeds, port = corpus(tmp_path), free_port()
    base = f"http://127.0.0.1:{port}/"
    env = feed_env(tmp_path, seeds, tmp_path / "out", **PAGES, FEEDSVC_MAX_ENTRIES="4", FEEDSVC_ARCHIVE_PAGE_SIZE="3",
                   FEEDSVC_BASE_URL=base)
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        pages = walk(base, lambda path, accept: srv.get(path, headers={"Accept": accept}))
        assert len(pages) == 10  # every entry, new and old, reached by walking links only
        assert srv.get("/articles/0123456789abcdef0123.html")[0] == 404


def test_every_page_and_its_links_answer_200_through_nginx_on_the_static_tree(tmp_path: Path) -> None:
    seeds, out, www, port = corpus(tmp_path), tmp_path / "out", tmp_path / "www", free_port()
    base = f"http://127.0.0.1:{port}/"
    env = feed_env(tmp_path, seeds, out, **PAGES, FEEDSVC_MAX_ENTRIES="4", FEEDSVC_ARCHIVE_PAGE_SIZE="3",
                   FEEDSVC_BASE_URL=base)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | env
    done = subprocess.run([str(BIN / "feedsvc"), "build", "--static", str(www)], env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(list((www / "articles").glob("*.html"))) == 10
    assert len(list((www / "articles").glob("*.html.gz"))) == 10
    with nginx(www, tmp_path / "nginx", port=port) as static_port:
        assert static_port == port
        pages = walk(base, lambda path, accept: http(base.rstrip("/") + path, headers={"Accept": accept}))
        assert len(pages) == 10
        assert http(base + "articles/0123456789abcdef0123.html")[0] == 404


def test_newsboat_gets_the_page_url_with_entry_link_page(tmp_path: Path) -> None:
    seeds, port = corpus(tmp_path), free_port()
    base = f"http://127.0.0.1:{port}/"
    env = feed_env(tmp_path, seeds, tmp_path / "out", **PAGES, FEEDSVC_MAX_ENTRIES="4", FEEDSVC_BASE_URL=base,
                   FEEDSVC_ENTRY_LINK="page")
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        for path in ("/feed.xml", "/feed.rss"):
            run = tmp_path / path.strip("/")
            run.mkdir()
            output, _ = run_newsboat(run, [srv.url(path)])
            assert output == "4 unread articles"
            import sqlite3

            with sqlite3.connect(run / "cache.db") as db:
                urls = [row[0] for row in db.execute("SELECT url FROM rss_item")]
            assert len(urls) == 4 and all(PAGE.fullmatch(u.removeprefix(base.rstrip("/"))) for u in urls)
            for url in urls:  # what newsboat opens is the page, served here
                status, headers, body = http(url)
                assert status == 200 and headers["content-type"].startswith("text/html") and b"<article>" in body


def test_chromium_renders_an_article_page(tmp_path: Path) -> None:
    seeds, port = corpus(tmp_path), free_port()
    base = f"http://127.0.0.1:{port}/"
    env = feed_env(tmp_path, seeds, tmp_path / "out", **PAGES, FEEDSVC_BASE_URL=base)
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        _, _, index = srv.get("/")
        ours, _ = page_links(base, index)
        sample = next(p for p in ours if PAGE.fullmatch(p) and "<h2>中國防長" in srv.get(p)[2].decode())
        shot = tmp_path / "article.png"
        _, console = chromium(tmp_path, srv.url(sample), f"--screenshot={shot}", "--window-size=1000,1400",
                              "--hide-scrollbars")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
        # No CSP violation and no script error; the images' hosts are not reachable from a test.
        assert [line for line in console if "net::ERR_" not in line] == []
        dom, console = chromium(tmp_path, srv.url(sample), "--dump-dom")
        assert "中國防長會見普京" in dom and "<script" not in dom and "<article>" in dom
        assert [line for line in console if "net::ERR_" not in line] == []
        if os.environ.get("SCREENSHOTS_DIR"):  # to look at it
            shutil.copy(shot, Path(os.environ["SCREENSHOTS_DIR"]) / "article.png")


def test_chromium_shows_an_allowed_embed_on_its_page_without_a_csp_violation(tmp_path: Path) -> None:
    """A YouTube player (written as publishers do, feature=oembed) reaches the entry's page as a sandboxed
    no-cookie iframe, and the page's CSP lets Chromium frame it: no CSP violation in the console (the
    player's host is not reachable from a test, so a network error is all it may say)."""
    seeds, port = corpus(tmp_path), free_port()
    write_seed(seeds, "video.txt", 1700000000000, "A video", "https://e.com/video",
               '<p>Watch:</p><iframe width="560" height="315" title="Clip" allowfullscreen '
               'src="https://www.youtube.com/embed/dQw4w9WgXcQ?feature=oembed"></iframe><p>After.</p>')
    base = f"http://127.0.0.1:{port}/"
    env = feed_env(tmp_path, seeds, tmp_path / "out", **PAGES, FEEDSVC_BASE_URL=base)
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        _, _, index = srv.get("/")
        ours, _ = page_links(base, index)
        page = next(p for p in ours if PAGE.fullmatch(p) and "<h2>A video" in srv.get(p)[2].decode())
        dom, console = chromium(tmp_path, srv.url(page), "--dump-dom")
    frame = re.search(r"<iframe[^>]*>", dom)
    assert frame is not None and 'src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ' in frame.group(0)
    assert 'sandbox="allow-scripts allow-same-origin allow-popups allow-popups-to-escape-sandbox"' in frame.group(0)
    assert "<script" not in dom
    assert [line for line in console if "Content Security Policy" in line or "violates" in line] == []
    assert [line for line in console if "net::ERR_" not in line] == []
