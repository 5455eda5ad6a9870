"""The builder election (feedsvc/service/leader.py): one leader per output folder, a waiting
process takes over when the leader goes, and a process that stops while waiting never leads."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

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
