"""Entry pages' cost (issue 23): a cold build, a rebuild after one change, the files a new
article republishes, and the output folder's size, with and without `article_pages`.

    python -m benchmarks.pages [--sizes 2000,5000] [--workdir DIR]

For each size a corpus (benchmarks/corpus.py) is built by `feedsvc build` processes, with pages
and without, alternately, each into its own output folder (wall time and peak RSS of the
process; the best of `--repeats` cold builds). Then one of the newest articles is edited and both
folders are rebuilt (new processes), and one new article is added and built: the documents whose
bytes changed are counted from the manifests and the entry pages' index. Last, a web process
loads each folder and answers 500 entry pages (time, and the process's peak RSS).
Asserts nothing about speed (the machine may be shared and noisy).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import write_corpus
from benchmarks.run import feedsvc_build, touch_one
from feedsvc.publish.layout import load_manifest, published_rows

MODES = {"without pages": "false", "with pages": "true"}


def etags(out: Path) -> dict[str, str]:
    """Every published document's ETag: the manifest's rows and the entry pages' index."""
    manifest = load_manifest(out)
    assert manifest is not None
    return {name: row.etag for name, row in published_rows(out, manifest).items()}


def folder_mib(path: Path) -> float:
    total = sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())
    return total / 2**20


def new_article(seeds: Path) -> None:
    stamp = int(time.time() * 1000)
    (seeds / "zz-new.txt").write_text(
        f"<!--{stamp}-->\n[A new article](https://example.org/new/{stamp})\n------\n\n<p>New.</p>\n", encoding="utf-8"
    )


def measure(size: int, work: Path, repeats: int) -> dict[str, dict[str, float]]:
    seeds = work / f"seeds-{size}"
    write_corpus(seeds, size)
    figures: dict[str, dict[str, float]] = {mode: {} for mode in MODES}
    for _round in range(repeats):
        for mode, on in MODES.items():
            out = work / f"out-{size}-{on}"
            shutil.rmtree(out, ignore_errors=True)
            wall, rss, _ = feedsvc_build(seeds, out, FEEDSVC_ARTICLE_PAGES=on)
            best = figures[mode]
            best["cold s"] = min(best.get("cold s", wall), wall)
            best["cold peak MiB"] = max(best.get("cold peak MiB", 0.0), rss)
    touch_one(seeds, 1)
    for mode, on in MODES.items():
        wall, rss, _ = feedsvc_build(seeds, work / f"out-{size}-{on}", FEEDSVC_ARTICLE_PAGES=on)
        figures[mode].update({"rebuild s": wall, "rebuild peak MiB": rss})
    new_article(seeds)
    for mode, on in MODES.items():
        out = work / f"out-{size}-{on}"
        before = etags(out)
        feedsvc_build(seeds, out, FEEDSVC_ARTICLE_PAGES=on)
        after = etags(out)
        figures[mode]["documents changed by a new article"] = len(
            [n for n in after.keys() | before.keys() if before.get(n) != after.get(n)]
        )
        figures[mode]["output MiB"] = folder_mib(out)
        figures[mode]["manifest.json MiB"] = (out / "manifest.json").stat().st_size / 2**20
        figures[mode]["documents"] = len(after)
        seconds, mib = web_process(out, 500 if on == "true" else 0)
        figures[mode]["web process: load and 500 pages, s"] = seconds
        figures[mode]["web process: peak MiB"] = mib
    return figures


# A web process's view of an output folder, in a fresh process: load the manifest
# (`PublishedStore`), then answer `asks` entry pages picked across the index (each found through
# its shard, as the responder does): (seconds, peak RSS MiB).
_WEB_PROBE = """
import json, sys, time
from pathlib import Path
from feedsvc.publish.layout import load_manifest, shard_path
from feedsvc.publish.reader import PublishedStore
out, asks = Path(sys.argv[1]), int(sys.argv[2])
manifest = load_manifest(out)
shards = sorted(manifest.articles.values(), key=lambda s: s.object)[: max(1, asks // 10)] if asks else []
pages = []
for shard in shards:  # a few names from each of a few shards: the probe holds no index of its own
    pages += sorted(json.loads(shard_path(out, shard).read_bytes()))[:10]
started = time.perf_counter()
store = PublishedStore(out)
snapshot = store.snapshot
for name in pages[:asks]:
    assert snapshot.get(name).identity.body
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(time.perf_counter() - started, int(peak.split()[1]) / 1024)
"""


def web_process(out: Path, asks: int) -> tuple[float, float]:
    """(seconds, the probe process's peak RSS in MiB) of a web process's load and `asks` page answers.
    The peak is VmHWM, this process's own: ru_maxrss would count the benchmark's process it was
    forked from."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _WEB_PROBE, str(out), str(asks)],
                          capture_output=True, text=True, check=True)
    seconds, rss = (float(x) for x in done.stdout.split())
    return seconds, rss


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,5000", help='"" for none')
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedsvc-pages-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            figures = measure(size, work, args.repeats)
            print(f"\n## {size} seeds ({os.cpu_count()} CPUs)\n")
            print("| figure | " + " | ".join(MODES) + " | ratio |")
            print("| --- | " + " | ".join("---:" for _ in MODES) + " | ---: |")
            without, with_pages = figures["without pages"], figures["with pages"]
            for key in without:
                ratio = with_pages[key] / without[key] if without[key] else float("nan")
                print(f"| {key} | {without[key]:.2f} | {with_pages[key]:.2f} | {ratio:.2f}× |", flush=True)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
