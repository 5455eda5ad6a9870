"""RSS 2.0, JSON Feed 1.1, thumbnails and the XSL page: the same entries, in the same order, everywhere."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from lxml import etree
from schemas import validate_atom, validate_jsonfeed

from feedsvc.core.choose import select_entries
from feedsvc.core.entry import make_entry
from feedsvc.core.parse import parse_seed
from feedsvc.core.render.atom import render_atom
from feedsvc.core.render.documents import render_all
from feedsvc.core.render.html import STYLE_HASH, render_index
from feedsvc.core.render.jsonfeed import render_jsonfeed
from feedsvc.core.render.rss import render_rss
from feedsvc.core.render.xmlparts import image_type
from feedsvc.core.render.xsl import FEED_XSL
from feedsvc.model import Article, Entry, FeedMeta
from feedsvc.web.headers import FEED_CONTENT_SECURITY_POLICY

BASE = "https://feeds.example.org/"
META = FeedMeta(id=BASE + "feed.xml", title="T", self_url=BASE + "feed.xml", alternate_url=BASE, subtitle="S",
                author="A", language="zh-Hant", hub="https://hub.example.net/", stylesheet="/feed.xsl")
T0 = datetime(2023, 4, 17, 1, 47, 6, tzinfo=UTC)


def entries(n: int = 5) -> list[Entry]:
    made = []
    for i in range(n):
        body = f'<p>Body {i}</p><img src="https://img.example/photo-{i}.png"><img src="https://img.example/2nd.gif">'
        link = f"https://e.com/{i}" if i % 2 == 0 else None  # odd ones: no link, a urn:uuid id
        made.append(make_entry(Article(f"{i:03}.txt", f"Title {i}", link, T0 - timedelta(days=1),
                                       T0 + timedelta(hours=i), body)))
    return select_entries(made)


def test_image_type_is_guessed_from_path_then_query_with_a_fixed_fallback() -> None:
    assert image_type("https://x.org/a/b.PNG") == "image/png"
    assert image_type("https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg") == "image/jpeg"
    assert image_type("https://x.org/img?src=a.webp&w=300") == "image/webp"
    assert image_type("https://x.org/pic.svg#frag") == "image/svg+xml"
    assert image_type("https://x.org/photo") == "image/jpeg"  # the documented fallback
    assert image_type("https://x.org/file.exe") == "image/jpeg"


def test_rss_document() -> None:
    items = entries()
    body = render_rss(META, items, BASE + "feed.rss")
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>\n<?xml-stylesheet type=\"text/xsl\"")
    parsed = feedparser.parse(body)
    assert parsed.bozo is False, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.link == BASE  # the channel <link> is the site, not the self link (feedgen's last-link trap)
    links = {(link["rel"], link["href"]) for link in parsed.feed.links}
    assert ("self", BASE + "feed.rss") in links and ("hub", META.hub) in links
    assert parsed.feed.updated == "Mon, 17 Apr 2023 05:47:06 +0000"  # newest entry, not the clock
    assert [e.id for e in parsed.entries] == [e.id for e in items]
    root = etree.fromstring(body)
    for item, entry in zip(root.iter("item"), items, strict=True):
        guid = item.find("guid")
        assert guid.text == entry.id
        assert guid.get("isPermaLink") == ("true" if entry.link else "false")
        assert item.findtext("description") == entry.summary
        assert item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded") == entry.content_html
        assert item.findtext("pubDate") == "Sun, 16 Apr 2023 01:47:06 +0000"  # published, when known
        enclosure = item.find("enclosure")
        assert enclosure.attrib == {"url": entry.image, "length": "0", "type": "image/png"}
        assert item.find("{http://search.yahoo.com/mrss/}thumbnail").get("url") == entry.image
    first = parsed.entries[0]
    assert first.media_thumbnail == [{"url": "https://img.example/photo-4.png"}]
    assert first.enclosures[0]["href"] == "https://img.example/photo-4.png"


def test_rss_pubdate_falls_back_to_updated_and_no_image_means_no_enclosure() -> None:
    entry = make_entry(Article("x.txt", "X", "https://e.com/x", None, T0, "<p>plain</p>"))
    root = etree.fromstring(render_rss(META, [entry], BASE + "feed.rss"))
    item = root.find("channel/item")
    assert item.findtext("pubDate") == "Mon, 17 Apr 2023 01:47:06 +0000"
    assert item.find("enclosure") is None and item.find("{http://search.yahoo.com/mrss/}thumbnail") is None


def test_json_feed_document() -> None:
    items = entries()
    doc = json.loads(render_jsonfeed(META, items, BASE + "feed.json"))
    assert validate_jsonfeed(doc) == []
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["feed_url"] == BASE + "feed.json" and doc["home_page_url"] == BASE
    assert doc["language"] == "zh-Hant" and doc["authors"] == [{"name": "A"}]
    assert doc["hubs"] == [{"type": "WebSub", "url": META.hub}]
    assert [i["id"] for i in doc["items"]] == [e.id for e in items]
    for item, entry in zip(doc["items"], items, strict=True):
        assert item["content_html"] == entry.content_html and item["summary"] == entry.summary
        assert item["image"] == entry.image == item["content_html"].split('src="')[1].split('"')[0]
        assert item["date_published"] == "2023-04-16T01:47:06+00:00"
        assert item["date_modified"] == entry.updated.isoformat()
        assert item["authors"] == [{"name": "A"}]
        assert item.get("url") == entry.link


def test_atom_thumbnail_and_enclosure_links_keep_their_rel() -> None:
    items = entries(3)
    assert items[0].link is not None
    body = render_atom(META, items)
    assert validate_atom(body) == []
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    first = parsed.entries[0]
    assert first.link == items[0].link  # the enclosure did not become a second "alternate"
    rels = [(link["rel"], link.get("type")) for link in first.links]
    assert rels == [("alternate", "text/html"), ("enclosure", "image/png")]
    assert "length" not in first.links[1]  # unknown, so not claimed
    assert first.media_thumbnail == [{"url": items[0].image}]
    assert {(link["rel"], link["href"]) for link in parsed.feed.links} >= {("hub", META.hub),
                                                                            ("self", META.self_url)}


def test_real_seed_in_all_formats(sample_bytes: bytes) -> None:
    entry = make_entry(parse_seed(sample_bytes, "000_76cb3dcc68cf4183.txt"))
    proxy = "https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg"
    assert entry.image == proxy
    atom = feedparser.parse(render_atom(META, [entry]))
    rss = feedparser.parse(render_rss(META, [entry], BASE + "feed.rss"))
    js = json.loads(render_jsonfeed(META, [entry], BASE + "feed.json"))
    assert atom.entries[0].title == rss.entries[0].title == js["items"][0]["title"] == "中國防長會見普京 談加強軍事合作"
    assert atom.entries[0].media_thumbnail[0]["url"] == rss.entries[0].media_thumbnail[0]["url"] == proxy
    assert rss.entries[0].enclosures[0]["type"] == "image/jpeg"
    assert js["items"][0]["image"] == proxy


def test_stylesheet_can_be_switched_off() -> None:
    plain = dataclasses.replace(META, stylesheet="")
    assert b"xml-stylesheet" not in render_atom(plain, entries(2))
    assert b"xml-stylesheet" not in render_rss(plain, entries(2), BASE + "feed.rss")
    names = [d.name for d in render_all(plain, entries(2), 10, 5)]
    assert "feed.xsl" not in names and "feed.xsl" in [d.name for d in render_all(META, entries(2), 10, 5)]


def test_index_autodiscovers_all_three_formats() -> None:
    html = render_index(META, entries(2)).decode()
    for kind, href in (("application/atom+xml", "/feed.xml"), ("application/rss+xml", "/feed.rss"),
                       ("application/feed+json", "/feed.json")):
        assert f'<link rel="alternate" type="{kind}"' in html and f'href="{href}"' in html


def test_documents_are_deterministic_and_valid() -> None:
    items = entries(12)
    first = render_all(META, items, 5, 3)
    again = render_all(META, list(reversed(items))[::-1], 5, 3)
    assert [(d.name, d.body, d.content_type, d.last_modified) for d in first] == \
           [(d.name, d.body, d.content_type, d.last_modified) for d in again]
    names = [d.name for d in first]
    assert names == ["feed.xml", "feed.rss", "feed.json", "index.html", "feed.xml.html", "feed.rss.html", "feed.xsl",
                     # 7 archived in seven hours of April 17th, pages of 3: pieces of 1/256 and 1/512 of April
                     "archive/202304196.xml", "archive/202304196.xml.html", "archive/202304394.xml",
                     "archive/202304394.xml.html", "archive/202304395.xml", "archive/202304395.xml.html"]
    types = {d.name: d.content_type for d in first}
    assert types["feed.rss"] == "application/rss+xml; charset=utf-8"
    assert types["feed.json"] == "application/feed+json"
    for doc in first:
        if doc.content_type.startswith("application/atom+xml"):
            assert validate_atom(doc.body) == [], doc.name
    assert validate_jsonfeed(json.loads(first[2].body)) == []


def _transform(document: bytes) -> etree._XSLTResultTree:
    return etree.XSLT(etree.fromstring(FEED_XSL))(etree.fromstring(document))


@pytest.mark.parametrize("kind", ["atom", "rss"])
def test_xsl_renders_a_readable_page(kind: str) -> None:
    items = entries(3)
    body = render_atom(META, items) if kind == "atom" else render_rss(META, items, BASE + "feed.rss")
    page = _transform(body)
    text = " ".join(page.getroot().itertext())
    listed = [li.find("a").text if li.find("a") is not None else li.text.strip() for li in page.getroot().iter("li")]
    assert listed == [e.title for e in items]
    linked = {a.text: a.get("href") for a in page.getroot().iter("a")}
    assert all(linked.get(e.title) == e.link for e in items)  # a link where the entry has one
    assert "This is a web feed" in text and "To subscribe" in text
    assert (BASE + ("feed.xml" if kind == "atom" else "feed.rss")) in text
    assert items[0].summary in text
    # Only text from the feed reaches the page: the articles' HTML is never copied in.
    assert not list(page.getroot().iter("img")) and not list(page.getroot().iter("script"))
    style = page.getroot().find("head/style").text
    import base64
    import hashlib

    expected_hash = "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert expected_hash == STYLE_HASH
    assert f"style-src '{expected_hash}'" in FEED_CONTENT_SECURITY_POLICY
    assert FEED_CONTENT_SECURITY_POLICY == (
        f"default-src 'none'; script-src 'self'; style-src '{expected_hash}'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")


def test_xsl_marks_archive_pages() -> None:
    docs = {d.name: d.body for d in render_all(META, entries(6), 2, 2)}
    page = _transform(docs["archive/202304786.xml"])  # the oldest of three pieces of April 17th
    text = " ".join(page.getroot().itertext())
    assert "This is an archive page" in text
    hrefs = {a.text: a.get("href") for a in page.getroot().iter("a")}
    assert hrefs["The current feed"] == BASE + "feed.xml" and hrefs["Newer articles"] == BASE + "archive/202304787.xml"


def test_hostile_strings_cannot_break_rss_or_json() -> None:
    hostile = Entry(id="https://e.com/x", title="t\x00i\ud800tle", link="https://e.com/x", published=None, updated=T0,
                    content_html="<p>\x0b]]>x\ufffe</p>", summary="s\x01", source="x.txt", image=None)
    rss = render_rss(META, [hostile], BASE + "feed.rss")
    assert feedparser.parse(rss).entries[0].title == "title"
    doc = json.loads(render_jsonfeed(META, [hostile], BASE + "feed.json"))
    assert doc["items"][0]["title"] == "title" and doc["items"][0]["summary"] == "s"
