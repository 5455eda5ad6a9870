"""Many feeds from one seeds folder ([[feeds]]): configuration and its errors, choosing by folder and
patterns in every format and the archives, OpenCC conversion, the image proxy, OPML, the web side,
the costs (each seed parsed once, matches and conversions not redone), and the unchanged top-level
feed without any [[feeds]]."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import feedparser
import listparser
import pytest
from conftest import REPO, SAMPLE, published_bodies, seed_text
from lxml import html as lxml_html
from schemas import validate_atom, validate_jsonfeed

import feedsvc.pipeline.feeds as feeds_module
import feedsvc.pipeline.render_and_publish as build_documents
from benchmarks.corpus import write_corpus
from feedsvc.cli import main
from feedsvc.config import ConfigError, load_config
from feedsvc.core.filters import TAG
from feedsvc.core.transform import proxied_html
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest
from feedsvc.service.websub import changed_feeds

BASE = "https://feeds.example.org/"
PROXY = "https://images.weserv.nl/?url={url}"


def write_toml(path: Path, seeds: Path, out: Path, extra: str, **top: object) -> Path:
    lines = [f'seeds_dir = "{seeds}"', f'output_dir = "{out}"', f'base_url = "{BASE}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in top.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


documents = published_bodies


def story(seeds: Path, rel: str, n: int, title: str, body: str = "") -> None:
    path = seeds / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    content = body or f"<p>{title} 的內容。</p>"
    url = "https://news.example.com/" + rel.removesuffix(".txt")  # one article per file
    path.write_text(seed_text(1700000000000 + n * 3_600_000, title, url, content))


# ---------------------------------------------------------------------------- configuration


def test_feeds_are_declared_as_data(tmp_path: Path) -> None:
    toml = write_toml(tmp_path / "c.toml", tmp_path / "seeds", tmp_path / "out", """
[[feeds]]
name = "world"
title = "World news"
language = "zh-Hans"
folder = "./world/"
include = "普京|俄羅斯"
exclude = "體育"
max_entries = 20
convert = "t2s"
image_proxy = "https://images.weserv.nl/?url={url}"

