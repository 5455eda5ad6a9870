"""Entries and the Atom document: ids, order, dedup, determinism, validity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser
from schemas import validate_atom

from feedsvc.core.choose import select_entries
from feedsvc.core.entry import entry_id, make_entry
from feedsvc.core.parse import parse_seed
from feedsvc.core.render.atom import render_atom
from feedsvc.model import Article, Entry, FeedMeta

META = FeedMeta(id="https://feeds.example.org/feed.xml", title="T", self_url="https://feeds.example.org/feed.xml",
                alternate_url="https://feeds.example.org/", subtitle="S", author="A", language="zh-Hant")
T0 = datetime(2023, 4, 17, 1, 47, 6, tzinfo=UTC)


def article(n: int, link: str | None = None, updated: datetime | None = None, source: str | None = None) -> Article:
    return Article(source or f"{n:03}.txt", f"Title {n}", link if link is not None else f"https://e.com/{n}",
                   None, updated or T0 + timedelta(hours=n), f"<p>Body {n}</p>")


def entries(*articles: Article) -> list[Entry]:
    return [make_entry(a) for a in articles]


def test_entry_id_is_the_article_url_or_a_stable_urn() -> None:
    assert entry_id("https://E.com:443/a#frag", "x.txt") == "https://e.com/a"
    no_link = entry_id(None, "sub/x.txt")
    assert no_link.startswith("urn:uuid:") and no_link == entry_id(None, "sub/x.txt")
    assert no_link != entry_id(None, "sub/y.txt")


def test_ids_survive_edits() -> None:
    before = make_entry(article(1))
    edited = make_entry(Article("001.txt", "New title", "https://e.com/1", None, T0 + timedelta(days=3), "<p>new</p>"))
    assert before.id == edited.id
    unlinked = make_entry(article(2, link=""))
    edited_unlinked = make_entry(Article("002.txt", "Changed", None, None, T0, "<p>changed</p>"))
    assert unlinked.id == edited_unlinked.id


def test_newest_first_and_capped() -> None:
    chosen = select_entries(entries(*(article(n) for n in (3, 1, 5, 2, 4))), max_entries=3)
    assert [e.title for e in chosen] == ["Title 5", "Title 4", "Title 3"]


def test_same_url_is_one_entry_newer_wins() -> None:
    old = article(1, link="http://e.com/same", updated=T0, source="a.txt")
    new = article(2, link="https://e.com/same", updated=T0 + timedelta(days=1), source="b.txt")
    chosen = select_entries(entries(old, new))
    assert len(chosen) == 1 and chosen[0].source == "b.txt"
    chosen = select_entries(entries(new, old))
    assert len(chosen) == 1 and chosen[0].source == "b.txt"


def test_order_is_total_for_equal_dates() -> None:
    a = entries(*(article(n, updated=T0) for n in range(5)))
    assert select_entries(a) == select_entries(list(reversed(a)))


def test_render_is_deterministic_and_clock_free() -> None:
    items = select_entries(entries(*(article(n) for n in range(5))))
    first = render_atom(META, items)
    assert first == render_atom(META, list(items))
    assert b"<updated>2023-04-17T05:47:06+00:00</updated>" in first.split(b"<entry>")[0]  # newest entry, not now


def test_empty_feed_is_valid_and_has_a_fixed_updated() -> None:
    body = render_atom(META, [])
    assert validate_atom(body) == []
    assert b"1970-01-01T00:00:00+00:00" in body


def test_real_seed_feed_validates(sample_bytes: bytes) -> None:
    entry = make_entry(parse_seed(sample_bytes, "000_76cb3dcc68cf4183.txt"))
    body = render_atom(META, [entry])
    assert validate_atom(body) == []
    parsed = feedparser.parse(body)
    assert parsed.bozo is False, parsed.get("bozo_exception")
    assert parsed.feed.title == "T" and parsed.feed.language == "zh-Hant"
    assert parsed.feed.links[1]["rel"] == "self" and parsed.feed.links[1]["href"] == META.self_url
    (item,) = parsed.entries
    assert item.title == "中國防長會見普京 談加強軍事合作"
    assert item.id == entry.link and item.link == entry.link
    assert item.updated == "2023-04-17T01:47:06+00:00"
    assert item.published.startswith("2023-04-16T13:06:27")
    assert item.content[0]["type"] == "text/html"
    html = item.content[0]["value"]
    assert html.count("<img") == 3
    assert 'src="https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg"' in html
    assert "（綜合報導）" in html and "<script" not in html
    assert item.summary.startswith("俄國總統普京與防長紹伊古16日會見中國防長李尚福。")
    assert len(item.summary) <= 200
    assert entry.image == "https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg"


def test_hostile_strings_cannot_break_the_document() -> None:
    hostile = Article("x.txt", "t\x00i]]>tle</title>", "https://e.com/x", None, T0,
                      "<p>\x0b]]><![CDATA[x\ud800\uffff</p>")
    body = render_atom(META, [make_entry(hostile)])
    assert validate_atom(body) == []
    assert feedparser.parse(body).entries[0].title == "ti]]>tle</title>"
