"""Killable helper processes: each item of a task (a seed file) within a time budget.

A build's files are processed here, never in the builder's own process, because only another
process can be stopped mid-file: a file whose sanitizing is quadratic (or hangs in a read) must
cost at most its budget and never delay the other files' publish by more.

A helper runs tasks sent over a pipe: once it has a task (READY: its modules imported),
`fn(items, *args)` yields, for each item in order, an optional (BEGIN, what it began with: the
file's hash) and one (END, its result). `Crew.run`
feeds its helpers tasks and watches each helper's messages: when none arrives within the budget,
it kills that helper, answers the item it was on with an `Overrun`, and sends the rest of the
task to a fresh helper. A helper that dies (a crash, the OOM killer) gets its item once more in a
fresh one; twice, the item is an `Overrun` too.

Helpers outlive a build: one idle helper is kept for the next (a small rebuild pays a pipe round
trip, not a process start). `stop_helpers()` kills them all at once, and a build waiting on one
raises `Stopped`: the service calls it when it stops, so a busy builder ends at once. A helper
dies with the thread that started it (Linux), and exits when its pipe closes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

BEGIN, END, READY = "begin", "end", "ready"
# A task's budget starts once its helper has unpickled it, which in a new spawned helper imports
# the pipeline (a second or more on a busy machine): until then it has this much longer.
START_SECONDS = 60.0
# Helpers kept alive between builds, ready for the next one.
KEEP_IDLE = 1

TaskFn = Callable[..., Iterator[tuple[str, Any]]]
# A task: the function, its items, and its other arguments.
Task = tuple[TaskFn, Sequence[Any], tuple[Any, ...]]


class Stopped(BaseException):
    """The process is stopping: its helpers were killed while a build waited on them. Like
    SystemExit, not an Exception: a build's catch-all (an unexpected error is a failed build)
    must let it through, as the builder stops rather than fails."""


@dataclass(frozen=True)
class Overrun:
    """An item's result when it ran past its budget, or its process died twice."""

    began: Any  # what the helper said as it began the item (None: it had not begun)
    reason: str  # "timeout" or "died"


class Helper:
    """One helper process and the builder's end of its pipe."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        ours, theirs = context.Pipe()
        self.process = context.Process(  # type: ignore[attr-defined]  # every concrete context has Process
            target=_serve, args=(theirs, os.getpid()), name="feedsvc-helper", daemon=True
        )
        self.process.start()
        theirs.close()
        self.conn: Connection = ours
        with _lock:
            _live.add(self)

    @property
    def alive(self) -> bool:
        return not self.conn.closed and self.process.is_alive()

    def kill(self) -> None:
        with _lock:
            _live.discard(self)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.process.kill()
            self.process.join(5)
        with contextlib.suppress(OSError):
            self.conn.close()


_lock = threading.Lock()
_live: set[Helper] = set()
_idle: list[Helper] = []
_generation = 0  # bumped by stop_helpers(): a build started before it stops


def stop_helpers() -> None:
    """Kill every helper of this process (idle or busy); a build waiting on one raises `Stopped`."""
    global _generation
    with _lock:
        _generation += 1
        helpers = list(_live)
        _idle.clear()
    for helper in helpers:
        helper.kill()


def _take(context: Callable[[], multiprocessing.context.BaseContext]) -> Helper:
    with _lock:
        while _idle:
            helper = _idle.pop()
            if helper.alive:
                return helper
    return Helper(context())


def _give_back(helpers: Sequence[Helper]) -> None:
    spare: list[Helper] = []
    with _lock:
        for helper in helpers:
            if helper.alive and len(_idle) < KEEP_IDLE:
                _idle.append(helper)
            else:
                spare.append(helper)
    for helper in spare:
        helper.kill()


@dataclass
class _Job:
    """Part of a task: its items from `start` on."""

    task: int
    start: int
    retried: frozenset[int] = frozenset()  # items already given a second helper


@dataclass
class _Running:
    """What one helper was sent: the job it is on, and those sent after it."""

    job: _Job
    deadline: float
    done: int = 0  # items of `job` answered
    began: Any = None
    queued: deque[_Job] = field(default_factory=deque)


@dataclass
class _Results:
    """The tasks' answers, per item, as they arrive."""

    slots: list[list[Any]]
    missing: list[int] = field(default_factory=list)

    def put(self, task: int, item: int, value: Any) -> None:
        self.slots[task][item] = value
        self.missing[task] -= 1


_EMPTY = object()