[[feeds]]
name = "all-2"
""", title="Top", subtitle="Everything", max_entries=7)
    config = load_config(toml, env={})
    world, other = config.feeds
    assert (world.name, world.title, world.subtitle, world.language) == ("world", "World news", "Everything", "zh-Hans")
    assert (world.folder, world.include, world.exclude, world.max_entries) == ("world", "普京|俄羅斯", "體育", 20)
    assert (world.convert, world.image_proxy) == ("t2s", "https://images.weserv.nl/?url={url}")
    # What a feed leaves out comes from the top level; its title names it too, to tell the two apart.
    assert (other.title, other.language, other.max_entries) == ("Top — all-2", "zh-Hant", 7)
    assert (other.folder, other.include, other.convert, other.image_proxy) == ("", "", "", "")
    assert load_config(write_toml(tmp_path / "none.toml", tmp_path, tmp_path, ""), env={}).feeds == ()


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('name = "World"', r'feeds\[1\]\.name .*must match \[a-z0-9\]'),
        ('name = "-x"', r"feeds\[1\]\.name .*must match"),
        ('title = "no name"', r"feeds\[1\]\.name .*needs a name"),
        ('name = "a"\n[[feeds]]\nname = "a"', r"feeds\[2\]\.name .*'a' names another feed too"),
        ('name = "archive"', r"feeds\[1\]\.name .*'archive' collides with the route /archive"),
        ('name = "healthz"', r"feeds\[1\]\.name .*collides with the route /healthz"),
        ('name = "metrics"', r"feeds\[1\]\.name .*collides with the route /metrics"),
        ('name = "feed.xml"', r"feeds\[1\]\.name .*collides with the route /feed\.xml"),
        ('name = "feeds.opml"', r"feeds\[1\]\.name .*collides with the route /feeds\.opml"),
        ('name = "objects"', r"feeds\[1\]\.name .*collides"),
        ('name = "a"\ncolour = "red"', r"feeds\[1\]\.colour .*unknown key of a feed"),
        ('name = "a"\n[[feeds]]\nname = "b"\ninclude = "(a"', r"feeds\[2\]\.include .*not an RE2 pattern: missing \)"),
        ('name = "a"\nexclude = "(a)\\\\1"', r"feeds\[1\]\.exclude .*not an RE2 pattern: invalid escape"),
        ('name = "a"\ninclude = "(?<=x)y"', r"feeds\[1\]\.include .*not an RE2 pattern"),
        ('name = "a"\nconvert = "t2x"', r"feeds\[1\]\.convert .*unknown OpenCC conversion 't2x' \(.*t2s"),
        ('name = "a"\nimage_proxy = "https://p.example/?u="', r"feeds\[1\]\.image_proxy .*needs \{url\} or"),
        ('name = "a"\nimage_proxy = "ftp://p.example/{url}"', r"feeds\[1\]\.image_proxy .*http\(s\) URL"),
        ('name = "a"\nmax_entries = 0', r"feeds\[1\]\.max_entries .*at least 1"),
        ('name = "a"\ntitle = 3', r"feeds\[1\]\.title .*expected a string"),
        ('name = "a"\nfolder = "../elsewhere"', r"feeds\[1\]\.folder .*inside seeds_dir"),
    ],
)
def test_each_configuration_error_names_the_feed_and_the_key(tmp_path: Path, tables: str, message: str) -> None:
    toml = write_toml(tmp_path / "bad.toml", tmp_path / "seeds", tmp_path / "out", "[[feeds]]\n" + tables + "\n")
    with pytest.raises(ConfigError, match=message) as info:
        load_config(toml, env={})
    assert f"(from config file {toml})" in str(info.value)


def test_a_configuration_error_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "seeds").mkdir()
    toml = write_toml(tmp_path / "bad.toml", tmp_path / "seeds", tmp_path / "out",
                      '[[feeds]]\nname = "a"\n[[feeds]]\nname = "b"\ninclude = "(x"\n')
    assert main(["build", "--config", str(toml)]) == 2
    assert f"feeds[2].include (from config file {toml}): not an RE2 pattern" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_feeds_cannot_come_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"feeds \(from environment variable FEEDSVC_FEEDS\): .*\[\[feeds\]\]"):
        load_config(write_toml(tmp_path / "c.toml", tmp_path, tmp_path, ""), env={"FEEDSVC_FEEDS": "world"})


# ---------------------------------------------------------------------------- without [[feeds]]


def fixture_seeds(seeds: Path) -> None:
    """The seeds tests/data/no_feeds_documents.json was made from, by the code before [[feeds]]
    (commit 5e89985, the same build as below): 100 corpus articles in two folders, the sample, a link post."""
    write_corpus(seeds / "world", 60)
    write_corpus(seeds / "asia", 40, seed=1)
    shutil.copy(SAMPLE, seeds)
    (seeds / "link.txt").write_text("<!--1681696026000-->\n[A link post](https://example.org/linked)\n")


# The fixture predates the entries' pages, which link every listing to them (test_articles.py).
NO_PAGES = "article_pages = false\n"


def fixture_build(tmp_path: Path, extra: str = "") -> Path:
    fixture_seeds(tmp_path / "seeds")
    out = tmp_path / "out"
    toml = write_toml(tmp_path / "c.toml", tmp_path / "seeds", out, extra, max_entries=20, archive_page_size=10,
                      websub_hub="https://hub.example.org/", build_workers=1)
    result = Builder(load_config(toml, env={})).build(now=1.8e9)
    assert result.ok and result.published
    return out


def test_without_feeds_every_document_is_byte_identical_to_before(tmp_path: Path) -> None:
    """/feed.xml, /feed.rss, /feed.json, /, /feed.xsl, the browser pages and every archive page: the
    same names and the same bytes (ETags are their SHA-256) as the code before [[feeds]] published."""
    out = fixture_build(tmp_path, NO_PAGES)
    expected = json.loads((REPO / "tests" / "data" / "no_feeds_documents.json").read_text())
    manifest = read_manifest(out)
    assert manifest is not None
    assert {name: doc["etag"] for name, doc in manifest["documents"].items()} == expected
    assert len(expected) == 37 and "feeds.opml" not in expected
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["objects"]


def test_with_feeds_the_top_level_feed_documents_keep_their_bytes(tmp_path: Path) -> None:
    """Declaring feeds changes only the index (which lists them) at the top level."""
    out = fixture_build(tmp_path, NO_PAGES + '[[feeds]]\nname = "asia"\nfolder = "asia"\n')
    expected = json.loads((REPO / "tests" / "data" / "no_feeds_documents.json").read_text())
    manifest = read_manifest(out)
    assert manifest is not None
    top = {name: doc["etag"] for name, doc in manifest["documents"].items() if not name.startswith("asia/")}
    assert {name for name in expected if top.get(name) != expected[name]} == {"index.html"}
    assert set(top) - set(expected) == {"feeds.opml"}


# ---------------------------------------------------------------------------- choosing


TITLES = {  # rel: title; the folders and the words the patterns look for
    "world/ru-1.txt": "普京訪問北京",
    "world/ru-2.txt": "俄羅斯經濟",
    "world/sport.txt": "普京觀看體育比賽",
    "world/other.txt": "歐洲天氣",
    "asia/ru.txt": "普京與日本",
    "asia/tech.txt": "台灣晶片",
    "top.txt": "俄羅斯能源",
}
FEEDS = """
[[feeds]]
name = "world"
folder = "world"

