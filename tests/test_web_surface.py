"""The web surface: only GET/HEAD on the feed routes, no path reaches the file system, oversized
requests refused, security headers on HTML, and the Host header never changes the feed's self URL."""

from __future__ import annotations

import shutil
import socket
import sys
from pathlib import Path

import pytest
from conftest import SAMPLE
from live import feed_env, free_port, running

from feedsvc.core.routes import ROUTES, document_name
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder

BASE = "https://feeds.example.org/"
SELF = b'href="https://feeds.example.org/feed.xml" rel="self"'
EVIL_HEADERS = {"Host": "evil.example", "X-Forwarded-Host": "evil2.example", "X-Forwarded-Proto": "http",
                "Forwarded": "host=evil3.example;proto=http", "X-Original-URL": "/manifest.json"}


@pytest.fixture
def client(tmp_path: Path, config):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    cfg = config(base_url=BASE)
    assert Builder(cfg).build().published
    app = create_app(cfg, run_builder=False)
    return app.test_client()


def test_routes_are_a_fixed_list(client) -> None:
    # Flask routes only /healthz and /metrics; documents are answered in front of it, from a fixed table.
    rules = {rule.rule: rule for rule in client.application.url_map.iter_rules()}
    assert set(rules) == {"/healthz", "/metrics"}
    for rule in rules.values():
        assert not rule.arguments and rule.methods <= {"GET", "HEAD"}
    assert set(ROUTES) == {"/feed.xml", "/feed.rss", "/feed.json", "/feed.xsl", "/", "/feeds.opml"}
    # The variable paths: a page number, and a declared feed's name before the same routes, each
    # looked up among published names.
    assert document_name("/archive/12.xml") == "archive/12.xml"
    assert document_name("/world/archive/12.xml") == "world/archive/12.xml"
    assert document_name("/world/feed.rss") == "world/feed.rss"
    assert document_name("/world/") == "world/index.html"
    for path in ("/archive/../manifest.json", "/archive/1.xml/x", "/archive/a.xml", "/archive/1.xml.gz",
                 "/manifest.json", "/objects/x", "/objects/feed.xml", "/world/feed.xsl", "/world/feeds.opml",
                 "/world", "/world/index.html", "/world/x/feed.xml", "/World/feed.xml", "/world/../feed.xml",
                 "/world/feed.xml.html", "/healthz/feed.xml", "/archive/feed.xml"):
        assert document_name(path) is None, path
    assert client.get("/archive/..%2fmanifest.json").status_code == 404
    assert client.get("/archive/../manifest.json").status_code == 404
    assert client.get("/archive/1.xml").status_code == 404  # nothing archived yet: no such document
    assert client.application.static_folder is None or not Path(client.application.static_folder).exists()


