"""RFC 5005 §4, an archive document's set of entries SHOULD NOT change: what one late article does to
the published pages of a 300-article corpus, counted in ETags from the manifest, and that the pages
are a function of the seeds alone (two builders, two histories, the same pages)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import REPO, published_bodies, published_etags, write_seed
from test_archive import walk

from feedsvc.core.routes import ARCHIVE_ROUTE
from feedsvc.pipeline.builder import Builder

SUBSCRIPTION = ("feed.xml", "feed.rss", "feed.json")


def write(seeds: Path, name: str, when: datetime) -> None:
    stamp = int(when.timestamp() * 1000)
    write_seed(seeds, name, stamp, f"Article {name}", f"https://e.com/{name}", f"<p>{name}</p>")


def corpus(seeds: Path, start: datetime, step: timedelta, count: int, prefix: str = "") -> None:
    for i in range(count):
        write(seeds, f"{prefix}{i:03}.txt", start + i * step)


etags = published_etags


def pages(published: dict[str, str]) -> list[str]:
    return sorted(name for name in published if ARCHIVE_ROUTE.fullmatch("/" + name))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """The documents whose ETag changed, appeared or went (a page's browser rendition, `<name>.html`,
    changes with it: it is checked to, and then counted as its page)."""
    names = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
    renditions = {name for name in names if name.endswith(".xml.html") or name.endswith(".rss.html")}
    assert {name[: -len(".html")] for name in renditions if name.startswith("archive/")} == {
        name for name in names if name.startswith("archive/") and name.endswith(".xml")}
    return names - renditions - articles(names)


def articles(names: set[str]) -> set[str]:
    """The entries' pages among `names` (test_articles.py)."""
    return {name for name in names if name.startswith("articles/")}


bodies = published_bodies