[[feeds]]
name = "russia"
include = "普京|俄羅斯"

[[feeds]]
name = "no-sport"
exclude = "體育"

[[feeds]]
name = "both"
folder = "world"
include = "普京|俄羅斯"
exclude = "體育"

[[feeds]]
name = "body"
include = "晶片|內文獨有"
"""
EXPECTED = {
    "": set(TITLES.values()),
    "world": {TITLES[k] for k in TITLES if k.startswith("world/")},
    "russia": {t for t in TITLES.values() if "普京" in t or "俄羅斯" in t},
    "no-sport": {t for t in TITLES.values() if "體育" not in t},
    "both": {"普京訪問北京", "俄羅斯經濟"},
    "body": {"台灣晶片", "歐洲天氣"},  # 歐洲天氣 matches in its body only
}


def choosing_build(tmp_path: Path) -> tuple[Path, Builder]:
    seeds = tmp_path / "seeds"
    for n, (rel, title) in enumerate(sorted(TITLES.items())):
        story(seeds, rel, n, title, "<p>內文獨有的字</p>" if rel == "world/other.txt" else "")
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out", FEEDS, max_entries=2, archive_page_size=1)
    builder = Builder(load_config(toml, env={}))
    assert builder.build().published
    return tmp_path / "out", builder


def archived_titles(docs: dict[str, bytes], prefix: str) -> list[str]:
    """Walk prev-archive from the feed's Atom document: every entry, each once (RFC 5005)."""
    titles: list[str] = []
    name: str | None = prefix + "feed.xml"
    while name is not None:
        assert validate_atom(docs[name]) == [], name
        parsed = feedparser.parse(docs[name])
        assert not parsed.bozo, name
        titles += [e.title for e in parsed.entries]
        prev = [link.href for link in parsed.feed.links if link.rel == "prev-archive"]
        name = prev[0].removeprefix(BASE) if prev else None
        assert name is None or name.startswith(prefix + "archive/"), name
    return titles


@pytest.mark.parametrize("feed", sorted(EXPECTED))
def test_folders_include_exclude_in_every_format_and_the_archives(tmp_path: Path, feed: str) -> None:
    out, _ = choosing_build(tmp_path)
    docs = documents(out)
    prefix = feed + "/" if feed else ""
    every = archived_titles(docs, prefix)
    assert sorted(every) == sorted(EXPECTED[feed])  # each exactly once
    newest = every[:2]
    rss = feedparser.parse(docs[prefix + "feed.rss"])
    jsonfeed = json.loads(docs[prefix + "feed.json"])
    assert validate_jsonfeed(jsonfeed) == []
    assert [e.title for e in rss.entries] == [i["title"] for i in jsonfeed["items"]] == newest
    atom = feedparser.parse(docs[prefix + "feed.xml"])
    assert atom.feed.links[1].href == BASE + prefix + "feed.xml" and atom.feed.links[1].rel == "self"
    assert jsonfeed["feed_url"] == BASE + prefix + "feed.json"
    # The same articles as in the top-level feed: the same ids.
    top = {e.title: e.id for e in feedparser.parse(docs["feed.xml"]).entries}
    assert all(e.id == top[e.title] for e in atom.entries if e.title in top)
    assert (out / prefix / "feed.xml").read_bytes() == docs[prefix + "feed.xml"]  # the plain copy


