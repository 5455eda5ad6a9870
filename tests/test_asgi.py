"""`feedsvc serve`'s ASGI front answers exactly as the Flask app does, documents on the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_fast_path import REQUESTS, answer

from feedsvc.asgi import FeedFront, wsgi_environ
from feedsvc.build.builder import Builder
from feedsvc.web import create_app


def call(front: FeedFront, method: str, path: str, headers: dict[str, str], body: bytes = b"",
         query: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One request through the ASGI app, as gunicorn's asyncio worker makes it."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "http_version": "1.1", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": query, "root_path": "", "scheme": "http", "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    }
    asyncio.run(front(scope, receive, send))
    start, *bodies = sent
    assert start["type"] == "http.response.start" and all(m["type"] == "http.response.body" for m in bodies)
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, b"".join(m["body"] for m in bodies)


@pytest.fixture
def front_and_flask(make_seed, config):  # type: ignore[no-untyped-def]
    make_seed("a.txt", url="https://e.com/a", title="A & <b>")
    cfg = config(archive_page_size=1, max_entries=1)
    make_seed("b.txt", url="https://e.com/b", title="B", stamp_ms=1_600_000_000_000)
    Builder(cfg).build()
    front = FeedFront(create_app(cfg, run_builder=False), threads=2)
    yield front, create_app(cfg, run_builder=False, fast_path=False).test_client()
    front.pool.shutdown()


@pytest.mark.parametrize(("method", "path", "headers"), [*REQUESTS, ("GET", "/archive/1.xml", {}),
                                                         ("GET", "/nope", {}), ("OPTIONS", "/feed.xml", {})])
def test_same_answer_as_flask(front_and_flask, method, path, headers) -> None:  # type: ignore[no-untyped-def]
    front, flask = front_and_flask
    status, got_headers, body = call(front, method, path, headers)
    want_status, want_headers, want_body = answer(flask, method, path, headers)
    assert status == int(want_status[:3])
    ignored = {"date", "content-length"} if path == "/healthz" else {"date"}
    assert {k: v for k, v in got_headers.items() if k not in ignored} == {
        k.lower(): v for k, v in want_headers if k.lower() not in ignored}
    if path != "/healthz":
        assert body == (b"" if method == "HEAD" else want_body)


def test_documents_are_answered_on_the_event_loop(front_and_flask) -> None:  # type: ignore[no-untyped-def]
    front, _ = front_and_flask
    answered = front.document({"type": "http", "method": "GET", "path": "/feed.xml", "headers": []})
    assert answered is not None and answered[0] == 200 and answered[2].startswith(b"<?xml")
    # Anything else goes to Flask in the thread pool.
    assert front.document({"type": "http", "method": "GET", "path": "/healthz", "headers": []}) is None
    assert front.document({"type": "http", "method": "POST", "path": "/feed.xml", "headers": []}) is None


def test_conditional_and_head(front_and_flask) -> None:  # type: ignore[no-untyped-def]
    front, _ = front_and_flask
    status, headers, body = call(front, "GET", "/feed.xml", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip" and int(headers["content-length"]) == len(body)
    assert call(front, "GET", "/feed.xml", {"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})[:3:2] == (
        304, b"")
    head = call(front, "HEAD", "/feed.xml", {"Accept-Encoding": "gzip"})
    assert head[0] == 200 and head[2] == b"" and head[1]["content-length"] == headers["content-length"]


def test_absolute_form_and_query(front_and_flask) -> None:  # type: ignore[no-untyped-def]
    front, _ = front_and_flask
    plain = call(front, "GET", "/feed.xml", {})
    assert call(front, "GET", "http://evil.example/feed.xml", {}) == plain
    assert call(front, "GET", "/feed.xml", {}, query=b"_=123") == plain


def test_oversized_bodies_are_refused(front_and_flask) -> None:  # type: ignore[no-untyped-def]
    front, _ = front_and_flask
    assert call(front, "POST", "/feed.xml", {"Content-Length": str(10**8)})[0] == 413
    assert call(front, "POST", "/feed.xml", {"Content-Length": "nonsense"})[0] == 413
    assert call(front, "POST", "/feed.xml", {"Transfer-Encoding": "chunked"}, body=b"x" * 70_000)[0] == 413
    assert call(front, "POST", "/feed.xml", {"Content-Length": "3"}, body=b"abc")[0] == 405


def test_before_the_first_publish(config) -> None:  # type: ignore[no-untyped-def]
    front = FeedFront(create_app(config(), run_builder=False), threads=1)
    status, headers, _ = call(front, "GET", "/feed.xml", {})
    assert status == 503 and headers["retry-after"]
    front.pool.shutdown()


def test_wsgi_environ() -> None:
    scope = {"type": "http", "method": "GET", "path": "/a b/é", "query_string": b"x=1&y=%20", "root_path": "",
             "http_version": "1.0", "scheme": "https", "server": ("::1", 8443), "client": ("::1", 4000),
             "headers": [(b"accept", b"a"), (b"accept", b"b"), (b"content-type", b"text/plain"),
                         (b"content-length", b"2")]}
    environ = wsgi_environ(scope, b"hi")
    assert environ["PATH_INFO"] == "/a b/é".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "x=1&y=%20" and environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert environ["HTTP_ACCEPT"] == "a,b" and environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "2" and environ["wsgi.input"].read() == b"hi"
    assert environ["wsgi.url_scheme"] == "https" and environ["SERVER_PORT"] == "8443"
