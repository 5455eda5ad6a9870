"""The Flask app: serves the published bytes held in memory, never builds on a request.

`create_app()` is the factory for gunicorn (`feedsvc.web:create_app()`), `flask --app
feedsvc.web run` and `feedsvc serve`. Each process joins the builder election: exactly one
process per output directory builds; every process serves what was last published.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, abort, jsonify, request
from werkzeug.http import http_date, is_resource_modified

from feedsvc.config import Config, load_config
from feedsvc.leader import Election, current_leader
from feedsvc.publish import PublishedStore, Served, read_status
from feedsvc.render.documents import SUBSCRIPTION_FEEDS
from feedsvc.render.html import CONTENT_SECURITY_POLICY
from feedsvc.render.xsl import FEED_CONTENT_SECURITY_POLICY

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


def _wants_gzip() -> bool:
    return request.accept_encodings["gzip"] > 0


def _browser_wants_page(feed_type: str) -> bool:
    accept = request.accept_mimetypes
    return accept.quality("text/html") > accept.quality(feed_type)


def serve_document(doc: Served, max_age: int) -> Response:
    """200 or an empty 304 for one published document, choosing identity or gzip by Accept-Encoding.

    An Atom or RSS document asked for by a browser is labelled application/xml (same bytes,
    an ETag of its own, `Vary: Accept`), so the browser applies the XSL stylesheet.
    """
    gz = _wants_gzip()
    variant = doc.gzip if gz else doc.identity
    content_type, etag, vary = doc.content_type, variant.etag, "Accept-Encoding"
    feed_type = content_type.split(";")[0]
    if feed_type in _XML_FEED_TYPES:
        vary = "Accept, Accept-Encoding"
        if _browser_wants_page(feed_type):
            content_type, etag = BROWSER_XML_TYPE, etag[:-1] + '-xml"'
    response = Response(status=200, content_type=content_type)
    response.headers["ETag"] = etag
    response.headers["Last-Modified"] = http_date(doc.last_modified)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    response.headers["Vary"] = vary
    if not is_resource_modified(request.environ, etag=etag.strip('"'), last_modified=doc.last_modified):
        response.status_code = 304
        del response.headers["Content-Type"]
        return response
    if gz:
        response.headers["Content-Encoding"] = "gzip"
    response.set_data(variant.body)
    return response


def unavailable(message: str) -> Response:
    response = jsonify(status="unavailable", message=message)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(config: Config | None = None, *, run_builder: bool = True) -> Flask:
    """The app. `run_builder=False` serves only (another process builds into the same output)."""
    config = config or load_config()
    _configure_logging(config)
    # No static folder: Flask would otherwise route /static/<path:filename> onto the package
    # directory. Every URL is a fixed route to published bytes held in memory.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024  # no route takes a body
    state = FeedState(config, run_builder)
    app.extensions["feedsvc"] = state

    def links(name: str) -> str | None:
        """WebSub discovery for the subscription feeds (the topics the builder pings)."""
        if not config.websub_hub or name not in SUBSCRIPTION_FEEDS:
            return None
        return f'<{config.websub_hub}>; rel="hub", <{config.base_url.rstrip("/")}/{name}>; rel="self"'

    def document_view() -> Response:
        snapshot = state.store.snapshot
        name = ROUTES[request.path]
        if snapshot is None or "feed.xml" not in snapshot.documents:
            return unavailable("no feed has been published yet")
        if name not in snapshot.documents:
            abort(404)  # e.g. /feed.xsl with the stylesheet switched off
        response = serve_document(snapshot.documents[name], config.cache_max_age)
        if link := links(name):
            response.headers["Link"] = link
        return response

    @app.route("/archive/<page>", methods=["GET", "HEAD"], provide_automatic_options=False)
    def archive_view(page: str) -> Response:
        """RFC 5005 archive pages: a published document name or 404, never a path on disk."""
        snapshot = state.store.snapshot
        if snapshot is None:
            return unavailable("no feed has been published yet")
        doc = snapshot.documents.get(f"archive/{page}")
        if doc is None or not ARCHIVE_PAGE.fullmatch(page):
            abort(404)
        return serve_document(doc, config.cache_max_age)

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
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        else:
            # A feed a browser renders through the XSL becomes a page too: same rules, plus the XSL.
            response.headers["Content-Security-Policy"] = FEED_CONTENT_SECURITY_POLICY
        return response

    return app
