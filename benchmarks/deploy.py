"""What a deploy to a bucket costs: time and requests for a first deploy, after one change, and
after no change, against a real S3 server (SeaweedFS on loopback, benchmarks/s3server.py).

    python -m benchmarks.deploy [--count 200] [--page-size 10] [--workdir DIR]

A corpus of `--count` seeds (benchmarks/corpus.py) is built once, with archive pages of
`--page-size` entries, so that the bucket holds about count/page-size archive pages besides an
entry page per seed. Then three deploys, each counted by operation through boto3's event hook:
the first (every object uploaded), one after editing an archived article (its archive page and
its own page changed: O(changed) requests, plus one listing per 1,000 objects), one after
nothing changed (0 uploads), and one more after losing the output folder's record of the
uploads (`deploy-objects.json`: one HEAD per object, no upload). Use `--count 10000` for the
issue's figures; the machine may be shared, so times are indicative and nothing about speed is
asserted.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.corpus import write_corpus
from benchmarks.s3server import SeaweedFS
from feedsvc.config import load_config
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.deploy import STATE, UPLOADERS, deploy, parse_target

BUCKET = "feedsvc-bench"


def counted_client(server: SeaweedFS) -> tuple[Any, collections.Counter[str]]:
    """A boto3 client reaching `server`, and the requests it makes, by operation."""
    from botocore.config import Config as BotoConfig  # type: ignore[import-untyped]

    client = server.client(config=BotoConfig(max_pool_connections=2 * UPLOADERS))
    calls: collections.Counter[str] = collections.Counter()
    client.meta.events.register("before-parameter-build.s3.*", lambda model, **_: calls.update([model.name]))
    return client, calls


def run(count: int, page_size: int, workdir: Path, server: SeaweedFS) -> list[tuple[str, float, dict[str, int]]]:
    """The three deploys' (label, seconds, requests by operation)."""
    seeds = write_corpus(workdir / "seeds", count)
    empty = workdir / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={}, overrides={
        "seeds_dir": str(workdir / "seeds"), "output_dir": str(workdir / "out"),
        "base_url": "https://feeds.example.org/", "archive_page_size": page_size, "metrics": False,
    })  # fmt: skip
    builder = Builder(config)
    try:
        assert builder.build().ok
        client, calls = counted_client(server)
        server.client().create_bucket(Bucket=BUCKET)
        # SeaweedFS allocates a new bucket's volumes on its first write: not the deploy's cost.
        server.client().put_object(Bucket=BUCKET, Key="warm-up", Body=b"x")
        target = parse_target(f"s3://{BUCKET}/feed")
        figures = []

        def one(label: str) -> None:
            calls.clear()
            started = time.perf_counter()
            outcome = deploy(config.output_dir, target, config.cache_control, config.deploy_gzip, client)
            figures.append((label, time.perf_counter() - started, {**dict(calls), "objects": outcome.unchanged
                                                                    + outcome.uploaded}))  # fmt: skip

        one("first deploy")
        oldest = seeds[0]
        oldest.write_text(oldest.read_text(encoding="utf-8") + "<p>edited</p>\n", encoding="utf-8")
        assert builder.build(changed=[oldest.name]).published
        one("after one change")
        one("after no change")
        (config.output_dir / STATE).unlink()  # another host, a fresh output folder: one HEAD each
        one("no change, state file lost")
        return figures
    finally:
        builder.close()


def report(figures: list[tuple[str, float, dict[str, int]]]) -> str:
    lines = ["| deploy | seconds | requests | uploads | listings | HEADs | deletes | objects |", "|---" * 8 + "|"]
    for label, seconds, calls in figures:
        requests = sum(v for k, v in calls.items() if k != "objects")
        lines.append(
            f"| {label} | {seconds:.2f} | {requests} | {calls.get('PutObject', 0)} | {calls.get('ListObjectsV2', 0)} "
            f"| {calls.get('HeadObject', 0)} | {calls.get('DeleteObjects', 0)} | {calls['objects']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        server = SeaweedFS(Path(tmp) / "seaweedfs")
        server.start()
        try:
            server.wait_for_buckets()
            figures = run(args.count, args.page_size, Path(tmp), server)
        finally:
            server.stop()
    print(f"{args.count} seeds, archive pages of {args.page_size}:")
    print(report(figures))


if __name__ == "__main__":
    main()
