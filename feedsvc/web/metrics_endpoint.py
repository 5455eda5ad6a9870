"""`/metrics` and who may read it; the figures themselves live in `feedsvc.metrics`.

`feedsvc_http_requests_total{document,status}` counts every answer where it is given: the
`DocumentResponder` for documents (label: the document's name, `archive` for the archive pages,
`article` for entry pages),
the Flask app for the rest (`healthz`, `metrics`, `other`), counted by `install`. Never the raw
path. A scrape is answered to a loopback client that no proxy forwarded, or with the bearer token.

prometheus_client picks its mode when it is first imported, so this module is imported only where
an app is created: in a gunicorn worker, after the master set the variable.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request

from feedsvc.metrics import Metrics, process_metrics

__all__ = ["CONTENT_TYPE", "Metrics", "allowed", "install", "process_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text format every Prometheus reads
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
