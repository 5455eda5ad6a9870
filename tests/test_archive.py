"""RFC 5005 archives: every entry exactly once across /feed.xml and the chain, and stable pages by month.

The stability of a 300-article corpus under backdated arrivals, as the builder publishes it, is in
tests/test_archive_stability.py.
"""

from __future__ import annotations

import itertools
import json
from collections import namedtuple
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import conftest
import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from schemas import validate_atom

from feedsvc.core.choose import MAX_PIECE, page_number, select_entries, split_archive
from feedsvc.core.entry import make_entry
from feedsvc.core.render.documents import render_all
from feedsvc.core.routes import ARCHIVE_ROUTE, document_name
from feedsvc.model import Article, Entry, FeedMeta
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest, write_atomic

BASE = "https://feeds.example.org/"
META = FeedMeta(id=BASE + "feed.xml", title="T", self_url=BASE + "feed.xml", alternate_url=BASE, language="en",
                stylesheet="/feed.xsl")
T0 = datetime(2024, 1, 1, tzinfo=UTC)
FH = "{http://purl.org/syndication/history/1.0}"
# What splitting reads of an entry, for corpora too large to sanitize quickly.
Light = namedtuple("Light", "id updated")


def history(n: int, step: timedelta = timedelta(hours=1)) -> list[Entry]:
    """`n` articles, article i published i steps after T0, newest first."""
    return select_entries(make_entry(Article(f"{i:04}.txt", f"Article {i}", f"https://e.com/{i}", None,
                                             T0 + i * step, f"<p>{i}</p>")) for i in range(n))


def month_of(when: datetime) -> int:
    when = when.astimezone(UTC)
    return when.year * 100 + when.month


@settings(max_examples=200, deadline=None)
@given(hours=st.lists(st.integers(0, 24 * 500), max_size=60), max_entries=st.integers(1, 12),
       page_size=st.integers(1, 9))