def cli_build(tmp_path: Path, seeds: Path, out: Path, **extra: str) -> None:
    """`feedsvc build` in a process of its own, with the same settings as the `config` fixture."""
    empty = tmp_path / "cli.toml"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    env |= {"FEEDSVC_CONFIG": str(empty), "FEEDSVC_BASE_URL": "https://feeds.example.org/", **extra}
    done = subprocess.run([sys.executable, "-m", "feedsvc", "build", "--seeds", str(seeds), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


DAILY = datetime(2023, 1, 1, 8, tzinfo=UTC)  # 300 articles, one a day: 2023-01-01 … 2023-10-27


def test_a_backdated_article_changes_only_its_page_and_its_neighbours(tmp_path: Path, config) -> None:
    """The issue's case: a backfill older than every entry changed all six pages. Now: its own page and the
    prev-archive link of the page after it; one into a month with a page, that page alone."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    corpus(seeds, DAILY, timedelta(days=1), 300)
    # max_entries 50, archive_page_size 50; entries' pages: test_articles.py
    builder = Builder(config(article_pages=False))
    assert builder.build().published
    before = etags(out)
    assert pages(before) == [f"archive/2023{m:02}001.xml" for m in range(1, 10)]  # 250 archived: Jan 1 - Sep 7

    write(seeds, "backfill.txt", datetime(2022, 12, 15, tzinfo=UTC))
    assert builder.build().published
    after = etags(out)
    assert changed(before, after) == {"archive/202212001.xml", "archive/202301001.xml"}

    write(seeds, "late.txt", datetime(2023, 5, 10, 12, tzinfo=UTC))
    assert builder.build().published
    before, after = after, etags(out)
    assert changed(before, after) == {"archive/202305001.xml"}

    # A new article at the top: the feed's oldest entry (September 8th) moves onto the newest page.
    write(seeds, "new.txt", datetime(2023, 10, 28, 12, tzinfo=UTC))
    assert builder.build().published
    before, after = after, etags(out)
    assert set(pages(changed(before, after))) == {"archive/202309001.xml"}
    assert set(SUBSCRIPTION) <= changed(before, after)

    seen = walk(bodies(out))  # each page valid Atom, its links consistent both ways
    assert len(seen) == len(set(seen)) == 303


@pytest.mark.live
def test_a_new_builder_and_a_new_process_change_only_those_pages(tmp_path: Path, config,
                                                                  count_archive_pages) -> None:
    """A restart knows the published pages from the manifest: it renders and changes the same pages only."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    corpus(seeds, DAILY, timedelta(days=1), 300)
    assert Builder(config(article_pages=True)).build().published
    before = etags(out)
    rendered = count_archive_pages()
    write(seeds, "backfill.txt", datetime(2022, 12, 15, tzinfo=UTC))
    assert Builder(config(article_pages=True)).build().published
    after = etags(out)
    assert changed(before, after) == {"archive/202212001.xml", "archive/202301001.xml"}
    assert sorted(rendered) == [202212001, 202301001]
    # The backfilled article (now the oldest) has a page, and its one neighbour's links change: nothing else.
    assert len(articles({n for n in before.keys() | after.keys() if before.get(n) != after.get(n)})) == 2

    write(seeds, "late.txt", datetime(2023, 5, 10, 12, tzinfo=UTC))
    cli_build(tmp_path, seeds, out, FEEDSVC_ARTICLE_PAGES="true")
    before, after = after, etags(out)
    assert changed(before, after) == {"archive/202305001.xml"}
    assert set(SUBSCRIPTION) <= after.keys() and {after[n] for n in SUBSCRIPTION} == {before[n] for n in SUBSCRIPTION}


def landed_on(out: Path, name: str) -> str:
    """The archive page that holds the article of seed `name`."""
    found = [page for page, body in bodies(out).items()
             if page.startswith("archive/") and page.endswith(".xml") and name.encode() in body]
    assert len(found) == 1, found
    return found[0]


def in_time_order(out: Path) -> list[str]:
    """The archive pages as a reader walks them, newest first (prev-archive from /feed.xml)."""
    docs, order, name = bodies(out), [], "feed.xml"
    for _ in range(len(docs)):
        link = re.search(rb'<link href="https://feeds.example.org/(archive/\d+\.xml)" rel="prev-archive"', docs[name])
        if link is None:
            return order
        name = link.group(1).decode()
        order.append(name)
    raise AssertionError("the prev-archive chain loops")


def test_in_a_month_of_several_pages_only_the_late_articles_piece_changes(tmp_path: Path, config) -> None:
    """The issue's corpus shape: 301 hourly articles, 251 archived in pages of 50. A backfill into an earlier
    month opens a page of its own; one into a month of several pages changes the piece of time it falls in
    (or splits that piece into its halves), plus the links of the pages next to a page that appeared."""
    seeds, out = tmp_path / "seeds", tmp_path / "out"
    corpus(seeds, datetime(2023, 1, 25, tzinfo=UTC), timedelta(hours=1), 301)
    builder = Builder(config(article_pages=False))
    assert builder.build().published
    before = etags(out)
    # January 25-31: 168 entries; February 1-4: 83. Each month is cut into pieces of time of at most 50.
    assert {name[8:14] for name in pages(before)} == {"202301", "202302"} and len(pages(before)) >= 6
    write(seeds, "backfill.txt", datetime(2022, 12, 20, tzinfo=UTC))
    assert builder.build().published
    after = etags(out)
    oldest_january = in_time_order(out)[-2]
    assert changed(before, after) == {"archive/202212001.xml", oldest_january}  # was: all six

    write(seeds, "late.txt", datetime(2023, 1, 29, 12, 30, tzinfo=UTC))  # into the middle of January
    assert builder.build().published
    before, after = after, etags(out)
    landed = landed_on(out, "late.txt")
    order = in_time_order(out)
    appeared = set(pages(after)) - set(pages(before))
    neighbours = {order[i + d] for i, page in enumerate(order) if page in appeared for d in (-1, 1)
                  if 0 <= i + d < len(order)}
    assert landed in changed(before, after) and changed(before, after) <= {landed} | appeared | neighbours | (
        set(pages(before)) - set(pages(after)))
    assert len(changed(before, after)) <= 5 and not any(name.startswith("archive/202302") for name in
                                                         changed(before, after) - neighbours)
    seen = walk(bodies(out))
    assert len(seen) == len(set(seen)) == 303


@pytest.mark.live
def test_two_builders_build_the_same_pages(tmp_path: Path, config) -> None:
    """Pages are a function of the seeds alone: a builder that saw the seeds arrive in three batches, in a
    shuffled order, and a cold `feedsvc build` in another process (whose pool renders the pages) publish
    the same archive pages, names and bytes. The corpus has a month of three pages and an empty year."""
    everything = tmp_path / "all"
    corpus(everything, datetime(2022, 1, 3, tzinfo=UTC), timedelta(hours=2), 120, "a")  # 120 in January 2022
    corpus(everything, DAILY, timedelta(days=1), 300, "b")
    names = sorted(p.name for p in everything.iterdir())
    random.Random(14).shuffle(names)
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    builder = Builder(config(output_dir=str(tmp_path / "one")))
    for batch in (names[:150], names[150:300], names[300:]):
        for name in batch:
            (seeds / name).write_bytes((everything / name).read_bytes())
        assert builder.build().published
    cli_build(tmp_path, everything, tmp_path / "two")

    one, two = bodies(tmp_path / "one"), bodies(tmp_path / "two")
    archive = pages(one)
    assert archive == pages(two)
    # January 2022's 120 articles are cut into pieces of time (at least three pages); then a page a month.
    assert sum(name.startswith("archive/202201") for name in archive) >= 3
    assert {name for name in archive if not name.startswith("archive/202201")} == {
        f"archive/2023{m:02}001.xml" for m in range(1, 10)}
    assert [one[name] for name in archive] == [two[name] for name in archive]
    assert etags(tmp_path / "one") == etags(tmp_path / "two")  # and every other document too
    seen = walk(one)
    assert len(seen) == len(set(seen)) == 420
