"""Entry pages' cost (issue 23): a cold build, a rebuild after one change, the files a new
article republishes, and the output folder's size, with and without `article_pages`.

    python -m benchmarks.pages [--sizes 2000,5000] [--workdir DIR]

For each size a corpus (benchmarks/corpus.py) is built by `feedsvc build` processes, with pages
and without, alternately, each into its own output folder (wall time and peak RSS of the
process; the best of `--repeats` cold builds). Then one of the newest articles is edited and both
folders are rebuilt (new processes), and one new article is added and built: the documents whose
bytes changed are counted from the manifests. Asserts nothing about speed (the machine may be
shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import write_corpus
from benchmarks.run import feedsvc_build, touch_one

MODES = {"without pages": "false", "with pages": "true"}


def etags(out: Path) -> dict[str, str]:
    return {name: row["etag"] for name, row in json.loads((out / "manifest.json").read_text())["documents"].items()}


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
    return figures


# One manifest of `rows` entry pages (and as many previous rows), made, written, read by the
# builder (`load_manifest`, as every publish does) and by a web process (`PublishedStore`), in a
# fresh process each: (seconds, peak RSS MiB).
_MANIFEST_PROBE = """
import json, resource, sys, time
from pathlib import Path
from feedsvc.publish.layout import ManifestRow, Manifest, load_manifest
from feedsvc.publish.reader import PublishedStore
out, rows, step = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if step == "write":
    (out / "objects").mkdir(parents=True, exist_ok=True)
    row = lambda i: ManifestRow(f"{i:064x}", f'"{i:032x}"', 3000, f"{i:064x}.gz", f'"{i+1:032x}"', 1400,
        "text/html; charset=utf-8", "2024-01-01T00:00:00+00:00", f"{i:064x}", in_memory=False)
    docs = {f"articles/{i:020x}.html": row(i) for i in range(rows)}
    started = time.perf_counter()
    manifest = Manifest(generation=1, published_at="x", documents=docs, previous=docs)
    (out / "manifest.json").write_bytes(json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode())
elif step == "builder":
    started = time.perf_counter()
    load_manifest(out)
else:
    started = time.perf_counter()
    PublishedStore(out).refresh()
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def manifest_scale(rows: int, work: Path) -> dict[str, float]:
    """The manifest's cost with `rows` entry pages in it (see `_MANIFEST_PROBE`)."""
    import subprocess
    import sys

    out = work / f"manifest-{rows}"
    figures: dict[str, float] = {}
    for step in ("write", "builder", "web"):
        done = subprocess.run([sys.executable, "-c", _MANIFEST_PROBE, str(out), str(rows), step],
                              capture_output=True, text=True, check=True)
        seconds, rss = (float(x) for x in done.stdout.split())
        figures[f"{step} s"], figures[f"{step} peak MiB"] = seconds, rss
    figures["manifest.json MiB"] = (out / "manifest.json").stat().st_size / 2**20
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,5000", help='"" for none')
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--manifest-rows", default="", help="e.g. 10000,100000: the manifest's cost alone")
    args = parser.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="feedsvc-pages-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for rows in [int(r) for r in args.manifest_rows.split(",") if r]:
            print(f"\n## a manifest with {rows} entry pages\n")
            for key, value in manifest_scale(rows, work).items():
                print(f"| {key} | {value:.2f} |", flush=True)
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
