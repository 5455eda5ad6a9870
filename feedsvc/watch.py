"""The builder service: APScheduler's interval rescan plus watchdog events, debounced.

One job, `rebuild`, runs every `scan_interval` seconds (the safety net for file systems that
send no events) on a one-thread executor, so builds never overlap and feedgen runs in one
thread. File events move the job's next run to `debounce` seconds after the last event, but
never later than `debounce_max` after the first one, so a storm (git checkout, rsync) builds a
bounded number of times. An event that arrives during a build sets a dirty flag; the running
job loops until the flag stays clear, so no change is lost to `max_instances=1`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from feedsvc.build import Builder, BuildResult
from feedsvc.config import Config
from feedsvc.leader import Election
from feedsvc.render.documents import SUBSCRIPTION_FEEDS
from feedsvc.seeds import is_ignored_path
from feedsvc.websub import Pinger

log = logging.getLogger("feedsvc.watch")

JOB_ID = "rebuild"
# A file this recently modified may still be being written: wait before reading it.
SETTLE_SECONDS = 0.5
# After a failed build (disk full, seeds folder gone), retry this soon rather than at the next
# interval rescan, so the feed recovers within seconds of the fault clearing.
RETRY_SECONDS = 2.0
# More changed paths than this (a git checkout, an rsync): a full scan is cheaper.
_MAX_HINTED = 1000
_RELEVANT = {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED}


class _SeedEvents(FileSystemEventHandler):
    """Filters raw events down to changes that can matter to the feed."""

    def __init__(self, root: str, notify: Callable[[list[str] | None], None]) -> None:
        self.root = root
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT:
            return  # opened / closed-without-write: our own reads must not trigger builds
        if event.is_directory:
            if event.event_type != EVENT_TYPE_MODIFIED:
                self.notify(None)  # a folder moved in or out may hold seeds: scan everything
            return
        paths = [os.fsdecode(p) for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        relevant = [p for p in paths if not is_ignored_path(p, self.root)]
        if relevant:
            self.notify([os.path.relpath(os.path.abspath(p), self.root) for p in relevant])


class BuilderService:
    """Owns the Builder, the scheduler and the file watcher of one process."""

    def __init__(
        self,
        config: Config,
        on_result: Callable[[BuildResult], None] | None = None,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.config = config
        self.pinger: Pinger | None = None
        self.builder = Builder(config, settle=settle, on_publish=self._on_publish)
        self.on_result = on_result
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(60, int(config.scan_interval)),
            },
            timezone=UTC,
        )
        self.observer: Observer | PollingObserver | None = None
        self.watching = "off"
        self._watched: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder the observer watches
        self._lock = threading.Lock()
        self._dirty = False
        self._running = False
        self._first_event: float | None = None
        self._last_event = 0.0
        self._hint: set[str] | None = None  # paths changed since the last build; None: scan everything
        self._last_full = 0.0

    def start(self) -> None:
        if self.config.websub_hub:
            self.pinger = Pinger(
                self.config.websub_hub, self.config.base_url, self.config.output_dir, SUBSCRIPTION_FEEDS
            )
        self.scheduler.add_job(
            self._run, "interval", seconds=self.config.scan_interval, id=JOB_ID, next_run_time=datetime.now(UTC)
        )
        self.scheduler.start()
        self._start_observer()
        log.info(
            "builder started in pid %d: seeds %s, rescan every %ss, file events: %s",
            os.getpid(),
            self.config.seeds_dir,
            self.config.scan_interval,
            self.watching,
        )

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.pinger is not None:
            self.pinger.stop()

    def _on_publish(self, result: BuildResult) -> None:
        if self.pinger is not None:
            self.pinger.on_publish(result)  # queues only: the hub is never waited for here

    def _seeds_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.config.seeds_dir)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def _rearm_observer(self) -> None:
        """Watch the seeds folder again if it was replaced (deleted and recreated, or a new mount).

        inotify watches an inode: once the folder is gone, its watch is gone too, and a new folder
        at the same path would only be seen by the interval rescan, up to `scan_interval` later.
        """
        if self.config.watch == "off":
            return
        identity = self._seeds_identity()
        if identity is None or identity == self._watched:
            return
        if self.observer is not None:
            self.observer.stop()
            self.observer = None
        log.info("seeds folder %s (re)appeared: watching it again", self.config.seeds_dir)
        self._start_observer()

    def _start_observer(self) -> None:
        mode = self.config.watch
        if mode == "off":
            return
        identity = self._seeds_identity()
        if identity is None or not self.config.seeds_dir.is_dir():
            log.warning("not watching %s: not a directory yet (the interval rescan continues)", self.config.seeds_dir)
            return
        handler = _SeedEvents(str(self.config.seeds_dir.resolve()), self.notify)
        kinds: list[tuple[str, type]] = [("polling", PollingObserver)] if mode == "polling" else [("inotify", Observer)]
        if mode == "auto":
            kinds.append(("polling", PollingObserver))
        for name, kind in kinds:
            observer = kind(timeout=1.0) if kind is PollingObserver else kind()
            try:
                observer.schedule(handler, str(self.config.seeds_dir), recursive=True)
                observer.daemon = True
                observer.start()
            except OSError as exc:
                log.warning("file events via %s unavailable (%s)", name, exc)
                continue
            self.observer, self.watching, self._watched = observer, name, identity
            return

    def notify(self, paths: list[str] | None = None) -> None:
        """A seed changed: build soon, after the burst of events settles.

        `paths` (relative to seeds/) lets the build stat only those files; None asks for a full scan.
        """
        now = time.monotonic()
        with self._lock:
            self._dirty = True
            if paths is None or self._hint is None or len(self._hint) + len(paths) > _MAX_HINTED:
                self._hint = None
            else:
                self._hint.update(paths)
            self._last_event = now
            if self._first_event is None:
                self._first_event = now
            if self._running:
                return  # the running job sees the flag and loops
            due = min(now + self.config.debounce, self._first_event + self.config.debounce_max)
        self._schedule_in(max(0.0, due - now))

    def request_build(self) -> None:
        """Build as soon as possible (after the current build, if one runs), scanning everything."""
        with self._lock:
            self._dirty = True
            self._hint = None
            if self._running:
                return
        self._schedule_in(0.0)

    def _schedule_in(self, seconds: float) -> None:
        try:
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))
        except Exception as exc:
            log.debug("cannot reschedule: %s", exc)

    def _quiet_wait(self) -> None:
        """Sleep until events have been quiet for `debounce`, at most `debounce_max` after the first."""
        while True:
            with self._lock:
                first = self._first_event if self._first_event is not None else time.monotonic()
                due = min(self._last_event + self.config.debounce, first + self.config.debounce_max)
            delay = due - time.monotonic()
            if delay <= 0:
                return
            time.sleep(min(delay, 0.05))

    def _run(self) -> None:
        with self._lock:
            self._running = True
        try:
            while True:
                with self._lock:
                    self._dirty = False
                    self._first_event = None
                    # File events name what changed; the interval rescan (and any doubt) scans all.
                    full = not self._hint or time.monotonic() - self._last_full >= self.config.scan_interval
                    hint, self._hint = (None if full else self._hint), set()
                if full:
                    self._last_full = time.monotonic()
                result = self.builder.build(changed=hint)
                if result.deferred:
                    with self._lock:
                        if self._hint is not None and hint is not None:
                            self._hint.update(result.deferred)
                        elif hint is None:
                            self._hint = None
                if self.on_result is not None:
                    self.on_result(result)
                with self._lock:
                    if not self._dirty:
                        self._running = False
                        break
                self._quiet_wait()
        except BaseException:
            with self._lock:
                self._running = False
            log.exception("build job failed")
            return
        self._rearm_observer()
        if not result.ok:
            self._schedule_in(min(RETRY_SECONDS, self.config.scan_interval))
        elif result.deferred:
            self._schedule_in(self.builder.retry_in)


def run_builder(config: Config) -> int:
    """`feedsvc watch`: become the host's builder (waiting for the current one to go), until a signal."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service = BuilderService(config)
    election = Election(config.output_dir, on_elected=service.start)
    election.start()
    if not election.is_leader:
        log.info("another process builds into %s; waiting to take over", config.output_dir)
    stop.wait()
    service.stop()
    election.stop()
    return 0
