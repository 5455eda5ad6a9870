"""The library calls a cold build cannot do without, timed one by one on one core.

A cold build with nh3 reads every file, sanitizes it with nh3 (with the policy's URL check as
nh3's attribute filter, as the build calls it), renders every archive page's Atom with feedgen,
compresses the pages, and writes every entry to the SQLite cache. This times exactly those calls,
on the corpus, one after the other, with nothing of the pipeline around them (no parsing beyond
what finds the bodies, no browser pages, no pipes, no process start): what is left of a cold
build's time, once everything that is ours is gone. Run as `python -m benchmarks.floor SEEDS`
(seconds as JSON), in a process of its own.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from feedsvc.config import Config
from feedsvc.core.entry import make_entry
from feedsvc.core.parse import parse_seed
from feedsvc.core.render.archive import page_paging
from feedsvc.core.render.atom import render_atom
from feedsvc.core.sanitize import nh3_backend
from feedsvc.model import Outcome, Page, Record, SeedFile
from feedsvc.pipeline.builder import feed_meta
from feedsvc.pipeline.cache import SqliteCache
from feedsvc.pipeline.workers import ARCHIVE_GZIP_LEVEL
from feedsvc.publish.layout import compress


def _timed(started: float) -> float:
    return time.perf_counter() - started


def floor(seeds: Path) -> dict[str, float]:
    config = Config(seeds_dir=seeds, output_dir=seeds, base_url="http://127.0.0.1/")
    paths = sorted(seeds.glob("*.txt"))
    started = time.perf_counter()
    data = [path.read_bytes() for path in paths]
    seconds = {"read the files": _timed(started)}
    articles = [parse_seed(raw, path.name) for raw, path in zip(data, paths, strict=True)]
    del data
    started = time.perf_counter()
    for article in articles:
        nh3_backend.clean(article.body_html, article.link)
    seconds["nh3, as the build calls it"] = _timed(started)
    entries = sorted((make_entry(a, nh3_backend.sanitize) for a in articles), key=lambda e: e.updated, reverse=True)
    size, meta = config.archive_page_size, feed_meta(config)  # pages of the full size (a month holds fewer)
    pages = [Page(n + 1, tuple(entries[i : i + size])) for n, i in enumerate(range(0, len(entries), size))]
    started = time.perf_counter()
    bodies = [render_atom(meta, page.entries, page_paging(meta, page)) for page in pages]
    seconds["feedgen: every archive page's Atom"] = _timed(started)
    started = time.perf_counter()
    for body in bodies:
        compress(body, ARCHIVE_GZIP_LEVEL)
    seconds["gzip of those pages"] = _timed(started)
    rows = [
        (Record.of(e.source, "0" * 64, f"{i:032x}", Outcome(e, None), SeedFile(e.source, e.source, 0, 0, 0)),
         Outcome(e, None))
        for i, e in enumerate(entries)
    ]
    with tempfile.TemporaryDirectory(prefix="feedsvc-floor-") as tmp:
        cache = SqliteCache(Path(tmp) / "cache.sqlite3")
        started = time.perf_counter()
        for start in range(0, len(rows), 1024):  # the build's batches
            cache.put(rows[start : start + 1024])
        seconds["SQLite: every entry into the cache"] = _timed(started)
        cache.close()
    return seconds


if __name__ == "__main__":
    print(json.dumps(floor(Path(sys.argv[1]))))
