"""The builder election (feedsvc/service/leader.py): one leader per output folder, a waiting
process takes over when the leader goes, and a process that stops while waiting never leads."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from live import wait_for

from feedsvc.service.leader import Election, current_leader


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions raised in any thread during the test (the election waits in one)."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_one_leader_and_takeover(tmp_path: Path, thread_errors: list[BaseException]) -> None:
    taken = threading.Event()
    first = Election(tmp_path, on_elected=lambda: None)
    second = Election(tmp_path, on_elected=taken.set)
    first.start()
    second.start()
    assert first.is_leader and not second.is_leader
    first.stop()
    assert taken.wait(10), "the waiting election never took over"
    assert second.is_leader
    assert current_leader(tmp_path) is not None
    second.stop()
    assert thread_errors == []


def test_stopped_while_waiting_never_leads(tmp_path: Path, thread_errors: list[BaseException]) -> None:
    """Both stop at shutdown, the waiting one first: when the leader lets go, the waiting thread
    gets the lock on its closed descriptor; it must not lead, write, or raise."""
    elected: list[str] = []
    first = Election(tmp_path, on_elected=lambda: None)
    second = Election(tmp_path, on_elected=lambda: elected.append("second"))
    first.start()
    second.start()
    assert second._thread is not None
    second.stop()
    first.stop()
    second._thread.join(10)
    assert not second._thread.is_alive()
    assert elected == [] and not second.is_leader
    assert thread_errors == []
    # The lock is free again: a new process leads at once.
    third = Election(tmp_path, on_elected=lambda: None)
    third.start()
    assert third.is_leader
    third.stop()


def test_a_leader_whose_lock_file_goes_steps_down_and_stands_again(tmp_path: Path,
                                                                   thread_errors: list[BaseException]) -> None:
    """Issue 21: the output folder deleted while serving, and a new process on the new folder,
    gave two builders. The old leader steps down and stands again on the new file."""
    out = tmp_path / "out"
    events: list[str] = []
    first = Election(out, on_elected=lambda: events.append("elected"), on_deposed=lambda: events.append("deposed"),
                     check_every=0.01)
    first.start()
    assert first.is_leader and current_leader(out) is not None
    shutil.rmtree(out)
    second = Election(out, on_elected=lambda: events.append("second"), check_every=0.01)
    second.start()  # it finds no lock file, makes one, and may lead at once
    wait_for(lambda: "deposed" in events and first.is_leader != second.is_leader, 10, what="one leader again")
    leader, other = (first, second) if first.is_leader else (second, first)
    leader.stop()
    wait_for(lambda: other.is_leader, 10, what="the other takes over on the new file")
    other.stop()
    assert thread_errors == []


def test_a_lock_on_a_file_that_is_gone_is_not_a_lead(tmp_path: Path, thread_errors: list[BaseException]) -> None:
    """A waiter that gets the lock of a deleted file must not lead: it stands on the new file."""
    out = tmp_path / "out"
    first = Election(out, on_elected=lambda: None, check_every=60)  # it never notices: the waiter must
    waiter = Election(out, on_elected=lambda: None, check_every=60)
    first.start()
    waiter.start()
    (out / ".builder.lock").unlink()
    third = Election(out, on_elected=lambda: None, check_every=60)
    third.start()  # a new file, locked at once; it leads there once first, still building, lets go
    assert not third.is_leader  # first holds the builder token: never two builders
    first.stop()  # the waiter gets the old file's lock: not a lead, and the new file is third's
    wait_for(lambda: third.is_leader, 10, what="third leads once the first let its token go")

    def stands_on_the_new_file() -> bool:
        fd = waiter._fd
        return fd is not None and os.fstat(fd).st_ino == os.stat(out / ".builder.lock").st_ino

    wait_for(stands_on_the_new_file, 10, what="the waiter rejects the old file's lock")
    assert not waiter.is_leader and third.is_leader
    third.stop()
    wait_for(lambda: waiter.is_leader, 10, what="the waiter leads on the new file")
    waiter.stop()
    assert thread_errors == []


def test_a_new_leader_waits_until_the_deposed_one_has_stopped_its_builder(
    tmp_path: Path, thread_errors: list[BaseException]
) -> None:
    """The output folder deleted: a new process locks a new file at once, but builds only once the
    old leader's builder has stopped (its `on_deposed` returned), so two builders never overlap."""
    out = tmp_path / "out"
    events: list[str] = []
    release = threading.Event()

    def deposed() -> None:
        events.append("deposing")
        release.wait(10)  # a builder that takes a while to stop
        events.append("deposed")

    first = Election(out, on_elected=lambda: events.append("first"), on_deposed=deposed, check_every=0.01)
    first.start()
    shutil.rmtree(out)
    second = Election(out, on_elected=lambda: events.append("second"), check_every=0.01)
    second.start()
    wait_for(lambda: "deposing" in events, 10, what="the old leader steps down")
    assert not second.is_leader and "second" not in events  # the old builder is still stopping
    release.set()
    wait_for(lambda: second.is_leader, 10, what="the new leader, once the old builder stopped")
    assert events.index("deposed") < events.index("second")
    second.stop()
    first.stop()
    assert thread_errors == []
