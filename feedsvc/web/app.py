"""The Flask app: `/healthz`, error pages, and the per-process state; documents are answered in
front of it by `feedsvc.web.responder.DocumentResponder`. It never builds on a request.

The web side serves what was last published and never starts a builder: the composition root
(`feedsvc/host.py`) joins the builder election, starts the builder if elected, and hands this
module a `BuilderHandle`, the little that `/healthz` and a stopping worker need to know of it.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from flask import Flask, Response, current_app, jsonify

from feedsvc.config import Config
from feedsvc.publish.deploy import read_status as read_deploy_status
from feedsvc.publish.reader import PublishedStore, read_heartbeat, read_warming
from feedsvc.web.headers import security_headers_for
from feedsvc.web.health import StatusFile, capped, stall_reason
from feedsvc.web.responder import MAX_BODY, DocumentResponder

if TYPE_CHECKING:
    from feedsvc.metrics import Metrics

EXTENSION = "feedsvc"


class BuilderHandle(Protocol):
    """What a web process knows of the builder election and of its own builder (feedsvc/host.py)."""

    @property
    def is_builder(self) -> bool:
        """This process won the election and builds (in itself or in its child)."""
        ...

    @property
    def last_status(self) -> dict[str, Any] | None:
        """This process's builder's newest status, as status.json holds it; None if it has none."""
        ...

    def builder_pid(self) -> int | None:
        """The pid that builds into the output directory, as the election names it (any process's),
        if that process is live and holds the election's lock (or is the child of the one that does)."""
        ...

    def stop(self) -> None:
        """Stop this process's builder, if elected, and leave the election. Idempotent."""
        ...


class WebProcess:
    """What one web process holds: the published bytes, its metrics, and its handle on the builder."""

    def __init__(
        self, config: Config, store: PublishedStore, builder: BuilderHandle | None, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.builder = builder  # None: nothing known of any builder (a bare web app)
        self.metrics = metrics  # None with `metrics = false`
        self.status_file = StatusFile(config.output_dir)
        self._lock = threading.Lock()

    @property
    def is_builder(self) -> bool:
        return self.builder is not None and self.builder.is_builder

    def stop(self) -> None:
        """Stop the builder (if this process won the election) and let the lock go. Idempotent."""
        with self._lock:
            if self.builder is not None:
                self.builder.stop()


# Every web process state this process made, for `stop_all` (gunicorn's worker_exit hook).
_STATES: weakref.WeakSet[WebProcess] = weakref.WeakSet()


def get_state(app: Flask | None = None) -> WebProcess:
    return (app or current_app).extensions[EXTENSION]


def stop_all() -> None:
    """Stop every state of this process: its builder, if elected, and its election ticket.

    Called by gunicorn's `worker_exit` hook (feedsvc/web/server.py) as a worker exits.
    """
    for state in list(_STATES):
        state.stop()


def current_status(state: WebProcess) -> dict[str, Any] | None:
    """The newest build result: status.json, or this process's own builder's when that is newer.

    When the output directory is full or read-only, status.json cannot be written, and it would
    go on saying "ok" while builds fail; the builder's process knows better and says so.
    """
    status = state.status_file.read()
    own = state.builder.last_status if state.builder is not None and state.is_builder else None
    if own is not None and (status is None or str(own.get("finished_at")) >= str(status.get("finished_at"))):
        return own
    return status


def _published_since(published: datetime | None, status: dict[str, Any]) -> bool:
    """The feed was published after the failed build of `status`: a later build succeeded, and its
    status is being written (status.json follows the manifest)."""
    try:
        failed = datetime.fromisoformat(str(status.get("finished_at")))
    except ValueError:
        return False
    return published is not None and published > failed


def healthz() -> Response:
    state = get_state()
    snapshot = state.store.snapshot
    status = current_status(state)
    body: dict[str, Any] = {
        "status": "ok" if snapshot else "unavailable",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "builder_pid": state.builder.builder_pid() if state.builder is not None else None,
        "is_builder": state.is_builder,
        "last_build": capped(status) if status else status,
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
        if status and not status.get("ok") and not _published_since(published, status):
            body["status"] = "degraded"  # serving the last good feed, but the last build failed
    if status:
        listed = body["last_build"]
        body["entries"] = status.get("entries")
        body["skipped"] = listed.get("skipped")
        body["problems"] = listed.get("problems")
        body["warnings"] = listed.get("warnings", [])
        body["counts"] = listed["counts"]
    warming = read_warming(state.config.output_dir)
    if warming is not None and warming.get("pid") == body["builder_pid"]:  # not a dead builder's
        body["warming"] = {"done": warming.get("done"), "total": warming.get("total")}
    config = state.config
    stalled = stall_reason(read_heartbeat(config.output_dir), config.seeds_dir, config.stall_seconds, time.time())
    if stalled is not None:
        body["status"], body["reason"] = "stalled", stalled
    if state.config.deploy_to:  # the builder's last deploy to the bucket (deploy.json)
        body["deploy"] = read_deploy_status(state.config.output_dir) or {"state": "pending"}
    response = jsonify(body)
    response.status_code = 200 if snapshot and stalled is None else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def security_headers(response: Response) -> Response:
    for header, value in security_headers_for(response.mimetype):
        response.headers.setdefault(header, value)
    return response


def make_app(
    config: Config, store: PublishedStore, builder: BuilderHandle | None = None, metrics: Metrics | None = None
) -> Flask:
    """The web app over `store`: `/healthz`, `/metrics` (with `metrics`), and the documents.

    It starts nothing: `feedsvc.host.create_app` wires the builder and hands it in as `builder`.
    """
    # No static folder: Flask would otherwise route /static/<path:filename> onto the package
    # directory. The only route is /healthz; documents are answered in front of Flask.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # no route takes a body
    if metrics is not None:
        from feedsvc.web.metrics_endpoint import install

        install(app, metrics, config.metrics_token)
    state = WebProcess(config, store, builder, metrics)
    app.extensions[EXTENSION] = state
    _STATES.add(state)
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"], provide_automatic_options=False)
    app.after_request(security_headers)
    responder = DocumentResponder(
        app.wsgi_app,
        state.store,
        config,
        max_body=app.config["MAX_CONTENT_LENGTH"],
        count=metrics.count if metrics is not None else None,
    )
    app.extensions["feedsvc.documents"] = responder
    # Flask's documented way to wrap the app; its types declare wsgi_app a method, not an attribute.
    app.wsgi_app = responder  # type: ignore[method-assign]
    return app
