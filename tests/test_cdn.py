"""A shared cache in front of `feedsvc serve`: real nginx `proxy_cache` (Debian nginx-light), which
follows the Cache-Control extensions feedsvc sends (stale-while-revalidate, stale-if-error; nginx
does since 1.11.10 when `proxy_cache_use_stale` is not set), revalidates with the ETag and answers
a reader's If-None-Match itself. Everything on loopback ports, every wait bounded."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import SAMPLE, seed_text
from live import Server, feed_env, free_port, running, wait_for

pytestmark = pytest.mark.live

FEEDSVC = [sys.executable, "-m", "feedsvc"]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MAX_AGE = 2
Answer = tuple[int, str, bytes]  # status, X-Cache-Status, body

PROXY_CONF = """
daemon off;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/tmp/body; proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi; uwsgi_temp_path {root}/tmp/uwsgi; scgi_temp_path {root}/tmp/scgi;
    proxy_cache_path {root}/cache levels=1 keys_zone=feeds:1m max_size=16m inactive=1d use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache feeds;
            proxy_cache_revalidate on;
            # No proxy_cache_use_stale: the upstream's Cache-Control decides what may be served stale.
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_proxy(root: Path, port: int, upstream: int) -> Iterator[Server]:
    """nginx with its prefix, temp and cache folders under `root`, caching 127.0.0.1:`upstream`.
    Ready when /healthz answers 200 through it (it is never cached: no-store)."""
    for sub in ("tmp", "cache"):
        (root / sub).mkdir(parents=True)
    # Run as root (CI), its workers would switch to nobody and not reach a 0700 test folder.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(PROXY_CONF.format(root=root, port=port, upstream=upstream, user=user))
    args = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    with running(args, {}, port, root / "stdout.log") as proxy:
        yield proxy


def answers(proxy: Server, path: str, until: Callable[[int, str, bytes], bool], timeout: float = 20) -> list[Answer]:
    """(status, X-Cache-Status, body) of requests through the proxy, every 0.1 s, up to and
    including the first for which `until(status, cache_status, body)` holds (bounded)."""
    seen: list[Answer] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, got, body = proxy.get(path)
        seen.append((status, got.get("x-cache-status", ""), body))
        if until(*seen[-1]):
            return seen
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s: {[(s, c, len(b)) for s, c, b in seen[-5:]]}")


def published(srv: Server, text: bytes) -> bytes | None:
    """/feed.xml straight from `srv`, once it holds `text`."""
    body = srv.get("/feed.xml")[2]
    return body if text in body else None


# nginx also serves a stale copy on error for stale-while-revalidate's time (it takes it as a
# stale-if-error too), so the second case turns that off: stale-if-error alone keeps the feed up,
# and once it is over, the proxy answers the error.
@pytest.mark.parametrize(("stale_while_revalidate", "stale_if_error"), [(60, 86400), (0, 8)])
def test_nginx_proxy_cache_hits_revalidates_and_serves_stale_on_error(
    tmp_path: Path, stale_while_revalidate: int, stale_if_error: int
) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    port, proxy_port = free_port(), free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_CACHE_MAX_AGE=str(MAX_AGE),
                   FEEDSVC_STALE_WHILE_REVALIDATE=str(stale_while_revalidate),
                   FEEDSVC_STALE_IF_ERROR=str(stale_if_error))
    cache_control = f"public, max-age={MAX_AGE}, " + ", ".join(
        f"{name}={seconds}" for name, seconds in
        (("stale-while-revalidate", stale_while_revalidate), ("stale-if-error", stale_if_error)) if seconds)
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv, \
            nginx_proxy(tmp_path / "nginx", proxy_port, port) as proxy:
        direct_status, direct, feed = srv.get("/feed.xml")
        assert direct_status == 200 and direct["cache-control"] == cache_control

        # The first request fills the cache, the second is answered from it: the same bytes and ETag.
        status, first, body = proxy.get("/feed.xml")
        assert (status, first["x-cache-status"], body, first["etag"]) == (200, "MISS", feed, direct["etag"])
        assert first["cache-control"] == cache_control
        status, second, body = proxy.get("/feed.xml")
        assert (status, second["x-cache-status"], body, second["etag"]) == (200, "HIT", feed, direct["etag"])

        # A reader's If-None-Match through the proxy: 304, answered from the cache.
        status, conditional, body = proxy.get("/feed.xml", headers={"If-None-Match": direct["etag"]})
        assert (status, body) == (304, b"") and conditional["etag"] == direct["etag"]

        # Past max-age with nothing changed, the proxy revalidates with the ETag: feedsvc's 304.
        seen = answers(proxy, "/feed.xml", lambda s, c, b: c != "HIT")
        assert seen[-1] == (200, "REVALIDATED", feed), seen[-1][:2]

        # A change: once max-age has passed, the proxy fetches the new bytes; until then, the old.
        (seeds / "new.txt").write_text(seed_text(1_700_000_000_000, "A new article", "https://e.com/new", "<p>N</p>"))
        new_feed = wait_for(lambda: published(srv, b"A new article"), what="serve publishing the new article")
        seen = answers(proxy, "/feed.xml", lambda s, c, b: b == new_feed)
        assert seen[-1][:2] == (200, "EXPIRED"), seen[-1][:2]
        assert all((s, b) == (200, feed) and c in ("HIT", "REVALIDATED") for s, c, b in seen[:-1]), seen
        status, cached, body = proxy.get("/feed.xml")
        assert (status, cached["x-cache-status"], body) == (200, "HIT", new_feed)
        new_etag = cached["etag"]
        assert new_etag == srv.get("/feed.xml")[1]["etag"] != direct["etag"]

        # feedsvc stopped: past max-age, inside stale-if-error, the proxy still answers the last feed.
        srv.stop()
        assert srv.proc.returncode == 0
        seen = answers(proxy, "/feed.xml", lambda s, c, b: c != "HIT")
        assert seen[-1] == (200, "STALE", new_feed), seen[-1][:2]
        status, conditional, body = proxy.get("/feed.xml", headers={"If-None-Match": new_etag})
        assert (status, body, conditional["x-cache-status"]) == (304, b"", "STALE")
        # Nothing the proxy had never cached is invented: another document is an error.
        assert proxy.get("/feed.json")[0] == 502
        if stale_if_error < 60:  # and once stale-if-error is over, so is the feed
            seen = answers(proxy, "/feed.xml", lambda s, c, b: s != 200, timeout=stale_if_error + 20)
            assert seen[-1][:2] == (502, "EXPIRED") and {c for s, c, b in seen[:-1]} == {"STALE"}
