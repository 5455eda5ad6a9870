"""The static tree served by real nginx (Debian `nginx-light`, `.ci/apt-packages`) with `root DIR;
gzip_static on;`, on a free loopback port, with its prefix, pid and temp paths in the test's tmp
dir: every document's bytes (and gzip bytes) are `feedsvc serve`'s, and requests hammering it
while the tree is republished 50 times see no 404 and no torn body."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.client import HTTPConnection
from pathlib import Path

import conftest
import pytest
from feedparser import http as feedparser_http
from live import BIN, feed_env, free_port, http, running, wait_for

from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest
from feedsvc.publish.static import tree_files, versions_dir

pytestmark = pytest.mark.live

NGINX = "/usr/sbin/nginx"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
# The types feedsvc serve sends, by extension (README, "Deploy"); charset as feedsvc sends it.
NGINX_CONF = """
daemon off;
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/tmp/body; proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi; uwsgi_temp_path {prefix}/tmp/uwsgi; scgi_temp_path {prefix}/tmp/scgi;
    types {{
        application/atom+xml xml;
        application/rss+xml rss;
        application/feed+json json;
        text/html html;
        text/xsl xsl;
        text/x-opml opml;
    }}
    charset utf-8;
    charset_types application/atom+xml application/rss+xml text/xsl text/x-opml;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        gzip_static on;
        gzip_vary on;
    }}
}}
"""


@contextlib.contextmanager
def nginx(root: Path, prefix: Path, port: int | None = None) -> Iterator[int]:
    """nginx in the foreground with `root` (on `port`, else a free one); stopped (its own process group) on exit."""
    (prefix / "tmp").mkdir(parents=True)
    port = port or free_port()
    # As root, nginx would run its workers as nobody, who cannot enter the test's 0700 tmp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = prefix / "nginx.conf"
    conf.write_text(NGINX_CONF.format(user=user, prefix=prefix, port=port, root=root))
    with (prefix / "stderr.log").open("wb") as log:
        proc = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            assert proc.poll() is None, (prefix / "error.log").read_text()
            return http(f"http://127.0.0.1:{port}/feed.xml", timeout=2)[0] == 200
        wait_for(ready, timeout=20, what="nginx serving /feed.xml")
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    assert "[emerg]" not in (prefix / "error.log").read_text()


def write_seed(seeds: Path, i: int, body: str = "") -> str:
    stamp = int((T0 + timedelta(days=10 * i)).timestamp() * 1000)
    name = f"{i:04}.txt"
    conftest.write_seed(seeds, name, stamp, f"Article {i}", f"https://e.com/{i}", f"<p>{i} 文章</p>{body}")
    return name


@pytest.fixture
def nine_articles(tmp_path: Path) -> Path:
    """tmp_path/seeds with articles 0-8 (write_seed), ten days apart."""
    folder = tmp_path / "seeds"
    folder.mkdir()
    for i in range(9):
        write_seed(folder, i)
    return folder


def url_of(name: str) -> str:
    return "/" if name == "index.html" else "/" + name


def test_nginx_serves_feedsvc_serves_bytes_for_every_document(tmp_path: Path, nine_articles: Path) -> None:
    out, www = tmp_path / "out", tmp_path / "www"
    env = feed_env(tmp_path, nine_articles, out, FEEDSVC_MAX_ENTRIES="2", FEEDSVC_ARCHIVE_PAGE_SIZE="2")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")} | env
    done = subprocess.run([str(BIN / "feedsvc"), "build", "--static", str(www)], env=full_env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"static tree -> {www} (www.versions/1-" in done.stdout
    names = [n for n in tree_files(read_manifest(out)["documents"]) if not n.endswith(".gz")]
    assert len([n for n in names if n.startswith("archive/")]) >= 3
    port = free_port()
    with running([str(BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv, \
            nginx(www, tmp_path / "nginx") as static_port:
        served = 0
        for name in names:
            for accept in (feedparser_http.ACCEPT_HEADER, "*/*", None):
                for encoding in (None, "gzip"):
                    headers = {k: v for k, v in (("Accept", accept), ("Accept-Encoding", encoding)) if v}
                    ours = srv.get(url_of(name), headers=headers)
                    theirs = http(f"http://127.0.0.1:{static_port}{url_of(name)}", headers=headers)
                    assert ours[0] == theirs[0] == 200, (name, headers)
                    assert theirs[2] == ours[2], (name, headers)  # the same bytes, gzip ones included
                    assert theirs[1]["content-type"] == ours[1]["content-type"], name
                    assert theirs[1].get("content-encoding") == ours[1].get("content-encoding") == encoding
                    served += 1
        assert served == len(names) * 6
        # A browser page has no URL of its own, in either (serve negotiates it by Accept).
        assert srv.get("/feed.xml.html")[0] == http(f"http://127.0.0.1:{static_port}/feed.xml.html")[0] == 404


def published_bytes(out: Path, files: dict[str, set[bytes]]) -> None:
    """Add the bytes of every file of the tree of the current manifest."""
    for name, obj in tree_files(read_manifest(out)["documents"]).items():
        files.setdefault(name, set()).add((out / "objects" / obj).read_bytes())


def test_hammering_nginx_during_50_republishes_sees_no_404_and_no_torn_body(
    tmp_path: Path, nine_articles: Path, config
) -> None:
    out, www = tmp_path / "out", tmp_path / "www"
    builder = Builder(config(max_entries=2, archive_page_size=2, static_dir=str(www)))
    assert builder.build().published
    versions: dict[str, set[bytes]] = {}
    published_bytes(out, versions)
    names = sorted(versions)  # every file, .gz included: a .gz asked for with gzip, the rest without
    seen: list[tuple[str, int, bytes]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def hammer(port: int, offset: int) -> None:
        connection = HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for i in range(200_000):  # bounded; ends when the republishes do
                if done.is_set():
                    break
                name = names[(i + offset) % len(names)]
                headers = {"Accept-Encoding": "gzip"} if name.endswith(".gz") else {}
                connection.request("GET", url_of(name.removesuffix(".gz")), headers=headers)
                response = connection.getresponse()
                seen.append((name, response.status, response.read()))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    with nginx(www, tmp_path / "nginx") as port:
        threads = [threading.Thread(target=hammer, args=(port, k)) for k in (0, 7)]
        for thread in threads:
            thread.start()
        try:
            for n in range(50):
                before = len(seen)
                # The newest article (the feeds change) or an archived one (its archive page changes).
                changed = write_seed(nine_articles, 8 if n % 2 else n % 6, body=f"<p>edit {n}</p>" * (1 + n % 5))
                result = builder.build(changed=[changed])
                assert result.ok and result.published
                published_bytes(out, versions)
                wait_for(lambda before=before: errors or len(seen) >= before + 4, timeout=10, what="requests")
                assert not errors, errors
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=30)
    assert not errors
    print(f"{len(seen)} requests during 50 republishes")
    assert len(seen) >= 200
    assert {status for _, status, _ in seen} == {200}
    torn = [(name, len(body)) for name, _, body in seen if body not in versions[name]]
    assert not torn
    assert len({body for name, _, body in seen if name == "feed.xml"}) > 10  # requests spanned the republishes
    assert len([p for p in versions_dir(www).iterdir() if p.is_dir()]) == 2  # the current and the previous
