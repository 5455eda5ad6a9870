"""The Flask app: `/healthz`, error pages, and the per-process state; documents are answered in
front of it by `feedsvc.web.responder.DocumentResponder`. It never builds on a request.

Each process that creates an app joins the builder election: exactly one process per output
directory builds; every process serves what was last published.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, current_app, jsonify

from feedsvc.config import Config, load_config
from feedsvc.logs import configure_logging
from feedsvc.model import BuildResult
from feedsvc.publish.reader import PublishedStore, read_status, read_warming
from feedsvc.service.leader import Election, current_leader
from feedsvc.web.headers import security_headers_for
from feedsvc.web.responder import MAX_BODY, DocumentResponder

if TYPE_CHECKING:
    from feedsvc.web.metrics import Metrics

log = logging.getLogger("feedsvc.web")

EXTENSION = "feedsvc"


# Set by gunicorn's post_fork hook (feedsvc.web.server) in each worker, before the app is loaded:
# the worker that wins the election builds in a child process (feedsvc/service/builder_process.py), so
# that web workers stay small. `flask run` and the test client build in their own process.
BUILDER_IN_CHILD = False


class FeedState:
    """What one web process holds: the published bytes, and the builder if it won the election."""

    def __init__(self, config: Config, run_builder: bool, metrics: Metrics | None = None) -> None:
        self.config = config
        self.store = PublishedStore(config.output_dir)
        self.metrics = metrics  # None with `metrics = false`
        self.service: Any = None
        self.election: Election | None = None
        self._lock = threading.Lock()
        self._stopped = False
        if run_builder:
            self.election = Election(config.output_dir, on_elected=self._elected)
            if BUILDER_IN_CHILD:
                from feedsvc.service.builder_process import BuilderProcess

                # Its builds' metrics are the child's own (prometheus_client's multiprocess files).
                self.service = BuilderProcess(config, on_result=self._published, on_start=self.election.announce)
            else:
                from feedsvc.service.runner import BuilderService

                self.service = BuilderService(config, on_result=self._built)
            self.election.start()

    @property
    def is_builder(self) -> bool:
        return self.election is not None and self.election.is_leader

    def _published(self, _result: BuildResult) -> None:
        self.store.refresh()

    def _built(self, result: BuildResult) -> None:
        self.store.refresh()
        if self.metrics is not None:
            snapshot = self.store.snapshot
            self.metrics.observe_build(result, snapshot.published_at if snapshot else None)

    def _elected(self) -> None:
        with self._lock:
            if not self._stopped:  # a stopping process that wins the lock late does not start building
                self.service.start()

    def stop(self) -> None:
        """Stop the builder (if this process won the election) and let the lock go. Idempotent."""
        with self._lock:
            self._stopped = True
            if self.is_builder and self.service is not None:
                self.service.stop()
                log.info("pid %d stopped its builder", os.getpid())
            if self.election is not None:
                self.election.stop()


# Every state this process started, for `stop_all` (gunicorn's worker_exit hook).
_STATES: weakref.WeakSet[FeedState] = weakref.WeakSet()


def init_app(
    app: Flask, config: Config, *, run_builder: bool = True, metrics: Metrics | None = None
) -> FeedState:
    """Register the process's state on `app` (flaskr's `db.init_app` pattern)."""
    state = FeedState(config, run_builder, metrics)
    app.extensions[EXTENSION] = state
    _STATES.add(state)
    return state


def get_state(app: Flask | None = None) -> FeedState:
    return (app or current_app).extensions[EXTENSION]


def stop_all() -> None:
    """Stop every state of this process: its builder, if elected, and its election ticket.

    Called by gunicorn's `worker_exit` hook (feedsvc/web/server.py) as a worker exits.
    """
    for state in list(_STATES):
        state.stop()


def current_status(state: FeedState) -> dict[str, Any] | None:
    """The newest build result: status.json, or this process's own builder's when that is newer.

    When the output directory is full or read-only, status.json cannot be written, and it would
    go on saying "ok" while builds fail; the builder's process knows better and says so.
    """
    status = read_status(state.config.output_dir)
    own = state.service.last_status if state.is_builder and state.service is not None else None
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
        "builder_pid": current_leader(state.config.output_dir),
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
        if status and not status.get("ok") and not _published_since(published, status):
            body["status"] = "degraded"  # serving the last good feed, but the last build failed
    if status:
        body["entries"] = status.get("entries")
        body["skipped"] = status.get("skipped")
        body["problems"] = status.get("problems")
        body["warnings"] = status.get("warnings", [])
    warming = read_warming(state.config.output_dir)
    if warming is not None and warming.get("pid") == body["builder_pid"]:  # not a dead builder's
        body["warming"] = {"done": warming.get("done"), "total": warming.get("total")}
    response = jsonify(body)
    response.status_code = 200 if snapshot else 503
    response.headers["Cache-Control"] = "no-store"
    return response


def security_headers(response: Response) -> Response:
    for header, value in security_headers_for(response.mimetype):
        response.headers.setdefault(header, value)
    return response


def create_app(config: Config | None = None, *, run_builder: bool = True) -> Flask:
    """The app. `run_builder=False` serves only (another process builds into the same output)."""
    config = config or load_config()
    configure_logging(config)
    # No static folder: Flask would otherwise route /static/<path:filename> onto the package
    # directory. The only route is /healthz; documents are answered in front of Flask.
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # no route takes a body
    metrics = None
    if config.metrics:
        # Imported here, in the process that serves: prometheus_client chooses its multiprocess
        # mode when first imported, and a gunicorn master sets PROMETHEUS_MULTIPROC_DIR only as it
        # starts (feedsvc/web/server.py), after it has imported this module.
        from feedsvc.web.metrics import install, process_metrics

        metrics = process_metrics()
        install(app, metrics, config.metrics_token)
    state = init_app(app, config, run_builder=run_builder, metrics=metrics)
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
