"""The Prometheus figures (`prometheus_client`), for every process that counts or builds.

- `feedsvc_http_requests_total{document,status}`: every answer, counted where it is given (the web
  side: `feedsvc.web.responder` and `feedsvc.web.metrics_endpoint`, which serves `/metrics`).
- The builder's figures, set by the process that builds (the others never create them):
  `feedsvc_builds_total{result}`, `feedsvc_build_duration_seconds`, `feedsvc_entries{feed}`,
  `feedsvc_seed_files`, `feedsvc_skipped_files`, `feedsvc_last_publish_timestamp_seconds`.
- The deployer's (deploy_to), set by the process that builds: `feedsvc_deploy_total{result}`
  (ok, failed) and `feedsvc_last_deploy_timestamp_seconds` (the last deploy that succeeded).

It sits beside `config` and `model`, below both `web` (which serves and counts) and `service`
(whose builder child records its builds), so that neither of those imports the other.

One process (`flask run`, the test client) keeps its metrics in a registry of its own. Under
gunicorn the workers are separate processes: its master sets `PROMETHEUS_MULTIPROC_DIR` before it
forks them (`feedsvc.web.server`), `prometheus_client` then keeps every value in per-process
files there, and each scrape merges them with a fresh `MultiProcessCollector`: requests are
summed over the workers (dead ones included, so counters never go back), the builder's gauges
are the live builder's (`livemostrecent`: a dead builder's files are removed by the master's
`child_exit` hook). prometheus_client picks its mode when it is first imported, so this module is
imported only where an app is created or a builder child starts: never in a gunicorn master.
"""

from __future__ import annotations

import functools
import os
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from feedsvc.config import MULTIPROCESS_ENV
from feedsvc.model import BuildResult

BUILD_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
FEED = "feed.xml"  # the `feed` label of feedsvc_entries: the top-level feed; a declared one is "<name>/feed.xml"

disable_created_metrics()  # no `*_created` series beside each counter


class BuildMetrics:
    """The builder's figures; created by the first build a process makes."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        gauge = functools.partial(Gauge, registry=registry, multiprocess_mode="livemostrecent")
        self.builds = Counter("feedsvc_builds", "Builds, by result", ("result",), registry=registry)
        self.duration = Histogram(
            "feedsvc_build_duration_seconds", "How long builds take", buckets=BUILD_SECONDS, registry=registry
        )
        self.entries = gauge("feedsvc_entries", "Entries in the published feed", ("feed",))
        self.seed_files = gauge("feedsvc_seed_files", "Seed files the last build found")
        self.skipped_files = gauge("feedsvc_skipped_files", "Seed files the last build skipped (bad seeds)")
        self.last_publish = gauge("feedsvc_last_publish_timestamp_seconds", "When the served version was published")


class DeployMetrics:
    """The deployer's figures; created by the first deploy a process makes."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.deploys = Counter("feedsvc_deploy", "Deploys to the bucket of deploy_to, by result", ("result",),
                               registry=registry)  # fmt: skip
        self.last_deploy = Gauge(
            "feedsvc_last_deploy_timestamp_seconds",
            "When the last successful deploy to the bucket ended",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )


class Metrics:
    """A process's metrics: its own registry, or its share of gunicorn's multiprocess files."""

    def __init__(self, multiprocess_dir: str | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # Multiprocess: the values live in files, read back by a collector per scrape.
        self.registry = None if multiprocess_dir else CollectorRegistry()
        self.requests = Counter(
            "feedsvc_http_requests", "HTTP requests answered", ("document", "status"), registry=self.registry
        )
        self._children: dict[tuple[str, str], Any] = {}
        self._builds: BuildMetrics | None = None
        self._deploys: DeployMetrics | None = None

    def count(self, document: str, status: str) -> None:
        """One answered request (`status`: "200", "304" …); the labelled child is looked up once."""
        child = self._children.get((document, status))
        if child is None:
            child = self._children.setdefault((document, status), self.requests.labels(document, status))
        child.inc()

    def observe_build(self, result: BuildResult, published_at: str | None) -> None:
        """A build of record (not one that waited for files being written): its result and figures;
        a failed build leaves the figures of what is still served."""
        if result.waiting:
            return
        if self._builds is None:
            self._builds = BuildMetrics(self.registry)
        builds = self._builds
        builds.builds.labels("failed" if not result.ok else "published" if result.published else "unchanged").inc()
        builds.duration.observe(result.duration)
        if result.ok:
            builds.entries.labels(FEED).set(result.entries)
            for name, entries in result.feeds.items():  # each declared feed, by its feed.xml's name
                builds.entries.labels(f"{name}/feed.xml").set(entries)
            builds.seed_files.set(result.files)
            builds.skipped_files.set(len(result.skipped))
        if published_at:
            builds.last_publish.set(datetime.fromisoformat(published_at).timestamp())

    def observe_deploy(self, ok: bool, finished: float | None) -> None:
        """One deploy: its result, and when it ended if it succeeded."""
        if self._deploys is None:
            self._deploys = DeployMetrics(self.registry)
        self._deploys.deploys.labels("ok" if ok else "failed").inc()
        if ok and finished is not None:
            self._deploys.last_deploy.set(finished)

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess_dir)
        return generate_latest(registry)


@functools.cache
def process_metrics() -> Metrics:
    """This process's one `Metrics` (two sets writing one process's files would overwrite each other)."""
    multiprocess_dir = os.environ.get(MULTIPROCESS_ENV) or None
    if multiprocess_dir:
        os.makedirs(multiprocess_dir, exist_ok=True)
    return Metrics(multiprocess_dir)