class Crew:
    """Up to `size` helpers working through one build's tasks."""

    def __init__(self, size: int, context: Callable[[], multiprocessing.context.BaseContext]) -> None:
        self.size = max(1, size)
        self.context = context
        self._idle: list[Helper] = []

    def close(self) -> None:
        """Give the helpers back for the next build (one is kept)."""
        helpers, self._idle = self._idle, []
        _give_back(helpers)

    def run(self, tasks: Sequence[Task], budget: float | None, window: int = 0) -> Iterator[tuple[int, list[Any]]]:
        """(task index, its items' results) in task order. `budget`: seconds each item may take
        (None: no limit); `window`: at most this many tasks ahead of the next to hand back are
        started (0: no limit), so that memory stays flat."""
        with _lock:
            generation = _generation
        results = _Results([[_EMPTY] * len(items) for _, items, _ in tasks], [len(items) for _, items, _ in tasks])
        pending = deque(_Job(i, 0) for i in range(len(tasks)))
        busy: dict[Helper, _Running] = {}
        limit = budget if budget is not None else float("inf")
        following = 0
        try:
            while following < len(tasks):
                while pending and (not window or pending[0].task < following + window):
                    if not self._send(tasks, pending, busy, limit):
                        break
                while following < len(tasks) and results.missing[following] == 0:
                    yield following, results.slots[following]
                    results.slots[following] = []
                    following += 1
                if following == len(tasks):
                    break
                self._wait(tasks, busy, pending, results, limit)
                with _lock:
                    if _generation != generation:
                        raise Stopped("the builder is stopping")
        finally:
            for helper in busy:
                helper.kill()

    def _send(self, tasks: Sequence[Task], pending: deque[_Job], busy: dict[Helper, _Running], limit: float) -> bool:
        """Send the next job to a free helper (a new one while there are fewer than `size`), or
        queue it behind a busy one's (with several helpers: it starts without a round trip)."""
        queue_to = next((h for h, r in busy.items() if self.size > 1 and not r.queued), None)
        if len(busy) >= self.size and queue_to is None:
            return False
        job = pending.popleft()
        fn, items, args = tasks[job.task]
        if len(busy) < self.size:
            helper = self._idle.pop() if self._idle else _take(self.context)
            busy[helper] = _Running(job, time.monotonic() + limit + START_SECONDS)
        else:
            assert queue_to is not None
            helper = queue_to
            busy[helper].queued.append(job)
        helper.conn.send((fn, (items[job.start :], *args)))
        return True

    def _wait(
        self, tasks: Sequence[Task], busy: dict[Helper, _Running], pending: deque[_Job], results: _Results, limit: float
    ) -> None:
        """Take what the busy helpers said, up to the first deadline; replace those past it."""
        soonest = min(running.deadline for running in busy.values())
        timeout = min(max(0.0, soonest - time.monotonic()), 1.0)
        ready = set(wait([helper.conn for helper in busy], timeout))
        now = time.monotonic()
        for helper, running in list(busy.items()):
            items = tasks[running.job.task][1]
            try:
                while helper.conn in ready and helper.conn.poll():
                    kind, value = helper.conn.recv()
                    running.deadline = time.monotonic() + limit
                    if kind == READY:
                        continue
                    if kind == BEGIN:
                        running.began = value
                        continue
                    results.put(running.job.task, running.job.start + running.done, value)
                    running.done, running.began = running.done + 1, None
                    if running.job.start + running.done == len(items):
                        if not running.queued:
                            del busy[helper]
                            self._idle.append(helper)
                            break
                        running.job, running.done = running.queued.popleft(), 0
                        items = tasks[running.job.task][1]
            except (EOFError, OSError):
                self._replace(helper, busy, pending, results, "died")
                continue
            if helper in busy and now >= running.deadline:
                self._replace(helper, busy, pending, results, "timeout")

    def _replace(
        self, helper: Helper, busy: dict[Helper, _Running], pending: deque[_Job], results: _Results, reason: str
    ) -> None:
        """Kill `helper`; its item is answered (or retried once, if its process died) and the rest
        of its task goes back to the front of the queue."""
        running = busy.pop(helper)
        helper.kill()
        pending.extendleft(reversed(running.queued))
        job, item = running.job, running.job.start + running.done
        if reason == "died" and item not in job.retried:
            pending.appendleft(_Job(job.task, item, job.retried | {item}))
            return
        results.put(job.task, item, Overrun(running.began, reason))
        if item + 1 < len(results.slots[job.task]):
            pending.appendleft(_Job(job.task, item + 1, job.retried))


def _serve(conn: Connection, parent: int) -> None:
    """A helper's loop: run each task sent, sending its messages, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the builder decides
    _die_with(parent)
    while True:
        try:
            fn, args = conn.recv()
        except (EOFError, OSError):
            return
        conn.send((READY, None))  # imported what the task needs: its items' budgets start now
        for message in fn(*args):
            conn.send(message)


def _die_with(parent: int) -> None:
    """Linux: killed when the thread that started it ends (its builder gone), even mid-file."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)