@pytest.mark.parametrize("path", ["/feed.xml", "/", "/healthz", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL"])
def test_only_get_and_head(client, path: str, method: str) -> None:
    response = client.open(path, method=method, data=b"x" * 10)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) <= {"GET", "HEAD"}


@pytest.mark.parametrize("path", [
    "/manifest.json", "/status.json", "/objects/", "/objects/x", "/.builder.lock", "/.publish.lock",
    "/feed.xml/", "/feed.xml/../manifest.json", "/%2e%2e/seeds/", "/..%2fmanifest.json", "/static/x",
    "/feed.xml%00", "/index.html", "/seeds/000_76cb3dcc68cf4183.txt", "/etc/passwd", "//etc/passwd",
    "/FEED.XML", "/feed.xml;.json",
])
def test_no_path_reaches_the_filesystem(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (404, 308), path
    assert b'"documents"' not in response.data and b"<!--1681696026000-->" not in response.data


def test_objects_are_not_served_by_name(client, tmp_path: Path) -> None:
    for obj in (tmp_path / "out" / "objects").iterdir():
        assert client.get(f"/objects/{obj.name}").status_code == 404
        assert client.get(f"/{obj.name}").status_code == 404


def test_host_headers_never_change_the_feed(client) -> None:
    plain = client.get("/feed.xml")
    spoofed = client.get("/feed.xml", headers=EVIL_HEADERS)
    assert plain.status_code == spoofed.status_code == 200
    assert spoofed.data == plain.data and spoofed.headers["ETag"] == plain.headers["ETag"]
    assert SELF in spoofed.data and b"evil" not in spoofed.data
    index = client.get("/", headers=EVIL_HEADERS)
    assert b"evil" not in index.data and b"https://feeds.example.org/feed.xml" in index.data
    assert b"evil" not in client.get("/healthz", headers=EVIL_HEADERS).data


@pytest.mark.parametrize("path", ["/", "/nope", "/feed.xml/"])
def test_security_headers_on_html(client, path: str) -> None:
    response = client.get(path)
    assert response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_security_headers_on_405(client) -> None:
    response = client.post("/")
    assert response.status_code == 405 and response.headers["X-Content-Type-Options"] == "nosniff"
    if response.mimetype == "text/html":
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


LIMIT = 16 * 1024  # the largest request body any route would accept (none takes one)


@pytest.mark.live
def test_oversized_body_refused(client, served) -> None:
    # Flask's own limit is set. No route reads a body (only GET and HEAD are routed, see above), so
    # through Flask any POST is a 405 whatever its size: the refusal itself is checked live.
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    assert limit is not None and 0 < limit <= LIMIT
    assert client.post("/feed.xml", data=b"x").status_code == 405
    port = served.port
    for path in ("/feed.xml", "/feed.rss", "/feed.json", "/", "/healthz"):
        # A small body reaches the app, which refuses the method; a large one never gets that far.
        one_byte = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        assert status_of(raw(port, one_byte.encode())) == 405, path
        declared = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode() + b"x" * 1000
        assert status_of(raw(port, declared)) == 413, path
    # A body over the limit that is really sent: with its length declared, and chunked (no length).
    over = b"x" * (LIMIT + 1)
    sent = b"POST /feed.xml HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(over) + over
    assert status_of(raw(port, sent)) == 413
    big = b"x" * (64 * 1024)
    chunked = (b"POST /feed.xml HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n")
    assert status_of(raw(port, chunked)) == 413
    assert served.get("/healthz")[0] == 200  # and the server is still up


# --- the real server: gunicorn's limits -----------------------------------------------------


def raw(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Send raw bytes, return everything the server answers before closing (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:80]
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("surface")
    seeds = tmp / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    port = free_port()
    env = feed_env(tmp, seeds, tmp / "out")
    command = [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)]
    with running(command, env, port, tmp / "serve.log") as srv:
        yield srv


@pytest.mark.live
def test_live_oversized_request_line_header_and_count(served) -> None:
    port = served.port
    assert status_of(raw(port, b"GET /feed.xml HTTP/1.1\r\nHost: x\r\n\r\n")) == 200
    assert status_of(raw(port, b"GET /feed.xml?" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) in (400, 414)
    big_header = b"GET /feed.xml HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n"
    assert status_of(raw(port, big_header)) in (400, 431)
    many = b"GET /feed.xml HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(200)) + b"\r\n"
    assert status_of(raw(port, many)) in (400, 431)
    # A huge declared body is refused without waiting for it.
    huge = b"POST /feed.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 1000
    assert status_of(raw(port, huge)) == 413  # not a 405: the size is refused before the method
    assert served.get("/healthz")[0] == 200  # and the server is still up


@pytest.mark.live
def test_live_host_header_and_absolute_form(served) -> None:
    normal = raw(served.port, b"GET /feed.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    for request in (
        b"GET /feed.xml HTTP/1.1\r\nHost: evil.example\r\nX-Forwarded-Host: evil2.example\r\nConnection: close\r\n\r\n",
        b"GET http://evil.example/feed.xml HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    ):
        answer = raw(served.port, request)
        assert status_of(answer) == 200
        body = answer.split(b"\r\n\r\n", 1)[1]
        assert SELF in body and b"evil" not in body
        assert body == normal.split(b"\r\n\r\n", 1)[1]


@pytest.mark.live
def test_live_paths_and_methods(served) -> None:
    for path in ("/manifest.json", "/objects/", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/status.json"):
        answer = raw(served.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert status_of(answer) in (400, 404), path
        assert b'"documents"' not in answer and b"root:" not in answer
    for method in (b"TRACE", b"CONNECT", b"PUT", b"DELETE"):
        answer = raw(served.port, method + b" /feed.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(answer) in (400, 405), method


def test_the_web_side_needs_only_a_builder_handle(tmp_path: Path, config) -> None:  # type: ignore[no-untyped-def]
    """web.app.make_app runs on a BuilderHandle alone (feedsvc.host adapts the election to it):
    /healthz reports it, and stopping the web process stops it."""
    from feedsvc.host import BuilderElsewhere, ElectedBuilder
    from feedsvc.publish.reader import PublishedStore
    from feedsvc.web.app import BuilderHandle, get_state, make_app

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    cfg = config(base_url=BASE)
    assert Builder(cfg).build().published
    stopped: list[bool] = []

    class Handle:
        is_builder = True

        @property
        def last_status(self) -> dict[str, object]:
            return {"ok": True, "finished_at": "9999-01-01T00:00:00+00:00", "entries": 42}

        def builder_pid(self) -> int | None:
            return 4242

        def stop(self) -> None:
            stopped.append(True)

    handle: BuilderHandle = Handle()
    for kind in (ElectedBuilder, BuilderElsewhere):  # host's two adapters have the handle's surface
        assert all(hasattr(kind, name) for name in ("is_builder", "last_status", "builder_pid", "stop")), kind
    app = make_app(cfg, PublishedStore(cfg.output_dir), handle)
    body = app.test_client().get("/healthz").get_json()
    assert (body["is_builder"], body["builder_pid"], body["entries"]) == (True, 4242, 42)
    get_state(app).stop()
    assert stopped
