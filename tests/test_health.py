"""/healthz tells the truth (issue 21): at most 100 items of each list with their counts, a
burst of bad files logs a summary, and the stall judgement from the builder's heartbeat."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from feedsvc.config import Config
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.reporting import MAX_FILE_WARNINGS
from feedsvc.web.health import MAX_LISTED, stall_reason

BURST = 150


def burst(make_seed, config) -> Config:
    """A good seed and BURST bad ones (empty: skipped, with a reason), built once."""
    make_seed("good.txt", url="https://e.com/good")
    for n in range(BURST):
        make_seed(f"bad/{n:03}.txt", raw=b"")
    cfg = config()
    result = Builder(cfg).build()
    assert result.ok and len(result.skipped) == BURST
    return cfg


def test_a_burst_of_bad_files_logs_a_summary(make_seed, config, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feedsvc")
    burst(make_seed, config)
    # The first few files, then one line with how many more.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == MAX_FILE_WARNINGS + 1, warnings[-3:]
    assert all(w.startswith("skipped ") for w in warnings[:-1])
    assert f"{BURST - MAX_FILE_WARNINGS} more" in warnings[-1]


def test_healthz_lists_at_most_100_with_the_counts(make_seed, config) -> None:
    cfg = burst(make_seed, config)
    # status.json keeps every one; /healthz lists at most MAX_LISTED, and counts them all.
    status = json.loads((cfg.output_dir / "status.json").read_text())
    assert len(status["skipped"]) == BURST
    response = create_app(cfg, run_builder=False).test_client().get("/healthz")
    health = response.json
    assert response.status_code == 200 and health["status"] == "ok"
    assert health["skipped"] == status["skipped"][:MAX_LISTED]
    assert len(health["last_build"]["skipped"]) == MAX_LISTED
    assert health["counts"]["skipped"] == health["last_build"]["counts"]["skipped"] == BURST
    assert health["counts"]["problems"] == 0


def beat(state: str = "idle", at: float = 1000.0, progress_at: float = 1000.0, seen: float = 1000.0) -> dict:
    return {"pid": 42, "time": at, "state": state, "progress_at": progress_at, "seen": seen, "done": 3, "total": 9}


def test_stall_judgement(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    os.utime(seeds, (1005.0, 1005.0))  # the folder changed after the last build began (1000)
    assert stall_reason(None, seeds, 60, 5000) is None
    # A live builder beats: never stalled while it beats, whatever waits.
    assert stall_reason(beat(at=4990), seeds, 60, 5000) is None
    # Stopped while seeds wait.
    reason = stall_reason(beat(at=1000), seeds, 60, 5000)
    assert reason is not None and "pid 42" in reason and "seeds wait" in reason
    # Stopped, but nothing waits: not stalled.
    assert stall_reason(beat(at=1000, seen=2000), seeds, 60, 5000) is None
    # A build that beats but processes no file hangs; a build that progresses does not.
    hung = stall_reason(beat("building", at=4999, progress_at=1000, seen=1000), seeds, 60, 5000)
    assert hung is not None and "no progress" in hung and "3 of 9" in hung
    assert stall_reason(beat("building", at=4999, progress_at=4950, seen=1000), seeds, 60, 5000) is None
    # Not a heartbeat: nothing judged.
    assert stall_reason({"pid": "x"}, seeds, 60, 5000) is None
