"""Hostile HTTP clients against the real servers (`feedsvc serve` and the Procfile's gunicorn), on
loopback, in small counts where the old stack already failed (16 slow clients stopped it):

- slow-loris connections (one header byte every 3 s) and idle ones (connect, send nothing) hold no
  worker thread: a normal `GET /feed.xml` is answered within seconds while they are open;
- a flood of large, distinct `If-None-Match` values leaves the workers' memory where it was;
- `/metrics` through nginx (a plain `proxy_pass`, and config/nginx-feedsvc.conf) asks for the token.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE
from live import BIN, Server, feed_env, free_port, procfile_command, running, wait_for

from benchmarks.slow_clients import alive, connect
from feedsvc.web.metrics_endpoint import allowed, direct_loopback

pytestmark = pytest.mark.live

FEEDSVC = [sys.executable, "-m", "feedsvc"]
SLOW, IDLE = 64, 64  # 16 slow clients were enough to stop the old stack
DRIP_SECONDS = 3.0
PROBE_LIMIT = 5.0  # generous: an answer takes milliseconds; the old stack never answered


def command(kind: str, port: int) -> tuple[list[str], dict[str, str]]:
    if kind == "serve":
        return [*FEEDSVC, "serve", "--port", str(port)], {}
    return (
        [str(BIN / "gunicorn"), *procfile_command("web")[1:], "--bind", f"127.0.0.1:{port}"],
        {"PORT": str(port)},
    )


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    folder = tmp_path / "seeds"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    return folder


@contextlib.contextmanager
def server(kind: str, tmp_path: Path, seeds: Path) -> Iterator[Server]:
    port = free_port()
    args, extra = command(kind, port)
    with running(args, feed_env(tmp_path, seeds, tmp_path / "out", **extra), port, tmp_path / f"{kind}.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="first publish")
        yield srv


class Attackers:
    """`slow` connections that send one header byte every DRIP_SECONDS and `idle` ones that send
    nothing; a connection the server closes is opened again, so the pressure stays."""

    HEAD = b"GET /feed.xml HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 4000

    def __init__(self, port: int, slow: int, idle: int) -> None:
        self.port = port
        self.slow: list[tuple[socket.socket | None, int]] = [(None, 0)] * slow
        self.idle: list[socket.socket | None] = [None] * idle
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _tick(self) -> None:
        for i, (sock, sent) in enumerate(self.slow):
            if not alive(sock):
                if sock is not None:
                    sock.close()
                sock, sent = connect(self.port), 0
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.send(self.HEAD[sent % len(self.HEAD) :][:1])
                    sent += 1
            self.slow[i] = (sock, sent)
        for i, sock in enumerate(self.idle):
            if not alive(sock):
                if sock is not None:
                    sock.close()
                self.idle[i] = connect(self.port)

    def _run(self) -> None:
        while not self.stop.is_set():
            self._tick()
            self.stop.wait(DRIP_SECONDS)

    def __enter__(self) -> Attackers:
        self._tick()  # every connection open (and every slow one has sent its first byte) before a probe
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        for sock, _sent in self.slow:
            if sock is not None:
                sock.close()
        for idle in self.idle:
            if idle is not None:
                idle.close()


def probe(port: int) -> float:
    """One reader's `GET /feed.xml` on a new connection: its time; fails past PROBE_LIMIT."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_LIMIT)
    try:
        conn.request("GET", "/feed.xml")
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise AssertionError(f"GET /feed.xml: no answer within {PROBE_LIMIT}s ({exc!r})") from None
    finally:
        conn.close()
    assert response.status == 200 and body
    return time.monotonic() - start


@pytest.mark.parametrize("kind", ["serve", "procfile"])
def test_slow_and_idle_clients_hold_no_worker_thread(tmp_path: Path, seeds: Path, kind: str) -> None:
    with server(kind, tmp_path, seeds) as srv, Attackers(srv.port, SLOW, IDLE):
        time.sleep(0.5)  # the server has accepted them all and seen the slow ones' first byte
        times = []
        for _ in range(6):  # across two drips of the slow clients
            times.append(probe(srv.port))
            time.sleep(1.0)
        assert max(times) < PROBE_LIMIT, times


def test_at_worker_connections_the_oldest_unfinished_head_makes_room(tmp_path: Path, seeds: Path) -> None:
    """More slow and idle clients than a worker takes (16 here, 4,096 in production): the oldest
    connection still sending its head is closed for a new one, which is answered."""
    port = free_port()
    args, extra = command("procfile", port)
    env = feed_env(tmp_path, seeds, tmp_path / "out", **extra)
    with running([*args, "--worker-connections", "16"], env, port, tmp_path / "procfile.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="first publish")
        with Attackers(srv.port, SLOW, IDLE):
            time.sleep(0.5)
            times = [probe(srv.port) for _ in range(3)]
        assert max(times) < PROBE_LIMIT, times


def worker_pids(srv: Server) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", srv.log())]


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1))  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def flood_request(port: int, lines: int, tag: int) -> bytes:
    """A GET /feed.xml whose If-None-Match is `lines` header lines of ~8 KB (the field limit), all
    distinct: what the old worker joined into one value of up to ~360 KB and cached."""
    head = [b"GET /feed.xml HTTP/1.1", b"Host: x", b"Connection: close"]
    for line in range(lines):
        tags = ", ".join(f'"{tag:08x}{line:04x}{n:04x}"' for n in range(420))
        head.append(b"If-None-Match: " + tags.encode()[:8000])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
            return sock.recv(64)
        except OSError:  # refused mid-send (431 and close): as good as an answer
            return b""