def test_a_change_in_one_folder_changes_only_the_feeds_that_hold_it(tmp_path: Path, monkeypatch) -> None:
    out, builder = choosing_build(tmp_path)
    before = documents(out)
    rendered: list[str] = []
    real = build_documents.render_documents

    def counting(*args):
        rendered.append(args[4] if len(args) > 4 else "")
        return real(*args)

    monkeypatch.setattr(build_documents, "render_documents", counting)
    story(tmp_path / "seeds", "asia/new.txt", 50, "晶片新聞")
    assert builder.build().published
    # The top-level feed is rendered on every change; a declared feed only when its entries changed.
    assert rendered == ["", "no-sport/", "body/"]
    rendered.clear()
    assert Builder(builder.config).build().published is False  # a new process: the manifest's keys say so
    assert rendered == [""]
    after = documents(out)
    changed = {name for name in after if before.get(name) != after[name]}
    top_level = ("archive/", "articles/")
    assert {name.split("/")[0] for name in changed if "/" in name and not name.startswith(top_level)} == {
        "no-sport", "body"}
    # WebSub pings go per changed topic: the top-level feed's and those two feeds'.
    topics = ["feed.xml", *(f"{f}/feed.xml" for f in EXPECTED if f)]
    assert changed_feeds(out, topics) == ["feed.xml", "no-sport/feed.xml", "body/feed.xml"]


def test_a_folder_that_does_not_exist_yet_is_a_warning_then_a_feed(tmp_path: Path, caplog) -> None:
    seeds = tmp_path / "seeds"
    story(seeds, "top.txt", 1, "Top story")
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out", '[[feeds]]\nname = "later"\nfolder = "later"\n')
    builder = Builder(load_config(toml, env={}))
    result = builder.build()
    warning = "feed later: folder later does not exist in the seeds folder (yet): no entries"
    assert result.ok and result.published and result.warnings == [warning] and result.feeds == {"later": 0}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]
    assert feedparser.parse(documents(tmp_path / "out")["later/feed.xml"]).entries == []
    client = create_app(builder.config, run_builder=False).test_client()
    health = client.get("/healthz").get_json()
    assert health["status"] == "ok" and health["warnings"] == [warning]
    builder.build()
    assert [r.levelname for r in caplog.records].count("WARNING") == 1  # said once, not on every build
    story(seeds, "later/a.txt", 2, "Arrived")
    result = builder.build()
    assert result.warnings == [] and result.feeds == {"later": 1}
    assert [e.title for e in feedparser.parse(documents(tmp_path / "out")["later/feed.xml"]).entries] == ["Arrived"]
    assert client.get("/healthz").get_json()["warnings"] == []


# ---------------------------------------------------------------------------- costs


def test_a_seed_is_parsed_once_however_many_feeds_take_it(tmp_path: Path, counted: list[str], monkeypatch) -> None:
    out, builder = choosing_build(tmp_path)
    assert sorted(counted) == sorted(TITLES)  # 7 files, 6 feeds: each file parsed and sanitized once
    matched: list[str] = []
    real = feeds_module.searchable
    monkeypatch.setattr(feeds_module, "searchable", lambda title, html: matched.append(title) or real(title, html))
    story(tmp_path / "seeds", "world/ru-1.txt", 20, "普京訪問北京 (更新)")
    assert builder.build().published
    assert counted[len(TITLES):] == ["world/ru-1.txt"] and matched == ["普京訪問北京 (更新)"]
    # A new process (same cache): the match results come from the cache, no content is searched again.
    again = Builder(builder.config)
    story(tmp_path / "seeds", "asia/tech.txt", 21, "台灣晶片 (更新)")
    assert again.build().published
    assert matched == ["普京訪問北京 (更新)", "台灣晶片 (更新)"]
    docs = documents(out)
    assert "台灣晶片 (更新)" in [e.title for e in feedparser.parse(docs["body/feed.xml"]).entries]


