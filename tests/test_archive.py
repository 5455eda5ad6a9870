"""RFC 5005 archives: every entry exactly once across /feed.xml and the chain, and stable pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from schemas import validate_atom

from feedsvc.build.builder import Builder
from feedsvc.core.choose import select_entries, split_archive
from feedsvc.core.entry import make_entry
from feedsvc.core.render.documents import render_all
from feedsvc.model import Article, Entry, FeedMeta
from feedsvc.publish.layout import read_manifest, write_atomic

BASE = "https://feeds.example.org/"
META = FeedMeta(id=BASE + "feed.xml", title="T", self_url=BASE + "feed.xml", alternate_url=BASE, language="en",
                stylesheet="/feed.xsl")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FH = "{http://purl.org/syndication/history/1.0}"


def history(n: int) -> list[Entry]:
    """`n` articles, article i published i hours after T0, newest first."""
    return select_entries(make_entry(Article(f"{i:04}.txt", f"Article {i}", f"https://e.com/{i}", None,
                                             T0 + timedelta(hours=i), f"<p>{i}</p>")) for i in range(n))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 60), max_entries=st.integers(1, 12), page_size=st.integers(1, 9))
def test_split_puts_every_entry_in_exactly_one_place(n: int, max_entries: int, page_size: int) -> None:
    items = history(n)
    current, pages = split_archive(items, max_entries, page_size)
    flattened = current + [e for page in reversed(pages) for e in page.entries]
    assert flattened == items  # same entries, same order, none twice, none missing
    assert current == items[:max_entries]
    assert [p.number for p in pages] == list(range(1, len(pages) + 1))
    assert all(len(p.entries) == page_size for p in pages[:-1])  # only the newest page may be partial
    assert all(0 < len(p.entries) <= page_size for p in pages)
    if pages:  # page 1 holds the oldest entries
        assert pages[0].entries[-1] == items[-1]


def documents(items: list[Entry], max_entries: int = 3, page_size: int = 4) -> dict[str, bytes]:
    """Every document but the browser pages (tests/test_feed_page.py checks they follow their documents)."""
    return {d.name: d.body for d in render_all(META, items, max_entries, page_size) if not d.name.endswith(".html")}


def walk(docs: dict[str, bytes]) -> list[str]:
    """What a reader backfilling by RFC 5005 sees: /feed.xml, then prev-archive until there is none."""
    seen: list[str] = []
    url, previous_url = BASE + "feed.xml", None
    for _ in range(len(docs) + 1):
        body = docs[url[len(BASE):]]
        assert validate_atom(body) == [], url
        parsed = feedparser.parse(body)
        assert not parsed.bozo
        links = {link["rel"]: link["href"] for link in parsed.feed.links}
        assert links["self"] == url
        root = etree.fromstring(body)
        if url != BASE + "feed.xml":
            assert root.find(f"{FH}archive") is not None and links["current"] == BASE + "feed.xml"
            # The chain is consistent both ways; the newest page has no next-archive (the feed is "current").
            assert links.get("next-archive") == (None if previous_url == BASE + "feed.xml" else previous_url)
            assert root.findtext("{http://www.w3.org/2005/Atom}id") == url  # each page is its own document
        else:
            assert root.find(f"{FH}archive") is None and "current" not in links
        seen += [e.id for e in parsed.entries]
        if "prev-archive" not in links:
            return seen
        previous_url, url = url, links["prev-archive"]
    raise AssertionError("the prev-archive chain loops")


def test_backfilling_the_chain_sees_every_entry_exactly_once() -> None:
    for n in (0, 1, 3, 4, 7, 11, 12, 30):
        items = history(n)
        docs = documents(items)
        assert walk(docs) == [e.id for e in items], n
        assert sum(name.startswith("archive/") for name in docs) == -(-max(0, n - 3) // 4)


def test_full_pages_keep_their_bytes_as_the_history_grows() -> None:
    frozen: dict[str, bytes] = {}
    before = documents(history(0))
    for n in range(1, 40):
        after = documents(history(n))
        archives = sorted((k for k in after if k.startswith("archive/")), key=lambda k: int(k[8:-4]))
        changed = {name for name in archives if before.get(name) != after[name]}
        # Only the newest page churns; the one before it changes once more, when it gains next-archive.
        assert changed <= set(archives[-2:]), (n, changed)
        for name, body in frozen.items():
            assert after[name] == body, f"{name} changed at n={n}"
        for name in archives[:-2]:
            frozen.setdefault(name, after[name])
        before = after
    assert len(frozen) >= 6


def test_editing_an_archived_article_keeps_it_exactly_once() -> None:
    items = history(20)
    edited = make_entry(Article("0002.txt", "Article 2, revised", "https://e.com/2", None, T0 + timedelta(days=9),
                                "<p>new</p>"))
    changed = select_entries([*items, edited])
    assert walk(documents(changed)) == [e.id for e in changed]
    assert walk(documents(changed))[0] == "https://e.com/2"


def write_seed(seeds: Path, i: int) -> None:
    stamp = int((T0 + timedelta(hours=i)).timestamp() * 1000)
    (seeds / f"{i:04}.txt").write_text(f"<!--{stamp}-->\n[Article {i}](https://e.com/{i})\n------\n\n<p>{i}</p>\n")


def test_builder_publishes_archives_whose_etags_stay(tmp_path: Path, config) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    builder = Builder(config(max_entries=2, archive_page_size=3))
    etags: list[dict[str, str]] = []
    for i in range(12):
        write_seed(seeds, i)
        assert builder.build().published
        manifest = read_manifest(tmp_path / "out")
        etags.append({name: doc["etag"] for name, doc in manifest["documents"].items()})
    final = etags[-1]
    assert sorted(n for n in final if n.startswith("archive/")) == [
        f"archive/{n}.xml{page}" for n in range(1, 5) for page in ("", ".html")]
    # archive/1.xml (entries 0-2) was complete, with its next-archive link, once entry 5 left the feed.
    assert {e["archive/1.xml"] for e in etags[6:]} == {final["archive/1.xml"]}
    assert {e["archive/2.xml"] for e in etags[9:]} == {final["archive/2.xml"]}
    assert builder.build().published is False  # nothing changed: nothing published, every ETag kept
    body = (tmp_path / "out" / "feed.xml").read_bytes()
    assert [e.title for e in feedparser.parse(body).entries] == ["Article 11", "Article 10"]


def test_same_seeds_same_bytes_for_every_document(tmp_path: Path, config) -> None:
    """Two builders, two output folders, one history: every document (and so every ETag) is identical."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for i in range(9):
        write_seed(seeds, i)
    manifests = []
    for out in ("one", "two"):
        assert Builder(config(output_dir=str(tmp_path / out), max_entries=2, archive_page_size=3)).build().published
        manifests.append({name: doc["etag"] for name, doc in read_manifest(tmp_path / out)["documents"].items()})
    assert manifests[0] == manifests[1]
    # feed.xml, .rss, .json, index.html, the browser pages of feed.xml and feed.rss, feed.xsl, and three
    # archive pages with a browser page each.
    assert len(manifests[0]) == 7 + 3 * 2


