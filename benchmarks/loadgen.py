"""Bounded loopback load against the real deployments while the feed is republished every ~100 ms.

    python benchmarks/loadgen.py [--seconds 15] [--clients 8] [--target procfile|serve|both]

For each deployment (the Procfile's gunicorn with 2 workers, and `feedsvc serve`) on a free
127.0.0.1 port: this process holds the builder election (so the servers only serve) and runs a
Builder that rewrites a seed and publishes a new version every ~100 ms. Keep-alive clients
(http.client, one connection per thread) request /feed.xml, alternating identity and gzip, and
follow every 200 with a conditional request carrying its ETag. Every answer is checked:

- a 200's body is complete (Content-Length) and hashes to its ETag, and a gzip body inflates;
- a conditional request is answered 304 with an empty body, or 200 with a *different* ETag
  (a new version landed in between); a 200 with the same ETag means If-None-Match was ignored.

Prints request rate and latency percentiles. Bounded in time (--seconds) and in count
(--max-requests) per deployment. The suite runs a short form (tests/test_http_load.py).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import shlex
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass
class Report:
    requests: int = 0
    ok_200: int = 0
    not_modified: int = 0
    changed_between: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    etags: set[str] = field(default_factory=set)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self, label: str) -> str:
        return (f"{label}: {self.requests} requests in {self.seconds:.1f} s = {self.rate:.0f} req/s; "
                f"200: {self.ok_200}, 304: {self.not_modified}, changed between: {self.changed_between}, "
                f"ETags seen: {len(self.etags)}, failures: {len(self.failures)}; latency ms "
                f"p50 {self.percentile(0.5):.1f} p90 {self.percentile(0.9):.1f} p99 {self.percentile(0.99):.1f} "
                f"max {self.percentile(1.0):.1f}")


def run_load(port: int, seconds: float, max_requests: int, clients: int = 8, path: str = "/feed.xml") -> Report:
    """Hammer 127.0.0.1:port with `clients` keep-alive threads until `seconds` or `max_requests`."""
    report = Report()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    budget = [max_requests]

    def take() -> bool:
        with lock:
            if budget[0] <= 0 or time.monotonic() >= deadline:
                return False
            budget[0] -= 1
            return True

    def fail(message: str) -> None:
        with lock:
            if len(report.failures) < 50:
                report.failures.append(message)
            else:
                report.failures.append("...")

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        gz = number % 2 == 1
        last_etag: str | None = None
        while take():
            headers = {"Accept-Encoding": "gzip" if gz else "identity"}
            conditional = last_etag is not None
            if conditional:
                headers["If-None-Match"] = last_etag  # type: ignore[assignment]
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                fail(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            elapsed = time.perf_counter() - started
            etag = response.getheader("ETag", "")
            with lock:
                report.requests += 1
                report.latencies.append(elapsed)
            if response.status == 304:
                if not conditional or body or etag != last_etag:
                    fail(f"bad 304: conditional={conditional} body={len(body)} etag {etag} vs {last_etag}")
                with lock:
                    report.not_modified += 1
                last_etag = None  # next: a plain request
                continue
            if response.status != 200:
                fail(f"status {response.status}: {body[:80]!r}")
                continue
            length = response.getheader("Content-Length")
            if length is None or int(length) != len(body):
                fail(f"incomplete body: {len(body)} bytes, Content-Length {length}")
            if etag != etag_of(body):
                fail(f"torn: ETag {etag} does not match the body's hash {etag_of(body)}")
            if gz != (response.getheader("Content-Encoding") == "gzip"):
                fail(f"wrong encoding: asked gzip={gz}, got {response.getheader('Content-Encoding')}")
            if gz:
                try:
                    gzip.decompress(body)
                except (OSError, EOFError) as exc:
                    fail(f"gzip body does not inflate: {exc}")
            if conditional:
                if etag == last_etag:
                    fail(f"If-None-Match {last_etag} ignored: 200 with the same ETag")
                with lock:
                    report.changed_between += 1
            with lock:
                report.ok_200 += 1
                report.etags.add(etag)
            last_etag = etag
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 30)
    report.seconds = time.monotonic() - started
    return report


class Republisher:
    """Rewrites one seed and publishes a new feed version every `interval` seconds, in a thread."""

    def __init__(self, seeds: Path, out: Path, interval: float = 0.1) -> None:
        from feedsvc.config import load_config
        from feedsvc.pipeline.builder import Builder

        empty = seeds.parent / "loadgen-empty.toml"
        empty.write_text("")
        config = load_config(empty, env={}, overrides={"seeds_dir": str(seeds), "output_dir": str(out),
                                                       "base_url": "https://feeds.example.org/"})
        self.builder = Builder(config)
        self.seeds = seeds
        self.interval = interval
        self.published = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def build_once(self, n: int) -> None:
        stamp = 1700000000000 + n * 1000
        (self.seeds / "churn.txt").write_text(
            f"<!--{stamp}-->\n[Version {n}](https://e.com/churn)\n------\n\n<p>version {n}</p>\n")
        if self.builder.build().published:
            self.published += 1

    def _run(self) -> None:
        n = 0
        while not self.stop.wait(self.interval):
            n += 1
            self.build_once(n)

    def __enter__(self) -> Republisher:
        self.build_once(0)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def procfile_web() -> list[str]:
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return shlex.split(line.split(":", 1)[1])
    raise SystemExit("no web: line in the Procfile")


def deployment_command(target: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command and extra environment for one deployment, bound to 127.0.0.1:port only."""
    from live import BIN

    if target == "procfile":
        command = procfile_web()
        command[0] = str(BIN / command[0])
        # The Procfile binds 0.0.0.0:$PORT for a platform router; load stays on loopback.
        return [*command, "--bind", f"127.0.0.1:{port}"], {"PORT": str(port), "WEB_CONCURRENCY": "2"}
    return [sys.executable, "-m", "feedsvc", "serve", "--host", "127.0.0.1", "--port", str(port)], {}


