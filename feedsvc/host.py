"""The composition root: the one place that wires a serving process together.

`create_app()` reads the configuration, opens the published store, makes this process's metrics,
joins the builder election (`feedsvc.service.leader`) with the builder it runs if elected, and
builds the Flask app (`feedsvc.web.app.make_app`), which is handed a `BuilderHandle` and never
sees the service package. Every server loads this factory:

- the Procfile (gunicorn, with config/gunicorn.conf.py): `feedsvc.host:create_app(builder_in_child=True)`;
- `feedsvc serve` (gunicorn embedded, `feedsvc.web.server.serve`): the same, called by the CLI;
- `flask --app feedsvc.host run` and the test client: `create_app()`.

`feedsvc watch` runs the builder alone, with no web side: `run_builder()`.

Exactly one process per output directory builds. Under gunicorn (`builder_in_child=True`) the
worker that wins the election builds in a child process of its own
(`feedsvc.service.builder_process.BuilderProcess`), so that every web worker's memory stays with
what is published; elsewhere the elected process builds in a thread of its own
(`feedsvc.service.runner.BuilderService`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import TYPE_CHECKING, Any

from flask import Flask

from feedsvc.config import Config, load_config
from feedsvc.logs import configure_logging
from feedsvc.model import BuildResult
from feedsvc.publish.reader import PublishedStore
from feedsvc.service.leader import Election, current_leader
from feedsvc.web.app import BuilderHandle, make_app

if TYPE_CHECKING:
    from feedsvc.metrics import Metrics
    from feedsvc.service.builder_process import BuilderProcess
    from feedsvc.service.runner import BuilderService

__all__ = ["BuilderElsewhere", "ElectedBuilder", "create_app", "run_builder"]

log = logging.getLogger("feedsvc.web")
watch_log = logging.getLogger("feedsvc.watch")


class ElectedBuilder:
    """A `BuilderHandle`: this process's ticket in the builder election, and the builder it runs
    once elected (in a child process, or in this one)."""

    def __init__(
        self, config: Config, store: PublishedStore, metrics: Metrics | None = None, *, in_child: bool = False
    ) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics
        self._lock = threading.Lock()
        self._stopped = False
        self._in_child = in_child
        self.election = Election(config.output_dir, on_elected=self._elected, on_deposed=self._deposed)
        self.service: BuilderService | BuilderProcess = self._new_service()

    def _new_service(self) -> BuilderService | BuilderProcess:
        """A builder to start once elected (a new one each time: a deposed leader's is stopped)."""
        # Imported here: a web worker that never builds need not hold the pipeline's modules.
        if self._in_child:
            from feedsvc.service.builder_process import BuilderProcess

            # Its builds' metrics are the child's own (prometheus_client's multiprocess files).
            return BuilderProcess(self.config, on_result=self._published, on_start=self.election.announce)
        from feedsvc.service.runner import BuilderService

        return BuilderService(self.config, on_result=self._built)

    def start(self) -> None:
        """Join the election: build at once if no other process does, else wait to take over."""
        self.election.start()

    @property
    def is_builder(self) -> bool:
        return self.election.is_leader

    @property
    def last_status(self) -> dict[str, Any] | None:
        return self.service.last_status if self.is_builder else None

    def builder_pid(self) -> int | None:
        return current_leader(self.config.output_dir)

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

    def _deposed(self) -> None:
        """The lock file went (the output folder was deleted): stop building, before standing again."""
        with self._lock:
            if self._stopped:
                return
            self.service.stop()
            log.info("pid %d stopped its builder: it no longer holds the builder lock", os.getpid())
            self.service = self._new_service()

    def stop(self) -> None:
        """Stop the builder (if this process won the election) and let the lock go. Idempotent."""
        with self._lock:
            self._stopped = True
            if self.is_builder:
                self.service.stop()
                log.info("pid %d stopped its builder", os.getpid())
            self.election.stop()


class BuilderElsewhere:
    """A `BuilderHandle` for a process that only serves: another process builds into its output."""

    def __init__(self, config: Config) -> None:
        self.config = config

    is_builder: bool = False
    last_status: dict[str, Any] | None = None

    def builder_pid(self) -> int | None:
        return current_leader(self.config.output_dir)

    def stop(self) -> None:
        pass


def create_app(config: Config | None = None, *, run_builder: bool = True, builder_in_child: bool = False) -> Flask:
    """The app, with this process's ticket in the builder election.

    `run_builder=False` serves only (another process builds into the same output);
    `builder_in_child=True` (gunicorn workers) builds, once elected, in a child process.
    """
    config = config or load_config()
    configure_logging(config)
    metrics = None
    if config.metrics:
        # Imported here, in the process that serves: prometheus_client chooses its multiprocess
        # mode when first imported, and a gunicorn master sets PROMETHEUS_MULTIPROC_DIR only as it
        # starts (feedsvc/web/server.py), after it has read its configuration.
        from feedsvc.metrics import process_metrics

        metrics = process_metrics()
    store = PublishedStore(config.output_dir)
    builder: BuilderHandle
    elected = ElectedBuilder(config, store, metrics, in_child=builder_in_child) if run_builder else None
    builder = elected if elected is not None else BuilderElsewhere(config)
    app = make_app(config, store, builder, metrics)
    if elected is not None:
        elected.start()  # after make_app: gunicorn's worker_exit hook (web.app.stop_all) can stop it
    return app


def run_builder(config: Config) -> int:
    """`feedsvc watch`: become the host's builder (waiting for the current one to go), until a signal."""
    from feedsvc.service.runner import BuilderService

    stop = threading.Event()
    received: list[str] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    services = [BuilderService(config)]

    def deposed() -> None:  # the lock file went: stop building, and build anew if elected again
        services[0].stop()
        services[0] = BuilderService(config)

    election = Election(config.output_dir, on_elected=lambda: services[0].start(), on_deposed=deposed)
    election.start()
    if not election.is_leader:
        watch_log.info("another process builds into %s; waiting to take over", config.output_dir)
    stop.wait()
    services[0].stop()
    election.stop()
    watch_log.info("feedsvc watch stopped (%s)", received[0])
    return 0
