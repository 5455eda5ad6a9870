"""Fuzz parse → sanitize → render with atheris (libFuzzer), for a bounded time.

    python benchmarks/fuzz_pipeline.py [--seconds 300] [-- extra libFuzzer flags]

One input is a seed file's bytes. `check_one` runs it through the pure core: parse_seed (a
SeedError is a fine answer), make_entry (sanitize), render_atom and render_index; the feed must
then be well-formed XML and the entry's content inert as a browser parses it (tests/browser_eye.py).
Anything else raising is a crash. libFuzzer writes crashing inputs to tests/data/fuzz_crashes/,
and tests/test_fuzz.py replays every file there: a crash found once stays a regression test.

The start corpus (copied to a temp folder, so new inputs never litter the repo) is the real seed
plus a few XSS vectors as seeds. Without atheris (no wheel for this platform), the script says so
and falls back to random mutations of that corpus through the same `check_one`, for the same time.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
CRASHES = REPO / "tests" / "data" / "fuzz_crashes"

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the platform's wheels
    atheris = None

from browser_eye import inert_problems  # noqa: E402
from lxml import etree  # noqa: E402

CORE = ("feedsvc.core.parse", "feedsvc.core.sanitize.bleach_backend", "feedsvc.core.urls", "feedsvc.core.entry",
        "feedsvc.core.render.atom", "feedsvc.core.render.html")


def load_core(instrument: bool) -> None:
    """Import the core, with atheris's coverage instrumentation when fuzzing (it must come first)."""
    import importlib

    if instrument and atheris is not None:
        with atheris.instrument_imports():
            for name in CORE:
                importlib.import_module(name)
    else:
        for name in CORE:
            importlib.import_module(name)


SELF = "https://feeds.example.org/feed.xml"
META_ARGS: dict[str, Any] = {"id": SELF, "title": "fuzz", "self_url": SELF, "alternate_url": "https://feeds.example.org/"}
MTIME = datetime(2024, 1, 1, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def check_one(data: bytes) -> None:
    """One input through the core; raises on anything but a clean result or a SeedError."""
    from feedsvc.core.entry import make_entry
    from feedsvc.core.parse import SeedError, parse_seed
    from feedsvc.core.render.atom import render_atom
    from feedsvc.core.render.html import render_index
    from feedsvc.model import FeedMeta

    meta = FeedMeta(**META_ARGS)
    try:
        article = parse_seed(data, "fuzz.txt", MTIME, max_article_bytes=64 * 1024)
    except SeedError:
        return
    entry = make_entry(article)
    feed = render_atom(meta, [entry])
    render_index(meta, [entry])
    root = etree.fromstring(feed, etree.XMLParser(resolve_entities=False, no_network=True))
    content = root.find(f"{ATOM}entry/{ATOM}content")
    html = content.text or "" if content is not None else ""
    problems = inert_problems(html)
    if problems:
        raise AssertionError(f"executable content survived: {problems[:3]} in {html[:200]!r}")


def start_corpus(folder: Path) -> None:
    """The real seed and a few XSS vectors wrapped as seeds."""
    sample = REPO / "seeds" / "000_76cb3dcc68cf4183.txt"
    shutil.copy(sample, folder / "sample.txt")
    vectors = json.loads((REPO / "tests" / "data" / "xss_vectors.json").read_text(encoding="utf-8"))
    for n, item in enumerate(vectors[::25]):
        (folder / f"xss-{n}.txt").write_text(f"<!--1681696026000-->\n[x](https://e.com/{n})\n------\n\n{item['html']}\n")
    for crash in sorted(CRASHES.glob("*")) if CRASHES.is_dir() else []:
        if crash.is_file() and not crash.name.startswith("."):
            shutil.copy(crash, folder / f"crash-{crash.name}")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """A small random edit: flip, insert, delete, splice or duplicate bytes."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = bytes(rng.choice([b"<", b">", b"\x00", b"\xff", b"\r", b"\n", b"&#", b"javascript:",
                                           b"<svg>", b"<!--", b"]]>", b"\xe2\x80\xae", b"\xf0\x9f\x98\x80"]))
        elif op == 2 and buf:
            del buf[at:at + rng.randint(1, 64)]
        elif op == 3:
            buf[at:at] = buf[rng.randrange(len(buf) + 1):][: rng.randint(1, 256)]
        else:
            buf = buf[: rng.randint(0, len(buf))]
    return bytes(buf)


def fallback(corpus: Path, seconds: float, seed: int, max_runs: int = 2000) -> int:
    """Random mutation of the corpus through check_one, when atheris cannot be installed."""
    rng = random.Random(seed)
    inputs = [p.read_bytes() for p in sorted(corpus.iterdir())]
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline and runs < max_runs:
        data = mutate(rng.choice(inputs), rng)
        try:
            check_one(data)
        except Exception:
            CRASHES.mkdir(parents=True, exist_ok=True)
            path = CRASHES / f"crash-fallback-{runs}"
            path.write_bytes(data)
            print(f"CRASH on input saved as {path}", flush=True)
            raise
        runs += 1
    print(f"fallback fuzzing: Done {runs} runs, no crash", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    load_core(instrument=True)
    with tempfile.TemporaryDirectory(prefix="feedsvc-fuzz-") as work:
        corpus = Path(work)
        start_corpus(corpus)
        if atheris is None:
            print("atheris is not installed (no wheel for this platform/Python): falling back to random "
                  "mutations through the same checks", flush=True)
            runs = [int(flag.split("=", 1)[1]) for flag in extra if flag.startswith("-runs=")]
            return fallback(corpus, args.seconds, seed, runs[0] if runs else 10**9)
        CRASHES.mkdir(parents=True, exist_ok=True)
        flags = [sys.argv[0], f"-max_total_time={args.seconds}", f"-seed={seed}", "-max_len=8192",
                 "-rss_limit_mb=2048", "-timeout=20", f"-artifact_prefix={CRASHES}/", *extra, str(corpus)]

        def one_input(data: bytes) -> None:
            check_one(data)

        atheris.Setup(flags, one_input)
        atheris.Fuzz()  # exits the process: 0 after max_total_time, non-zero on a crash
    return 0


if __name__ == "__main__":
    sys.exit(main())
