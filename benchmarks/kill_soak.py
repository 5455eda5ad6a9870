"""SIGKILL the builder at random moments of many builds; the published state must always be whole.

    python benchmarks/kill_soak.py [--iterations 300] [--seconds 120] [--seed N]

Each iteration starts a child process that rebuilds and publishes in a tight loop (a churning
seed of ~100 KB rewritten before every build, beside the real sample), waits until it has
published at least once, then kills it with SIGKILL after a random delay. After every kill:

- `feed.xml` is a complete Atom document (valid against RFC 4287's RELAX NG schema) whose churn
  entry ends with its end marker: a whole earlier version, never a torn one;
- `manifest.json` parses, and each object it names exists and hashes to its ETag (identity and
  gzip), and the feed object is a valid feed too;
- leftovers are bounded: the temp files the kill interrupted (one write, or one batch of entry
  pages) are gone after the next child's publish, and there are no more objects than two
  versions plus one interrupted publish.

At the end one clean publish (sweeping, as a builder's first does) must remove every temp file
and every unreferenced object, the entry pages' too.
The test suite runs a shortened form (tests/test_kill_soak.py).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

CHURN = "churn.txt"
END = "END-OF-CHURN"


def churn_text(n: int) -> str:
    # Long text runs, few tags: cheap to sanitize, so most of a build's time is rendering and
    # publishing (~300 KB written per version), where a kill can tear something.
    body = "".join(f"<p>build {n} part {i} " + "lorem ipsum dolor " * 1500 + "</p>" for i in range(6))
    return f"<!--{1700000000000 + n * 1000}-->\n[Churn {n}](https://e.com/churn)\n------\n\n{body}<p>{END} {n}</p>\n"


def child(seeds: Path, out: Path) -> None:
    """Rebuild forever, a new version each time; prints 'published' after the first publish."""
    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    empty = Path(tempfile.mkstemp(suffix=".toml")[1])
    config = load_config(empty, env={}, overrides={"seeds_dir": str(seeds), "output_dir": str(out),
                                                   "base_url": "https://feeds.example.org/"})
    builder = Builder(config)
    n = int(time.time() * 1000) % 10_000_000
    announced = False
    while True:
        n += 1
        (seeds / CHURN).write_text(churn_text(n))
        result = builder.build()
        if result.published and not announced:
            print("published", flush=True)
            announced = True


def check_published(out: Path, earlier_temps: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every reason the published state is not one whole version (empty: it is). Temp files a
    killed writer left may be there (a batch of them: entry pages are written together), but not
    those already there after the previous kill (`earlier_temps`): each publish removes them."""
    from schemas import validate_atom

    from feedsvc.publish.layout import MANIFEST, OBJECTS, etag_for, read_manifest

    problems: list[str] = []

    def check_feed(label: str, body: bytes) -> None:
        errors = validate_atom(body)
        if errors:
            problems.append(f"{label} is not a valid feed: {errors[:2]}")
        elif END.encode() not in body:
            problems.append(f"{label} lacks the churn entry's end marker")

    feed = out / "feed.xml"
    if feed.exists():
        check_feed("feed.xml", feed.read_bytes())
    else:
        problems.append("feed.xml missing")
    if not (out / MANIFEST).exists():
        return [*problems, "manifest.json missing"]
    manifest = read_manifest(out)
    if manifest is None:
        return [*problems, "manifest.json unreadable"]
    for name, meta in manifest["documents"].items():
        try:
            body = (out / OBJECTS / meta["object"]).read_bytes()
            gz = (out / OBJECTS / meta["gzip_object"]).read_bytes()
        except OSError as exc:
            problems.append(f"{name}: object missing: {exc}")
            continue
        if etag_for(body) != meta["etag"] or etag_for(gz) != meta["gzip_etag"]:
            problems.append(f"{name}: object does not hash to its ETag")
        elif gzip.decompress(gz) != body:
            problems.append(f"{name}: gzip variant differs from the identity body")
        elif name == "feed.xml":
            check_feed("manifest's feed.xml", body)
    piled = sorted(set(temp_files(out)) & earlier_temps)
    if piled:
        problems.append(f"temp files pile up: {piled}")
    # Objects the current and previous versions use, plus at most one killed publish's worth.
    live = {doc[k] for docs in (manifest["documents"], manifest.get("previous", {}))
            for doc in docs.values() for k in ("object", "gzip_object")}
    stray = [p.name for p in (out / OBJECTS).iterdir() if p.name not in live and not p.is_dir()]
    if len(stray) > 2 * len(manifest["documents"]):
        problems.append(f"{len(stray)} unreferenced objects pile up")
    return problems


