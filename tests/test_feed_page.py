"""The browser page of each Atom and RSS document (feed.xml, feed.rss, each archive page), and the one
date every page shows. (The responder's negotiation: tests/test_responder.py; Chromium:
tests/test_readers.py.)"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from conftest import write_seed
from lxml import etree, html

import feedsvc.pipeline.render_and_publish as build_module
from feedsvc.core.choose import select_entries
from feedsvc.core.entry import make_entry
from feedsvc.core.render import Paging
from feedsvc.core.render.atom import render_atom
from feedsvc.core.render.documents import render_all
from feedsvc.core.render.html import STYLE, STYLE_HASH, render_feed_page, render_index
from feedsvc.core.render.rss import render_rss
from feedsvc.core.render.xsl import FEED_XSL
from feedsvc.model import Article, Entry, FeedMeta
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest, write_atomic
from feedsvc.web.headers import CONTENT_SECURITY_POLICY

BASE = "https://feeds.example.org/"
META = FeedMeta(id=BASE + "feed.xml", title="T & <b>", self_url=BASE + "feed.xml", alternate_url=BASE, subtitle="S",
                language="zh-Hant", stylesheet="/feed.xsl")
T0 = datetime(2023, 4, 17, 1, 47, 6, tzinfo=UTC)


def history(n: int) -> list[Entry]:
    """`n` articles, newest first; the even ones have a date line in the body (`published`)."""
    return select_entries(
        make_entry(Article(f"{i:03}.txt", f"Article {i}", f"https://e.com/{i}",
                           T0 + timedelta(hours=i, minutes=-30) if i % 2 == 0 else None,
                           T0 + timedelta(hours=i), f"<p>Summary {i}</p><img src='https://img.example/{i}.png'>"))
        for i in range(n)
    )


def parse(body: bytes) -> html.HtmlElement:
    return html.fromstring(body)


def listed(page: html.HtmlElement) -> list[tuple[str, str | None, str, str]]:
    """(title, link, date, summary) of each entry the page lists."""
    rows = []
    for li in page.iter("li"):
        a = li.find("a")
        title = a.text if a is not None else (li.text or "").strip()
        summary = li.find("p")
        rows.append((title, a.get("href") if a is not None else None, li.find("time").text,
                     summary.text if summary is not None else ""))
    return rows


@pytest.mark.parametrize("name", ["feed.xml", "feed.rss"])
def test_the_feed_page_lists_every_entry_and_how_to_subscribe(name: str) -> None:
    items = history(5)
    docs = {d.name: d for d in render_all(META, items, 10, 5)}
    page_doc = docs[name + ".html"]
    assert page_doc.content_type == "text/html; charset=utf-8" and page_doc.in_memory
    page = parse(page_doc.body)
    assert page.findtext(".//h1") == "T & <b>" and b"T &amp; &lt;b&gt;" in page_doc.body
    assert listed(page) == [(e.title, e.link, (e.published or e.updated).strftime("%Y-%m-%d %H:%M UTC"),
                             e.summary) for e in items]
    assert items[0].summary == "Summary 4"
    # The address to subscribe to, whole, in the box whose style never breaks it.
    assert page.find_class("url")[0].text == BASE + name
    assert ("Atom" if name == "feed.xml" else "RSS") in page.find_class("subscribe")[0].text_content()
    # Only text from the feed: no article HTML, no script, no image, no style attribute.
    assert not list(page.iter("img", "script", "iframe")) and not page.xpath("//@style|//@*[starts-with(name(), 'on')]")


def test_hostile_text_is_escaped_on_the_page() -> None:
    hostile = Entry(id="https://e.com/x", title="<script>alert(1)</script>", link="https://e.com/x?a=1&b=<2>",
                    published=None, updated=T0, content_html="<p>x</p>", summary='"><img src=x onerror=alert(1)>',
                    source="x.txt", image=None)
    body = render_feed_page(META, [hostile], Paging(META.self_url), "Atom")
    page = parse(body)
    assert not list(page.iter("script", "img"))
    assert listed(page) == [(hostile.title, hostile.link, "2023-04-17 01:47 UTC", hostile.summary)]


def test_the_archive_page_takes_its_links_from_the_atom_pages_paging() -> None:
    docs = {d.name: d for d in render_all(META, history(12), 2, 3)}
    archives = sorted(n for n in docs if n.startswith("archive/") and n.endswith(".xml"))
    # Ten archived in ten hours of April 17th, pages of 3: pieces of April (the newest, 202304099, last).
    assert archives == ["archive/202304099.xml", "archive/202304196.xml", "archive/202304394.xml",
                        "archive/202304395.xml"]
    for name in archives:
        atom, page_doc = docs[name], docs[name + ".html"]
        assert not page_doc.in_memory and page_doc.source_key == atom.source_key
        assert page_doc.last_modified == atom.last_modified
        links = {link["rel"]: link["href"] for link in feedparser.parse(atom.body).feed.links}
        page = parse(page_doc.body)
        anchors = {a.text: a.get("href") for a in page.iter("a")}
        assert "This is an archive page" in page.find_class("subscribe")[0].text_content()
        assert not page.find_class("url")  # nothing to subscribe to here
        assert anchors["The current feed"] == links["current"] == BASE + "feed.xml"
        assert anchors.get("Older articles") == links.get("prev-archive")
        assert anchors.get("Newer articles") == links.get("next-archive")
        atom_titles = [e.title for e in feedparser.parse(atom.body).entries]
        assert [row[0] for row in listed(page)] == atom_titles
    # The subscription pages link to the newest archive page, as /feed.xml does.
    feed_links = {link["rel"]: link["href"] for link in feedparser.parse(docs["feed.xml"].body).feed.links}
    for name in ("feed.xml.html", "feed.rss.html"):
        anchors = {a.text: a.get("href") for a in parse(docs[name].body).iter("a")}
        assert anchors["Older articles"] == feed_links["prev-archive"] == BASE + "archive/202304099.xml"
        assert "Newer articles" not in anchors


def test_browser_pages_change_exactly_when_their_documents_do() -> None:
    before: dict[str, bytes] = {}
    for n in range(1, 25):
        after = {d.name: d.body for d in render_all(META, history(n), 3, 4)}
        for name in after:
            if name.endswith(".xml") and name.startswith("archive/"):
                assert (before.get(name) != after[name]) == (before.get(name + ".html") != after[name + ".html"]), \
                    (n, name)
        before = after


def test_one_date_everywhere_index_page_and_xsl() -> None:
    """The index, the browser pages and the XSL page (Atom and RSS) show each entry's one date
    (published, else updated) in one format."""
    items = history(4)
    assert items[0].published is None and items[1].published is not None  # both cases
    expected = [(e.published or e.updated).strftime("%Y-%m-%d %H:%M UTC") for e in items]
    xsl = etree.XSLT(etree.fromstring(FEED_XSL))
    shown = {
        "index": [t.text for t in parse(render_index(META, items)).iter("time")],
        "page": [t.text for t in parse(render_feed_page(META, items, Paging(META.self_url), "Atom")).iter("time")],
        "xsl atom": [t.text for t in xsl(etree.fromstring(render_atom(META, items))).getroot().iter("time")],
        "xsl rss": [t.text for t in xsl(etree.fromstring(render_rss(META, items, BASE + "feed.rss"))).getroot()
                    .iter("time")],
    }
    assert shown == dict.fromkeys(shown, expected)
    assert expected[1] == "2023-04-17 03:17 UTC"  # the body's date line, not the header stamp (03:47)


def test_the_xsl_shows_a_date_it_cannot_read_as_it_is() -> None:
    rss = (b'<rss version="2.0"><channel><title>t</title><item><title>a</title><pubDate>Sun, 16 Apr 2023 21:06:27 '
           b"+0800</pubDate><description>d</description></item><item><title>b</title><pubDate>garbage</pubDate>"
           b"<description>d</description></item></channel></rss>")
    page = etree.XSLT(etree.fromstring(FEED_XSL))(etree.fromstring(rss)).getroot()
    assert [t.text for t in page.iter("time")] == ["Sun, 16 Apr 2023 21:06:27 +0800", "garbage"]


def test_the_style_keeps_the_url_whole_and_is_allowed_by_its_hash() -> None:
    assert "break-all" not in STYLE and "anywhere" not in STYLE
    assert ".url{display:block;white-space:nowrap;overflow-x:auto" in STYLE
    style = parse(render_feed_page(META, history(1), Paging(META.self_url), "Atom")).find(".//style").text
    assert "sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() == STYLE_HASH
    assert f"style-src '{STYLE_HASH}'" in CONTENT_SECURITY_POLICY and "script-src" not in CONTENT_SECURITY_POLICY


def write_seeds(seeds: Path, n: int) -> None:
    for i in range(n):
        stamp = int((T0 + timedelta(hours=i)).timestamp() * 1000)
        write_seed(seeds, f"{i:04}.txt", stamp, f"Article {i}", f"https://e.com/{i}", f"<p>{i}</p>")


def test_a_manifest_without_browser_pages_gets_them_on_the_next_build(tmp_path: Path, config, caplog) -> None:
    """An output folder an older version published (archive pages, no browser pages): the next
    builder (a new process, which reads the pages' keys from the manifest) renders every archive
    page again at once, not only after a failed attempt to reuse them."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write_seeds(seeds, 9)
    cfg = config(max_entries=2, archive_page_size=3)
    assert Builder(cfg).build().published
    out = tmp_path / "out"
    full = read_manifest(out)
    older = {**full, "documents": {k: v for k, v in full["documents"].items() if not k.endswith(".xml.html")}}
    write_atomic(out / "manifest.json", json.dumps(older).encode())
    caplog.set_level(logging.INFO, logger="feedsvc.build")
    assert Builder(cfg).build().published
    assert read_manifest(out)["documents"] == full["documents"]
    assert "rendering them again" not in caplog.text  # no Stale publish


def test_a_new_page_template_renders_the_archive_pages_again(tmp_path: Path, config, monkeypatch,
                                                              count_archive_pages) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    write_seeds(seeds, 9)
    cfg = config(max_entries=2, archive_page_size=3)
    assert Builder(cfg).build().published
    rendered = count_archive_pages()
    assert not Builder(cfg).build().published and rendered == []  # same template: every page reused
    monkeypatch.setattr(build_module, "PAGE_TEMPLATE_KEY", "another template")
    Builder(cfg).build()
    published = read_manifest(tmp_path / "out")["documents"]
    pages = sorted(int(name[len("archive/"):-len(".xml")]) for name in published if name.endswith(".xml")
                   and name.startswith("archive/"))
    assert len(pages) == 3 and sorted(rendered) == pages  # every page rendered again


def test_the_rss_page_is_the_feed_page_with_the_rss_address() -> None:
    items = history(2)
    docs = {d.name: d.body for d in render_all(dataclasses.replace(META, stylesheet=""), items, 10, 5)}
    atom_page, rss_page = parse(docs["feed.xml.html"]), parse(docs["feed.rss.html"])
    assert listed(atom_page) == listed(rss_page)
    assert rss_page.find_class("url")[0].text == BASE + "feed.rss"
