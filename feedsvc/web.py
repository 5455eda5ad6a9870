"""The Flask app: serves the published bytes held in memory, never builds on a request.

`create_app()` is the factory for gunicorn (`feedsvc.web:create_app()`), `flask --app
feedsvc.web run` and `feedsvc serve`. Each process joins the builder election: exactly one
process per output directory builds; every process serves what was last published.
"""

from __future__ import annotations

import functools
import logging
import os
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.http import http_date, is_resource_modified, parse_accept_header

from feedsvc.config import Config, load_config
from feedsvc.leader import Election, current_leader
from feedsvc.publish import PublishedStore, Served, read_status
from feedsvc.render.html import CONTENT_SECURITY_POLICY

log = logging.getLogger("feedsvc.web")

RETRY_AFTER = 5
# Path → published document. Nothing else maps a request onto the output directory.
ROUTES = {"/feed.xml": "feed.xml", "/": "index.html"}


class FeedState:
    """What one web process holds: the published bytes, and the builder if it won the election."""

    def __init__(self, config: Config, run_builder: bool) -> None:
        self.config = config
        self.store = PublishedStore(config.output_dir)
        self.service: Any = None
        self.election: Election | None = None
        if run_builder:
            from feedsvc.watch import BuilderService

            self.service = BuilderService(config, on_result=lambda _result: self.store.refresh())
            self.election = Election(config.output_dir, on_elected=self.service.start)
            self.election.start()

    @property
    def is_builder(self) -> bool:
        return self.election is not None and self.election.is_leader

    def stop(self) -> None:
        if self.is_builder and self.service is not None:
            self.service.stop()
        if self.election is not None:
            self.election.stop()


def _configure_logging(config: Config) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=config.log_level, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _wants_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def serve_document(doc: Served, max_age: int) -> Response:
    """200 or an empty 304 for one published document, choosing identity or gzip by Accept-Encoding."""
    gz = _wants_gzip()
    variant = doc.gzip if gz else doc.identity
    response = Response(status=200, content_type=doc.content_type)
    response.headers["ETag"] = variant.etag
    response.headers["Last-Modified"] = http_date(doc.last_modified)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Vary"] = "Accept-Encoding"
    if not is_resource_modified(request.environ, etag=variant.etag.strip('"'), last_modified=doc.last_modified):
        response.status_code = 304
        del response.headers["Content-Type"]
        return response
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    response.set_data(variant.body)
    return response


@functools.lru_cache(maxsize=256)
def _accepts_gzip(header: str) -> bool:
    return parse_accept_header(header)["gzip"] > 0


class DocumentFastPath:
    """GET/HEAD of a published document answered without Flask's per-request machinery.

    The bytes, the gzip variant and every header are fixed per published version, so the
    header lists are built once per version and a request costs a dict lookup and the
    conditional check (werkzeug's `is_resource_modified`, the same as `serve_document`). The
    answers are the Flask route's, header for header (tests/test_fast_path.py compares them);
    anything else (other paths and methods, nothing published yet) goes to Flask.
    """

    def __init__(self, app: Any, state: FeedState, max_age: int) -> None:
        self.app = app
        self.state = state
        self.max_age = max_age
        self._headers: dict[tuple[str, str, bool], tuple[list, list]] = {}

    def _build_headers(self, doc: Served, gz: bool) -> tuple[list, list]:
        variant = doc.gzip if gz else doc.identity
        common = [("ETag", variant.etag)]
        tail = [("Cache-Control", f"public, max-age={self.max_age}"), ("Vary", "Accept-Encoding")]
        secure = [("X-Content-Type-Options", "nosniff")]
        html = doc.content_type.split(";")[0].strip() == "text/html"
        page = [
            ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ]
        ok = [
            ("Content-Type", doc.content_type),
            *common,
            ("Last-Modified", http_date(doc.last_modified)),
            *tail,
            *([("Content-Encoding", "gzip")] if gz else []),
            ("Content-Length", str(len(variant.body))),
            *secure,
            *(page if html else []),
        ]
        return ok, [*common, *tail, *secure]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        name = ROUTES.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD")
        if name is None or method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        snapshot = self.state.store.snapshot
        doc = snapshot.documents.get(name) if snapshot is not None else None
        if doc is None:
            return self.app(environ, start_response)
        gz = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        variant = doc.gzip if gz else doc.identity
        key = (name, variant.etag, gz)
        headers = self._headers.get(key)
        if headers is None:
            if len(self._headers) > 64:
                self._headers.clear()  # old versions
            headers = self._headers[key] = self._build_headers(doc, gz)
        if not is_resource_modified(environ, etag=variant.etag.strip('"'), last_modified=doc.last_modified):
            start_response("304 NOT MODIFIED", list(headers[1]))
            return []
        start_response("200 OK", list(headers[0]))
        return [] if method == "HEAD" else [variant.body]


def unavailable(message: str) -> Response:
    response = jsonify(status="unavailable", message=message)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(config: Config | None = None, *, run_builder: bool = True, fast_path: bool = True) -> Flask:
    """The app. `run_builder=False` serves only (another process builds into the same output).

    `fast_path=False` leaves every request to the Flask routes (the tests compare the two).
    """
    config = config or load_config()
    _configure_logging(config)
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024  # no route takes a body
    state = FeedState(config, run_builder)
    app.extensions["feedsvc"] = state

    def document_view() -> Response:
        snapshot = state.store.snapshot
        name = ROUTES[request.path]
        if snapshot is None or name not in snapshot.documents:
            return unavailable("no feed has been published yet")
        return serve_document(snapshot.documents[name], config.cache_max_age)

    for path in ROUTES:
        app.add_url_rule(
            path,
            endpoint=f"doc:{path}",
            view_func=document_view,
            methods=["GET", "HEAD"],
            provide_automatic_options=False,
        )

    @app.get("/healthz", provide_automatic_options=False)
    def healthz() -> Response:
        snapshot = state.store.snapshot
        status = read_status(config.output_dir)
        body: dict[str, Any] = {
            "status": "ok" if snapshot else "unavailable",
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "pid": os.getpid(),
            "builder_pid": current_leader(config.output_dir),
            "is_builder": state.is_builder,
            "last_build": status,
        }
        if snapshot is not None:
            feed = snapshot.documents.get("feed.xml")
            published = datetime.fromisoformat(snapshot.published_at) if snapshot.published_at else None
            body.update(
                generation=snapshot.generation,
                published_at=snapshot.published_at,
                feed_age_seconds=round((datetime.now(UTC) - published).total_seconds(), 1) if published else None,
                etag=feed.identity.etag if feed else None,
            )
            if status and not status.get("ok"):
                body["status"] = "degraded"  # serving the last good feed, but the last build failed
        if status:
            body["entries"] = status.get("entries")
            body["skipped"] = status.get("skipped")
        response = jsonify(body)
        response.status_code = 200 if snapshot else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "no-referrer"
        return response

    if fast_path:
        app.wsgi_app = DocumentFastPath(app.wsgi_app, state, config.cache_max_age)  # type: ignore[method-assign]
    return app
