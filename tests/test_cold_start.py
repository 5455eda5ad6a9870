"""A cold start publishes the newest entries first (found by the files' headers), then everything,
with the bytes of a plain full build; /healthz says it is warming meanwhile."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import feedparser
import pytest
from conftest import SAMPLE, published_etags, write_seed
from live import wait_for

import feedsvc.pipeline.builder as builder_module
from feedsvc.config import load_config
from feedsvc.core.parse import parse_header, parse_seed
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.pipeline.newest import MIN_FILES
from feedsvc.publish.reader import read_warming
from feedsvc.service.leader import Election
from feedsvc.service.runner import BuilderService

BASE = 1_700_000_000_000  # ms


def write_corpus(seeds: Path, count: int) -> None:
    """`count` articles an hour apart, plus the cases a header pass must get right, or leave right."""
    seeds.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = f"<div><i><br>2023-01-01T00:00:00Z</i></div><p>article {n} " + "text " * 20 + "</p>"
        write_seed(seeds, f"a{n:04d}.txt", BASE + n * 3_600_000, f"Article {n}", f"https://e.com/{n}", body)
    newest = BASE + count * 3_600_000
    # The same article twice among the newest (http and https): one entry, the newer copy.
    write_seed(seeds, "dup-old.txt", newest + 1000, "Dup older", "http://e.com/dup", "<p>old</p>")
    write_seed(seeds, "dup-new.txt", newest + 2000, "Dup newer", "https://e.com/dup", "<p>new</p>")
    # Promises to be the newest, and is skipped: its link is no http(s) URL and it has no body.
    write_seed(seeds, "skipped.txt", newest + 3000, "No link, no body", "javascript:alert(1)", "")
    # No stamp, so its date is the body's date line; beyond the header's first bytes (a very long
    # title), which therefore promise the (old) mtime: it is in the feed only after the full build.
    late = "[" + "Long title " * 400 + "](https://e.com/late)\n------\n\n<div><i><br>2024-06-01T00:00:00Z</i></div><p>x</p>\n"
    (seeds / "late.txt").write_text(late)
    os.utime(seeds / "late.txt", (1_600_000_000, 1_600_000_000))


def feed_ids(out: Path) -> list[str]:
    return [e.id for e in feedparser.parse((out / "feed.xml").read_bytes()).entries]


documents = published_etags



def hold_the_backfill(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Hold a build's main loading pass (after its first publish) until the test releases it:
    (set when the backfill begins, set this to let it go on)."""
    backfill, release = threading.Event(), threading.Event()
    real_load = builder_module.load

    def held_load(*args, **kwargs):
        backfill.set()
        assert release.wait(30)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(builder_module, "load", held_load)
    return backfill, release

def test_header_dates_are_the_full_parse_dates(sample_bytes: bytes) -> None:
    article = parse_seed(sample_bytes, SAMPLE.name)
    assert parse_header(sample_bytes) == article.updated
    no_stamp = sample_bytes.split(b"\n", 1)[1]
    cut = no_stamp[:700]  # within a multi-byte character, after the body's date line
    assert parse_header(cut, whole=False) == parse_seed(no_stamp, "x").updated == article.published
    assert parse_header(b"<p>html where the title should be</p>") is None


def test_cold_start_publishes_the_newest_first_then_the_bytes_of_a_full_build(
    tmp_path: Path, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = tmp_path / "seeds"
    write_corpus(seeds, MIN_FILES)  # fewer would be built whole at once
    settings = {"article_pages": True, "max_entries": 10, "archive_page_size": 50, "watch": "off",
                "scan_interval": 3600}
    # What the first publish should hold: a full build of the files whose headers tell the truth.
    truthful = tmp_path / "truthful"
    shutil.copytree(seeds, truthful)
    (truthful / "late.txt").unlink()
    Builder(config(seeds_dir=str(truthful), output_dir=str(tmp_path / "ref-first"), **settings)).build()
    Builder(config(output_dir=str(tmp_path / "ref-full"), **settings)).build()
    expected_final = feed_ids(tmp_path / "ref-full")
    assert "https://e.com/late" in expected_final[0]  # the header pass cannot know that one

    # The backfill waits for the test, after the first publish.
    backfill, release = hold_the_backfill(monkeypatch)
    cfg = config(**settings)
    out = tmp_path / "out"
    service = BuilderService(cfg)
    election = Election(out, on_elected=service.start)  # the builder of `out`, as /healthz tells
    election.start()
    try:
        assert backfill.wait(30)
        first = feed_ids(out)
        assert first == feed_ids(tmp_path / "ref-first")
        assert "urn:uuid" not in " ".join(first) and first.count("https://e.com/dup") == 1
        assert not any(name.startswith("archive/") for name in documents(out))  # not yet
        assert not any(name.startswith("articles/") for name in documents(out))  # entry pages follow, too
        health = create_app(cfg, run_builder=False).test_client().get("/healthz")
        assert health.status_code == 200
        warming = health.json["warming"]
        assert 10 <= warming["done"] < warming["total"] == MIN_FILES + 4, warming
        release.set()
        wait_for(lambda: read_warming(out) is None and (out / "status.json").exists(), 30, what="the full build")
        assert documents(out) == documents(tmp_path / "ref-full")
        # A page per entry: the corpus's articles, the duplicate once, the late one (not the skipped one).
        assert len([n for n in documents(out) if n.startswith("articles/")]) == MIN_FILES + 2
        assert feed_ids(out) == expected_final
        assert "warming" not in create_app(cfg, run_builder=False).test_client().get("/healthz").json
    finally:
        release.set()
        service.stop()
        election.stop()


def test_a_restart_with_a_published_folder_is_no_cold_start(
    tmp_path: Path, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_corpus(tmp_path / "seeds", 20)
    cfg = config(max_entries=5, watch="off", scan_interval=3600)
    Builder(cfg).build()
    asked: list[bool] = []
    real_build = Builder.build

    def spy(self, *args, **kwargs):
        asked.append(kwargs.get("newest_first", False))
        return real_build(self, *args, **kwargs)

    monkeypatch.setattr(Builder, "build", spy)
    service = BuilderService(cfg)
    service.start()
    try:
        wait_for(lambda: asked, 10, what="the first build")
    finally:
        service.stop()
    assert asked[0] is False


def test_declared_feeds_follow_the_first_publish_with_the_bytes_of_a_full_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = tmp_path / "seeds"
    write_corpus(seeds, MIN_FILES)

    def config_for(out: Path):
        toml = tmp_path / f"{out.name}.toml"
        toml.write_text(f'seeds_dir = "{seeds}"\noutput_dir = "{out}"\nbase_url = "https://feeds.example.org/"\n'
                        'max_entries = 10\nwatch = "off"\nscan_interval = 3600\n'
                        '[[feeds]]\nname = "dups"\ninclude = "Dup"\n')
        return load_config(toml, env={})

    Builder(config_for(tmp_path / "ref")).build()
    backfill, release = hold_the_backfill(monkeypatch)
    out = tmp_path / "out"
    service = BuilderService(config_for(out))
    service.start()
    try:
        assert backfill.wait(30)
        assert "feed.xml" in documents(out) and not any(name.startswith("dups/") for name in documents(out))
        release.set()
        wait_for(lambda: (out / "status.json").exists(), 30, what="the full build")
        assert documents(out) == documents(tmp_path / "ref")
        assert any(name.startswith("dups/") for name in documents(out))
    finally:
        release.set()
        service.stop()
