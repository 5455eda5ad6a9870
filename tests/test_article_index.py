"""The entry pages' index (`publish/article_index.py`, `layout.Shard`): pages are rows of immutable
shards named by the manifest, not rows of manifest.json; a build rewrites only the shards whose
pages changed; what the index stops naming outlives one publish, then goes; a plan made from
another index is Stale; a web process finds a page through its shard. No process started."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import published, published_bodies, write_seed

from feedsvc.model import Document
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.article_index import write_shards
from feedsvc.publish.layout import (
    ArticleShard,
    Stale,
    load_manifest,
    read_manifest,
    shard_of,
)
from feedsvc.publish.reader import PublishedStore, Shards
from feedsvc.publish.writer import publish_manifest, store_many

STAMP = 1700000000000
HOUR = 3600_000


def corpus(seeds: Path, count: int) -> None:
    for i in range(count):
        write_seed(seeds, f"{i:03}.txt", STAMP + i * HOUR, f"T {i}", f"https://e.com/{i}", f"<p>body {i}</p>")


def article_names(out: Path) -> set[str]:
    return {name for name in published(out) if "articles/" in name}


def objects_under_articles(out: Path) -> set[str]:
    return {"articles/" + p.name for p in (out / "objects" / "articles").iterdir() if not p.name.startswith(".tmp-")}


@pytest.fixture
def built(tmp_path: Path, config) -> Builder:
    corpus(tmp_path / "seeds", 300)
    builder = Builder(config(article_pages=True, max_entries=20, archive_page_size=20))
    assert builder.build().published
    return builder


def test_pages_are_in_shards_not_in_the_manifests_rows(tmp_path: Path, built: Builder) -> None:
    out = tmp_path / "out"
    manifest = read_manifest(out)
    assert manifest is not None
    assert not [name for name in manifest["documents"] if "articles/" in name]
    assert len(article_names(out)) == 300
    # One shard per first two hex digits of the key: 300 pages fill most of the 256.
    assert 150 < len(manifest["articles"]) <= 256
    # Each shard holds exactly the pages whose names it is named for.
    typed = load_manifest(out)
    assert typed is not None
    for name in article_names(out):
        assert shard_of(name) in typed.articles
    # A page's objects are under objects/articles/, not among the documents' objects.
    rows = published(out)
    assert all(rows[name].object.startswith("articles/") for name in article_names(out))
    assert not any(p.name.endswith(".html") for p in (out / "objects").iterdir())


def test_one_new_article_rewrites_the_shards_of_its_page_and_its_neighbours_only(
    tmp_path: Path, built: Builder
) -> None:
    out = tmp_path / "out"
    before = load_manifest(out)
    assert before is not None
    write_seed(tmp_path / "seeds", "new.txt", STAMP + 400 * HOUR, "New", "https://e.com/new", "<p>new</p>")
    assert built.build().published
    after = load_manifest(out)
    assert after is not None
    names = before.articles.keys() | after.articles.keys()
    changed = {n for n in names if before.articles.get(n) != after.articles.get(n)}
    assert 1 <= len(changed) <= 2  # the new page's shard, and its older neighbour's (its newer link)
    assert len(article_names(out)) == 301


def test_what_the_index_stops_naming_outlives_one_publish_then_goes(tmp_path: Path, built: Builder) -> None:
    out = tmp_path / "out"
    first = published(out)
    gone = "https://e.com/150"
    write_seed(tmp_path / "seeds", "150.txt", STAMP + 150 * HOUR, "T 150 edited", gone, "<p>edited</p>")
    assert built.build().published
    second = published(out)
    replaced = {n for n in first if "articles/" in n and n in second and first[n].object != second[n].object}
    assert len(replaced) == 3  # the edited page and its neighbours' (their links say its title)
    old_objects = {o for n in replaced for o in first[n].objects}
    # Still there: a reader may have read the previous version's manifest just before the switch.
    assert old_objects <= objects_under_articles(out)
    assert set(load_manifest(out).released) >= old_objects  # type: ignore[union-attr]
    write_seed(tmp_path / "seeds", "new.txt", STAMP + 400 * HOUR, "New", "https://e.com/new", "<p>new</p>")
    assert built.build().published
    assert not old_objects & objects_under_articles(out)
    # Nothing the current version names was collected, and nothing is left that no version names.
    current = published(out)
    named = {o for n in article_names(out) for o in current[n].objects}
    assert named <= objects_under_articles(out)
    manifest = load_manifest(out)
    assert manifest is not None
    shards = {f"articles/{s.object}.json" for s in manifest.articles.values()}
    assert objects_under_articles(out) == named | shards | set(manifest.released)


def test_a_removed_article_takes_its_page_with_it(tmp_path: Path, built: Builder) -> None:
    out = tmp_path / "out"
    (tmp_path / "seeds" / "010.txt").unlink()
    assert built.build().published
    assert len(article_names(out)) == 299


def test_switching_pages_off_empties_the_index(tmp_path: Path, built: Builder, config) -> None:
    out = tmp_path / "out"
    assert Builder(config(article_pages=False, max_entries=20, archive_page_size=20)).build().published
    assert article_names(out) == set()
    assert "articles" not in (read_manifest(out) or {})


def test_a_plan_made_from_another_index_is_stale_and_the_builder_renders_again(
    tmp_path: Path, built: Builder, config
) -> None:
    out = tmp_path / "out"
    manifest = load_manifest(out)
    assert manifest is not None
    name = next(iter(manifest.articles))
    with pytest.raises(Stale):
        publish_manifest(out, [], articles=[ArticleShard(name, "not its key")])
    with pytest.raises(Stale):
        publish_manifest(out, [], articles=[ArticleShard(name, written=manifest.articles[name], base="another")])
    # Another writer (a second builder on the same folder) publishes between two of this one's builds.
    other = Builder(config(article_pages=True, max_entries=20, archive_page_size=20))
    write_seed(tmp_path / "seeds", "a.txt", STAMP + 401 * HOUR, "A", "https://e.com/a", "<p>a</p>")
    assert other.build().published
    write_seed(tmp_path / "seeds", "b.txt", STAMP + 402 * HOUR, "B", "https://e.com/b", "<p>b</p>")
    assert built.build().published
    rows = published(out)
    assert len(article_names(out)) == 302
    for page in article_names(out):
        assert all((out / "objects" / o).is_file() for o in rows[page].objects)


def test_a_new_row_whose_objects_are_gone_is_stale(tmp_path: Path) -> None:
    """A publish collected an object between this build's finding it there and its publish."""
    from datetime import UTC, datetime

    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert publish_manifest(tmp_path, [Document("feed.xml", b"<feed/>", "application/atom+xml", when)])
    doc = Document("articles/0123456789abcdef0123.html", b"<p>x</p>", "text/html; charset=utf-8", when, "k",
                   in_memory=False)
    [stored] = store_many(tmp_path, [doc])
    shard = shard_of(doc.name)
    written = write_shards(tmp_path, {shard: {doc.name: stored.row}})
    (tmp_path / "objects" / stored.row.object).unlink()
    with pytest.raises(Stale):
        publish_manifest(tmp_path, [], articles=[ArticleShard(shard, written=written[shard])])
    (tmp_path / "objects" / stored.row.object).write_bytes(doc.body)
    assert publish_manifest(tmp_path, [], articles=[ArticleShard(shard, written=written[shard])])


