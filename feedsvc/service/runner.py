"""The builder service: the one place that decides when to build.

One APScheduler job, `rebuild`, runs every `scan_interval` seconds (the safety net for file
systems that send no events) on a one-thread executor, so builds never overlap and feedgen runs
in one thread. File events (`events.py`) move the job's next run to `debounce` seconds after the
last event, but never later than `debounce_max` after the first, so a storm (git checkout, rsync)
builds a bounded number of times. An event that arrives during a build marks the state dirty;
the running job waits out the same debounce and builds again, so no change is lost to
`max_instances=1`. A file modified less than `settle` seconds ago may still be being written:
the build leaves it unread and publishes nothing, and the service builds again once it is old
enough, waiting at most `debounce_max` in a row (then it publishes without it). A file that
inotify saw closed after writing, or renamed into place, is complete: it is read at once, after
`COMPLETE_DEBOUNCE` rather than `debounce` (unless many files are changing at once).

A cold start (nothing published in the output folder yet) publishes the newest entries first,
found by the files' header lines, and the rest after; `warming.json` says how far it got, for
/healthz, until that build ends.

A failed build (seeds folder missing or gone, disk full) is logged once, as a WARNING, and again
only when its reason changes; it is retried quietly after `RETRY_SECONDS`, doubling up to
`RETRY_MAX_SECONDS`. That cap is short on purpose: file events cannot see a folder that does not
exist yet, so the retry is what notices it (one stat), and the feed recovers within seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor  # type: ignore[import-untyped]  # APScheduler 3 ships no types
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]  # APScheduler 3: no types

from feedsvc.config import Config, path_for_log
from feedsvc.core.routes import topics
from feedsvc.model import BuildResult, StatKey
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.helpers import Stopped, stop_helpers
from feedsvc.publish.layout import MANIFEST
from feedsvc.publish.writer import write_heartbeat, write_warming
from feedsvc.service.deployer import Deployer
from feedsvc.service.events import Watcher
from feedsvc.service.websub import Pinger

log = logging.getLogger("feedsvc.watch")

JOB_ID = "rebuild"
# A file this recently modified may still be being written: wait before reading it.
SETTLE_SECONDS = 0.5
# After a failed build (disk full, seeds folder gone), retry this soon rather than at the next
# interval rescan, then back off, doubling, up to the cap: the feed recovers within a few seconds
# of the fault clearing.
RETRY_SECONDS = 2.0
RETRY_MAX_SECONDS = 5.0
# More changed paths than this (a git checkout, an rsync): a full scan is cheaper.
_MAX_HINTED = 1000
# A file known to be complete (closed after writing, renamed into place) needs no settle time:
# its build starts this soon after its event, unless more than STORM_FILES files changed within
# `debounce` (a checkout, an rsync), which the normal debounce batches into few builds.
COMPLETE_DEBOUNCE = 0.02
STORM_FILES = 4
# How often a cold start's progress is written for /healthz.
WARMING_EVERY = 0.5
# A build that runs longer than this says how far it got, at INFO, this often.
PROGRESS_EVERY = 10.0
# The heartbeat is written every `stall_seconds` / 4, at most this long apart, and during a build
# at most this often.
HEARTBEAT_MAX_EVERY = 10.0
HEARTBEAT_PROGRESS_EVERY = 1.0


class _SkippedRuns(logging.Filter):
    """Drops APScheduler's WARNING that a run of the job was skipped because it is still running.

    A build longer than `scan_interval` (a cold start over many files) is normal: the job must not
    overlap itself (`max_instances=1`), the build in progress logs how far it got, and events that
    arrive meanwhile are kept (the job builds again). Every other message of the scheduler stays.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


# The scheduler's own logger (a child of apscheduler's, so its level and handlers hold), with the filter.
_scheduler_log = logging.getLogger("apscheduler.scheduler.feedsvc")
_scheduler_log.addFilter(_SkippedRuns())


