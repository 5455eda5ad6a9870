"""Dates that never freeze date-based polling (issue 14): a header stamp more than a day ahead is
invalid, the feeds are never dated later than the publish, Last-Modified never later than Date."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import seed_text
from live import feed_env, free_port, running, wait_for
from lxml import etree
from werkzeug.http import http_date, parse_date

from feedsvc.core.entry import make_entry
from feedsvc.core.render.documents import render_all
from feedsvc.host import create_app
from feedsvc.model import Article, Document, FeedMeta
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.writer import publish
from feedsvc.web.responder import not_modified, sent_date

ATOM = "{http://www.w3.org/2005/Atom}"
META = FeedMeta(id="https://f.example/feed.xml", title="T", self_url="https://f.example/feed.xml",
                alternate_url="https://f.example/")


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def atom_entries(body: bytes) -> dict[str, str]:
    """title → updated of each entry of an Atom document."""
    root = etree.fromstring(body)
    return {e.findtext(f"{ATOM}title"): e.findtext(f"{ATOM}updated") for e in root.iter(f"{ATOM}entry")}


def test_a_future_stamp_is_used_once_it_is_valid_from_memory_and_from_the_cache(
    tmp_path: Path, make_seed, config, counted
) -> None:
    """An outcome that rejected a stamp as too far ahead holds until the stamp is a day away: then
    neither the builder's memory (the file's stat did not change) nor the cache may reuse it."""
    start = time.time()
    stamp = datetime.fromtimestamp(int(start) + 3 * 86400, UTC)
    make_seed("ahead.txt", stamp_ms=ms(stamp), title="Ahead", url="https://e.com/ahead", body="<p>x</p>")
    make_seed("past.txt", title="Past", url="https://e.com/past")
    cfg = config()
    builder = Builder(cfg)
    first = builder.build(now=start)
    assert first.published and [p.source for p in first.problems] == ["ahead.txt"]
    assert "more than a day in the future; date taken from the file's modification time" in first.problems[0].reason
    feed = (cfg.output_dir / "feed.xml").read_bytes()
    assert datetime.fromisoformat(atom_entries(feed)["Ahead"]) < stamp - timedelta(days=2)  # the mtime

    assert builder.build(now=start + 86400).changed == 0  # still two days ahead: still invalid
    assert sorted(counted) == ["ahead.txt", "past.txt"]
    later = start + 2.5 * 86400  # the stamp is half a day ahead now: valid
    again = builder.build(now=later)
    assert again.published and again.changed == 1 and again.problems == [] and counted[2:] == ["ahead.txt"]
    feed = (cfg.output_dir / "feed.xml").read_bytes()
    assert datetime.fromisoformat(atom_entries(feed)["Ahead"]) == stamp
    # The feed itself is dated by the build, not by the entry ahead of it.
    feed_updated = datetime.fromisoformat(etree.fromstring(feed).findtext(f"{ATOM}updated"))
    assert feed_updated == datetime.fromtimestamp(later, UTC)

    # A new process on another output directory (its own cache): the outcome cached by a build at
    # `start` is not reused by one at `later`.
    other = config(output_dir=str(tmp_path / "other"))
    assert Builder(other).build(now=start).problems and counted[3:] == ["ahead.txt", "past.txt"]
    assert Builder(other).build(now=start + 60).changed == 0 and len(counted) == 5  # cached, and still holds
    assert Builder(other).build(now=later).problems == [] and counted[5:] == ["ahead.txt"]
    assert datetime.fromisoformat(atom_entries((other.output_dir / "feed.xml").read_bytes())["Ahead"]) == stamp


def test_feed_level_dates_are_never_later_than_the_publish() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    entries = [make_entry(Article(f"{n}.txt", f"E{n}", f"https://e.com/{n}", None, when, "<p>x</p>"))
               for n, when in enumerate([now + timedelta(hours=12), now - timedelta(days=1), now - timedelta(days=2)])]
    docs = {d.name: d for d in render_all(META, entries, 1, 1, now)}
    for name in ("feed.xml", "feed.rss", "feed.json", "index.html"):
        assert docs[name].last_modified == now, name
    assert datetime.fromisoformat(etree.fromstring(docs["feed.xml"].body).findtext(f"{ATOM}updated")) == now
    rss = etree.fromstring(docs["feed.rss"].body)
    assert rss.findtext("channel/lastBuildDate") == "Sun, 01 Mar 2026 12:00:00 +0000"
    # The entry keeps its own (valid) date; archive pages keep their entries' newest.
    assert atom_entries(docs["feed.xml"].body) == {"E0": (now + timedelta(hours=12)).isoformat()}
    assert docs["archive/202602063.xml"].last_modified == now - timedelta(days=1)  # the newer of two pieces
    # In the normal case the build's time changes nothing: the same seeds, the same bytes.
    past = [e for e in entries if e.updated < now]
    assert [d.body for d in render_all(META, past, 1, 1, now)] == [d.body for d in render_all(META, past, 1, 1)]
    assert render_all(META, past, 1, 1, now)[0].last_modified == now - timedelta(days=1)


def test_last_modified_is_never_later_than_the_request(config, make_seed) -> None:
    """A document dated ahead of the clock (an archive page's entry a few hours ahead, another
    host's clock): Last-Modified is the request's time, and If-Modified-Since is compared with it."""
    cfg = config()
    ahead = datetime.now(UTC) + timedelta(hours=6)
    past = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    publish(cfg.output_dir, [Document("feed.xml", b"<feed>ahead</feed>", "application/atom+xml; charset=utf-8", ahead),
                             Document("feed.rss", b"<rss/>", "application/rss+xml; charset=utf-8", past)])
    client = create_app(cfg, run_builder=False).test_client()
    before = int(time.time())
    response = client.get("/feed.xml")
    sent = parse_date(response.headers["Last-Modified"])
    assert response.status_code == 200 and before <= sent.timestamp() <= time.time()
    assert client.get("/feed.rss").headers["Last-Modified"] == http_date(past)  # as prepared
    # The date it sent is later than anything before it, earlier than the document's own.
    assert client.get("/feed.xml", headers={"If-Modified-Since": http_date(past)}).status_code == 200
    assert client.get("/feed.xml", headers={"If-Modified-Since": http_date(ahead)}).status_code == 200  # ignored
    assert client.get("/feed.rss", headers={"If-Modified-Since": http_date(past)}).status_code == 304


def test_if_modified_since_later_than_now_is_ignored() -> None:
    last_modified = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    now = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
    for since, expected in (("Fri, 01 Jan 2100 00:00:00 GMT", False), (http_date(last_modified), True),
                            ("Wed, 01 Jan 2025 00:00:00 GMT", True), ("Wed, 01 Jan 2025 00:00:01 GMT", False)):
        assert not_modified({"HTTP_IF_MODIFIED_SINCE": since}, '"e"', last_modified, now) is expected, since
    assert sent_date(last_modified, now) is last_modified
    assert sent_date(datetime(2100, 1, 1, tzinfo=UTC), now) == datetime(2025, 1, 1, tzinfo=UTC)


def _dates(srv, path: str) -> tuple[float, float]:
    status, headers, _ = srv.get(path)
    assert status == 200, path
    return parse_date(headers["last-modified"]).timestamp(), parse_date(headers["date"]).timestamp()


def _documents(srv) -> list[str]:
    """Every published document's path: the fixed ones, and the archive pages walked by prev-archive."""
    paths, body = ["/feed.xml", "/feed.rss", "/feed.json", "/", "/feed.xsl"], srv.get("/feed.xml")[2]
    while (link := etree.fromstring(body).find(f"{ATOM}link[@rel='prev-archive']")) is not None:
        paths.append(link.get("href").removeprefix("https://feeds.example.org"))
        body = srv.get(paths[-1])[2]
        assert len(paths) < 20
    return paths


@pytest.mark.live
def test_a_poller_by_date_alone_sees_new_articles_live(tmp_path: Path) -> None:
    """`feedsvc serve` with one seed stamped 2100 (invalid: it falls back) and two a few hours
    ahead (valid): every Last-Modified ≤ Date ≤ now; a new article then reaches a poller that
    sends only If-Modified-Since, with the value it last got."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    now = datetime.now(UTC)
    (seeds / "2100.txt").write_text(seed_text(4102444800000, "In 2100", "https://e.com/2100", "<p>far</p>"))
    (seeds / "soon.txt").write_text(seed_text(ms(now + timedelta(hours=12)), "Soon", "https://e.com/soon", "<p>s</p>"))
    (seeds / "sooner.txt").write_text(seed_text(ms(now + timedelta(hours=11)), "Sooner", "https://e.com/sooner",
                                                "<p>s</p>"))
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_MAX_ENTRIES="1", FEEDSVC_ARCHIVE_PAGE_SIZE="1")
    with running([sys.executable, "-m", "feedsvc", "serve", "--port", str(port)], env, port,
                 tmp_path / "serve.log") as srv:
        srv.wait_ready("/feed.xml")
        documents = _documents(srv)
        assert len(documents) >= 6  # the archive has pages
        for path in documents:
            last_modified, date = _dates(srv, path)
            assert last_modified <= date <= time.time(), path
        _, headers, body = srv.get("/feed.xml")
        parsed = feedparser.parse(body)
        assert [e.title for e in parsed.entries] == ["Soon"] and parsed.feed.updated_parsed.tm_year < 2100
        archived = {e.title: e.updated for path in documents[5:] for e in feedparser.parse(srv.get(path)[2]).entries}
        assert set(archived) == {"Sooner", "In 2100"} and not archived["In 2100"].startswith("2100")
        health = wait_for(lambda: (h := json.loads(srv.get("/healthz")[2])).get("problems") and h, 10,
                          what="the build's problems in /healthz")
        assert [p["source"] for p in health["problems"]] == ["2100.txt"]
        assert "more than a day in the future" in health["problems"][0]["reason"] and health["skipped"] == []

        seen = headers["last-modified"]
        assert srv.get("/feed.xml", headers={"If-Modified-Since": seen})[0] == 304
        # Last-Modified has one-second precision: let the next build fall in a later second.
        time.sleep(max(0.0, parse_date(seen).timestamp() + 1.05 - time.time()))
        (seeds / "new.txt").write_text(seed_text(ms(now + timedelta(hours=13)), "New", "https://e.com/new",
                                                 "<p>n</p>"))

        def fresh() -> bytes | None:
            status, headers, body = srv.get("/feed.xml", headers={"If-Modified-Since": seen})
            if status == 304:
                return None
            assert status == 200 and parse_date(headers["last-modified"]) > parse_date(seen)
            return body if b"<title>New</title>" in body else None

        body = wait_for(fresh, 15, what="a 200 with the new article for If-Modified-Since alone")
        assert feedparser.parse(body).entries[0].title == "New"
        for path in _documents(srv):
            last_modified, date = _dates(srv, path)
            assert last_modified <= date <= time.time(), path
        assert "ERROR" not in srv.log() and "Traceback" not in srv.log()