def test_converted_entries_are_not_converted_again(tmp_path: Path, monkeypatch) -> None:
    seeds = tmp_path / "seeds"
    for n in range(4):
        story(seeds, f"s{n}.txt", n, f"國防新聞 {n}")
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out", '[[feeds]]\nname = "s"\nconvert = "t2s"\n',
                      max_entries=3, archive_page_size=2)
    builder = Builder(load_config(toml, env={}))
    calls: list[str] = []
    real = feeds_module.transform_entry
    monkeypatch.setattr(feeds_module, "transform_entry", lambda e, *a: calls.append(e.title) or real(e, *a))
    assert builder.build().published
    assert sorted(calls) == [f"國防新聞 {n}" for n in range(4)]
    story(seeds, "s9.txt", 9, "國防新聞 9")
    assert builder.build().published
    assert calls[4:] == ["國防新聞 9"]
    titles = archived_titles(documents(tmp_path / "out"), "s/")
    assert titles == [f"国防新闻 {n}" for n in (9, 3, 2, 1, 0)]


# ---------------------------------------------------------------------------- convert and image_proxy


def tags(html: str) -> list[str]:
    """The content's markup, without the text of alt and title attributes."""
    return [re.sub(r'\s(alt|title)="[^"]*"', "", t) for t in TAG.findall(html)]


