"""The Flask app: serves the published bytes held in memory, never builds on a request.

`create_app()` is the factory for gunicorn (`feedsvc.web:create_app()`), `flask --app
feedsvc.web run` and `feedsvc serve`. Each process joins the builder election: exactly one
process per output directory builds; every process serves what was last published.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, abort, jsonify, request
from werkzeug.datastructures import ETags, MIMEAccept
from werkzeug.http import http_date, parse_accept_header, parse_date, parse_etags

from feedsvc.config import Config, load_config
from feedsvc.core.render.documents import SUBSCRIPTION_FEEDS
from feedsvc.core.render.html import CONTENT_SECURITY_POLICY
from feedsvc.core.render.xsl import FEED_CONTENT_SECURITY_POLICY
from feedsvc.publish.reader import PublishedStore, Served, read_status
from feedsvc.service.leader import Election, current_leader

log = logging.getLogger("feedsvc.web")

RETRY_AFTER = 5
# Path → published document. Nothing else maps a request onto the output directory; the
# archive route below only looks its name up among the published documents.
ROUTES = {
    "/feed.xml": "feed.xml",
    "/feed.rss": "feed.rss",
    "/feed.json": "feed.json",
    "/feed.xsl": "feed.xsl",
    "/": "index.html",
}
# Chromium shows application/atom+xml and application/rss+xml as plain text and applies no
# stylesheet; to a browser (it prefers text/html) the same bytes go out as application/xml.
BROWSER_XML_TYPE = "application/xml; charset=utf-8"
_XML_FEED_TYPES = ("application/atom+xml", "application/rss+xml")
ARCHIVE_PAGE = re.compile(r"[1-9][0-9]{0,8}\.xml")


class FeedState:
    """What one web process holds: the published bytes, and the builder if it won the election."""

    def __init__(self, config: Config, run_builder: bool) -> None:
        self.config = config
        self.store = PublishedStore(config.output_dir)
        self.service: Any = None
        self.election: Election | None = None
        if run_builder:
            from feedsvc.service.runner import BuilderService

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


def current_status(state: FeedState) -> dict[str, Any] | None:
    """The newest build result: status.json, or this process's own builder's when that is newer.

    When the output directory is full or read-only, status.json cannot be written, and it would
    go on saying "ok" while builds fail; the builder's process knows better and says so.
    """
    status = read_status(state.config.output_dir)
    own = state.service.builder.last_status if state.is_builder and state.service is not None else None
    if own is not None and (status is None or str(own.get("finished_at")) >= str(status.get("finished_at"))):
        return own
    return status


def _configure_logging(config: Config) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=config.log_level, format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


@functools.lru_cache(maxsize=256)
def _accepts_gzip(header: str) -> bool:
    return parse_accept_header(header)["gzip"] > 0


@functools.lru_cache(maxsize=256)
def _prefers_page(accept: str, feed_type: str) -> bool:
    """A browser: it ranks text/html above the feed's own type."""
    parsed = parse_accept_header(accept, MIMEAccept)
    return parsed.quality("text/html") > parsed.quality(feed_type)


@functools.lru_cache(maxsize=1024)
def _etags(header: str) -> ETags:
    return parse_etags(header)


@functools.lru_cache(maxsize=256)
def _since(header: str) -> datetime | None:
    return parse_date(header)


def not_modified(environ: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """RFC 9110 §13.2.2 for GET/HEAD: If-None-Match (weak comparison) decides; without it,
    If-Modified-Since at one-second precision. werkzeug's `is_resource_modified` with the parsed
    headers cached: readers poll with the same few values, and parsing them on every request
    was a tenth of the request's cost.
    """
    tags = _etags(environ.get("HTTP_IF_NONE_MATCH", ""))
    if tags:
        return tags.contains_weak(etag.strip('"'))
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if not since:
        return False
    when = _since(since)
    return when is not None and last_modified.replace(microsecond=0) <= when


def security_headers_for(content_type: str | None) -> list[tuple[str, str]]:
    """Every response's security headers. A feed a browser renders through the XSL is a page too."""
    html = (content_type or "").split(";")[0].strip() == "text/html"
    return [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY if html else FEED_CONTENT_SECURITY_POLICY),
    ]


@dataclass(frozen=True)
class Prepared:
    """One document version's answers for one (encoding, browser or reader): status-independent parts."""

    etag: str
    ok: list[tuple[str, str]]  # the 200's headers
    unchanged: list[tuple[str, str]]  # the 304's
    ok_raw: list[tuple[bytes, bytes]]  # the same as ASGI wants them
    unchanged_raw: list[tuple[bytes, bytes]]


def _raw(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]