def test_split_puts_every_entry_in_exactly_one_place(hours: list[int], max_entries: int, page_size: int) -> None:
    items = select_entries(make_entry(Article(f"{i:04}.txt", f"A{i}", f"https://e.com/{i}", None,
                                              T0 + timedelta(hours=h), "<p>x</p>")) for i, h in enumerate(hours))
    current, pages = split_archive(items, max_entries, page_size)
    flattened = current + [e for page in reversed(pages) for e in page.entries]
    assert flattened == items  # same entries, same order, none twice, none missing
    assert current == items[:max_entries]
    numbers = [p.number for p in pages]
    assert len(numbers) == len(set(numbers))  # each number once
    assert all(older.entries[0].updated <= newer.entries[-1].updated for older, newer in itertools.pairwise(pages))
    neighbours = [None, *numbers, None]  # each page links to the pages next to it, whatever lies between
    assert [(p.older, p.newer) for p in pages] == list(zip(neighbours[:-2], neighbours[2:], strict=True))
    for page in pages:  # YYYYMMPPP: every entry of a page is in its piece of its month
        burst = page.number >= 10**11  # YYYYMMPPPNNN: a page of a smallest piece too full to halve
        month, piece = divmod(page.number // 1000 if burst else page.number, 1000)
        assert {month_of(e.updated) for e in page.entries} == {month}
        start, end = piece_period(month, piece)
        assert all(start <= e.updated < end for e in page.entries)
        assert 0 < len(page.entries) <= page_size and (not burst or 2 * piece + 1 > MAX_PIECE)
        if piece > 1:  # a piece exists only because its parent held more than a page
            parent = (start - (end - start), end) if piece % 2 else (start, end + (end - start))
            archived = [e for e in items[max_entries:] if parent[0] <= e.updated < parent[1]]
            assert len(archived) > page_size


def piece_period(month: int, piece: int) -> tuple[datetime, datetime]:
    """The time range piece `piece` of `month` (YYYYMM) covers: the halving path, from the root."""
    year, number = divmod(month, 100)
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    for bit in bin(piece)[3:]:  # the path below the root, one half per bit
        middle = start + (end - start) / 2
        start, end = (middle, end) if bit == "1" else (start, middle)
    return start, end


def test_page_numbers_read_as_months_and_fit_the_route() -> None:
    assert page_number(2023, 4, 1) == 202304001
    assert document_name("/archive/202304001.xml") == "archive/202304001.xml"
    for number in (page_number(1, 1, 1), page_number(999, 12, 999), page_number(9999, 12, MAX_PIECE)):
        assert ARCHIVE_ROUTE.fullmatch(f"/archive/{number}.xml"), number
    assert (str(page_number(1000, 1, 1)), str(page_number(9999, 12, 999))) == ("100001001", "999912999")
    assert sorted([page_number(2024, 1, 1), page_number(2023, 12, 2), page_number(2023, 12, 1)]) == [
        202312001, 202312002, 202401001]


def test_a_month_with_more_than_a_page_splits_into_halves_of_time() -> None:
    items = history(14, timedelta(days=3))  # 2024-01-01 … 2024-02-09: 11 in January, 3 in February
    current, pages = split_archive(items, 2, 4)
    assert [e.title for e in current] == ["Article 13", "Article 12"]
    # January's 11 archived entries (days 1, 4, … 31): halves at Jan 16 12:00, quarters at 8 18:00 and 24 06:00.
    assert [(p.number, [int(e.title.split()[1]) for e in p.entries]) for p in pages] == [
        (202401004, [2, 1, 0]), (202401005, [5, 4, 3]), (202401006, [7, 6]), (202401007, [10, 9, 8]), (202402001, [11])]
    assert [(p.older, p.newer) for p in pages] == [
        (None, 202401005), (202401004, 202401006), (202401005, 202401007), (202401006, 202402001), (202401007, None)]


def test_an_article_in_a_full_month_changes_only_its_piece() -> None:
    """The pieces are periods: a backdated article lands in one, and the others keep their entries."""
    items = [Light(i, T0 + i * timedelta(hours=12)) for i in range(40)][::-1]  # January 1 … 20
    _, before = split_archive(items, 0, 8)
    backdated = Light("late", T0 + timedelta(hours=1))  # beside the oldest entries
    _, after = split_archive(sorted([*items, backdated], key=lambda e: e.updated, reverse=True), 0, 8)
    changed = {p.number for p in after} ^ {p.number for p in before} | {
        a.number for a in after for b in before if a.number == b.number and a.entries != b.entries}
    landed = next(p.number for p in after if backdated in p.entries)
    month, piece = divmod(landed, 1000)
    # Its piece changed, or (over a page) split in two: the piece gone, its halves new.
    assert changed <= {landed, month * 1000 + piece // 2, month * 1000 + (piece ^ 1)} and landed in changed
    kept = [p for p in after if p.number not in changed]
    assert len(kept) >= len(after) - 3 and kept


def test_months_are_utc_months_of_updated() -> None:
    east = timezone(timedelta(hours=8))
    items = [Light("b", datetime(2023, 5, 1, 7, 30, tzinfo=east)),  # 2023-04-30T23:30Z
             Light("a", datetime(2023, 4, 30, 20, 0, tzinfo=timezone(timedelta(hours=-5))))]  # 2023-05-01T01:00Z
    items.sort(key=lambda e: e.updated, reverse=True)
    _, pages = split_archive(items, 0, 50)
    assert [(p.number, [e.id for e in p.entries]) for p in pages] == [(202304001, ["b"]), (202305001, ["a"])]


def test_a_burst_in_the_smallest_piece_is_cut_by_count() -> None:
    """Entries microseconds apart cannot be halved apart: the smallest piece's burst is cut by count."""
    items = [Light(i, T0 + timedelta(microseconds=i)) for i in range(200)][::-1]
    _, pages = split_archive(items, 0, 3)
    assert [p.number for p in pages] == [202401512000 + n for n in range(1, 68)]  # piece 512, pages 1-67
    assert [len(p.entries) for p in pages] == [3] * 66 + [2]
    assert [e.id for p in reversed(pages) for e in p.entries] == list(range(199, -1, -1))


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
        for step in (timedelta(hours=1), timedelta(days=9), timedelta(days=45)):  # one month, several, gaps
            items = history(n, step)
            docs = documents(items)
            assert walk(docs) == [e.id for e in items], (n, step)
            _, pages = split_archive(items, 3, 4)
            assert sorted(name for name in docs if name.startswith("archive/")) == sorted(
                f"archive/{p.number}.xml" for p in pages)
    # 27 archived in January's first 27 hours, pages of 4: pieces of 1/128 and 1/256 of the month (5.8 h, 2.9 h).
    assert sum(name.startswith("archive/") for name in documents(history(30))) == 9


def test_full_pages_keep_their_bytes_as_the_history_grows() -> None:
    frozen: dict[str, bytes] = {}
    before = documents(history(0))
    for n in range(1, 40):
        items = history(n, timedelta(days=5))  # about six a month: a month splits into halves
        after = documents(items)
        archives = [f"archive/{page.number}.xml" for page in split_archive(items, 3, 4)[1]]  # oldest first
        changed = {name for name in archives if before.get(name) != after[name]}
        # Only the newest page churns (or splits into its halves); the page before them changes once
        # more, when its next-archive link names a new page.
        assert changed <= set(archives[-3:]), (n, changed)
        for name, body in frozen.items():
            assert after[name] == body, f"{name} changed at n={n}"
        for name in archives[:-3]:
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
    conftest.write_seed(seeds, f"{i:04}.txt", stamp, f"Article {i}", f"https://e.com/{i}", f"<p>{i}</p>")


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
    # Ten archived entries in January's first ten hours, pages of 3: pieces of 1/256 of the month (2.9 h).
    pages = [f"archive/202401{n:03}.xml" for n in range(256, 260)]
    assert sorted(n for n in final if n.startswith("archive/") and n.endswith(".xml")) == pages
    # The first piece (entries 0-2) was complete, with its next-archive link, once January split (entry 3
    # left the feed). The second (3-5) was complete from entry 5 on; it gained its next-archive link with
    # entry 6, and that link changed once more, when the piece after it (5.8-11.6 h) split into halves.
    assert {e[pages[0]] for e in etags[5:]} == {final[pages[0]]}
    assert len({e[pages[1]] for e in etags[7:]}) == 3 and {e[pages[1]] for e in etags[11:]} == {final[pages[1]]}
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
        one = config(output_dir=str(tmp_path / out), max_entries=2, archive_page_size=3, article_pages=False)
        assert Builder(one).build().published
        manifests.append({name: doc["etag"] for name, doc in read_manifest(tmp_path / out)["documents"].items()})
    assert manifests[0] == manifests[1]
    # feed.xml, .rss, .json, index.html, the browser pages of feed.xml and feed.rss, feed.xsl, and three
    # archive pages with a browser page each.
    assert len(manifests[0]) == 7 + 3 * 2


def test_builder_renders_only_the_archive_pages_that_changed(tmp_path: Path, make_seed, config, monkeypatch) -> None:
    """Pages are planned from light records; full entries are loaded and rendered only for new pages."""
    import feedsvc.pipeline.render_and_publish as build_module

    for i in range(23):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    builder = Builder(config(max_entries=3, archive_page_size=4))
    rendered: list[str] = []
    real = build_module.archive_document

    def counting(meta, page, key):
        rendered.append(f"archive/{page.number}.xml")
        return real(meta, page, key)

    monkeypatch.setattr(build_module, "archive_document", counting)
    assert builder.build().published
    # 20 archived within 20 minutes of November 14th, 2023: a burst in one smallest piece (749), pages 1-5
    assert sorted(rendered) == [f"archive/202311749{n:03}.xml" for n in range(1, 6)]
    full = {n: (tmp_path / "out" / "objects" / read_manifest(tmp_path / "out")["documents"][n]["object"]).read_bytes()
            for n in ("archive/202311749001.xml", "archive/202311749004.xml")}

    rendered.clear()
    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert builder.build().published
    # One entry flows from the feed into the archive: page 6 is new, page 5 gains next-archive.
    assert sorted(rendered) == ["archive/202311749005.xml", "archive/202311749006.xml"]
    manifest = read_manifest(tmp_path / "out")
    for name, body in full.items():
        assert (tmp_path / "out" / "objects" / manifest["documents"][name]["object"]).read_bytes() == body

    rendered.clear()
    assert not builder.build().published and rendered == []


def test_a_new_builder_reuses_the_published_archive_pages(tmp_path: Path, make_seed, config,
                                                           count_archive_pages) -> None:
    """A restart (or a new `feedsvc build`) renders no archive page whose entries did not change."""

    for i in range(23):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    assert Builder(config(max_entries=3, archive_page_size=4)).build().published
    before = read_manifest(tmp_path / "out")
    rendered = count_archive_pages()
    restarted = Builder(config(max_entries=3, archive_page_size=4))
    assert not restarted.build().published and rendered == []
    assert read_manifest(tmp_path / "out")["documents"] == before["documents"]

    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert Builder(config(max_entries=3, archive_page_size=4)).build().published
    assert sorted(rendered) == [202311749005, 202311749006]


def test_pages_replaced_by_another_writer_are_rendered_again(tmp_path: Path, make_seed, config) -> None:
    """A builder passes unchanged pages as Reuse; when another writer has replaced one, it renders it."""
    for i in range(12):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    cfg = config(max_entries=3, archive_page_size=4)
    builder = Builder(cfg)
    assert builder.build().published
    out = tmp_path / "out"
    manifest = read_manifest(out)
    mine = manifest["documents"]["archive/202311749001.xml"]
    # Another writer publishes a page 1 of its own (here: the manifest says so).
    manifest["documents"]["archive/202311749001.xml"] = {**mine, "source_key": "someone else's"}
    write_atomic(out / "manifest.json", json.dumps(manifest).encode())

    make_seed("new.txt", stamp_ms=1700000000000 + 99 * 60_000, title="Newest", url="https://e.com/new")
    assert builder.build().published
    after = read_manifest(out)["documents"]
    assert after["archive/202311749001.xml"]["source_key"] == mine["source_key"]
    assert (out / "objects" / after["archive/202311749001.xml"]["object"]).read_bytes() == (
        out / "objects" / mine["object"]).read_bytes()


def test_unchanged_builds_render_nothing(make_seed, config, monkeypatch) -> None:
    """A rescan that finds no change renders no document, unless the published state is not ours any more."""
    import feedsvc.pipeline.render_and_publish as build_module

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
