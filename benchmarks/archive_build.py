"""Rendering cost of a long history: every document for N entries, cold and after one new article.

    python benchmarks/archive_build.py [N] [PAGE_SIZE]

Prints figures; asserts nothing about speed (the machine may be shared and noisy). Shows what the
archive page cache buys: after one new article only the newest page(s) are rendered again.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

from feedsvc.core.choose import select_entries
from feedsvc.core.entry import make_entry
from feedsvc.core.render.documents import render_all
from feedsvc.model import Article, FeedMeta

BASE = "https://feeds.example.org/"
META = FeedMeta(id=BASE + "feed.xml", title="T", self_url=BASE + "feed.xml", alternate_url=BASE,
                stylesheet="/feed.xsl", hub="https://hub.example.net/")
T0 = datetime(2020, 1, 1, tzinfo=UTC)
BODY = "<p>" + "Lorem ipsum dolor sit amet. " * 60 + '</p><img src="https://img.example/x.jpg">'


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    page_size = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    made = [make_entry(Article(f"{i}.txt", f"Article {i}", f"https://e.com/{i}", None, T0 + timedelta(hours=i), BODY))
            for i in range(n + 1)]
    before, after = select_entries(made[:n]), select_entries(made)

    started = time.perf_counter()
    docs = render_all(META, before, 50, page_size)
    cold = time.perf_counter() - started
    started = time.perf_counter()
    again = render_all(META, after, 50, page_size)
    warm = time.perf_counter() - started

    old = {d.name: d.body for d in docs}
    changed = [d.name for d in again if old.get(d.name) != d.body]
    size = sum(len(d.body) for d in again)
    print(f"{n} entries, pages of {page_size}: {len(docs)} documents, {size / 1e6:.1f} MB in all")
    print(f"cold render of every document: {cold * 1000:.0f} ms")
    print(f"after one new article:         {warm * 1000:.0f} ms, {len(changed)} documents changed: {changed}")


if __name__ == "__main__":
    main()