def test_a_web_process_finds_a_page_through_its_shard_and_keeps_few(tmp_path: Path, built: Builder) -> None:
    out = tmp_path / "out"
    store = PublishedStore(out)
    snapshot = store.snapshot
    assert snapshot is not None
    rows = published(out)
    pages = sorted(article_names(out))
    for page in pages:
        served = snapshot.get(page)
        assert served is not None and served.identity.etag == rows[page].etag
        assert served.identity.body == (out / "objects" / rows[page].object).read_bytes()
        assert served.content_type.startswith("text/html")
    unknown = "articles/" + "0" * 20 + ".html"
    assert unknown not in rows and snapshot.get(unknown) is None
    assert snapshot.get("articles/zz.html") is None
    assert snapshot.shards is not None and len(snapshot.shards._held) == snapshot.shards.keep


def test_shards_held_are_bounded_and_a_collected_shard_raises(tmp_path: Path, built: Builder) -> None:
    out = tmp_path / "out"
    manifest = load_manifest(out)
    assert manifest is not None
    shards = Shards(out, keep=4)
    for shard in list(manifest.articles.values())[:10]:
        assert shards.rows(shard)
    assert len(shards._held) == 4
    victim = list(manifest.articles.values())[20]
    (out / "objects" / "articles" / f"{victim.object}.json").unlink()
    with pytest.raises(OSError):
        shards.rows(victim)


def test_the_manifest_grows_by_its_shard_names_only(tmp_path: Path, config) -> None:
    corpus(tmp_path / "seeds", 600)
    sizes = {}
    for pages in (False, True):
        out = tmp_path / f"out-{pages}"
        assert Builder(config(article_pages=pages, output_dir=str(out), archive_page_size=20)).build().published
        sizes[pages] = len((out / "manifest.json").read_bytes())
    assert len(article_names(tmp_path / "out-True")) == 600
    # 600 pages as rows would be about 600 KB; as shards, at most 256 names of ~150 bytes.
    assert sizes[True] - sizes[False] < 256 * 150


