"""Prometheus metrics (`prometheus_client`): what is counted, `/metrics`, and who may read it.

- `feedsvc_http_requests_total{document,status}`: every answer, counted where it is given: the
  `DocumentResponder` for documents (label: the document's name, `archive` for the archive pages),
  the Flask app for the rest (`healthz`, `metrics`, `other`). Never the raw path.
- The builder's figures, set by the process that builds (the others never create them):
  `feedsvc_builds_total{result}`, `feedsvc_build_duration_seconds`, `feedsvc_entries{feed}`,
  `feedsvc_seed_files`, `feedsvc_skipped_files`, `feedsvc_last_publish_timestamp_seconds`.

One process (`flask run`, the test client) keeps its metrics in a registry of its own. Under
gunicorn the workers are separate processes: its master sets `PROMETHEUS_MULTIPROC_DIR` before it
forks them (`feedsvc.web.server`), `prometheus_client` then keeps every value in per-process
files there, and each scrape merges them with a fresh `MultiProcessCollector`: requests are
summed over the workers (dead ones included, so counters never go back), the builder's gauges
are the live builder's (`livemostrecent`: a dead builder's files are removed by the master's
`child_exit` hook). prometheus_client picks its mode when it is first imported, so this module is
imported only where an app is created: in a gunicorn worker, after the master set the variable.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from feedsvc.config import MULTIPROCESS_ENV
from feedsvc.model import BuildResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus reads
BUILD_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
FEED = "feed.xml"  # the `feed` label of feedsvc_entries: the top-level feed; a declared one is "<name>/feed.xml"
# A request that carries one of these came through a proxy (nginx, Apache, HAProxy, Cloudflare,
# Akamai, Fastly, a load balancer…): its REMOTE_ADDR is the proxy's, so loopback says nothing about
# the client. They can only take the loopback pass away, never grant it.
FORWARDED = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP",
    "HTTP_X_CLIENT_IP",
    "HTTP_CLIENT_IP",
    "HTTP_CF_CONNECTING_IP",
    "HTTP_TRUE_CLIENT_IP",
    "HTTP_FASTLY_CLIENT_IP",
    "HTTP_X_CLUSTER_CLIENT_IP",
    "HTTP_X_ORIGINAL_FORWARDED_FOR",
    "HTTP_VIA",
)
_LOCAL_NAMES = ("localhost", "localhost.")
_FLASK_ROUTES = {"/healthz": "healthz", "/metrics": "metrics"}

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


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a Unix socket's peer, or nothing: not known to be this host
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _local_host(host: str) -> bool:
    """A Host header that names this host: a loopback address or `localhost`, with any port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0]
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    return name in _LOCAL_NAMES or name.endswith(".localhost") or _loopback(name)


def direct_loopback(environ: Mapping[str, Any]) -> bool:
    """A client on this host that reached feedsvc itself, not through a proxy on this host.

    The TCP peer is loopback, and the request has none of a proxy's signs: no forwarding header of
    any common kind, HTTP/1.1 or later (nginx's `proxy_pass` speaks HTTP/1.0 unless told
    otherwise; every scraper, curl and browser speaks 1.1), and a Host that names this host (a
    proxy that passes `Host $host` passes the public name). A proxy that sends none of these signs
    (HTTP/1.1 to 127.0.0.1, its upstream's Host, no forwarding header) cannot be told from a local
    client: have it set X-Forwarded-For, as config/nginx-feedsvc.conf does.
    """
    return (
        _loopback(environ.get("REMOTE_ADDR", ""))
        and not any(header in environ for header in FORWARDED)
        and environ.get("SERVER_PROTOCOL", "") not in ("HTTP/1.0", "HTTP/0.9")
        and _local_host(environ.get("HTTP_HOST", ""))
    )


def allowed(environ: Mapping[str, Any], token: str) -> bool:
    """A loopback client that no proxy forwarded (`direct_loopback`), or anyone with
    `Authorization: Bearer <token>`."""
    if direct_loopback(environ):
        return True
    if not token:
        return False
    scheme, _, given = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def install(app: Flask, metrics: Metrics, token: str) -> None:
    """`/metrics` on `app`, and the count of every answer Flask gives (`/healthz`, errors)."""

    def scrape() -> Response:
        if not allowed(request.environ, token):
            return Response("forbidden\n", 403, mimetype="text/plain", headers={"Cache-Control": "no-store"})
        return Response(metrics.exposition(), content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    def count(response: Response) -> Response:
        metrics.count(_FLASK_ROUTES.get(request.path, "other"), str(response.status_code))
        return response

    app.add_url_rule("/metrics", "metrics", scrape, methods=["GET"], provide_automatic_options=False)
    app.after_request(count)
