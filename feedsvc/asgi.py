"""`feedsvc serve`'s front door: gunicorn's asyncio (ASGI) worker in front of the Flask app.

Published documents are bytes in memory with precomputed headers, so they are answered on the
event loop itself, by the same `Documents` responder the WSGI fast path and the Flask routes
use. Everything else (/healthz, /archive/<n>.xml, 404, 405, 503) goes to the Flask app, a plain
WSGI app, run in a small thread pool.

Why not gunicorn's threaded worker, as the Procfile uses: in one process, handing each request
from the poller thread to a worker thread and back made the GIL hand-offs most of a request's
cost (about 4k req/s with one thread, 2.7k with eight, where the event loop does 4× that), and a
slow client held a whole thread while the event loop holds only a buffer.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from flask import Flask

from feedsvc.web import ROUTES, Documents, FeedState

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The request headers Documents.answer reads, as WSGI environ keys.
_CONDITIONAL = {
    b"accept": "HTTP_ACCEPT",
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
}
_TOO_LARGE = b"request body too large\n"


def _header_dict(headers: Iterable[tuple[bytes, bytes]], wanted: dict[bytes, str]) -> dict[str, str]:
    """Request headers as WSGI environ entries; repeated fields joined with commas, as WSGI servers do."""
    environ: dict[str, str] = {}
    for name, value in headers:
        key = wanted.get(name)
        if key is not None:
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """PEP 3333 environ for an ASGI HTTP scope whose body has been read."""
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client") or ("", 0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] or 80),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": str(client[0]),
        "REMOTE_PORT": str(client[1]),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def run_wsgi(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[int, list, bytes]:
    """Call a WSGI app and buffer its answer (every feedsvc response is small and finite)."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
        if exc_info is not None and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return lambda _data: None  # the legacy write() callable: Flask never uses it

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return int(status[:3]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], body


class FeedFront:
    """The ASGI app `feedsvc serve` runs: documents on the event loop, the rest through Flask."""

    def __init__(self, app: Flask, threads: int = 4, max_body: int = 16 * 1024) -> None:
        self.app = app
        self.state: FeedState = app.extensions["feedsvc"]
        self.documents: Documents = app.extensions["feedsvc.documents"]
        self.max_body = max_body
        self.pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="feedsvc-wsgi")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not scope["path"].startswith("/"):
                # The absolute form (`GET http://host/feed.xml`): the path is what names the
                # resource, and the host is ignored here as everywhere else.
                scope = {**scope, "path": urlsplit(scope["path"]).path or "/"}
            answer = self.document(scope)
            if answer is None:
                await self._flask(scope, receive, send)
                return
            status, headers, body = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1003})

    def document(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """(status, headers, body) of a published document, without blocking; None: Flask answers."""
        name = ROUTES.get(scope["path"])
        method = scope["method"]
        if name is None or method not in ("GET", "HEAD"):
            return None
        snapshot = self.state.store.snapshot
        doc = snapshot.documents.get(name) if snapshot is not None else None
        if doc is None:
            return None
        modified, prepared, body = self.documents.lookup(_header_dict(scope["headers"], _CONDITIONAL), name, doc)
        if not modified:
            return 304, prepared.unchanged_raw, b""
        return 200, prepared.ok_raw, b"" if method == "HEAD" else body

    async def _flask(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _header_dict(scope.get("headers", ()), {b"content-length": "length"}).get("length", "0")
        body = bytearray()
        if not declared.isdigit() or int(declared) > self.max_body:
            await self._too_large(send)  # refused before reading a byte of it
            return
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large(send)
                return
        environ = wsgi_environ(scope, bytes(body))
        loop = asyncio.get_running_loop()
        status, headers, data = await loop.run_in_executor(self.pool, run_wsgi, self.app, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})

    @staticmethod
    async def _too_large(send: Send) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": _TOO_LARGE})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Stop the builder (if this process won the election) and let the lock go.
                await asyncio.get_running_loop().run_in_executor(None, self.state.stop)
                self.pool.shutdown(wait=False, cancel_futures=True)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_front(config: Any = None) -> FeedFront:
    """The ASGI app for gunicorn's `asgi` worker: `create_app(config)` behind `FeedFront`."""
    from feedsvc.web import create_app

    app = create_app(config)
    return FeedFront(app, threads=app.extensions["feedsvc"].config.threads)
