"""`/metrics` and who may read it; the figures themselves live in `feedsvc.metrics`.

`feedsvc_http_requests_total{document,status}` counts every answer where it is given: the
`DocumentResponder` for documents (label: the document's name, `archive` for the archive pages),
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
# A request that carries one of these came through a proxy: its REMOTE_ADDR is the proxy's, so
# loopback says nothing about the client. They can only take the loopback pass away, never grant it.
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
_FLASK_ROUTES = {"/healthz": "healthz", "/metrics": "metrics"}


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # a Unix socket's peer, or nothing: not known to be this host
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def allowed(environ: Mapping[str, Any], token: str) -> bool:
    """A loopback client that no proxy forwarded, or anyone with `Authorization: Bearer <token>`."""
    if _loopback(environ.get("REMOTE_ADDR", "")) and not any(header in environ for header in FORWARDED):
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