class Documents:
    """GET/HEAD answers for published documents: one implementation for the WSGI fast path, the
    ASGI front of `feedsvc serve` and the Flask routes alike.

    The bytes, the gzip variant and every header are fixed per published version, so header
    lists are built once per (document version, encoding, browser or reader) and a request costs
    a dict lookup and a cached conditional check. An Atom or RSS document asked for by a
    browser is labelled application/xml (same bytes, an ETag of its own, `Vary: Accept`), so the
    browser applies the XSL stylesheet.
    """

    def __init__(self, config: Config) -> None:
        self.max_age = config.cache_max_age
        self.config = config
        self._prepared: dict[tuple[str, str, bool, bool], Prepared] = {}

    def link(self, name: str) -> str | None:
        """WebSub discovery for the subscription feeds (the topics the builder pings)."""
        if not self.config.websub_hub or name not in SUBSCRIPTION_FEEDS:
            return None
        return f'<{self.config.websub_hub}>; rel="hub", <{self.config.base_url.rstrip("/")}/{name}>; rel="self"'

    def _prepare(self, name: str, doc: Served, gz: bool, page: bool) -> Prepared:
        variant = doc.gzip if gz else doc.identity
        content_type, etag, vary = doc.content_type, variant.etag, "Accept-Encoding"
        if content_type.split(";")[0] in _XML_FEED_TYPES:
            vary = "Accept, Accept-Encoding"
            if page:
                content_type, etag = BROWSER_XML_TYPE, etag[:-1] + '-xml"'
        link = self.link(name)
        common = [
            ("ETag", etag),
            ("Cache-Control", f"public, max-age={self.max_age}"),
            ("Vary", vary),
            *([("Link", link)] if link else []),
            *security_headers_for(content_type),
        ]
        ok = [
            ("Content-Type", content_type),
            ("Last-Modified", http_date(doc.last_modified)),
            *([("Content-Encoding", "gzip")] if gz else []),
            ("Content-Length", str(variant.size)),
            *common,
        ]
        return Prepared(etag, ok, common, _raw(ok), _raw(common))

    def lookup(self, environ: Mapping[str, str], name: str, doc: Served) -> tuple[bool, Prepared, bytes]:
        """(modified, the prepared headers, the body) for a GET or HEAD of `doc`."""
        gz = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        feed_type = doc.content_type.split(";")[0]
        page = feed_type in _XML_FEED_TYPES and _prefers_page(environ.get("HTTP_ACCEPT", ""), feed_type)
        variant = doc.gzip if gz else doc.identity
        key = (name, variant.etag, gz, page)
        prepared = self._prepared.get(key)
        if prepared is None:
            if len(self._prepared) > 256:
                self._prepared.clear()  # old versions
            prepared = self._prepared[key] = self._prepare(name, doc, gz, page)
        if not_modified(environ, prepared.etag, doc.last_modified):
            return False, prepared, b""
        return True, prepared, variant.body

    def answer(self, environ: Mapping[str, str], name: str, doc: Served) -> tuple[str, list, bytes]:
        """(WSGI status line, headers, body); the body is the full one even for HEAD (the caller drops it)."""
        modified, prepared, body = self.lookup(environ, name, doc)
        if not modified:
            return "304 NOT MODIFIED", list(prepared.unchanged), b""
        return "200 OK", list(prepared.ok), body


class DocumentFastPath:
    """GET/HEAD of a fixed-route published document answered without Flask's per-request machinery.

    Anything else (other paths and methods, nothing published yet, archive pages) goes to Flask,
    whose routes answer documents with the same `Documents` (tests/test_fast_path.py compares them).
    """

    def __init__(self, app: Any, state: FeedState, documents: Documents) -> None:
        self.app = app
        self.state = state
        self.documents = documents

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        name = ROUTES.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD")
        if name is None or method not in ("GET", "HEAD"):
            return self.app(environ, start_response)
        snapshot = self.state.store.snapshot
        doc = snapshot.documents.get(name) if snapshot is not None else None
        if doc is None:
            return self.app(environ, start_response)
        status, headers, body = self.documents.answer(environ, name, doc)
        start_response(status, headers)
        return [] if method == "HEAD" or not body else [body]


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
    # No static folder: Flask would otherwise route /static/<path:filename> onto the package
    # directory. Every URL is a fixed route to published bytes held in memory.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024  # no route takes a body
    state = FeedState(config, run_builder)
    app.extensions["feedsvc"] = state
    documents = app.extensions["feedsvc.documents"] = Documents(config)

    def document_response(name: str, doc: Served) -> Response:
        status, headers, body = documents.answer(request.environ, name, doc)
        response = Response(body, status=int(status[:3]), headers=headers)
        if not body:
            del response.headers["Content-Type"]  # a 304 carries no entity headers
        return response

    def document_view() -> Response:
        snapshot = state.store.snapshot
        name = ROUTES[request.path]
        if snapshot is None or "feed.xml" not in snapshot.documents:
            return unavailable("no feed has been published yet")
        if name not in snapshot.documents:
            abort(404)  # e.g. /feed.xsl with the stylesheet switched off
        return document_response(name, snapshot.documents[name])

    @app.route("/archive/<page>", methods=["GET", "HEAD"], provide_automatic_options=False)
    def archive_view(page: str) -> Response:
        """RFC 5005 archive pages: a published document name or 404, never a path on disk."""
        snapshot = state.store.snapshot
        if snapshot is None:
            return unavailable("no feed has been published yet")
        name = f"archive/{page}"
        if not ARCHIVE_PAGE.fullmatch(page):
            abort(404)
        for _attempt in range(2):
            doc = snapshot.documents.get(name) if snapshot is not None else None
            if doc is None:
                abort(404)
            try:
                return document_response(name, doc)
            except OSError:
                # Read from its object file, which publishes since this snapshot have collected.
                state.store.refresh()
                snapshot = state.store.snapshot
        return unavailable("the archive is being republished")

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
        status = current_status(state)
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
        for header, value in security_headers_for(response.mimetype):
            response.headers.setdefault(header, value)  # documents carry theirs already
        return response

    if fast_path:
        app.wsgi_app = DocumentFastPath(app.wsgi_app, state, documents)  # type: ignore[method-assign]
    return app
