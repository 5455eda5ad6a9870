"""The cost of processing every file in a helper process (the per-file time budget, issue 21) on
small rebuilds: a Builder in this process, a corpus of N files built once, then rebuilds after
one changed file as a file event names it (the ≤ 100 ms target) and as a full rescan finds it; and
one file processed in this process against through the helper kept between builds.

    python -m benchmarks.seed_budget --size 1000            # this checkout
    cd /tmp && PYTHONPATH=/path/to/checkout python /path/to/this/benchmarks/seed_budget.py   # another one

Measured on a shared 2-core machine (load 4-5), 1000 files, bleach, before → after helpers:
rebuild after one change on a file event, median 52-68 ms → 48-83 ms (noise dominates); one
file processed, 1.5-2.5 ms in the builder → 2.3-2.8 ms through the kept helper (+0.5-1 ms).

Run each a few times on a quiet machine: the figures are medians of `--repeats` rebuilds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import write_corpus
from benchmarks.run import touch_one


def measure(size: int, repeats: int) -> dict[str, float]:
    import feedsvc
    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    print(f"feedsvc from {Path(feedsvc.__file__).parent}")
    with tempfile.TemporaryDirectory() as work:
        seeds, out = Path(work) / "seeds", Path(work) / "out"
        write_corpus(seeds, size)
        config = load_config(Path("/dev/null"), env={}, overrides={"seeds_dir": str(seeds), "output_dir": str(out)})
        builder = Builder(config)
        started = time.perf_counter()
        builder.build()
        cold = time.perf_counter() - started
        hinted, scanned = [], []
        for n in range(repeats):
            path = touch_one(seeds, n + 10)
            started = time.perf_counter()
            assert builder.build(changed=[path.name]).changed == 1
            hinted.append(time.perf_counter() - started)
        for n in range(repeats):
            touch_one(seeds, n + 100)
            started = time.perf_counter()
            assert builder.build().changed == 1
            scanned.append(time.perf_counter() - started)
        builder.close()
    return {
        "cold build (s)": cold,
        "rebuild after 1 change, file event, median (ms)": statistics.median(hinted) * 1000,
        "rebuild after 1 change, file event, max (ms)": max(hinted) * 1000,
        "rebuild after 1 change, full rescan, median (ms)": statistics.median(scanned) * 1000,
    }


def round_trip(repeats: int) -> dict[str, float]:
    """One file processed in this process, and through the helper kept between builds."""
    from datetime import UTC, datetime

    from feedsvc.model import EntrySettings, SeedFile
    from feedsvc.pipeline.workers import Workers, process_files

    with tempfile.TemporaryDirectory() as work:
        (path,) = write_corpus(Path(work), 1)
        stat = path.stat()
        seed = SeedFile(str(path), path.name, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        data = path.read_bytes()
        settings, now = EntrySettings(), datetime.now(UTC)
        here, there = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            process_files([(seed, data)], settings, 1 << 20, now)
            here.append(time.perf_counter() - started)
            with Workers(settings, 1 << 20, now) as workers:
                started = time.perf_counter()
                list(workers.process([(seed, data)]))
                there.append(time.perf_counter() - started)
    return {
        "one file in this process, median (ms)": statistics.median(here) * 1000,
        "one file through Workers (the kept helper), median (ms)": statistics.median(there[1:]) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    figures = measure(args.size, args.repeats)
    figures.update(round_trip(args.repeats * 4))  # on a checkout without helpers: both in this process
    for name, value in figures.items():
        print(f"{name}: {value:.3g}")


if __name__ == "__main__":
    main()