def test_opencc_converts_the_sample_text_and_nothing_else(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds)
    story(seeds, "alt.txt", 1, "國防 alt",
          '<p><abbr title="國防部">國防</abbr><img src="https://img.example/國防.jpg" alt="國防照片">'
          '<a href="https://a.example/國防" title="國防">國防</a></p>')
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out", """
[[feeds]]
name = "simplified"
title = "國防新聞"
subtitle = "繁體轉簡體"
language = "zh-Hans"
convert = "t2s"
""")
    assert Builder(load_config(toml, env={})).build().published
    docs = documents(tmp_path / "out")
    top, converted = (feedparser.parse(docs[n]) for n in ("feed.xml", "simplified/feed.xml"))
    assert (converted.feed.title, converted.feed.subtitle) == ("国防新闻", "繁体转简体")
    pairs = {e.id: e for e in top.entries}
    assert {e.id for e in converted.entries} == set(pairs)  # the same articles: the same ids
    for entry in converted.entries:
        original = pairs[entry.id]
        assert entry.link == original.link
        html, before = entry.content[0]["value"], original.content[0]["value"]
        assert tags(html) == tags(before)  # no markup, no URL changed
        assert "國" not in html and "國" not in entry.title and "國" not in entry.summary
    sample = next(e for e in converted.entries if e.link.startswith("https://www.dw.com/"))
    assert sample.title == "中国防长会见普京 谈加强军事合作"
    assert "中国国防部长李尚福" in sample.content[0]["value"] or "国防部长李尚福" in sample.content[0]["value"]
    alt = next(e for e in converted.entries if e.title == "国防 alt").content[0]["value"]
    assert 'title="国防部"' in alt and 'alt="国防照片"' in alt and 'title="国防"' in alt
    assert 'src="https://img.example/%E5%9C%8B%E9%98%B2.jpg"' in alt
    assert 'href="https://a.example/%E5%9C%8B%E9%98%B2"' in alt
    jsonfeed = json.loads(docs["simplified/feed.json"])
    assert jsonfeed["title"] == "国防新闻" and jsonfeed["language"] == "zh-Hans"
    assert "中国防长会见普京 谈加强军事合作" in [i["title"] for i in jsonfeed["items"]]
    page = docs["simplified/index.html"].decode()
    assert "<title>国防新闻</title>" in page and "中国防长会见普京" in page


def test_the_image_proxy_rewrites_every_image_url(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds)  # its images already go through weserv: left alone
    story(seeds, "img.txt", 1, "Pictures",
          '<p>One</p><img src="https://img.example/a b/1.jpg?w=1&amp;h=2"><img src="http://img.example/2.png">'
          '<a href="https://img.example/3.jpg">not an image</a>')
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out",
                      f'[[feeds]]\nname = "proxied"\nimage_proxy = "{PROXY}"\n'
                      '[[feeds]]\nname = "bare"\nimage_proxy = "https://images.weserv.nl/?url={url_noscheme}&w=600"\n')
    assert Builder(load_config(toml, env={})).build().published
    docs = documents(tmp_path / "out")
    # The sanitized URL is a URI (a%20b): percent-encoded for the query, its "%" is "%25".
    first = "https://images.weserv.nl/?url=https%3A%2F%2Fimg.example%2Fa%2520b%2F1.jpg%3Fw%3D1%26h%3D2"
    second = "https://images.weserv.nl/?url=http%3A%2F%2Fimg.example%2F2.png"
    atom = {e.title: e for e in feedparser.parse(docs["proxied/feed.xml"]).entries}
    rss = {e.title: e for e in feedparser.parse(docs["proxied/feed.rss"]).entries}
    jsonfeed = {i["title"]: i for i in json.loads(docs["proxied/feed.json"])["items"]}
    for content in (atom["Pictures"].content[0]["value"], rss["Pictures"].content[0]["value"],
                    jsonfeed["Pictures"]["content_html"]):
        images = lxml_html.fromstring(content).xpath("//img/@src")
        assert images == [first, second]
        assert lxml_html.fromstring(content).xpath("//a/@href") == ["https://img.example/3.jpg"]
    for entry in (atom["Pictures"], rss["Pictures"]):
        assert entry.media_thumbnail == [{"url": first}]
        assert [link.href for link in entry.links if link.rel == "enclosure"] == [first]
    assert jsonfeed["Pictures"]["image"] == first
    raw_rss = docs["proxied/feed.rss"].decode()
    assert f'<enclosure url="{first}" length="0" type="image/jpeg"/>' in raw_rss
    sample = next(e for t, e in atom.items() if t != "Pictures")
    assert sample.media_thumbnail == [{"url": "https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg"}]
    bare = {i["title"]: i for i in json.loads(docs["bare/feed.json"])["items"]}
    assert bare["Pictures"]["image"] == "https://images.weserv.nl/?url=img.example%2Fa%2520b%2F1.jpg%3Fw%3D1%26h%3D2&w=600"
    top = {i["title"]: i for i in json.loads(docs["feed.json"])["items"]}
    assert top["Pictures"]["image"] == "https://img.example/a%20b/1.jpg?w=1&h=2"  # the top-level feed as it was


def test_the_image_proxy_rewrites_each_srcset_candidate() -> None:
    """The proxy rewrites every candidate of a srcset, on <img> and on a <picture>'s <source>."""
    html = ('<picture><source srcset="https://i.example/a.webp 1x, https://i.example/b,c.webp 2x"></picture>'
            '<img src="https://i.example/s.jpg" srcset="https://i.example/1.jpg 480w,https://i.example/2.jpg,'
            ' https://images.weserv.nl/?url=x.jpg 3x" alt="a">')
    out = proxied_html(html, PROXY)

    def p(url: str) -> str:
        return "https://images.weserv.nl/?url=" + url.replace(":", "%3A").replace("/", "%2F").replace(",", "%2C")

    assert out == (f'<picture><source srcset="{p("https://i.example/a.webp")} 1x, '
                   f'{p("https://i.example/b,c.webp")} 2x">'
                   f'</picture><img src="{p("https://i.example/s.jpg")}" srcset="{p("https://i.example/1.jpg")} 480w,'
                   f'{p("https://i.example/2.jpg")}, https://images.weserv.nl/?url=x.jpg 3x" alt="a">')


# ---------------------------------------------------------------------------- OPML, the index, the web side


