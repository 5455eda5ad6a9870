"""Problems a user must fix versus notes (issue 14): through the outcome, the cache, the build's
result, status.json, /healthz and `feedsvc check`; link posts; the `max_entry_bytes` cap."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import feedparser
import pytest
from conftest import REPO, SAMPLE
from lxml import etree
from schemas import validate_atom, validate_jsonfeed

from feedsvc.config import ConfigError, load_config
from feedsvc.core.entry import CONTINUE_READING
from feedsvc.core.outcome import fingerprint, process_file, process_seed
from feedsvc.host import create_app
from feedsvc.model import EntrySettings, SeedFile
from feedsvc.pipeline.builder import Builder

ATOM = "{http://www.w3.org/2005/Atom}"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MTIME = datetime(2025, 6, 1, tzinfo=UTC)
BACKENDS = ("bleach", "nh3")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    return subprocess.run([sys.executable, "-m", "feedsvc", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)


def gb18030_sample() -> bytes:
    return SAMPLE.read_bytes().decode("utf-8").encode("gb18030")


def test_problems_and_notes_are_told_apart() -> None:
    def outcome(data: bytes):
        return process_seed(data, "a.txt", MTIME, EntrySettings(), NOW)

    legacy = outcome(gb18030_sample())
    assert legacy.entry is not None and legacy.problems == ()
    assert legacy.notes == ("decoded as gb18030 (not valid UTF-8)",)
    seconds = outcome(b"<!--1681696026-->\n[T](https://e.com/t)\n\n<p>x</p>")
    assert seconds.problems == () and seconds.notes == ("timestamp in seconds, not milliseconds",)
    undated = outcome(b"[T](https://e.com/t)\n\n<p>x</p>")
    assert undated.problems == () and undated.uses_mtime
    assert undated.notes == ("no timestamp line", "date taken from the file's modification time")

    dropped = outcome(b"<!--1681696026000-->\n[T](javascript:alert(1))\n\n<p>x</p>")
    assert dropped.entry is not None and dropped.entry.link is None and dropped.entry.id.startswith("urn:uuid:")
    assert dropped.problems == ("title link 'javascript:alert(1)' dropped: not a usable http(s) URL "
                                "(the entry has no link, and a urn:uuid id)",)
    invalid = outcome(b"<!--0-->\n[T](https://e.com/t)\n\n<p>x</p>")
    assert invalid.entry is not None and invalid.entry.updated == MTIME and invalid.uses_mtime
    assert invalid.problems[0].startswith("invalid timestamp '<!--0-->': out of range") and invalid.notes == ()
    # Nothing left to publish: a skip, whose reason says why.
    nothing = outcome(b"<!--1681696026000-->\n[T](javascript:alert(1))\n")
    assert nothing.entry is None and "dropped" in nothing.problem and "nothing to publish" in nothing.problem


def test_truncation_by_the_read_limit_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_bytes(b"<!--1681696026000-->\n[T](https://e.com/t)\n\n" + b"<p>words words</p>" * 1000)
    st = path.stat()
    seed = SeedFile(str(path), "big.txt", st.st_size, st.st_mtime_ns, st.st_ino)
    outcome = process_file(path.read_bytes()[:4096], seed, EntrySettings(), 4096, NOW)
    assert outcome.entry is not None and outcome.problems == (f"only the first 4096 of {st.st_size} bytes read",)


def test_problems_reach_the_result_the_cache_status_json_and_healthz(tmp_path, make_seed, config, counted,
                                                                      caplog) -> None:
    make_seed("good.txt", url="https://e.com/good")
    make_seed("legacy.txt", raw=gb18030_sample())
    make_seed("js.txt", url="javascript:alert(1)")
    make_seed("zero.txt", raw=b"<!--0-->\n[Zero](https://e.com/zero)\n\n<p>z</p>")
    make_seed("empty.txt", raw=b"")
    cfg = config()
    caplog.set_level(logging.INFO, logger="feedsvc")
    result = Builder(cfg).build()
    seeds = cfg.seeds_dir
    assert result.entries == 4 and [(p.source, p.reason) for p in result.skipped] == [("empty.txt", "empty file")]
    problems = {Path(p.source).name: p.reason for p in result.problems}
    assert set(problems) == {"js.txt", "zero.txt"} and "dropped" in problems["js.txt"]
    assert [Path(p.source).name for p in result.notes] == ["legacy.txt"]

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sorted(warnings) == sorted([f"skipped {seeds / 'empty.txt'}: empty file",
                                       f"{seeds / 'js.txt'}: {problems['js.txt']}",
                                       f"{seeds / 'zero.txt'}: {problems['zero.txt']}"])
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert f"{seeds / 'legacy.txt'}: decoded as gb18030 (not valid UTF-8)" in infos

    status = json.loads((cfg.output_dir / "status.json").read_text())
    assert {Path(p["source"]).name: p["reason"] for p in status["problems"]} == problems
    assert [Path(p["source"]).name for p in status["skipped"]] == ["empty.txt"]
    health = create_app(cfg, run_builder=False).test_client().get("/healthz").json
    assert health["problems"] == status["problems"] and health["skipped"] == status["skipped"]

    # A restart takes the problems from the cache, re-processes nothing, and warns no more.
    caplog.clear()
    processed = len(counted)
    again = Builder(cfg).build()
    assert len(counted) == processed and again.problems == result.problems and again.skipped == result.skipped
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "zero.txt" in r.getMessage()]
    builder = Builder(cfg)
    builder.build()
    caplog.clear()
    builder.build()  # nothing changed: no warning again
    make_seed("zero.txt", raw=b"<!--0-->\n[Zero](https://e.com/zero)\n\n<p>edited</p>")
    builder.build()  # new bytes, the same problem: warned once more
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{seeds / 'zero.txt'}: {problems['zero.txt']}"]


@pytest.mark.live
def test_check_exits_1_only_for_problems(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "legacy.txt").write_bytes(gb18030_sample())
    (seeds / "link-post.txt").write_text("<!--1681696026000-->\n[Only a link](https://e.com/lp)\n")
    done = run_cli("check", "--seeds", str(seeds))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"{seeds / 'legacy.txt'}: note: decoded as gb18030 (not valid UTF-8)"]
    assert "2 files checked, 0 problem(s), 1 note(s)" in done.stderr

    (seeds / "js.txt").write_text("<!--1681696026000-->\n[T](javascript:alert(1))\n\n<p>x</p>\n")
    done = run_cli("check", "--seeds", str(seeds))
    assert done.returncode == 1
    assert f"{seeds / 'js.txt'}: title link 'javascript:alert(1)' dropped" in done.stdout
    (seeds / "js.txt").unlink()

    for name, stamp in (("zero.txt", "0"), ("negative.txt", "-5"), ("garbage.txt", "abc"), ("typo.txt", "12x")):
        (seeds / name).write_text(f"<!--{stamp}-->\n[{name}](https://e.com/{name})\n\n<p>{name}</p>\n")
    done = run_cli("check", "--seeds", str(seeds))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    for name, stamp in (("zero.txt", "0"), ("negative.txt", "-5"), ("garbage.txt", "abc"), ("typo.txt", "12x")):
        assert [line for line in lines if line.startswith(f"{seeds / name}: invalid timestamp '<!--{stamp}-->': ")]
    built = run_cli("build", "--seeds", str(seeds), "--out", str(tmp_path / "out"))
    assert built.returncode == 0 and "6 entries from 6 files" in built.stdout, built.stdout
    assert f"problem {seeds / 'zero.txt'}: invalid timestamp '<!--0-->'" in built.stdout
    titles = {e.title for e in feedparser.parse((tmp_path / "out" / "feed.xml").read_bytes()).entries}
    assert {"zero.txt", "negative.txt", "garbage.txt", "typo.txt", "Only a link"} <= titles


@pytest.mark.parametrize("sanitizer", BACKENDS)
def test_a_link_post_in_every_format(make_seed, config, sanitizer: str) -> None:
    make_seed("post.txt", raw=b"<!--1681696026000-->\n[A link post](https://e.com/post)\n")
    make_seed("article.txt", stamp_ms=1681696000000, title="An article", url="https://e.com/a")
    cfg = config(sanitizer=sanitizer)
    result = Builder(cfg).build()
    assert result.entries == 2 and result.skipped == [] and result.problems == []

    atom = (cfg.output_dir / "feed.xml").read_bytes()
    assert validate_atom(atom) == []
    post, article = etree.fromstring(atom).findall(f"{ATOM}entry")
    assert post.findtext(f"{ATOM}title") == "A link post" and post.find(f"{ATOM}content") is None
    assert [(link.get("rel"), link.get("href")) for link in post.findall(f"{ATOM}link")] == [
        ("alternate", "https://e.com/post")]
    assert article.find(f"{ATOM}content") is not None
    parsed = feedparser.parse(atom)
    assert not parsed.bozo and parsed.entries[0].link == "https://e.com/post" and "content" not in parsed.entries[0]

    client = create_app(cfg, run_builder=False).test_client()
    rss = client.get("/feed.rss").data
    item = etree.fromstring(rss).find("channel/item")
    assert [child.tag for child in item if child.tag in ("title", "link", "description")] == ["title", "link"]
    assert (item.findtext("title"), item.findtext("link")) == ("A link post", "https://e.com/post")
    assert item.find("{http://purl.org/rss/1.0/modules/content/}encoded") is None
    parsed = feedparser.parse(rss)
    assert not parsed.bozo and parsed.entries[0].title == "A link post"

    doc = json.loads(client.get("/feed.json").data)
    assert validate_jsonfeed(doc) == []
    first = doc["items"][0]
    assert (first["url"], first["content_text"]) == ("https://e.com/post", "A link post")
    assert "content_html" not in first and "content_html" in doc["items"][1]


class _Balance(HTMLParser):
    """Whether every element opened is closed, in order (void elements excepted)."""

    VOID = frozenset({"br", "img", "hr", "wbr", "col"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.errors.append(tag)


def well_formed(fragment: str) -> bool:
    checker = _Balance()
    checker.feed(fragment)
    checker.close()
    return not checker.open and not checker.errors


LONG_BODY = "".join(
    f'<div><h2>Part {n}</h2><p>段落 {n} <b>bold <i>and italic {n}</i></b> text &amp; more '
    f'<a href="/rel/{n}">a link</a></p><ul><li>one</li><li>two <em>{n}</em></li></ul>'
    f'<table><tr><td>{n}</td><td>cell</td></tr></table></div>'
    for n in range(200)
)


@pytest.mark.parametrize("sanitizer", BACKENDS)
@pytest.mark.parametrize("limit", [1024, 5000, 20_000])
def test_max_entry_bytes_cuts_at_an_element_and_links_to_the_article(sanitizer: str, limit: int) -> None:
    data = f"<!--1681696026000-->\n[Long](https://e.com/long?a=1&b=2)\n\n{LONG_BODY}".encode()
    # Content within the limit is left alone.
    whole = process_seed(data, "long.txt", MTIME, EntrySettings(sanitizer=sanitizer), NOW)
    assert whole.entry is not None and whole.problems == () and CONTINUE_READING not in whole.entry.content_html
    size = len(whole.entry.content_html.encode())
    settings = EntrySettings(sanitizer=sanitizer, max_entry_bytes=limit)
    outcome = process_seed(data, "long.txt", MTIME, settings, NOW)
    assert outcome.entry is not None
    content = outcome.entry.content_html
    assert limit * 0.8 <= len(content.encode()) <= limit
    assert well_formed(content), content[-300:]
    assert content.endswith(f'<p><a href="https://e.com/long?a=1&amp;b=2">{CONTINUE_READING}</a></p>')
    assert outcome.problems == (
        f"content of {size} bytes cut to max_entry_bytes={limit}, ending with a link to the article",)
    assert outcome.entry.summary == whole.entry.summary  # the summary is the whole article's
    # Without a link: cut all the same, with nothing to link to.
    plain = process_seed(data.replace(b"[Long](https://e.com/long?a=1&b=2)", b"Long"), "long.txt", MTIME, settings, NOW)
    assert plain.entry is not None and len(plain.entry.content_html.encode()) <= limit
    assert well_formed(plain.entry.content_html) and "<a href=\"https://e.com/long" not in plain.entry.content_html
    assert plain.problems[0].endswith(f"max_entry_bytes={limit}")


def test_max_entry_bytes_in_the_feeds_and_the_configuration(tmp_path, make_seed, config) -> None:
    make_seed("long.txt", url="https://e.com/long", body=LONG_BODY)
    cfg = config(max_entry_bytes=4096)
    result = Builder(cfg).build()
    assert [Path(p.source).name for p in result.problems] == ["long.txt"]
    atom = (cfg.output_dir / "feed.xml").read_bytes()
    assert validate_atom(atom) == [] and not feedparser.parse(atom).bozo
    content = feedparser.parse(atom).entries[0].content[0]["value"]
    assert len(content.encode()) <= 4096 and content.endswith(f'<a href="https://e.com/long">{CONTINUE_READING}</a></p>')

    assert fingerprint(EntrySettings(max_entry_bytes=4096), "x") != fingerprint(EntrySettings(), "x")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, env={}).max_entry_bytes == 250_000
    assert load_config(empty, env={"FEEDSVC_MAX_ENTRY_BYTES": "5000"}).entry_settings.max_entry_bytes == 5000
    with pytest.raises(ConfigError, match=r"max_entry_bytes \(from environment variable .*\): must be at least 1024"):
        load_config(empty, env={"FEEDSVC_MAX_ENTRY_BYTES": "100"})


@pytest.mark.live
def test_two_seeds_with_one_url_are_a_note_naming_both(tmp_path: Path, make_seed, config) -> None:
    """Only the newer of two articles with one URL is published: `build`, `check` and the build's
    result say so, naming both files (it was dropped silently)."""
    make_seed("old.txt", stamp_ms=1681696026000, title="Old", url="https://e.com/same")
    make_seed("new.txt", stamp_ms=1681696099000, title="New", url="https://e.com/same")
    make_seed("other.txt", stamp_ms=1681696050000, title="Other", url="https://e.com/other")
    seeds = tmp_path / "seeds"
    reason = "same URL as new.txt, which is newer: only that one is published"
    builder = Builder(config())
    result = builder.build()
    assert result.entries == 2 and [(n.source, n.reason, n.kind) for n in result.notes] == [("old.txt", reason, "note")]
    assert builder.build().notes == result.notes  # nothing changed: the same note
    status = json.loads((tmp_path / "out" / "status.json").read_text())
    assert status["notes"] == [{"source": "old.txt", "reason": reason}]

    check = run_cli("check", "--seeds", str(seeds))
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines() == [f"{seeds / 'old.txt'}: note: {reason}"]
    assert "3 files checked, 0 problem(s), 1 note(s)" in check.stderr

    built = run_cli("build", "--seeds", str(seeds), "--out", str(tmp_path / "cli-out"))
    assert built.returncode == 0 and "2 entries from 3 files" in built.stdout, built.stdout + built.stderr
    assert f"note {seeds / 'old.txt'}: {reason}" in built.stdout

    (seeds / "old.txt").unlink()
    assert builder.build().notes == []


@pytest.mark.live
def test_build_leaves_no_write_ahead_log_and_counts_in_english(tmp_path: Path, make_seed) -> None:
    make_seed("one.txt", url="https://e.com/one")
    out = tmp_path / "out"
    built = run_cli("build", "--seeds", str(tmp_path / "seeds"), "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert "1 entry from 1 file " in built.stdout and "entries" not in built.stdout
    assert [p.name for p in out.iterdir() if p.name.endswith(("-wal", "-shm"))] == []


def test_counts_are_said_in_english() -> None:
    from feedsvc.pipeline.reporting import plural

    assert [plural(n, "entry", "entries") for n in (0, 1, 2)] == ["0 entries", "1 entry", "2 entries"]
    assert [plural(n, "file") for n in (1, 3)] == ["1 file", "3 files"]
