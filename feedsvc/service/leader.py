"""Exactly one builder per output directory: leader election with an `flock`.

Every process that could build (each gunicorn worker, `feedsvc serve`, `feedsvc watch`) asks
for an exclusive lock on `<output_dir>/.builder.lock`. One gets it and builds; the others wait
for it in a daemon thread. The kernel drops the lock when its holder dies, however it dies,
so a waiting process takes over at once, with no lease to expire and no stale pid file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("feedsvc.leader")

LOCK_NAME = ".builder.lock"


class Election:
    def __init__(self, out_dir: Path, on_elected: Callable[[], None]) -> None:
        self.path = out_dir / LOCK_NAME
        self.on_elected = on_elected
        self.is_leader = False
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        # A waiting thread may get the lock just as the process stops (its leader stopping too):
        # then it must neither lead nor touch the descriptor stop() closed.
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Try at once; if another process leads, wait for it in the background."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread = threading.Thread(target=self._wait, args=(self._fd,), name="feedsvc-election", daemon=True)
            self._thread.start()
            return
        self._elected()

    def _wait(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks, without the GIL, until the leader goes
        except OSError:
            return  # our descriptor was closed: stop() during shutdown
        self._elected()

    def _elected(self) -> None:
        with self._lock:
            if self._stopped or self._fd is None:
                return  # stopped while waiting: the lock goes with the closed descriptor
            self.is_leader = True
            self._name(os.getpid())
        log.info("pid %d is the builder for %s", os.getpid(), self.path.parent)
        self.on_elected()

    def announce(self, pid: int) -> None:
        """Name `pid` as the builder in the lock file (a leader that builds in a child process)."""
        with self._lock:
            if self.is_leader:
                self._name(pid)

    def _name(self, pid: int) -> None:
        """The lock file's text, for `current_leader` (under `_lock`, while the descriptor is open)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, f"{pid}\n".encode(), 0)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            fd, self._fd = self._fd, None
            self.is_leader = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def current_leader(out_dir: Path) -> int | None:
    """The builder's pid as it wrote it (informational: the lock, not this file, decides)."""
    try:
        return int((out_dir / LOCK_NAME).read_text().strip() or 0) or None
    except (OSError, ValueError):
        return None