def against(target: str, work: Path, seconds: float, max_requests: int, clients: int) -> tuple[Report, int]:
    """Start `target` on a free loopback port, republish while loading it; (report, publishes)."""
    from live import feed_env, free_port, running, wait_for

    from feedsvc.service.leader import Election

    seeds, out = work / target / "seeds", work / target / "out"
    seeds.mkdir(parents=True)
    sample = REPO / "seeds" / "000_76cb3dcc68cf4183.txt"
    (seeds / sample.name).write_bytes(sample.read_bytes())
    holder = Election(out, on_elected=lambda: None)  # we are the builder: the servers only serve
    holder.start()
    assert holder.is_leader
    try:
        with Republisher(seeds, out) as republisher:
            port = free_port()
            command, extra = deployment_command(target, port)
            env = feed_env(work / target, seeds, out, FEEDSVC_LOG_LEVEL="WARNING", **extra)
            with running(command, env, port, work / target / "server.log") as server:
                wait_for(lambda: server.get("/feed.xml")[0] == 200, 20, what="feed served")
                report = run_load(port, seconds, max_requests, clients)
            return report, republisher.published
    finally:
        holder.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per deployment (default 15)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per deployment")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--target", choices=("procfile", "serve", "both"), default="both")
    args = parser.parse_args(argv)
    targets = ("procfile", "serve") if args.target == "both" else (args.target,)
    failed = False
    with tempfile.TemporaryDirectory(prefix="feedsvc-load-") as work:
        for target in targets:
            report, published = against(target, Path(work), args.seconds, args.max_requests, args.clients)
            print(report.summary(target) + f"; {published} versions published meanwhile")
            for failure in report.failures[:20]:
                print("  FAILURE:", failure)
            failed = failed or bool(report.failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