@dataclass
class SettleWait:
    """How long builds wait for files still being written: at most `max_wait` seconds in a row.

    A folder that always holds a fresh file (a scraper writing every 100 ms) would otherwise never
    be published: past the cap a build publishes the settled files, and the others keep their last
    version (or stay out) until they settle.
    """

    max_wait: float
    since: float | None = None  # when the builds began waiting

    def may_wait(self, now: float) -> bool:
        return self.since is None or now - self.since < self.max_wait

    def after(self, result: BuildResult, now: float, waited: bool) -> None:
        if not result.deferred:
            self.since = None
        elif self.since is None or not waited:
            if not waited:
                log.info("published without %d file(s) still being written", len(result.deferred))
            self.since = now


class Warming:
    """A cold start's progress in `warming.json` (for /healthz, which any web process answers),
    written at most every WARMING_EVERY seconds, and removed when the build ends."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._written = 0.0

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._written >= WARMING_EVERY or done == total:
            self._written = now
            self._write({"pid": os.getpid(), "done": done, "total": total})

    def end(self) -> None:
        self._written = 0.0
        self._write(None)

    def _write(self, state: dict[str, int] | None) -> None:
        try:
            write_warming(self.out_dir, state)
        except OSError as exc:  # a full disk: the build itself says so
            log.debug("cannot write the warming state: %s", exc)


class Heartbeat:
    """The builder's heartbeat in `heartbeat.json`, which every web process reads for /healthz.

    A thread of its own rewrites it every `stall_seconds` / 4 (at most HEARTBEAT_MAX_EVERY apart),
    so a builder that is stopped (SIGSTOP), frozen or gone beats no more. Each beat says what the
    builder does (`idle` or `building`), when it last made progress (`progress_at`: a build began,
    a file was processed, a build ended) and when its last build began to scan (`seen`): a web
    process judges from these whether the builder stalls while seeds wait (feedsvc/web/health.py).
    """

    def __init__(self, out_dir: Path, stall_seconds: float) -> None:
        self.out_dir = out_dir
        self.every = min(stall_seconds / 4, HEARTBEAT_MAX_EVERY)
        now = time.time()
        self._state: dict[str, Any] = {"state": "idle", "progress_at": now, "seen": now, "done": None, "total": None}
        self._lock = threading.Lock()
        self._written = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.beat()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="feedsvc-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.beat()

    def building(self) -> None:
        now = time.time()
        self._update(state="building", progress_at=now, seen=now, done=None, total=None)
        self.beat()

    def progress(self, done: int, total: int) -> None:
        self._update(progress_at=time.time(), done=done, total=total)
        if time.monotonic() - self._written >= min(self.every, HEARTBEAT_PROGRESS_EVERY):
            self.beat()

    def idle(self) -> None:
        self._update(state="idle", progress_at=time.time(), done=None, total=None)
        self.beat()

    def _update(self, **values: Any) -> None:
        with self._lock:
            self._state.update(values)

    def beat(self) -> None:
        with self._lock:
            beat = {**self._state, "pid": os.getpid(), "time": time.time()}
            self._written = time.monotonic()
        try:
            write_heartbeat(self.out_dir, beat)
        except OSError as exc:  # a full disk or a missing folder: the build itself says so
            log.debug("cannot write the heartbeat: %s", exc)


class BuildProgress:
    """`building: 3,000 of 10,000 files` at INFO, every PROGRESS_EVERY seconds of a long build
    (`feedsvc build` has a bar); a build shorter than that says nothing more than its result."""

    def __init__(self, warming: Warming | None = None, heartbeat: Heartbeat | None = None) -> None:
        self.warming = warming  # a cold start's progress for /healthz
        self.heartbeat = heartbeat
        self._next = time.monotonic() + PROGRESS_EVERY

    def __call__(self, done: int, total: int) -> None:
        if self.warming is not None:
            self.warming.progress(done, total)
        if self.heartbeat is not None:
            self.heartbeat.progress(done, total)
        now = time.monotonic()
        if now >= self._next and done < total:
            self._next = now + PROGRESS_EVERY
            log.info("building: %s of %s files", f"{done:,}", f"{total:,}")


class BuilderService:
    """Owns the Builder, the scheduler and the file watcher of one process."""

    def __init__(
        self,
        config: Config,
        on_result: Callable[[BuildResult], None] | None = None,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.config = config
        self.settle = settle
        self.settling = SettleWait(max(settle, config.debounce_max))
        self.pinger: Pinger | None = None
        self.deployer: Deployer | None = None
        self.builder = Builder(config, on_publish=self._on_publish)
        self.on_result = on_result
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(60, int(config.scan_interval)),
            },
            timezone=UTC,
            logger=_scheduler_log,
        )
        self.watcher = Watcher(config.seeds_dir, config.watch, self.notify)
        self._changed = threading.Condition()
        self._dirty = False
        self._running = False
        self._first_event: float | None = None
        self._last_event = 0.0
        self._hint: set[str] | None = None  # paths changed since the last build; None: scan everything
        self._complete: dict[str, StatKey] = {}  # files known whole (closed, renamed in), with that stat
        self._recent: OrderedDict[str, float] = OrderedDict()  # paths changed within `debounce`
        self._quiet_after = config.debounce  # the debounce the last event asks for
        self.warming = Warming(config.output_dir)
        self.heartbeat = Heartbeat(config.output_dir, config.stall_seconds)
        self._last_full = 0.0
        self._failures = 0  # failed builds in a row
        self._failure: str | None = None  # the reason last logged
        self._stopping = False

    @property
    def last_status(self) -> dict[str, Any] | None:
        """The last build of record's status, as status.json holds it (or should: see Builder)."""
        return self.builder.last_status

    @property
    def watching(self) -> str:
        return self.watcher.watching

    def start(self) -> None:
        if self.config.websub_hub:
            names = topics([feed.name for feed in self.config.feeds])
            self.pinger = Pinger(self.config.websub_hub, self.config.base_url, self.config.output_dir, names)
        if self.config.deploy_to:
            self.deployer = Deployer(self.config)
            self.deployer.start()
        self.scheduler.add_job(
            self._run, "interval", seconds=self.config.scan_interval, id=JOB_ID, next_run_time=datetime.now(UTC)
        )
        self.heartbeat.start()
        self.scheduler.start()
        self.watcher.start()
        log.info(
            "builder started in pid %d: seeds %s, rescan every %ss, file events: %s",
            os.getpid(),
            path_for_log(self.config.seeds_dir),
            self.config.scan_interval,
            self.watching,
        )

    def stop(self) -> None:
        with self._changed:
            self._stopping = True  # the job reschedules nothing now: shutdown() waits for it
        self.watcher.stop()
        stop_helpers()  # a build busy on a slow file ends now (Stopped), not after its budget
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.heartbeat.stop()
        if self.pinger is not None:
            self.pinger.stop()
        if self.deployer is not None:
            self.deployer.stop()
        self.builder.close()

    def _on_publish(self, result: BuildResult) -> None:
        if self.pinger is not None:
            self.pinger.on_publish(result)  # queues only: the hub is never waited for here
        if self.deployer is not None:
            self.deployer.on_publish(result)  # asks only: the bucket is never waited for here

    def notify(self, paths: list[str] | None = None, complete: Mapping[str, StatKey] | None = None) -> None:
        """A seed changed: build soon, after the burst of events settles.

        `paths` (relative to seeds/) lets the build stat only those files; None asks for a full scan.
        `complete`: those of them known to be whole (closed after writing, renamed into place), with
        their stat then: they are read without waiting for them to settle, and built sooner.
        """
        complete = complete or {}
        with self._changed:
            now = time.monotonic()
            self._dirty = True
            if paths is None or self._hint is None or len(self._hint) + len(paths) > _MAX_HINTED:
                self._hint = None
            else:
                self._hint.update(paths)
            for path in paths or ():
                if path in complete:
                    self._complete[path] = complete[path]
                else:
                    self._complete.pop(path, None)  # written again (or gone): not known whole any more
            storm = self._storm(now, paths or ())
            self._quiet_after = COMPLETE_DEBOUNCE if complete and not storm else self.config.debounce
            self._last_event = now
            if self._first_event is None:
                self._first_event = now
            self._changed.notify_all()
            if self._running:
                return  # the running job sees the flag and builds again
            delay = self._quiet_in(now)
        self._schedule_in(delay)

    def _storm(self, now: float, paths: Iterable[str]) -> bool:
        """Whether more than STORM_FILES files changed within `debounce` (counting `paths`, now)."""
        for path in paths:
            self._recent[path] = now
            self._recent.move_to_end(path)
        while self._recent and next(iter(self._recent.values())) < now - self.config.debounce:
            self._recent.popitem(last=False)
        return len(self._recent) > STORM_FILES

    def _quiet_in(self, now: float) -> float:
        """Seconds until events have been quiet for the last one's debounce, at most `debounce_max`
        after the first."""
        first = self._first_event if self._first_event is not None else now
        return max(0.0, min(self._last_event + self._quiet_after, first + self.config.debounce_max) - now)

    def _schedule_in(self, seconds: float) -> None:
        # Under the lock that `stop` sets `_stopping` with: the scheduler's shutdown holds its job
        # store's lock while it waits for the job, which must then not ask for that lock.
        with self._changed:
            if self._stopping:
                return
            try:
                self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC) + timedelta(seconds=seconds))
            except Exception as exc:
                log.debug("cannot reschedule: %s", exc)

    def _run(self) -> None:
        """The job: build until no change arrived meanwhile, then set the next run."""
        with self._changed:
            self._running = True
        try:
            while True:
                result = self._build_once()
                with self._changed:
                    if not self._dirty:
                        self._running = False
                        break
                    while (delay := self._quiet_in(time.monotonic())) > 0:
                        self._changed.wait(delay)
        except Stopped:
            with self._changed:
                self._running = False
            log.info("build stopped: the builder is stopping")
            return
        except Exception as exc:  # outside the build (which fails by its result): failed, retried
            with self._changed:
                self._running = False
            log.debug("build job failed", exc_info=True)
            error = f"build job failed: {type(exc).__name__}: {exc}"
            self._schedule_in(self._failed(BuildResult(ok=False, error=error, public_error=error)))
            return
        except BaseException:
            with self._changed:
                self._running = False
            log.exception("build job failed")
            return
        self.watcher.rearm()
        if not result.ok:
            self._schedule_in(self._failed(result))
        else:
            self._succeeded()
            if result.deferred:
                self._schedule_in(max(0.05, self.settle - result.youngest))

    def _failed(self, result: BuildResult) -> float:
        """Say why once (and again when the reason changes); seconds until the next try."""
        self._failures += 1
        if result.error != self._failure:
            self._failure = result.error
            published = (self.config.output_dir / MANIFEST).exists()
            kept = "the last published feed stays" if published else "nothing published yet"
            log.warning("build failed: %s (%s; retrying quietly)", result.error, kept)
        else:
            log.debug("build failed again (%d in a row): %s", self._failures, result.error)
        delay = min(RETRY_SECONDS * 2 ** (self._failures - 1), RETRY_MAX_SECONDS)
        return min(delay, self.config.scan_interval)

    def _succeeded(self) -> None:
        if self._failures:
            log.info("build succeeded after %d failed attempt(s)", self._failures)
        self._failures, self._failure = 0, None

    def _build_once(self) -> BuildResult:
        with self._changed:
            self._dirty = False
            self._first_event = None
            # File events name what changed; the interval rescan (and any doubt) scans all.
            full = not self._hint or time.monotonic() - self._last_full >= self.config.scan_interval
            hint, self._hint = (None if full else self._hint), set()
            complete = dict(self._complete)
        if full:
            self._last_full = time.monotonic()
        now = time.time()
        wait = self.settling.may_wait(now)
        # A cold start: nothing published yet. Readers get the newest entries first.
        cold = not (self.config.output_dir / MANIFEST).exists()
        self.heartbeat.building()
        try:
            result = self.builder.build(
                changed=hint,
                settle=self.settle,
                wait=wait,
                now=now,
                complete=complete,
                newest_first=cold,
                progress=BuildProgress(self.warming if cold else None, self.heartbeat),
            )
        finally:
            self.heartbeat.idle()
            if cold:
                self.warming.end()
        self.settling.after(result, now, wait)
        if result.ok and not result.waiting:
            with self._changed:  # read now: their next change will say again
                for rel, stat in complete.items():
                    if self._complete.get(rel) == stat:
                        del self._complete[rel]
        if result.deferred:
            with self._changed:
                if self._hint is not None and hint is not None:
                    self._hint.update(result.deferred)
                elif hint is None:
                    self._hint = None
        if self.on_result is not None:
            self.on_result(result)
        return result

