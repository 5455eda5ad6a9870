"""`pipeline/page_keys.py`: keyed from the last build, a feed's pages get exactly the keys, names,
shards and shard keys they get keyed afresh, whatever moved; and only the pages that moved are
hashed again. No process started."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

import feedsvc.pipeline.page_keys as page_keys
from feedsvc.model import Feed, FeedMeta, Record
from feedsvc.pipeline.page_keys import key_pages

META = FeedMeta("urn:x", "X", "https://e.org/feed.xml", "https://e.org/", pages_url="https://e.org/articles/")
FEED = Feed("", META, 20)
START = datetime(2024, 1, 1, tzinfo=UTC)


def record(n: int, version: int = 0) -> Record:
    when = START + timedelta(hours=n)
    return Record(f"{n}.txt", f"sha{n}", f"{n:03}-{version:061}", f"https://e.org/{n}", None, when, when)


def same(a: page_keys.Keyed, b: page_keys.Keyed) -> None:
    assert (a.keys, a.names, a.shards, a.shard_keys, a.groups) == (b.keys, b.names, b.shards, b.shard_keys, b.groups)


def edits(order: list[Record], rng: random.Random) -> list[tuple[str, list[Record]]]:
    top = record(10_000)
    middle = len(order) // 2
    return [
        ("nothing", list(order)),
        ("a new newest", [top, *order]),
        ("a late one in the middle", [*order[:middle], record(20_000), *order[middle:]]),
        ("an oldest", [*order, record(30_000)]),
        ("one removed", order[:middle] + order[middle + 1 :]),
        ("the newest removed", order[1:]),
        ("one edited", [*order[:middle], *[record(int(r.rel[:-4]), 1) for r in order[middle : middle + 1]],
                        *order[middle + 1 :]]),
        ("two swapped", [*order[:3], *order[3:5][::-1], *order[5:]]),
        ("many scattered", [r if rng.random() > 0.1 else record(int(r.rel[:-4]), 2) for r in order]),
        ("all new", [record(n + 50_000) for n in range(len(order))]),
        ("empty", []),
    ]


@pytest.mark.parametrize("size", [1, 2, 3, 600])
def test_keyed_from_the_last_build_is_keyed_afresh(size: int) -> None:
    rng = random.Random(size)
    order = [record(n) for n in reversed(range(size))]
    last = key_pages(FEED, order, None)
    for what, changed in edits(order, rng):
        again = key_pages(FEED, changed, last)
        same(again, key_pages(FEED, changed, None))
        # And the next build from this one, too (a chain of file events).
        follow = [record(90_000 + size), *changed]
        same(key_pages(FEED, follow, again), key_pages(FEED, follow, None)), what


def test_only_what_moved_is_hashed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    order = [record(n) for n in reversed(range(600))]
    last = key_pages(FEED, order, None)
    named: list[str] = []
    real = page_keys.article_name
    monkeypatch.setattr(page_keys, "article_name", lambda entry, prefix="": named.append(entry) or real(entry, prefix))
    again = key_pages(FEED, [record(10_000), *order], last)
    assert named == ["https://e.org/10000", "https://e.org/599"]  # the new page, and the one it displaced
    assert again.moved is not None and len(again.moved) <= 2
    # A new feed title changes every page: nothing is taken from the last build.
    renamed = Feed("", FeedMeta("urn:x", "Y", META.self_url, META.alternate_url, pages_url=META.pages_url), 20)
    named.clear()
    fresh = key_pages(renamed, order, last)
    assert len(named) == 600 and fresh.moved is None and fresh.keys != last.keys
