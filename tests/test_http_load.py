"""Loopback load while the feed is republished every ~100 ms: the short form of benchmarks/loadgen.py.

Zero failed or torn responses (every body complete and hashing to its ETag), conditional requests
answered 304, against the Procfile deployment and `feedsvc serve`. Request rate and latency
percentiles are printed (pytest -s), never asserted: this is a shared, noisy machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import loadgen


@pytest.mark.live
@pytest.mark.parametrize("target", ["procfile", "serve"])
def test_no_failed_or_torn_response_under_load(tmp_path: Path, target: str) -> None:
    report, published = loadgen.against(target, tmp_path, seconds=3.5, max_requests=20_000, clients=6)
    print(report.summary(target) + f"; {published} versions published meanwhile")
    assert report.failures == []
    assert report.requests > 0 and report.ok_200 > 0
    assert report.not_modified > 0  # conditional requests were answered 304
    assert published >= 5 and len(report.etags) >= 4  # the load really spanned many published versions


def test_the_load_checks_can_fail(tmp_path: Path) -> None:
    """A server that sends a body not matching its ETag, and ignores If-None-Match, is caught."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Liar(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = b"<feed>torn</feed>"
            self.send_response(200)
            self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        report = loadgen.run_load(server.server_address[1], seconds=2, max_requests=20, clients=2)
    finally:
        server.shutdown()
        server.server_close()
    assert any(f.startswith("torn:") for f in report.failures)
    assert any("ignored" in f for f in report.failures)
    assert report.not_modified == 0


def test_first_load_is_shared_not_a_503(tmp_path: Path) -> None:
    """Regression (found by the load run): while one thread of a fresh worker loaded the first
    snapshot, other threads got None (a 503 "no feed has been published yet") for up to 50 ms."""
    import threading
    import time
    from datetime import UTC, datetime

    from feedsvc.model import Document
    from feedsvc.publish.reader import PublishedStore
    from feedsvc.publish.writer import publish

    publish(tmp_path, [Document("feed.xml", b"<feed/>", "application/atom+xml", datetime(2024, 1, 1, tzinfo=UTC))])
    store = PublishedStore(tmp_path)
    real_load = store._load
    loading = threading.Event()

    def slow_load():
        loading.set()
        time.sleep(0.3)  # a worker busy under load
        return real_load()

    store._load = slow_load  # type: ignore[method-assign]
    first = threading.Thread(target=lambda: store.snapshot)
    first.start()
    assert loading.wait(5)
    seen = store.snapshot  # a second request thread, while the first load is under way
    first.join(5)
    assert seen is not None and "feed.xml" in seen.documents