FLOOD = 200  # each of the two kinds below


def test_a_flood_of_large_distinct_if_none_match_values_leaves_worker_memory_where_it_was(
    tmp_path: Path, seeds: Path
) -> None:
    with server("serve", tmp_path, seeds) as srv:
        pids = worker_pids(srv)
        assert len(pids) == 2
        for _ in range(20):  # both workers warm (they share the listener)
            probe(srv.port)
        before = {pid: rss_kib(pid) for pid in pids}
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        for tag in range(FLOOD):
            # ~24 KB (within the 32 KiB head: parsed) and ~360 KB (45 lines: refused, 431)
            assert flood_request(srv.port, 3, tag).startswith(b"HTTP/1.1 200")
            flood_request(srv.port, 45, FLOOD + tag)
        probe(srv.port)
        grown = {pid: (rss_kib(pid) - before[pid]) / 1024 for pid in pids}
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    assert all(mib < 20 for mib in grown.values()), grown
    # A regression guard, not the target: the target (≤ 5 ms of CPU a request; measured 0.5-1.1 ms)
    # is in BENCHMARKS.md (Hostile input); a 45 x 8 KB header cost 370 ms before, so 50 ms stays clear
    # of a shared machine's noise and still catches it.
    assert cpu / (2 * FLOOD) <= 0.05, f"{cpu:.2f} s of CPU for {2 * FLOOD} requests"


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_MAIN = """
daemon off;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body; proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi; uwsgi_temp_path {root}/tmp/uwsgi; scgi_temp_path {root}/tmp/scgi;
{server}
}}
"""
PLAIN_PROXY = """
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{upstream}; }}
    }}
"""
TOKEN = "s3cret-Token_1="
PROXY_HEADERS = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Real-IP",
    "X-Client-IP",
    "CF-Connecting-IP",
    "True-Client-IP",
    "Fastly-Client-IP",
    "X-Cluster-Client-IP",
    "Via",
)


def shipped_proxy(port: int, upstream: int) -> str:
    """config/nginx-feedsvc.conf, on the test's ports."""
    text = (REPO / "config" / "nginx-feedsvc.conf").read_text()
    assert "listen 80;" in text and "127.0.0.1:8000;" in text
    return text.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("127.0.0.1:8000;", f"127.0.0.1:{upstream};")


@contextlib.contextmanager
def nginx_in_front(root: Path, server_block: str, port: int) -> Iterator[Server]:
    (root / "tmp").mkdir(parents=True)
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    (root / "nginx.conf").write_text(NGINX_MAIN.format(root=root, user=user, server=server_block))
    args = [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    with running(args, {}, port, root / "stdout.log") as proxy:
        yield proxy


def test_metrics_through_nginx_needs_the_token_even_through_a_plain_proxy_pass(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_METRICS_TOKEN=TOKEN)
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="first publish")
        # Directly, from this host: open; with any proxy's header, not.
        assert srv.get("/metrics")[0] == 200
        for header in PROXY_HEADERS:
            assert srv.get("/metrics", headers={header: "198.51.100.7"})[0] == 403, header
        for name, block in (("plain", PLAIN_PROXY), ("shipped", None)):
            proxy_port = free_port()
            text = block.format(port=proxy_port, upstream=port) if block else shipped_proxy(proxy_port, port)
            with nginx_in_front(tmp_path / f"nginx-{name}", text, proxy_port) as proxy:
                assert proxy.get("/feed.xml")[0] == 200, name
                status, _, body = proxy.get("/metrics")
                assert status == 403 and b"feedsvc_" not in body, name
                status, _, body = proxy.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
                assert status == 200 and b"feedsvc_http_requests_total" in body, name


def test_only_a_direct_loopback_request_reads_metrics_without_the_token() -> None:
    direct = {"REMOTE_ADDR": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000"}
    assert direct_loopback(direct)
    for host in ("localhost:8000", "localhost", "[::1]:8000", "127.0.0.2", "prometheus.localhost:8000"):
        assert direct_loopback({**direct, "HTTP_HOST": host}), host
    assert not direct_loopback({**direct, "SERVER_PROTOCOL": "HTTP/1.0"})  # nginx's proxy_pass by default
    for host in ("feeds.example.org", "feeds.example.org:443", "", "203.0.113.9:8000"):
        assert not direct_loopback({**direct, "HTTP_HOST": host}), host  # `Host $host`, or none
    for header in PROXY_HEADERS:
        assert not direct_loopback({**direct, "HTTP_" + header.upper().replace("-", "_"): "x"}), header
    assert not direct_loopback({**direct, "REMOTE_ADDR": "203.0.113.9"})
    assert allowed({**direct, "SERVER_PROTOCOL": "HTTP/1.0", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}, TOKEN)
    assert not allowed({**direct, "SERVER_PROTOCOL": "HTTP/1.0"}, TOKEN)