def web_build(tmp_path: Path) -> tuple[Path, object]:
    seeds = tmp_path / "seeds"
    for n in range(5):
        story(seeds, f"world/w{n}.txt", n, f"World {n}")
        story(seeds, f"asia/a{n}.txt", 10 + n, f"Asia {n}")
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out", """
[[feeds]]
name = "world"
title = "World news"
subtitle = "Abroad"
folder = "world"

[[feeds]]
name = "asia"
title = "Asia <&>"
folder = "asia"
""", title="All the news", max_entries=2, archive_page_size=2, websub_hub="https://hub.example.org/")
    config = load_config(toml, env={})
    assert Builder(config).build().published
    return tmp_path / "out", create_app(config, run_builder=False).test_client()


def test_opml_lists_every_feed_for_a_real_parser(tmp_path: Path) -> None:
    _, client = web_build(tmp_path)
    response = client.get("/feeds.opml")
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/x-opml; charset=utf-8"
    parsed = listparser.parse(response.data)
    assert not parsed.bozo, parsed.bozo_exception
    assert [(f.title, f.url) for f in parsed.feeds] == [
        ("All the news", BASE + "feed.xml"), ("World news", BASE + "world/feed.xml"),
        ("Asia <&>", BASE + "asia/feed.xml")]
    assert re.findall(rb'type="rss"', response.data) and b'htmlUrl="https://feeds.example.org/world/"' in response.data


def test_the_index_lists_every_feed_and_each_feed_has_its_own(tmp_path: Path) -> None:
    _, client = web_build(tmp_path)
    index = lxml_html.fromstring(client.get("/").data)
    discovered = index.xpath('//link[@rel="alternate"][@type="application/atom+xml"]/@href')
    assert discovered == ["/feed.xml", BASE + "world/feed.xml", BASE + "asia/feed.xml"]
    listed = index.xpath("//ul/li/a[1]")
    assert [(a.text, a.get("href")) for a in listed] == [
        ("All the news", BASE), ("World news", BASE + "world/"), ("Asia <&>", BASE + "asia/")]
    assert index.xpath("//ul/li[2]/a/@href") == [BASE + "world/", BASE + "world/feed.xml", BASE + "world/feed.rss",
                                                 BASE + "world/feed.json"]
    own = client.get("/world/")
    assert own.status_code == 200 and own.headers["Content-Type"] == "text/html; charset=utf-8"
    page = lxml_html.fromstring(own.data)
    assert page.xpath("//title/text()") == ["World news"]
    assert page.xpath('//link[@rel="alternate"]/@href') == [BASE + "world/feed.xml", BASE + "world/feed.rss",
                                                           BASE + "world/feed.json"]
    assert [li.xpath("string(a)") for li in page.xpath("//ol/li")] == ["World 4", "World 3"]
    assert "Content-Security-Policy" in own.headers and client.get("/world").status_code == 404


def first_page(out: Path, prefix: str) -> str:
    return "/" + min(n for n in documents(out) if n.startswith(prefix + "archive/") and n.endswith(".xml"))


@pytest.mark.parametrize("path", ["/world/feed.xml", "/world/feed.rss", "/world/feed.json", "/world/", "archive"])
def test_each_feeds_documents_get_the_same_caching(tmp_path: Path, path: str) -> None:
    out, client = web_build(tmp_path)
    path = first_page(out, "world/") if path == "archive" else path
    response = client.get(path)
    assert response.status_code == 200, path
    etag = response.headers["ETag"]
    assert client.get(path, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(path, headers={"If-Modified-Since": response.headers["Last-Modified"]}).status_code == 304
    gz = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert gz.headers["Content-Encoding"] == "gzip" and gz.headers["ETag"] != etag
    head = client.head(path)
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == str(len(response.data))
    assert client.post(path).status_code == 405
    if path in ("/world/feed.xml", "/world/feed.rss", "/world/feed.json"):
        assert response.headers["Link"] == f'<https://hub.example.org/>; rel="hub", <{BASE}{path[1:]}>; rel="self"'
    if path.endswith(".xml"):  # a browser gets the feed page
        page = client.get(path, headers={"Accept": "text/html,*/*;q=0.8"})
        assert page.headers["Content-Type"] == "text/html; charset=utf-8" and page.headers["ETag"] != etag


def test_unknown_feeds_and_documents_are_404(tmp_path: Path) -> None:
    _, client = web_build(tmp_path)
    for path in ("/nowhere/feed.xml", "/world/archive/1.xml", "/world/feed.xsl", "/world/feed.xml.html",
                 "/world/index.html", "/healthz/feed.xml"):
        assert client.get(path).status_code == 404, path


def test_the_archive_pages_of_a_feed_link_within_it(tmp_path: Path) -> None:
    out, _ = web_build(tmp_path)
    docs = documents(out)
    assert archived_titles(docs, "world/") == [f"World {n}" for n in range(4, -1, -1)]
    page = feedparser.parse(docs[first_page(out, "world/")[1:]])
    assert {link.rel: link.href for link in page.feed.links}["current"] == BASE + "world/feed.xml"


@pytest.mark.live
def test_the_process_pool_renders_every_feeds_archive_pages_the_same(tmp_path: Path, monkeypatch) -> None:
    """Converted and proxied archive pages rendered by the workers (from the cache file) are the
    bytes the builder's process renders; nothing is rendered in the builder's process."""
    import feedsvc.pipeline.workers as workers_module

    seeds = tmp_path / "seeds"
    write_corpus(seeds / "world", 80)  # 140 files: enough for a pool of two
    write_corpus(seeds / "asia", 60, seed=1)
    extra = ('[[feeds]]\nname = "world"\nfolder = "world"\nconvert = "t2s"\n'
             f'image_proxy = "{PROXY}"\n[[feeds]]\nname = "ad"\ninclude = "延伸閱讀|廣告|點擊"\n')
    configs = {
        workers: load_config(write_toml(tmp_path / f"{workers}.toml", seeds, tmp_path / f"out-{workers}", extra,
                                        max_entries=5, archive_page_size=5, build_workers=workers), env={})
        for workers in (1, 2)
    }
    assert Builder(configs[1]).build(now=1.8e9).published
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 1})
    monkeypatch.setattr(workers_module, "SPAWN_MIN_FILES", {"bleach": 1})
    monkeypatch.setattr(workers_module, "POOL_MIN_PAGES", 1)

    def not_here(*args):
        raise AssertionError("an archive page was rendered in the builder's process")

    monkeypatch.setattr(build_documents, "archive_document", not_here)
    assert Builder(configs[2]).build(now=1.8e9).published
    inline, pooled = documents(tmp_path / "out-1"), documents(tmp_path / "out-2")
    pages = sorted(n for n in pooled if n.startswith("world/archive/"))
    assert len(pages) >= 2 * 11 and any(n.startswith("ad/archive/") for n in pooled)
    assert pooled == inline
    converted = feedparser.parse(pooled[pages[0]]).entries[0]
    assert "國" not in converted.title and PROXY.split("{")[0] + "https%3A" not in converted.content[0]["value"]


def test_a_folder_is_a_folder_not_a_prefix_and_may_be_nested(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    for n, rel in enumerate(["news/world/a.txt", "news/world/deep/b.txt", "news/asia/c.txt", "newsworld/d.txt",
                             "news.txt"]):
        story(seeds, rel, n, rel)
    toml = write_toml(tmp_path / "c.toml", seeds, tmp_path / "out",
                      '[[feeds]]\nname = "world"\nfolder = "news/world/"\n[[feeds]]\nname = "news"\nfolder = "news"\n'
                      '[[feeds]]\nname = "asia"\nfolder = "news/asia"\ninclude = "c"\n')
    assert Builder(load_config(toml, env={})).build().published
    docs = documents(tmp_path / "out")

    def titles(prefix: str) -> list[str]:
        return sorted(e.title for e in feedparser.parse(docs[prefix + "feed.xml"]).entries)

    assert titles("world/") == ["news/world/a.txt", "news/world/deep/b.txt"]
    assert titles("news/") == ["news/asia/c.txt", "news/world/a.txt", "news/world/deep/b.txt"]
    assert titles("asia/") == ["news/asia/c.txt"]
    assert len(titles("")) == 5
