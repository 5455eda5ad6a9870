"""WebSub publisher pings: tell the hub which feeds changed, in the background.

After a publish, `on_publish` (the Builder's hook, called in the builder thread) compares each
feed's ETag in the manifest with the previous version's, and queues the feeds whose bytes
changed. A daemon thread POSTs `hub.mode=publish&hub.url=<feed URL>` for each, retrying
failures with exponential backoff. A feed already queued is not queued twice, so a change is
pinged at most once (several quick changes may share one ping: the hub fetches the newest
bytes anyway). A rebuild that publishes nothing calls no hook, and so pings nothing. The
build never waits for the hub.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from feedsvc.publish.layout import read_manifest

log = logging.getLogger("feedsvc.websub")

# Backoff after failed attempts (seconds); the last attempt's failure drops the ping, logged.
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
TIMEOUT = 10.0


class PingError(Exception):
    """The hub did not accept the ping; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def post_ping(hub: str, topic: str, timeout: float = TIMEOUT) -> int:
    """One publish ping, form-encoded. Returns the status; raises PingError unless it is 2xx."""
    body = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": topic}).encode()
    request = urllib.request.Request(
        hub, data=body, method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as err:
        # 429 and 5xx are the hub's trouble and pass; another 4xx is ours and will not.
        raise PingError(f"hub answered {err.code}", retry=err.code == 429 or err.code >= 500) from None
    except (OSError, ValueError) as err:
        raise PingError(f"hub unreachable: {err}", retry=True) from None


def changed_feeds(out_dir: Path, names: Iterable[str]) -> list[str]:
    """The documents among `names` whose bytes differ from the previous published version."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return []
    current, previous = manifest.get("documents", {}), manifest.get("previous", {})
    return [
        name for name in names if name in current and current[name].get("etag") != previous.get(name, {}).get("etag")
    ]


class Pinger:
    """Queues changed feeds and pings the hub from one daemon thread."""

    def __init__(
        self,
        hub: str,
        base_url: str,
        out_dir: Path,
        feeds: Sequence[str],
        post: Callable[[str, str], Any] = post_ping,
        backoff: Sequence[float] = BACKOFF,
    ) -> None:
        self.hub = hub
        self.base_url = base_url.rstrip("/") + "/"
        self.out_dir = out_dir
        self.feeds = tuple(feeds)
        self.post = post
        self.backoff = tuple(backoff)
        self.sent = 0
        self.dropped = 0
        self._pending: dict[str, None] = {}  # ordered set of topic URLs
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name="websub-pinger", daemon=True)
        self._thread.start()

    def on_publish(self, _result: object = None) -> None:
        """The Builder's on_publish hook: queue the feeds this publish changed. Never blocks on I/O."""
        try:
            names = changed_feeds(self.out_dir, self.feeds)
        except OSError as exc:
            log.warning("websub: cannot read the manifest: %s", exc)
            return
        self.queue(self.base_url + name for name in names)

    def queue(self, topics: Iterable[str]) -> None:
        with self._cond:
            for topic in topics:
                self._pending[topic] = None
            self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._busy

    def stop(self, timeout: float = 2.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                topic = next(iter(self._pending))
                del self._pending[topic]
                self._busy = True
            try:
                self._deliver(topic)
            finally:
                with self._cond:
                    self._busy = False

    def _deliver(self, topic: str) -> None:
        for attempt in range(len(self.backoff) + 1):
            try:
                self.post(self.hub, topic)
            except PingError as exc:
                if not exc.retry or attempt == len(self.backoff):
                    self.dropped += 1
                    log.warning("websub: ping for %s dropped after %d attempt(s): %s", topic, attempt + 1, exc)
                    return
                log.info("websub: ping for %s failed (%s); retrying in %.0f s", topic, exc, self.backoff[attempt])
                with self._cond:
                    if self._cond.wait_for(lambda: self._stop, self.backoff[attempt]):
                        return
                    if topic in self._pending:
                        # A newer change is already queued: that ping covers this one too.
                        return
            except Exception:
                self.dropped += 1
                log.exception("websub: ping for %s failed", topic)
                return
            else:
                self.sent += 1
                log.info("websub: pinged %s for %s", self.hub, topic)
                return


def wait_idle(pinger: Pinger, timeout: float) -> bool:
    """For one-shot commands and tests: wait (bounded) until every queued ping is done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pinger.idle():
            return True
        time.sleep(0.02)
    return pinger.idle()
