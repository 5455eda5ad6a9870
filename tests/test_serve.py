"""`feedsvc serve` and the Procfile run one stack (gunicorn's gthread worker, the same options): a
clean stop on SIGTERM with idle keep-alive connections open, a quiet log in ordinary use, and an
answer for a client that half-closes its connection after the request."""

from __future__ import annotations

import gzip
import http.client
import re
import runpy
import socket
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, seed_text
from live import BIN, Server, feed_env, free_port, running, wait_for

from feedsvc.cli import main
from feedsvc.config import MULTIPROCESS_ENV, load_config
from feedsvc.web.server import gunicorn_options, loopback_self_link, on_exit, on_starting, serve_options, worker_exit

FEEDSVC = [sys.executable, "-m", "feedsvc"]
BROWSER = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Accept-Language": "en-US,en;q=0.9",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Connection": "keep-alive",
}


def quiet(log: str) -> None:
    """Nothing alarming in a whole log of ordinary use."""
    assert not re.search(r"\bERROR\b|\bCRITICAL\b|Traceback", log), log
    assert "Waiting for" not in log and "Task was destroyed" not in log, log


def stop(srv: Server) -> str:
    srv.stop()
    assert srv.proc.returncode == 0
    return srv.log_path.read_text(errors="replace")


def command(kind: str, port: int) -> tuple[list[str], dict[str, str]]:
    if kind == "serve":
        return [*FEEDSVC, "serve", "--port", str(port)], {}
    return ([str(BIN / "gunicorn"), "--config", "config/gunicorn.conf.py",
            "feedsvc.host:create_app(builder_in_child=True)", "--bind", f"127.0.0.1:{port}"], {"PORT": str(port)})


def test_serve_help_says_where_the_builder_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "one process" not in text
    assert "child process" in text


@pytest.mark.parametrize(
    ("base_url", "binds", "warned"),
    [
        ("http://127.0.0.1:8000/", ["0.0.0.0:8000"], True),
        ("http://localhost:8000/", ["[::]:8000"], True),
        ("http://127.0.0.1:8000/", ["192.0.2.7:80"], True),
        ("http://127.0.0.1:8000/", ["127.0.0.1:8000", "[::1]:8000", "unix:/run/feedsvc.sock"], False),
        ("https://feeds.example.org/", ["0.0.0.0:8000"], False),
    ],
)
def test_a_loopback_base_url_on_a_public_address_is_named(base_url: str, binds: list[str], warned: bool) -> None:
    message = loopback_self_link(base_url, binds)
    assert (message is not None) == warned
    if message:
        assert base_url in message and "FEEDSVC_BASE_URL" in message


def test_the_master_warns_once_of_the_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gunicorn master says it as it starts, once; workers say nothing of it."""
    from types import SimpleNamespace

    said: list[str] = []
    config = load_config(None, env={})
    assert config.base_url == "http://127.0.0.1:8000/"  # the default
    monkeypatch.delenv(MULTIPROCESS_ENV, raising=False)
    app, log = SimpleNamespace(feed_config=config), SimpleNamespace(warning=said.append)
    server = SimpleNamespace(app=app, cfg=SimpleNamespace(bind=["0.0.0.0:8000"]), log=log)
    on_starting(server)
    on_exit(server)
    assert len(said) == 1 and "0.0.0.0:8000" in said[0]
    server.cfg.bind = ["127.0.0.1:8000"]
    on_starting(server)
    on_exit(server)
    assert len(said) == 1


def test_serve_and_procfile_share_one_set_of_options() -> None:
    procfile = runpy.run_path(str(REPO / "config" / "gunicorn.conf.py"))
    serve = serve_options(load_config(REPO / "config" / "feedsvc.toml", env={}))
    shared = gunicorn_options(bind=[], workers=1, threads=1)
    assert set(serve) == set(shared) and set(shared) <= set(procfile)
    assert procfile["worker_class"] == serve["worker_class"] == "feedsvc.web.worker.HeadFirstWorker"
    assert procfile["worker_exit"] is serve["worker_exit"] is worker_exit
    assert procfile["preload_app"] is serve["preload_app"] is False
    assert serve["workers"] == 2 and serve["threads"] == 8 and serve["bind"] == ["127.0.0.1:8000"]


@pytest.mark.live
@pytest.mark.parametrize("kind", ["serve", "procfile"])
def test_sigterm_with_idle_keepalive_connections(tmp_path: Path, seeds: Path, kind: str) -> None:
    port = free_port()
    args, extra = command(kind, port)
    env = feed_env(tmp_path, seeds, tmp_path / "out", **extra)
    srv = Server(args, env, port, tmp_path / f"{kind}.log")
    idle: list[http.client.HTTPConnection] = []
    try:
        srv.wait_ready()
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 15, what="first publish")
        wait_for(lambda: "feedsvc.build: build:" in srv.log(), 10, what="the build's log line")
        for _ in range(10):  # browsers and readers that keep their connection open, idle
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/feed.xml", headers=BROWSER)
            response = conn.getresponse()
            assert response.status == 200 and response.getheader("Connection") != "close"
            response.read()
            idle.append(conn)
        time.sleep(0.2)
    finally:
        log = stop(srv)  # SIGTERM, then wait for the exit (Server.stop kills only after 10 s)
        for conn in idle:
            conn.close()
    quiet(log)
    assert re.search(r"pid \d+ stopped its builder", log), log  # the worker_exit hook stopped it cleanly
    assert len(re.findall(r"Worker exiting", log)) == 2  # no worker needed a SIGKILL


@pytest.mark.live
def test_a_browser_session_logs_nothing_alarming(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out")
    srv = Server([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log")
    try:
        srv.wait_ready()
        browser = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for path in ("/", "/feed.xml", "/feed.xsl", "/favicon.ico", "/"):
            browser.request("GET", path, headers=BROWSER)
            browser.getresponse().read()
        (seeds / "new.txt").write_text(seed_text(1700000000000, "Added while browsing", "https://e.com/n", "<p>n</p>"))

        def shown() -> bool:
            browser.request("GET", "/feed.xml", headers=BROWSER)
            response = browser.getresponse()
            body = response.read()
            if response.getheader("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            # A browser gets the feed page: the new title, linked, in a page.
            return response.status == 200 and b'">Added while browsing</a>' in body

        wait_for(shown, 15, what="the new seed in /feed.xml")
        etag = srv.get("/feed.xml")[1]["etag"]
        assert srv.get("/feed.xml", headers={"If-None-Match": etag})[0] == 304
        time.sleep(1.5)  # the browser's connection idles past the keep-alive timeout, and is closed
        try:
            browser.request("GET", "/", headers=BROWSER)
            status = browser.getresponse().status
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            browser.close()  # a browser retries an idempotent request on a new connection
            browser.request("GET", "/", headers=BROWSER)
            status = browser.getresponse().status
        assert status == 200
    finally:
        log = stop(srv)
    quiet(log)


@pytest.mark.live
def test_a_half_closed_request_is_answered(tmp_path: Path, seeds: Path) -> None:
    """`printf 'GET /feed.xml HTTP/1.0\\r\\n\\r\\n' | nc -N host port`: the client shuts its sending
    side right after the request (RFC 9112 §9.6 allows it) and still gets the whole answer."""
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 15, what="first publish")
        expected = srv.get("/feed.xml")[2]
        for request in (b"GET /feed.xml HTTP/1.0\r\n\r\n", b"GET /feed.xml HTTP/1.1\r\nHost: x\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request)
                sock.shutdown(socket.SHUT_WR)
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
            head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
            assert body == expected
