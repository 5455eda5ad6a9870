"""Deploy every publish to the bucket of `deploy_to`, in the background.

The Builder's `on_publish` hook (called in the builder thread) only asks for a deploy; one daemon
thread runs them (`feedsvc.publish.deploy`), so a build never waits for the bucket. Requests
coalesce: several publishes during a deploy make one more deploy, of the newest manifest. The
thread also deploys once when it starts, so a bucket catches up with what was published before
(deploy_to just set, a deploy that failed before a restart).

A failed deploy (endpoint down, a timeout, wrong credentials, no such bucket) is one WARNING with
the reason, naming the target, and again only when the reason changes; it is retried after
`BACKOFF` seconds, doubling up to `BACKOFF_MAX`, or at once when a new publish asks. The bucket
keeps the last good subscription documents meanwhile (they are uploaded last), and the web side
goes on serving. Each outcome is written to `deploy.json` in the output folder (for /healthz,
which any web worker answers) and counted in the metrics (`feedsvc_deploy_total{result}`,
`feedsvc_last_deploy_timestamp_seconds`).

After a deploy that changed objects, `deploy_invalidate` (a command line, if set) is run with the
changed URL paths, as arguments and on stdin, bounded by `INVALIDATE_TIMEOUT`: a CDN purge.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from feedsvc.config import Config
from feedsvc.publish.deploy import (
    DeployError,
    Outcome,
    Target,
    deploy,
    invalidate,
    make_client,
    parse_target,
    write_status,
)
from feedsvc.publish.layout import MANIFEST

log = logging.getLogger("feedsvc.deploy")

BACKOFF = 1.0  # seconds after the first failure, doubling
BACKOFF_MAX = 60.0

DeployFunction = Callable[[Target], Outcome]
# An absolute file path in a message (not the // of s3:// or http://).
_ABSOLUTE_PATH = re.compile(r"(?<![\w:/])/[^\s/:'\"]+(?:/[^\s/:'\"]*)*")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _metrics(config: Config) -> Any:
    """This process's metrics (None with metrics off): the builder child's share under gunicorn."""
    if not config.metrics:
        return None
    from feedsvc.metrics import process_metrics

    return process_metrics()


class Deployer:
    """One daemon thread that deploys the output folder's newest publish to `config.deploy_to`."""

    def __init__(
        self,
        config: Config,
        run: DeployFunction | None = None,
        backoff: float = BACKOFF,
        backoff_max: float = BACKOFF_MAX,
        metrics: Any = None,
    ) -> None:
        self.config = config
        self.target = parse_target(config.deploy_to)
        self._run_deploy = run or self._deploy
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.metrics = metrics if metrics is not None else _metrics(config)
        self.deploys = self.failures = 0
        self._client: Any = None
        self._wanted = False
        self._busy = False
        self._stop = False
        self._reason: str | None = None  # the failure last logged
        self._last_success: str | None = None
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="deployer", daemon=True)

    def start(self) -> None:
        if (self.config.output_dir / MANIFEST).exists():
            self._wanted = True  # catch up with what is published
        self._thread.start()

    def on_publish(self, _result: object = None) -> None:
        """The Builder's on_publish hook: ask for a deploy. Never blocks on I/O."""
        with self._cond:
            self._wanted = True
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._wanted and not self._busy

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the deploy under way (bounded: its requests time out)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = self.backoff
        while True:
            with self._cond:
                while not self._wanted and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                self._wanted, self._busy = False, True
            try:
                ok = self._once()
            finally:
                with self._cond:
                    self._busy = False
            if ok:
                delay = self.backoff
                continue
            with self._cond:  # retry after the backoff, or at once for a new publish
                if self._cond.wait_for(lambda: self._stop or self._wanted, delay) and self._stop:
                    return
                self._wanted = True
            delay = min(delay * 2, self.backoff_max)

    def _deploy(self, target: Target) -> Outcome:
        if self._client is None:
            self._client = make_client()
        config = self.config
        return deploy(config.output_dir, target, config.cache_control, config.deploy_gzip, self._client)

    def _once(self) -> bool:
        started = time.monotonic()
        try:
            outcome = self._run_deploy(self.target)
        except DeployError as exc:
            self._failed(str(exc))
            return False
        except Exception as exc:  # a bug, or a library's surprise: logged, retried, never fatal
            log.exception("deploy to %s failed", self.target)
            self._failed(f"deploy to {self.target}: {type(exc).__name__}: {exc}", logged=True)
            return False
        self.deploys += 1
        self._last_success = _now()
        if self._reason is not None:
            log.info("deploy to %s works again", self.target)
        self._reason = None
        log.info(
            "deployed to %s: %d uploaded, %d deleted, %d unchanged, %d requests in %.2f s",
            self.target, outcome.uploaded, outcome.deleted, outcome.unchanged, outcome.requests,
            time.monotonic() - started,
        )  # fmt: skip
        self._record(True, {"uploaded": outcome.uploaded, "deleted": outcome.deleted})
        if self.config.deploy_invalidate and (outcome.uploaded or outcome.deleted):
            self._invalidate(outcome)
        return True

    def _invalidate(self, outcome: Outcome) -> None:
        """The CDN purge hook, bounded in time; its failure is a WARNING, the deploy stands."""
        paths = outcome.changed_paths(self.target, urlsplit(self.config.base_url).path)
        failed = invalidate(self.config.deploy_invalidate, paths)
        if failed:
            log.warning("deploy to %s: %s (%d changed paths not purged)", self.target, failed, len(paths))
        else:
            log.info("deploy to %s: deploy_invalidate ran for %d changed paths", self.target, len(paths))

    def _failed(self, reason: str, logged: bool = False) -> None:
        self.failures += 1
        if reason != self._reason and not logged:
            log.warning("%s; retrying with backoff (the bucket keeps the last good feeds)", reason)
        self._reason = reason
        # /healthz never shows the server's absolute paths (an AWS config file's, say); the log does.
        self._record(False, {"error": _ABSOLUTE_PATH.sub("(path)", reason)})

    def _record(self, ok: bool, details: dict[str, Any]) -> None:
        status = {
            "target": str(self.target),
            "state": "ok" if ok else "failing",
            "last_attempt_at": _now(),
            "last_success_at": self._last_success,
            **details,
        }
        write_status(self.config.output_dir, status)
        if self.metrics is not None:
            self.metrics.observe_deploy(ok, time.time() if ok else None)


def wait_idle(deployer: Deployer, timeout: float) -> bool:
    """For tests and one-shot commands: wait (bounded) until no deploy is wanted or under way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if deployer.idle():
            return True
        time.sleep(0.02)
    return deployer.idle()