def test_a_publish_without_pages_keeps_the_index_as_published(tmp_path: Path, built: Builder) -> None:
    """A cold start's first publish renders no pages: the ones published stay served meanwhile."""
    from datetime import UTC, datetime

    out = tmp_path / "out"
    before = load_manifest(out)
    pages = published(out)
    feed = Document("feed.xml", b"<feed>first</feed>", "application/atom+xml; charset=utf-8",
                    datetime(2024, 1, 1, tzinfo=UTC))
    manifest = publish_manifest(out, [feed], articles=None)
    assert manifest is not None and before is not None
    assert manifest.articles == before.articles and manifest.released == ()
    after = published(out)
    assert {n: r for n, r in after.items() if "articles/" in n} == {n: r for n, r in pages.items() if "articles/" in n}
    assert all((out / "objects" / o).is_file() for n, r in after.items() if "articles/" in n for o in r.objects)


def test_the_build_after_one_that_died_storing_pages_sweeps_what_it_left(tmp_path: Path, built: Builder) -> None:
    import os

    folder = tmp_path / "out" / "objects" / "articles"
    assert not (tmp_path / "out" / ".storing-articles").exists()  # a build that published takes it away
    orphan = folder / ("ab" * 32)  # a page object a killed build stored and never published
    orphan.write_bytes(b"<p>orphan</p>")
    (tmp_path / "out" / ".storing-articles").touch()  # and the mark it left
    dead = folder / ".tmp-999999999-x"  # a temp file of a writer that is gone
    dead.write_bytes(b"half")
    running = folder / f".tmp-{os.getppid()}-y"  # of a process still running (it may be storing pages)
    running.write_bytes(b"half")
    fresh = Builder(built.config)
    write_seed(tmp_path / "seeds", "new.txt", STAMP + 400 * HOUR, "New", "https://e.com/new", "<p>new</p>")
    assert fresh.build().published
    assert not orphan.exists() and not dead.exists() and running.exists()
    assert not (tmp_path / "out" / ".storing-articles").exists()
    named = {o for n in article_names(tmp_path / "out") for o in published(tmp_path / "out")[n].objects}
    assert named <= objects_under_articles(tmp_path / "out")
    # Without the mark, a build does not read every shard: nothing died storing pages.
    orphan.write_bytes(b"<p>orphan</p>")
    write_seed(tmp_path / "seeds", "newer.txt", STAMP + 401 * HOUR, "Newer", "https://e.com/newer", "<p>n</p>")
    assert fresh.build().published
    assert orphan.exists()


@pytest.mark.live
def test_pages_rendered_by_the_worker_processes_are_the_pages_rendered_here(tmp_path: Path) -> None:
    """The workers link neighbours from their headlines (no content loaded, the title converted as
    the feed converts it): the same bytes as pages rendered in the builder's process."""
    from feedsvc.config import load_config

    seeds = tmp_path / "seeds"
    for i in range(150):
        write_seed(seeds, f"{i:03}.txt", STAMP + i * HOUR, f"國際 {i}", f"https://e.com/{i}", f"<p>經濟 {i}</p>")
    bodies = []
    for workers in (2, 1):
        out = tmp_path / f"out-{workers}"
        toml = tmp_path / f"{workers}.toml"
        toml.write_text(f'seeds_dir = "{seeds}"\noutput_dir = "{out}"\nbase_url = "https://e.org/"\n'
                        f'build_workers = {workers}\n[[feeds]]\nname = "simple"\nconvert = "t2s"\n')
        builder = Builder(load_config(toml, env={}))
        try:
            assert builder.build().published
        finally:
            builder.close()
        bodies.append({n: b for n, b in published_bodies(out).items() if "articles/" in n})
    pooled, here = bodies
    assert len(pooled) == 300  # the top-level pages and the converted feed's
    assert pooled == here
    converted = [b.decode() for n, b in pooled.items() if n.startswith("simple/")]
    assert all("国际" in body and "國際" not in body for body in converted)  # neighbours' titles too


def test_headlines_are_entries_without_their_content(tmp_path: Path, built: Builder) -> None:
    from feedsvc.pipeline.cache import SqliteCache

    cache = SqliteCache(tmp_path / "out" / "cache.sqlite3", readonly=True)
    assert built.memory.records is not None
    keys = [r.key for r in built.memory.records.values() if r.id is not None][:20]
    full, short = cache.entries(keys), cache.headlines(keys)
    assert full.keys() == short.keys() and len(short) == 20
    for key, entry in full.items():
        assert (short[key].id, short[key].title, short[key].link, short[key].updated) == (
            entry.id, entry.title, entry.link, entry.updated)
        assert short[key].content_html == "" and entry.content_html
