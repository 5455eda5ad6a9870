"""The static tree's cost: a republish after one change, with and without `static_dir`.

    python -m benchmarks.static_tree [--count 10000] [--page-size 50] [--repeats 7] [--workdir DIR]

A corpus of `--count` seeds (benchmarks/corpus.py) is built once; its output folder is copied, so
that two builders (in-process, as the service runs them) start from the same published state:
one publishes only, the other also lays out the static tree. Then, alternately, each edit (one of
the newest articles: the feeds change; or an archived one: its archive page changes) is built by
both, from the file event's path. Prints the medians, the tree's size, and how many of its files
the last republish wrote (the others are the previous version's, hard-linked). Asserts nothing
about speed (the machine may be shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import write_corpus
from feedsvc.config import load_config
from feedsvc.pipeline.builder import Builder


def edit(path: Path, n: int) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"<p>edit {n} {time.time_ns()}</p>\n", encoding="utf-8")


def timed(builder: Builder, rel: str) -> float:
    started = time.perf_counter()
    result = builder.build(changed=[rel])
    elapsed = time.perf_counter() - started
    assert result.ok and result.published and result.changed == 1, result
    return elapsed


def tree_figures(static_dir: Path) -> tuple[int, int, int]:
    """(files, bytes, files new in this version: not the previous version's file, hard-linked)."""
    current = static_dir.resolve()
    versions = sorted((p for p in current.parent.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("-")[0]))
    previous = versions[-2] if len(versions) > 1 and versions[-1] == current else None
    files = size = new = 0
    for folder, _dirs, names in os.walk(current):
        for name in names:
            path = Path(folder, name)
            st = path.stat()
            before = previous / path.relative_to(current) if previous else None
            files, size = files + 1, size + st.st_size
            new += before is None or not before.exists() or before.stat().st_ino != st.st_ino
    return files, size, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="feedsvc-static-", dir=args.workdir))
    try:
        run(work, args.count, args.page_size, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, count: int, page_size: int, repeats: int) -> None:
    seeds, static_dir = work / "seeds", work / "www"
    paths = write_corpus(seeds, count)
    base = {"seeds_dir": str(seeds), "archive_page_size": page_size, "base_url": "https://feeds.example.org/"}

    def config(out: str, **extra: str) -> object:
        return load_config(os.devnull, env={}, overrides=base | {"output_dir": str(work / out)} | extra)

    started = time.perf_counter()
    Builder(config("plain")).build()
    print(f"{count} seeds, archive pages of {page_size}: cold build {time.perf_counter() - started:.1f} s")
    shutil.copytree(work / "plain", work / "static")
    plain, static = Builder(config("plain")), Builder(config("static", static_dir=str(static_dir)))
    plain.build()
    started = time.perf_counter()
    static.build()
    first = time.perf_counter() - started
    files, size, _ = tree_figures(static_dir)
    print(f"static tree: {files} files, {size / 1e6:.0f} MB; first layout (and a warm build) {first * 1000:.0f} ms")

    edits = (("one of the newest articles", lambda i: paths[-1 - i]), ("an archived article", lambda i: paths[i]))
    for kind, pick in edits:
        without, with_tree = [], []
        for i in range(repeats):
            path = pick(i)
            edit(path, i)
            rel = path.name
            if i % 2:
                with_tree.append(timed(static, rel))
                without.append(timed(plain, rel))
            else:
                without.append(timed(plain, rel))
                with_tree.append(timed(static, rel))
        files, _, fresh = tree_figures(static_dir)
        a, b = statistics.median(without) * 1000, statistics.median(with_tree) * 1000
        print(f"republish after editing {kind} (median of {repeats}):")
        print(f"  without the static tree {a:6.0f} ms")
        print(f"  with the static tree    {b:6.0f} ms  ({b - a:+.0f} ms; {fresh} of {files} files new, rest linked)")
    plain.close()
    static.close()


if __name__ == "__main__":
    main()
