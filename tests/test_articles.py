"""Entry pages (issue 23): a page for every entry at /articles/<key>.html, keyed by the entry's id,
published by composition key, linked from every listing; entry_link = "page". No process started."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import feedparser
import pytest
from browser_eye import inert_problems, visible_text
from conftest import SAMPLE, published_bodies, write_seed
from lxml import html as lxml_html

import feedsvc.pipeline.article_pages as articles_module
from benchmarks.corpus import write_corpus
from feedsvc.config import ConfigError, load_config
from feedsvc.core.articles import FRAME_HOSTS, article_key, original_label, text_direction
from feedsvc.core.routes import document_name
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.web.headers import ARTICLE_CONTENT_SECURITY_POLICY

BASE = "https://feeds.example.org/"
PAGE = re.compile(r"articles/[0-9a-f]{20}\.html")
XSS = json.loads((Path(__file__).resolve().parent / "data" / "xss_vectors.json").read_text(encoding="utf-8"))


documents = published_bodies


def article_pages(out: Path, prefix: str = "") -> dict[str, bytes]:
    return {n: body for n, body in documents(out).items() if n.startswith(prefix) and PAGE.fullmatch(n[len(prefix):])}


def atom_entries(out: Path, name: str = "feed.xml") -> Any:
    return feedparser.parse(documents(out)[name]).entries


def text_of(html: str) -> str:
    return " ".join(lxml_html.fromstring(f"<div>{html}</div>").text_content().split())


def page_content_text(body: bytes) -> str:
    tree = lxml_html.fromstring(body)
    return " ".join(tree.xpath('//div[@class="content"]')[0].text_content().split())


def links(body: bytes) -> list[str]:
    return [str(a) for a in lxml_html.fromstring(body).xpath("//a/@href|//link/@href")]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    seeds = tmp_path / "seeds"
    write_corpus(seeds, 60)
    shutil.copy(SAMPLE, seeds)
    return seeds


def test_keys_are_short_hex_of_the_id_and_routes_map_them() -> None:
    key = article_key("https://example.org/a/1")
    assert re.fullmatch(r"[0-9a-f]{20}", key) and key == article_key("https://example.org/a/1")
    assert document_name(f"/articles/{key}.html") == f"articles/{key}.html"
    assert document_name(f"/world/articles/{key}.html") == f"world/articles/{key}.html"
    assert document_name(f"/articles/{key[:-1]}.html") is None and document_name("/articles/") is None
    assert text_direction("ar") == "rtl" and text_direction("zh-Hant") == "ltr"
    assert original_label("zh-Hans") == "原文" and original_label("en") == "Original"


def test_a_page_for_every_entry_with_its_content_text(tmp_path: Path, corpus: Path, config) -> None:
    out = tmp_path / "out"
    assert Builder(config(article_pages=True, max_entries=10, archive_page_size=10)).build().published
    pages = article_pages(out)
    docs = documents(out)
    every = [e for name, body in docs.items() if name.endswith(".xml") for e in feedparser.parse(body).entries]
    ids = {e.id for e in every}
    assert len(ids) == len(pages) == 61
    for entry in every:
        body = pages[f"articles/{article_key(entry.id)}.html"]
        assert page_content_text(body) == text_of(entry.content[0].value)
        tree = lxml_html.fromstring(body)
        assert tree.xpath("//h2")[0].text_content() == entry.title
        assert tree.xpath('//link[@rel="canonical"]/@href') == [entry.link]
        assert f'href="{entry.link}">原文</a>' in body.decode()  # the corpus is Chinese
        assert tree.xpath('//a[@class="feed"]/@href') == [BASE + "feed.xml"]
        assert BASE + "feed.json" in tree.xpath('//link[@rel="alternate"]/@href')
        assert b"<script" not in body and tree.get("lang") == "zh-Hant" and tree.get("dir") is None


def test_newer_and_older_links_walk_the_whole_feed(tmp_path: Path, corpus: Path, config) -> None:
    out = tmp_path / "out"
    assert Builder(config(article_pages=True, max_entries=10, archive_page_size=10)).build().published
    pages = article_pages(out)
    newest = atom_entries(out)[0]
    seen, name = [], f"articles/{article_key(newest.id)}.html"
    while name:
        seen.append(name)
        older = lxml_html.fromstring(pages[name]).xpath('//a[@rel="next"]/@href')
        name = older[0].removeprefix(BASE) if older else ""
        if older:
            newer = lxml_html.fromstring(pages[name]).xpath('//a[@rel="prev"]/@href')
            assert newer == [BASE + seen[-1]]
    assert len(seen) == len(set(seen)) == len(pages)


def test_every_listing_links_to_the_pages_and_keeps_the_original(tmp_path: Path, corpus: Path, config) -> None:
    out = tmp_path / "out"
    assert Builder(config(article_pages=True, max_entries=10, archive_page_size=10)).build().published
    docs = documents(out)
    for name in ["index.html", "feed.xml.html", "feed.rss.html", *(n for n in docs if n.endswith(".xml.html"))]:
        hrefs = links(docs[name])
        listed = [h for h in hrefs if PAGE.fullmatch(h.removeprefix(BASE))]
        assert listed, name
        assert all(h.removeprefix(BASE) in docs for h in listed)
        assert len([h for h in hrefs if h.startswith("https://www.rfa.org") or "example" in h]) >= 1
    older = lxml_html.fromstring(docs["index.html"]).xpath('//nav/a[text()="Older articles"]/@href')
    assert len(older) == 1 and document_name("/" + older[0].removeprefix(BASE)) in docs


def test_keys_are_stable_across_rebuilds_replicas_and_an_edit(tmp_path: Path, config) -> None:
    seeds = tmp_path / "seeds"
    for i in range(12):
        write_seed(seeds, f"{i:02}.txt", 1700000000000 + i * 3600_000, f"標題 {i}", f"https://e.com/{i}", f"<p>{i}</p>")
    one = config(article_pages=True, output_dir=str(tmp_path / "one"), max_entries=4, archive_page_size=4)
    two = config(article_pages=True, output_dir=str(tmp_path / "two"), max_entries=4, archive_page_size=4)
    assert Builder(one).build().published and Builder(two).build().published
    first = article_pages(tmp_path / "one")
    assert first == article_pages(tmp_path / "two")  # two replicas: the same names, the same bytes
    assert Builder(one).build().published is False  # a rebuild: nothing changes
    write_seed(seeds, "05.txt", 1700000000000 + 5 * 3600_000, "標題 5 (edited)", "https://e.com/5", "<p>new</p>")
    builder = Builder(one)
    assert builder.build().published
    after = article_pages(tmp_path / "one")
    assert after.keys() == first.keys()  # an edit keeps the key
    changed = {name for name in after if after[name] != first[name]}
    key = f"articles/{article_key(atom_entries(tmp_path / 'one')[0].id)}.html"
    assert len(changed) == 3 and key not in changed  # the edited page and its two neighbours' links


def test_one_new_article_republishes_its_page_and_its_neighbours_only(
    tmp_path: Path, config, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = tmp_path / "seeds"
    for i in range(300):
        write_seed(seeds, f"{i:03}.txt", 1700000000000 + i * 3600_000, f"T {i}", f"https://e.com/{i}", f"<p>{i}</p>")
    builder = Builder(config(article_pages=True, max_entries=20, archive_page_size=20))
    assert builder.build().published
    stored: list[str] = []
    real = articles_module.store_many
    monkeypatch.setattr(articles_module, "store_many",
                        lambda out, docs: stored.extend(d.name for d in docs) or real(out, docs))
    write_seed(seeds, "new.txt", 1700000000000 + 400 * 3600_000, "New", "https://e.com/new", "<p>new</p>")
    assert builder.build().published
    assert len(stored) == 2  # the new newest page, and the one before it (its newer link)
    stored.clear()
    write_seed(seeds, "mid.txt", 1700000000000 + 150 * 3600_000 + 1, "Mid", "https://e.com/mid", "<p>mid</p>")
    assert Builder(builder.config).build().published  # a new process knows the keys from the manifest
    assert len(stored) == 3


def test_a_converting_feed_has_converted_pages_with_the_same_keys(tmp_path: Path) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    for i in range(5):
        write_seed(seeds, f"{i}.txt", 1700000000000 + i * 1000, f"國際 {i}", f"https://e.com/{i}", "<p>經濟發展</p>")
    toml = tmp_path / "c.toml"
    toml.write_text(f'seeds_dir = "{seeds}"\noutput_dir = "{out}"\nbase_url = "{BASE}"\narticle_pages = true\n'
                    '[[feeds]]\nname = "simple"\nconvert = "t2s"\n[[feeds]]\nname = "same"\n'
                    '[[feeds]]\nname = "proxied"\nimage_proxy = "https://images.weserv.nl/?url={url_noscheme}"\n')
    assert Builder(load_config(toml, env={})).build().published
    top, simple = article_pages(out), article_pages(out, "simple/")
    assert {n.removeprefix("simple/") for n in simple} == set(top)
    assert not article_pages(out, "same/")  # a plain declared feed links to the top-level pages
    assert len(article_pages(out, "proxied/")) == 5
    for body in simple.values():
        assert "经济发展" in body.decode() and "國際" not in page_content_text(body)
        assert BASE + "simple/feed.xml" in links(body)
    same_index = documents(out)["same/index.html"].decode()
    assert f'href="{BASE}articles/' in same_index and f"{BASE}same/articles/" not in same_index
    assert f'href="{BASE}simple/articles/' in documents(out)["simple/index.html"].decode()


@pytest.mark.parametrize("where", ["top", "env", "feed"])
def test_entry_link_page_in_all_three_formats_with_ids_unchanged(tmp_path: Path, where: str) -> None:
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    for i in range(3):
        write_seed(seeds, f"{i}.txt", 1700000000000 + i * 1000, f"T {i}", f"https://e.com/{i}", "<p>x</p>")
    write_seed(seeds, "nolink.txt", 1700000000000 + 9000, "No link", None, "<p>y</p>")
    toml = tmp_path / "c.toml"
    head = f'seeds_dir = "{seeds}"\noutput_dir = "{out}"\nbase_url = "{BASE}"\narticle_pages = true\n'
    env: dict[str, str] = {}
    if where == "top":
        head += 'entry_link = "page"\n'
    elif where == "env":
        env["FEEDSVC_ENTRY_LINK"] = "page"
    toml.write_text(head + '[[feeds]]\nname = "f"\n' + ('entry_link = "page"\n' if where == "feed" else ""))
    assert Builder(load_config(toml, env=env)).build().published
    docs = documents(out)
    prefix = "f/" if where == "feed" else ""
    base_toml = tmp_path / "origin.toml"
    base_toml.write_text(head.replace('entry_link = "page"\n', "").replace(str(out), str(tmp_path / "o2")))
    assert Builder(load_config(base_toml, env={})).build().published
    origin = documents(tmp_path / "o2")
    atom = feedparser.parse(docs[prefix + "feed.xml"]).entries
    assert [e.id for e in atom] == [e.id for e in feedparser.parse(origin["feed.xml"]).entries]
    for entry in atom:
        page = f"{BASE}articles/{article_key(entry.id)}.html"
        rels = {link.rel: link.href for link in entry.links}
        assert rels["alternate"] == page and page.removeprefix(BASE) in docs
        assert rels.get("via") == (None if entry.title == "No link" else f"https://e.com/{entry.title[2:]}")
    rss = feedparser.parse(docs[prefix + "feed.rss"]).entries
    assert [e.id for e in rss] == [e.id for e in feedparser.parse(origin["feed.rss"]).entries]
    assert all(e.link == f"{BASE}articles/{article_key(a.id)}.html" for e, a in zip(rss, atom, strict=True))
    items = json.loads(docs[prefix + "feed.json"])["items"]
    assert [i["id"] for i in items] == [i["id"] for i in json.loads(origin["feed.json"])["items"]]
    for item in items:
        assert item["url"] == f"{BASE}articles/{article_key(item['id'])}.html"
        assert item.get("external_url") == (None if item["title"] == "No link" else f"https://e.com/{item['title'][2:]}")
    if where == "feed":  # the top-level feed keeps the origin
        assert not any("/articles/" in e.get("link", "") for e in feedparser.parse(docs["feed.xml"]).entries)


def test_entry_link_is_checked(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('entry_link = "pages"\n')
    with pytest.raises(ConfigError, match="entry_link"):
        load_config(toml, env={})
    toml.write_text('[[feeds]]\nname = "x"\nentry_link = "site"\n')
    with pytest.raises(ConfigError, match=r"feeds\[1\]\.entry_link"):
        load_config(toml, env={})


def test_served_with_its_csp_and_an_unknown_key_is_a_404(tmp_path: Path, corpus: Path, config) -> None:
    cfg = config(article_pages=True, max_entries=10, archive_page_size=10)
    assert Builder(cfg).build().published
    client = create_app(cfg, run_builder=False).test_client()
    name = sorted(article_pages(tmp_path / "out"))[0]
    response = client.get("/" + name, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Security-Policy"] == ARTICLE_CONTENT_SECURITY_POLICY
    csp = ARTICLE_CONTENT_SECURITY_POLICY
    assert "script-src" not in csp and "img-src 'self' https:;" in csp and "default-src 'none'" in csp
    assert ("frame-src" in csp) == bool(FRAME_HOSTS)
    again = {"If-None-Match": response.headers["ETag"], "Accept-Encoding": "gzip"}
    assert client.get("/" + name, headers=again).status_code == 304
    assert client.get("/articles/0000000000000000000f.html").status_code == 404
    assert client.get("/articles/nothing.html").status_code == 404
    assert client.get("/world/articles/" + name.removeprefix("articles/")).status_code == 404


def test_the_xss_vectors_are_inert_on_their_pages(tmp_path: Path, config) -> None:
    seeds = tmp_path / "seeds"
    for n, item in enumerate(XSS):
        write_seed(seeds, f"{n:04}.txt", 1600000000000 + n * 1000, item["name"], f"https://example.com/a/{n}",
                   item["html"])
    assert Builder(config(article_pages=True, max_entries=1000)).build().published
    pages = article_pages(tmp_path / "out")
    assert len(pages) == len(XSS)
    by_title = {item["name"]: item for item in XSS}
    for body in pages.values():
        tree = lxml_html.fromstring(body)
        item = by_title[tree.xpath("//h2")[0].text_content()]
        content = lxml_html.tostring(tree.xpath('//div[@class="content"]')[0], encoding="unicode")
        assert inert_problems(content) == [], item["name"]
        assert not tree.xpath("//script") and not tree.xpath("//@*[starts-with(name(), 'on')]"), item["name"]
        shown = visible_text(content)
        assert all(keep in shown for keep in item["keep"]), item["name"]


def test_no_pages_when_switched_off(tmp_path: Path, corpus: Path, config) -> None:
    assert Builder(config(article_pages=False)).build().published
    assert not article_pages(tmp_path / "out")
    assert b"/articles/" not in documents(tmp_path / "out")["index.html"]


@pytest.mark.parametrize("count", [3, 40], ids=["fsync-each", "one-sync"])
def test_store_many_names_objects_only_after_they_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """A batch of pages' objects: temp files made durable (a few: each fsynced; many: one sync(2)),
    then the names; a row like `store`'s."""
    import os
    from datetime import UTC, datetime

    import feedsvc.publish.writer as writer
    from feedsvc.model import Document
    from feedsvc.publish.layout import FSYNC_EACH

    docs = [Document(f"articles/{i:020x}.html", f"<p>{i}</p>".encode(), "text/html; charset=utf-8",
                     datetime(2024, 1, 1, tzinfo=UTC), f"key{i}", in_memory=False) for i in range(count)]
    docs.append(docs[0])  # the same bytes twice: written once
    objects = tmp_path / "objects" / "articles"
    named_when_durable: list[list[str]] = []
    real_fsync = os.fsync

    def durable(*args: object) -> None:
        named_when_durable.append(sorted(p.name for p in objects.iterdir() if not p.name.startswith(".tmp-")))

    monkeypatch.setattr(writer.os, "sync", durable)
    monkeypatch.setattr(writer.os, "fsync", lambda fd: durable() or real_fsync(fd))
    stored = writer.store_many(tmp_path, docs)
    files = 2 * count  # a body and its gzip each
    assert named_when_durable == ([[]] * files if files <= FSYNC_EACH else [[]])  # nothing had its name yet
    assert sorted("articles/" + p.name for p in objects.iterdir()) == sorted({n for s in stored for n in s.row.objects})
    single = writer.store(tmp_path / "other", docs[1])  # a document's objects: the same bytes, at the top
    assert (stored[1].row.object, stored[1].row.gzip_object) == tuple("articles/" + n for n in single.row.objects)
    assert (stored[1].row.etag, stored[1].row.size, stored[1].source_key) == (single.row.etag, single.row.size, "key1")
    assert writer.store_many(tmp_path, []) == []
