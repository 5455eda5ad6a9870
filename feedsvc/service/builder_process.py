"""The builder in a process of its own, for a web worker that won the builder election.

Under gunicorn one web worker wins the election (`leader.py`). Building in that worker would make
it hold a record per seed (a kilobyte each, hundreds of MB at 100k seeds) and share its GIL
between builds and requests. Instead it starts `BuilderService` in a child process, spawned (the
worker is threaded), and stays a web process whose memory grows with `max_entries` only.

The worker keeps the election lock; the child builds. The child reports each build's result and
status over a pipe: the worker reloads its published bytes at once (as an in-process builder
did) and answers `/healthz` from that status, even when status.json cannot be written. The
child names itself in the lock file, so `builder_pid`, status.json and warming.json all name
the process that builds. When the worker stops, it stops the child (a build in progress ends
first, as in-process). When the worker dies, the kernel signals the child (Linux), or the child
notices within a second, and stops. A child that dies is started again, after a pause that
doubles up to `RESTART_MAX_SECONDS`.

Its builds' metrics are the child's own: under gunicorn prometheus_client's multiprocess folder
is inherited, and the worker marks a dead child's live gauges dead, as gunicorn's master does for
its workers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from feedsvc.config import MULTIPROCESS_ENV, Config
from feedsvc.model import BuildResult

log = logging.getLogger("feedsvc.watch")

RESTART_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
STOP_SECONDS = 10.0  # a build in progress may take this long to end; then the child is killed
PARENT_CHECK_SECONDS = 1.0
# Once told to stop, the child exits within this long even if its build does not end (its helpers
# are killed at once: see pipeline/helpers.py). Shorter than gunicorn's graceful timeout of `serve` (5 s).
EXIT_SECONDS = 4.0

OnResult = Callable[[BuildResult], None]


class BuilderProcess:
    """A web worker's handle on its builder child: the surface of BuilderService that feedsvc/host.py uses."""

    def __init__(
        self, config: Config, on_result: OnResult | None = None, on_start: Callable[[int], None] | None = None
    ) -> None:
        self.config = config
        self.on_result = on_result
        self.on_start = on_start  # told the child's pid (the election names it in the lock file)
        self.last_status: dict[str, Any] | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="feedsvc-builder-process", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the child (its build in progress ends first), within STOP_SECONDS, then kill it."""
        self._stopping.set()
        with self._lock:
            process, conn = self._process, self._conn
        if process is None:
            return
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send("stop")
        # join() may return as the child's end of its sentinel closes, a moment before it is reaped.
        deadline = time.monotonic() + STOP_SECONDS
        while process.is_alive() and time.monotonic() < deadline:
            process.join(0.05)
        if process.is_alive():
            log.warning("the builder process %d did not stop within %.0f s: killing it", process.pid, STOP_SECONDS)
            process.kill()
            process.join(5)
        if self._thread is not None:
            self._thread.join(5)

    def _supervise(self) -> None:
        pause = RESTART_SECONDS
        while not self._stopping.is_set():
            started = time.monotonic()
            self._run_one()
            if self._stopping.is_set():
                return
            pause = RESTART_SECONDS if time.monotonic() - started > RESTART_MAX_SECONDS else pause
            log.warning("the builder process exited; starting another in %.0f s", pause)
            if self._stopping.wait(pause):
                return
            pause = min(2 * pause, RESTART_MAX_SECONDS)

    def _run_one(self) -> None:
        """Start a child and relay its messages until it exits."""
        context = multiprocessing.get_context("spawn")  # this worker is threaded: never fork
        ours, theirs = context.Pipe()
        process = context.Process(
            target=child_main, args=(self.config, theirs, os.getpid()), name="feedsvc-builder", daemon=False
        )
        with self._lock:
            if self._stopping.is_set():
                return
            process.start()
            self._process, self._conn = process, ours
        theirs.close()
        if self.on_start is not None and process.pid is not None:
            self.on_start(process.pid)
        try:
            while True:
                result, status = ours.recv()
                self.last_status = status
                if self.on_result is not None:
                    self.on_result(result)
        except (EOFError, OSError):
            pass  # the child exited
        process.join(STOP_SECONDS)
        _mark_dead(process.pid)
        with contextlib.suppress(OSError):
            ours.close()


def _mark_dead(pid: int | None) -> None:
    """A dead child's live gauges go (its counters stay in the sums), as the master does for workers."""
    if pid is None or not os.environ.get(MULTIPROCESS_ENV):
        return
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid)


def child_main(config: Config, conn: Connection, parent: int) -> None:
    """The builder child: BuilderService until the parent says stop, goes, or the pipe closes."""
    from feedsvc.logs import configure_logging
    from feedsvc.service.runner import BuilderService

    configure_logging(config)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    _die_with(parent)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    metrics = _metrics(config)
    dated = False  # the last-publish gauge holds the served version's time

    def report(result: BuildResult) -> None:
        nonlocal dated
        if metrics is not None:
            # The manifest (large with many archive pages) is read only when the served version changed.
            published_at = _published_at(config) if result.published or not dated else None
            dated = dated or published_at is not None
            metrics.observe_build(result, published_at)
        with contextlib.suppress(OSError, ValueError):
            conn.send((result, service.builder.last_status))

    service = BuilderService(config, on_result=report)
    service.start()
    listener = threading.Thread(target=_listen, args=(conn, stop), name="feedsvc-parent-pipe", daemon=True)
    listener.start()
    while not stop.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            break
    _exit_after(EXIT_SECONDS)
    service.stop()
    log.info("builder process %d stopped", os.getpid())


def _exit_after(seconds: float) -> None:
    """Exit this process `seconds` from now, however the stop goes: a build stuck where no helper
    can be killed (a blocking read in this process) must not outlive the service."""

    def last_resort() -> None:
        time.sleep(seconds)
        log.warning("builder process %d did not stop within %.0f s: exiting", os.getpid(), seconds)
        os._exit(1)

    threading.Thread(target=last_resort, name="feedsvc-exit", daemon=True).start()


def _listen(conn: Connection, stop: threading.Event) -> None:
    with contextlib.suppress(EOFError, OSError):
        conn.recv()  # "stop", or EOF when the parent is gone
    stop.set()


def _die_with(parent: int) -> None:
    """Linux: SIGTERM when the parent dies (the loop in child_main covers other systems)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _metrics(config: Config) -> Any:
    """The child's share of the multiprocess metrics (None outside gunicorn or with metrics off)."""
    if not config.metrics or not os.environ.get(MULTIPROCESS_ENV):
        return None
    from feedsvc.metrics import process_metrics

    return process_metrics()


def _published_at(config: Config) -> str | None:
    from feedsvc.publish.layout import read_manifest

    manifest = read_manifest(config.output_dir) or {}
    value = manifest.get("published_at")
    return value if isinstance(value, str) else None
