"""Bounded feeds: each subscription document stays under max_feed_bytes (the rest goes to the
archive, at least one entry stays), and one huge seed cannot make a huge feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import feedparser
from conftest import write_seed
from hypothesis import given, settings
from hypothesis import strategies as st
from schemas import validate_atom, validate_jsonfeed

from feedsvc.model import Entry, FeedMeta
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest

META = FeedMeta(id="https://f.example/feed.xml", title="T", self_url="https://f.example/feed.xml",
                alternate_url="https://f.example/", subtitle="S", hub="https://hub.example/", stylesheet="/feed.xsl")


def write(seeds: Path, n: int, body_bytes: int) -> None:
    paragraph = f"<p>Article {n}: " + "長" * (body_bytes // 3) + "</p>"
    write_seed(seeds, f"{n:03}.txt", 1700000000000 + n * 3_600_000, f"Article {n}", f"https://e.com/{n}", paragraph)


def documents(out: Path) -> dict[str, bytes]:
    manifest = read_manifest(out)["documents"]
    return {name: (out / "objects" / doc["object"]).read_bytes() for name, doc in manifest.items()}


def test_entries_that_do_not_fit_move_to_the_archive(tmp_path: Path, config) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    for n in range(30):
        write(seeds, n, 20_000)  # ~20 KB each: 30 of them make a ~600 KB feed
    result = Builder(config(max_entries=30, max_feed_bytes=150_000)).build()
    docs = documents(out)
    for name in ("feed.xml", "feed.rss", "feed.json"):
        assert len(docs[name]) <= 150_000, (name, len(docs[name]))
    kept = feedparser.parse(docs["feed.xml"]).entries
    assert 3 <= len(kept) < 30 and result.entries == len(kept)
    assert [e.title for e in kept] == [f"Article {n}" for n in range(29, 29 - len(kept), -1)]  # the newest stay
    assert validate_atom(docs["feed.xml"]) == [] and validate_jsonfeed(json.loads(docs["feed.json"])) == []
    archived = [e.title for name, body in docs.items() if name.startswith("archive/") and name.endswith(".xml")
                for e in feedparser.parse(body).entries]
    assert sorted(archived + [e.title for e in kept]) == sorted(f"Article {n}" for n in range(30))  # each once
    assert [p.source for p in result.problems] == ["feed.xml"] and "max_feed_bytes=150000" in result.problems[0].reason
    status = json.loads((out / "status.json").read_text())
    assert status["problems"] == [{"source": "feed.xml", "reason": result.problems[0].reason}]


def test_one_entry_always_stays(tmp_path: Path, config) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write(seeds, 1, 200_000)  # one entry larger than the whole limit
    write(seeds, 0, 1_000)
    result = Builder(config(max_feed_bytes=50_000)).build()
    kept = feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).entries
    assert [e.title for e in kept] == ["Article 1"] and result.problems


def test_a_20_mb_seed_makes_no_huge_feed_and_is_reported(tmp_path: Path, config) -> None:
    """The issue's case: one 20 MB seed made a 1 MB /feed.xml with one 637 KB entry, logged at INFO only."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    seeds.mkdir()
    write(seeds, 1, 20_000_000)
    for n in range(2, 6):
        write(seeds, n, 2_000)
    result = Builder(config()).build()  # the defaults: max_entry_bytes 250000, max_feed_bytes 1000000
    docs = documents(out)
    assert all(len(docs[name]) <= 1_000_000 for name in ("feed.xml", "feed.rss", "feed.json"))
    big = next(e for e in feedparser.parse(docs["feed.xml"]).entries if e.title == "Article 1")
    assert 100_000 < len(big.content[0].value.encode()) <= 260_000
    assert "001.txt" in {p.source for p in result.problems}  # truncated: a problem, not an INFO note
    status = json.loads((out / "status.json").read_text())
    assert "001.txt" in {p["source"] for p in status["problems"]}


TEXT = st.text(alphabet=st.sampled_from(list("ab長<>&\"'\\\n é")), max_size=300)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, TEXT), min_size=1, max_size=8), st.integers(2_000, 40_000))
def test_the_quick_bound_never_lets_an_oversized_feed_through(parts: list, max_bytes: int) -> None:
    """fit_feed skips rendering when its upper bound says the documents fit: they must then fit."""
    from feedsvc.core.render.documents import _surely_under, render_documents

    when = datetime(2024, 1, 1, tzinfo=UTC)
    entries = [Entry(f"https://e.com/{i}", title or "t", f"https://e.com/{i}?q=<&>", None, when, content, summary,
                     f"{i}.txt", "https://img.example/a.png") for i, (title, content, summary) in enumerate(parts)]
    if _surely_under(entries, max_bytes):
        docs = render_documents(META, entries, 202401999999, when)
        assert all(len(d.body) <= max_bytes for d in docs if d.name in ("feed.xml", "feed.rss", "feed.json"))
