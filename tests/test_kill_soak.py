"""SIGKILL the builder at random moments: the shortened form of benchmarks/kill_soak.py (README, "Hardening")."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import kill_soak

from feedsvc.model import Document
from feedsvc.publish.writer import publish


@pytest.mark.live
def test_sigkill_at_random_moments_never_tears_the_feed(tmp_path: Path) -> None:
    report = kill_soak.soak(tmp_path, iterations=14, seconds=25, rng=random.Random(4))
    assert report["problems"] == []
    assert report["kills"] >= 8
    assert report["generations"] >= 4  # the kills really landed across many published versions


def test_the_checker_sees_a_torn_feed_and_piled_up_temp_files(tmp_path: Path) -> None:
    """The soak's checks can fail: a truncated feed.xml and leftover temp files are reported."""
    stamp = datetime(2024, 1, 1, tzinfo=UTC)
    seeds = (REPO / "seeds" / "000_76cb3dcc68cf4183.txt").read_bytes()
    assert seeds  # the soak publishes real feeds; here a hand-made one
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            b"<id>urn:x</id><title>t</title><updated>2024-01-01T00:00:00Z</updated>"
            b"<author><name>a</name></author></feed>")
    publish(tmp_path, [Document("feed.xml", body, "application/atom+xml; charset=utf-8", stamp)])
    assert kill_soak.check_published(tmp_path) == ["feed.xml lacks the churn entry's end marker",
                                                   "manifest's feed.xml lacks the churn entry's end marker"]
    (tmp_path / "feed.xml").write_bytes(body[:-20])
    for n in range(3):
        (tmp_path / f".tmp-{n}").write_bytes(b"half")
    assert not any("pile up" in p for p in kill_soak.check_published(tmp_path))  # one killed batch
    problems = kill_soak.check_published(tmp_path, {".tmp-1"})  # still there after the next kill
    assert any(p.startswith("feed.xml is not a valid feed") for p in problems)
    assert any(p.startswith("temp files pile up") for p in problems)
