"""What /healthz judges from the files every web process can read: whether the builder stalls,
and the bounded lists it shows.

The builder beats (`heartbeat.json`, written by feedsvc/service/runner.py's `Heartbeat`): a
thread rewrites it every few seconds, and each beat says whether a build runs and when the
builder last made progress. The builder stalls when, for `stall_seconds`,

- a build runs and has made no progress (no file processed): it hangs, or
- it has not beaten while seeds wait (a build was running, or the seeds folder changed after the
  last build began): it is stopped (SIGSTOP), frozen or gone, and nothing builds them.

A long build that progresses is not stalled; nor is an idle builder with nothing to build.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from feedsvc.publish.layout import STATUS
from feedsvc.publish.reader import read_status

# /healthz shows at most this many items of each list (skipped files, problems, …), with their counts.
MAX_LISTED = 100
LISTS = ("skipped", "problems", "deferred", "notes", "warnings")


def stall_reason(heartbeat: dict[str, Any] | None, seeds_dir: Path, stall_seconds: float, now: float) -> str | None:
    """Why the builder stalls (see the module's docstring), or None."""
    if heartbeat is None:
        return None
    try:
        pid = int(heartbeat["pid"])
        beat, progress_at, seen = (float(heartbeat[key]) for key in ("time", "progress_at", "seen"))
    except (KeyError, TypeError, ValueError):
        return None
    building = heartbeat.get("state") == "building"
    if building and now - progress_at > stall_seconds:
        done, total = heartbeat.get("done"), heartbeat.get("total")
        where = f" ({done} of {total} files processed)" if done is not None and total is not None else ""
        return f"the build in pid {pid} has made no progress for {now - progress_at:.0f} s{where}"
    if now - beat > stall_seconds and (building or _changed_since(seeds_dir, seen)):
        return f"the builder (pid {pid}) has not reported for {now - beat:.0f} s while seeds wait"
    return None


def _changed_since(seeds_dir: Path, seen: float) -> bool:
    """The seeds folder changed (a file added, removed or renamed) after `seen` (one stat)."""
    try:
        return os.stat(seeds_dir).st_mtime > seen
    except OSError:
        return False


def capped(report: dict[str, Any]) -> dict[str, Any]:
    """`report` (a build's status) with each list cut to MAX_LISTED items, and `counts`: each list's
    full length (status.json keeps every item)."""
    out = dict(report)
    counts: dict[str, int] = {}
    for key in LISTS:
        items = report.get(key)
        if isinstance(items, list):
            counts[key] = len(items)
            out[key] = items[:MAX_LISTED]
    out["counts"] = counts
    return out


class StatusFile:
    """status.json, parsed again only when it was replaced (its inode, time or size changed): with
    100k skipped files it is megabytes, and /healthz must stay cheap."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._key: tuple[int, int, int] | None = None
        self._value: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        try:
            st = os.stat(self.out_dir / STATUS)
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if key != self._key:
                self._key, self._value = key, read_status(self.out_dir)
            return self._value