def temp_files(out: Path) -> list[str]:
    return [str(p.relative_to(out)) for p in out.rglob(".tmp-*")]


def stray_articles(out: Path) -> list[str]:
    """Entry pages' objects that no version a reader may read names (the index, or what it released)."""
    from feedsvc.publish.layout import ARTICLE_OBJECTS, OBJECTS, load_manifest, published_rows

    manifest = load_manifest(out)
    assert manifest is not None
    folder = out / OBJECTS / ARTICLE_OBJECTS
    if not folder.is_dir():
        return []
    live = set(manifest.released) | {f"{ARTICLE_OBJECTS}/{s.object}.json" for s in manifest.articles.values()}
    live |= {o for name, row in published_rows(out, manifest).items() if "articles/" in name for o in row.objects}
    return [p.name for p in folder.iterdir() if f"{ARTICLE_OBJECTS}/{p.name}" not in live]


def soak(work: Path, iterations: int, seconds: float, rng: random.Random, log=print) -> dict:
    """Kill a publishing child `iterations` times (or until `seconds` pass); returns counts and problems."""
    seeds, out = work / "seeds", work / "out"
    seeds.mkdir(parents=True, exist_ok=True)
    sample = REPO / "seeds" / "000_76cb3dcc68cf4183.txt"
    (seeds / sample.name).write_bytes(sample.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDSVC_")}
    deadline = time.monotonic() + seconds
    problems: list[str] = []
    kills = 0
    generations: set[int] = set()
    earlier: set[str] = set()
    while kills < iterations and time.monotonic() < deadline:
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(seeds), str(out)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the child has published once
            if line.strip() != b"published":
                problems.append(f"child exited early: {proc.wait(10)}")
                break
            time.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        kills += 1
        found = check_published(out, earlier)
        earlier = set(temp_files(out))
        manifest = json.loads((out / "manifest.json").read_bytes())
        generations.add(manifest["generation"])
        problems.extend(f"after kill {kills}: {p}" for p in found)
        if kills % 25 == 0:
            log(f"{kills} kills, generation {manifest['generation']}, {len(problems)} problems")

    # One clean publish afterwards: nothing of the killed writers may remain.
    from feedsvc.model import Document
    from feedsvc.publish.layout import OBJECTS, read_manifest
    from feedsvc.publish.writer import publish

    manifest = read_manifest(out)
    assert manifest is not None
    feed = (out / OBJECTS / manifest["documents"]["feed.xml"]["object"]).read_bytes()
    from datetime import UTC, datetime

    publish(out, [Document("feed.xml", feed + b"\n", "application/atom+xml; charset=utf-8",
                           datetime(2024, 1, 1, tzinfo=UTC))], sweep=True)
    leftovers = temp_files(out)
    if leftovers:
        problems.append(f"temp files survive a clean publish: {leftovers}")
    after = read_manifest(out)
    assert after is not None
    live = {doc[k] for docs in (after["documents"], after["previous"]) for doc in docs.values()
            for k in ("object", "gzip_object")}
    stray = [p.name for p in (out / OBJECTS).iterdir() if p.name not in live and not p.is_dir()]
    stray += stray_articles(out)
    if stray:
        problems.append(f"{len(stray)} unreferenced objects survive a clean publish")
    return {"kills": kills, "generations": len(generations), "problems": problems}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--child", nargs=2, metavar=("SEEDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return 0
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"kill soak: up to {args.iterations} kills in {args.seconds:.0f} s, random seed {seed}")
    with tempfile.TemporaryDirectory(prefix="feedsvc-kill-") as work:
        report = soak(Path(work), args.iterations, args.seconds, random.Random(seed))
    for problem in report["problems"]:
        print("PROBLEM:", problem)
    print(f"{report['kills']} kills, {report['generations']} distinct published generations seen, "
          f"{len(report['problems'])} problems")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