def test_builder_renders_only_the_archive_pages_that_changed(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """Pages are planned from light records; full entries are loaded and rendered only for new pages."""
    import feedsvc.build.documents as build_module

    for i in range(23):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    builder = Builder(config(max_entries=3, archive_page_size=4))
    rendered: list[str] = []
    real = build_module.archive_document

    def counting(meta, page, newest, key):  # type: ignore[no-untyped-def]
        rendered.append(f"archive/{page.number}.xml")
        return real(meta, page, newest, key)

    monkeypatch.setattr(build_module, "archive_document", counting)
    assert builder.build().published
    assert sorted(rendered) == [f"archive/{n}.xml" for n in range(1, 6)]  # 20 archived: pages 1-5
    full = {n: (tmp_path / "out" / "objects" / read_manifest(tmp_path / "out")["documents"][n]["object"]).read_bytes()
            for n in ("archive/1.xml", "archive/4.xml")}

    rendered.clear()
    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert builder.build().published
    # One entry flows from the feed into the archive: page 6 is new, page 5 gains next-archive.
    assert sorted(rendered) == ["archive/5.xml", "archive/6.xml"]
    manifest = read_manifest(tmp_path / "out")
    for name, body in full.items():
        assert (tmp_path / "out" / "objects" / manifest["documents"][name]["object"]).read_bytes() == body

    rendered.clear()
    assert not builder.build().published and rendered == []


def test_a_new_builder_reuses_the_published_archive_pages(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """A restart (or a new `feedsvc build`) renders no archive page whose entries did not change."""
    import feedsvc.build.documents as build_module

    for i in range(23):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    assert Builder(config(max_entries=3, archive_page_size=4)).build().published
    before = read_manifest(tmp_path / "out")
    rendered: list[int] = []
    real = build_module.archive_document

    def counting(meta, page, newest, key):  # type: ignore[no-untyped-def]
        rendered.append(page.number)
        return real(meta, page, newest, key)

    monkeypatch.setattr(build_module, "archive_document", counting)
    restarted = Builder(config(max_entries=3, archive_page_size=4))
    assert not restarted.build().published and rendered == []
    assert read_manifest(tmp_path / "out")["documents"] == before["documents"]

    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert Builder(config(max_entries=3, archive_page_size=4)).build().published
    assert sorted(rendered) == [5, 6]


def test_pages_replaced_by_another_writer_are_rendered_again(tmp_path: Path, make_seed, config) -> None:
    """A builder passes unchanged pages as Reuse; when another writer has replaced one, it renders it."""
    for i in range(12):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    cfg = config(max_entries=3, archive_page_size=4)
    builder = Builder(cfg)
    assert builder.build().published
    out = tmp_path / "out"
    manifest = read_manifest(out)
    mine = manifest["documents"]["archive/1.xml"]
    # Another writer publishes a page 1 of its own (here: the manifest says so).
    manifest["documents"]["archive/1.xml"] = {**mine, "source_key": "someone else's"}
    write_atomic(out / "manifest.json", json.dumps(manifest).encode())

    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert builder.build().published
    after = read_manifest(out)["documents"]
    assert after["archive/1.xml"]["source_key"] == mine["source_key"]
    assert (out / "objects" / after["archive/1.xml"]["object"]).read_bytes() == (
        out / "objects" / mine["object"]).read_bytes()


def test_unchanged_builds_render_nothing(make_seed, config, monkeypatch) -> None:
    """A rescan that finds no change renders no document, unless the published state is not ours any more."""
    import feedsvc.build.documents as build_module

    for i in range(6):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    builder = Builder(config(max_entries=2, archive_page_size=2))
    first = builder.build()
    calls: list[int] = []
    real = build_module.render_documents
    monkeypatch.setattr(build_module, "render_documents", lambda *a: calls.append(1) or real(*a))
    again = builder.build()
    assert calls == [] and not again.published and (again.entries, again.etag) == (first.entries, first.etag)
    (builder.config.output_dir / "manifest.json").unlink()  # the published state is gone: publish it again
    assert builder.build().published and calls == [1]
