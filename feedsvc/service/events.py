"""File events: watchdog's observer on the seeds folder, filtered down to changes that can matter.

Editors save by write-then-rename and tools leave swap and temp files: only seed names count
(`feedsvc.pipeline.seeds.is_ignored_path`), and a moved file counts at both ends. inotify watches an
inode, so a seeds folder that is deleted and recreated is watched again (`Watcher.rearm`). On
file systems that send no events (NFS, CIFS, VM shares) the polling observer, or the interval
rescan alone, stands in.

inotify also says when a file is complete: closed after writing (`IN_CLOSE_WRITE`, watchdog's
closed event) or renamed into place (`IN_MOVED_TO`: a moved event, also from outside the folder).
Such a file is reported with its stat at that moment, so the build reads it at once as long as
it still has that stat. The polling observer cannot tell: its files wait out the settle time.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from feedsvc.model import StatKey
from feedsvc.pipeline.seeds import is_ignored_path

log = logging.getLogger("feedsvc.watch")

_RELEVANT = {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED, EVENT_TYPE_CLOSED}
# The events asked of the observer (inotify asks the kernel for these only): not a file opened or
# closed without writing, which every read of a seed causes (a cold build reads them all).
_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]
# notify(paths relative to seeds/, the complete ones among them with their stat), or
# notify(None, {}): something changed, scan everything.
Notify = Callable[[list[str] | None, Mapping[str, StatKey]], None]


class SeedEvents(FileSystemEventHandler):
    """Filters raw events down to changes that can matter to the feed. `completion`: the observer
    reports closes after writing and renames (inotify), so those files are known to be complete."""

    def __init__(self, root: str, notify: Notify, completion: bool = False) -> None:
        self.root = root
        self.notify = notify
        self.completion = completion

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in _RELEVANT:
            return  # opened / closed-without-write: our own reads must not trigger builds
        if event.is_directory:
            if event.event_type != EVENT_TYPE_MODIFIED:
                self.notify(None, {})  # a folder moved in or out may hold seeds: scan everything
            return
        src, dest = os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", ""))
        # The path this event shows whole: the file closed after writing, or the name moved to.
        whole = dest if event.event_type == EVENT_TYPE_MOVED else src if event.event_type == EVENT_TYPE_CLOSED else ""
        relevant = [p for p in (src, dest) if p and not is_ignored_path(p, self.root)]
        if not relevant:
            return
        complete: dict[str, StatKey] = {}
        if self.completion and whole in relevant:
            try:
                st = os.stat(whole)
            except OSError:
                pass  # gone again: the build sees that
            else:
                complete[self._rel(whole)] = StatKey(st.st_size, st.st_mtime_ns, st.st_ino)
        self.notify([self._rel(p) for p in relevant], complete)

    def _rel(self, path: str) -> str:
        return os.path.relpath(os.path.abspath(path), self.root)


class Watcher:
    """The observer of one seeds folder: `mode` is the config's `watch` (auto, inotify, polling, off)."""

    def __init__(self, seeds_dir: Path, mode: str, notify: Notify) -> None:
        self.seeds_dir = seeds_dir
        self.mode = mode
        self.notify = notify
        self.watching = "off"
        self._observer: BaseObserver | None = None
        self._watched: tuple[int, int] | None = None  # (st_dev, st_ino) of the folder watched

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.seeds_dir)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)

    def start(self) -> None:
        if self.mode == "off":
            return
        identity = self._identity()
        if identity is None or not self.seeds_dir.is_dir():
            # Not a warning: the build that fails on it warns, once. The retries notice it appearing.
            log.info("not watching %s yet: not a directory", self.seeds_dir)
            return
        root = str(self.seeds_dir.resolve())
        kinds = ["polling"] if self.mode == "polling" else ["inotify"]
        if self.mode == "auto":
            kinds.append("polling")
        for name in kinds:
            observer = _observer(name)
            handler = SeedEvents(root, self.notify, completion=name == "inotify")
            try:
                observer.schedule(handler, str(self.seeds_dir), recursive=True, event_filter=_EVENTS)
                observer.daemon = True
                observer.start()
            except OSError as exc:
                log.warning("file events via %s unavailable (%s)", name, exc)
                continue
            self._observer, self.watching, self._watched = observer, name, identity
            return

    def rearm(self) -> None:
        """Watch the seeds folder again if it was replaced (deleted and recreated, or a new mount)."""
        if self.mode == "off":
            return
        identity = self._identity()
        if identity is None:
            # Gone: whatever appears there next is watched anew, even if it reuses the inode.
            self._watched = None
            return
        if identity == self._watched:
            return
        self.stop()
        log.info("seeds folder %s (re)appeared: watching it again", self.seeds_dir)
        self.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer = None


def _observer(name: str) -> BaseObserver:
    if name == "polling":
        return PollingObserver(timeout=1.0)
    # inotify (Linux): a file moved in from outside the folder is a move (its name appeared whole),
    # not a creation, which a writer about to write would also cause.
    # watchdog types Observer by a protocol that omits the Linux (inotify) observer's generate_full_events.
    return Observer(generate_full_events=True) if sys.platform.startswith("linux") else Observer()  # type: ignore[call-arg]
