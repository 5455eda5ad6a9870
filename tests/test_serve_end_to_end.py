"""`feedsvc serve` for real: HTTP caching, the builder following seed changes, torn-publish checks."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import conftest
import feedparser
import pytest
from conftest import SAMPLE, seed_text
from live import free_port, parent_of, running, wait_for

from feedsvc.model import Document
from feedsvc.publish.writer import publish
from feedsvc.service.leader import Election

pytestmark = pytest.mark.live

FEEDSVC = [sys.executable, "-m", "feedsvc"]


@pytest.fixture
def server(tmp_path: Path, seeds: Path):
    from live import feed_env

    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
        # /healthz answers 200 once the first feed is published; that build's status is written
        # just after: wait for it, so that every test starts from a build of record.
        wait_for(lambda: settled(srv), 15, what="the first build's status")
        yield srv


def settled(srv) -> dict | None:
    """/healthz once its last build is the one whose feed is served (else None)."""
    health = json.loads(srv.get("/healthz")[2])
    build = health.get("last_build")
    return health if build and build.get("etag") is not None and build["etag"] == health.get("etag") else None


def titles(srv) -> list[str]:
    status, _, body = srv.get("/feed.xml")
    assert status == 200
    return [e.title for e in feedparser.parse(body).entries]


def write_seed(folder: Path, name: str, title: str, n: int = 0, url: str | None = None) -> Path:
    return conftest.write_seed(folder, name, 1700000000000 + n * 1000, title, url or f"https://e.com/{name}",
                               f"<p>{title}</p>")


def test_feed_headers_and_body(server) -> None:
    status, headers, body = server.get("/feed.xml")
    assert status == 200
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert headers["last-modified"] == "Mon, 17 Apr 2023 01:47:06 GMT"  # the newest entry, not the build time
    assert headers["cache-control"] == "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    assert headers["vary"] == "Accept, Accept-Encoding"  # a browser gets the feed page instead
    assert headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in headers
    assert feedparser.parse(body).entries[0].title == "中國防長會見普京 談加強軍事合作"


def test_conditional_get(server) -> None:
    _, headers, _ = server.get("/feed.xml")
    etag, last_modified = headers["etag"], headers["last-modified"]
    for extra in ({"If-None-Match": etag}, {"If-None-Match": "W/" + etag}, {"If-None-Match": f'"x", {etag}'},
                  {"If-Modified-Since": last_modified}):
        status, h, body = server.get("/feed.xml", headers=extra)
        assert (status, body) == (304, b""), extra
        assert h["etag"] == etag
    assert server.get("/feed.xml", headers={"If-None-Match": '"stale"'})[0] == 200
    # If-None-Match wins over If-Modified-Since.
    assert server.get("/feed.xml", headers={"If-None-Match": '"stale"', "If-Modified-Since": last_modified})[0] == 200
    assert server.get("/feed.xml", headers={"If-Modified-Since": "Sun, 16 Apr 2023 00:00:00 GMT"})[0] == 200


def test_gzip_variant(server) -> None:
    _, plain_headers, plain = server.get("/feed.xml")
    status, headers, body = server.get("/feed.xml", headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert gzip.decompress(body) == plain
    assert headers["etag"] != plain_headers["etag"]
    assert headers["etag"] == '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    assert server.get("/feed.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]})[0] == 304
    assert server.get("/feed.xml", headers={"Accept-Encoding": "gzip;q=0"})[1].get("content-encoding") is None


def test_head_and_methods(server) -> None:
    _, get_headers, body = server.get("/feed.xml")
    status, headers, head_body = server.get("/feed.xml", method="HEAD")
    assert status == 200 and head_body == b""
    assert headers["etag"] == get_headers["etag"] and headers["content-length"] == str(len(body))
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        assert server.get("/feed.xml", method=method)[0] == 405, method


def test_index_page(server) -> None:
    status, headers, body = server.get("/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    html = body.decode()
    assert '<link rel="alternate" type="application/atom+xml"' in html and 'href="/feed.xml"' in html
    assert "中國防長會見普京 談加強軍事合作" in html
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert server.get("/", headers={"If-None-Match": headers["etag"]})[0] == 304


def test_healthz(server) -> None:
    import json

    def builders_answer() -> tuple[int, dict[str, str], dict] | None:
        # serve runs several workers; exactly one of them builds: ask until it answers.
        status, headers, body = server.get("/healthz")
        health = json.loads(body)
        return (status, headers, health) if health["is_builder"] else None

    status, headers, health = wait_for(builders_answer, 10, what="/healthz from the builder worker")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert health["status"] == "ok" and health["entries"] == 1 and health["skipped"] == []
    assert health["last_build"]["ok"] is True and health["is_builder"] is True
    # The worker that won the election builds in a child process of its own: that is the builder.
    assert parent_of(health["builder_pid"]) == health["pid"]
    assert health["feed_age_seconds"] >= 0


def test_unknown_paths_do_not_touch_the_filesystem(server) -> None:
    paths = ("/manifest.json", "/status.json", "/objects/", "/../seeds/", "/feed.xml/../manifest.json", "/etc/passwd")
    for path in paths:
        assert server.get(path)[0] == 404, path


def test_feed_follows_seed_changes(server, seeds: Path) -> None:
    # Add.
    write_seed(seeds, "new.txt", "Added", n=1)
    wait_for(lambda: "Added" in titles(server), 10, what="added seed in the feed")
    # Edit in place.
    write_seed(seeds, "new.txt", "Edited", n=2)
    wait_for(lambda: "Edited" in titles(server) and "Added" not in titles(server), 10, what="edited seed")
    # Rename into place, as editors and rsync do.
    tmp = seeds / ".renamed.txt.tmp"
    tmp.write_text(seed_text(1700000009000, "Renamed in", "https://e.com/renamed", "<p>r</p>"))
    os.replace(tmp, seeds / "renamed.txt")
    wait_for(lambda: "Renamed in" in titles(server), 10, what="renamed-into-place seed")
    # Delete.
    (seeds / "new.txt").unlink()
    wait_for(lambda: "Edited" not in titles(server), 10, what="deleted seed gone")
    # A file in a new subfolder.
    (seeds / "2026").mkdir()
    write_seed(seeds / "2026", "deep.txt", "Deep", n=3)
    wait_for(lambda: "Deep" in titles(server), 10, what="seed in a new subfolder")
    # Editor litter never becomes an entry.
    (seeds / ".deep.txt.swp").write_text("junk")
    (seeds / "deep.txt~").write_text("junk")
    # Litter sends no build of its own: prove a full scan ran after it was written. A folder moved
    # in (its event asks for a full scan) holding one settled seed: the build that lists it is one.
    staged = seeds.parent / "staged"
    (staged / "2027").mkdir(parents=True)
    later = write_seed(staged / "2027", "later.txt", "After the litter", n=4)
    os.utime(later, (time.time() - 60, time.time() - 60))  # settled: published by the first build that sees it
    os.replace(staged / "2027", seeds / "2027")
    wait_for(lambda: "After the litter" in titles(server), 10, what="the build after the litter")
    # /healthz's last build is that one (its status is written just after its feed): 4 files, not 6.
    health = wait_for(lambda: settled(server), 10, what="that build's status")
    assert health["last_build"]["files"] == 4 and health["skipped"] == [], health
    assert len(titles(server)) == 3 + 1
    expected = ["中國防長會見普京 談加強軍事合作", "Renamed in", "Deep", "After the litter"]
    assert sorted(titles(server)) == sorted(expected)


def test_bad_seed_never_takes_the_feed_down(server, seeds: Path) -> None:
    (seeds / "bad.txt").write_bytes(b"\x00\x01" * 100)
    write_seed(seeds, "good.txt", "Good one", n=5)
    wait_for(lambda: "Good one" in titles(server), 10, what="good seed beside a bad one")
    # The status of the build that published it is written just after its feed: wait for it.
    health = wait_for(lambda: settled(server), 10, what="that build's status")
    assert health["status"] == "ok"
    assert any(s["source"].endswith("bad.txt") for s in health["skipped"])


def test_storm_builds_a_bounded_number_of_times(server, seeds: Path) -> None:
    import json

    def health() -> dict:
        return json.loads(server.get("/healthz")[2])

    before = health()
    for n in range(300):  # a bounded storm, as fast as the disk takes it (git checkout, rsync)
        write_seed(seeds, f"storm-{n:03}.txt", f"Storm {n}", n=10 + n)
    # Bounded, longer than before for a loaded machine, and still well under the 60 s interval
    # rescan (which would hide lost file events). One read per poll, and the status must be that
    # of the served feed's build (it is written just after the feed).
    wait_for(lambda: (h := settled(server)) and h["entries"] == 50 and h["last_build"]["files"] == 301, 30,
             what="all files")
    after = health()
    assert titles(server)[0] == "Storm 299"
    # One publish for the storm; a second at most if the storm outlasted debounce_max.
    assert 1 <= after["generation"] - before["generation"] <= 2, (before, after)
    assert after["last_build"]["number"] - before["last_build"]["number"] <= 6


def test_publish_is_never_torn(tmp_path: Path, seeds: Path) -> None:
    """Readers hammer /feed.xml while publishes land every few ms: every body matches its ETag."""
    from live import feed_env

    out = tmp_path / "out"
    # This test holds the builder election, so the server only serves; we publish ourselves.
    holder = Election(out, on_elected=lambda: None)
    holder.start()
    assert holder.is_leader
    stamp = datetime(2024, 1, 1, tzinfo=UTC)
    publish(out, [Document("feed.xml", b"<feed>0</feed>", "application/atom+xml; charset=utf-8", stamp)])
    port = free_port()
    env = feed_env(tmp_path, seeds, out)
    failures: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def reader(gz: bool) -> None:
        deadline = time.monotonic() + 15
        from live import http

        while not stop.is_set() and time.monotonic() < deadline:
            status, headers, body = http(f"http://127.0.0.1:{port}/feed.xml",
                                         headers={"Accept-Encoding": "gzip" if gz else "identity"})
            if status != 200:
                failures.append(f"status {status}")
                continue
            if headers["etag"] != '"' + hashlib.sha256(body).hexdigest()[:32] + '"':
                failures.append(f"torn: {headers['etag']} vs body {body[:40]!r}")
            if gz:
                gzip.decompress(body)
            seen.add(headers["etag"])

    try:
        with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log"):
            threads = [threading.Thread(target=reader, args=(i % 2 == 0,)) for i in range(4)]
            for t in threads:
                t.start()
            for n in range(1, 301):  # 300 publishes, a few ms apart
                body = b"<feed>" + str(n).encode() * (n % 50 + 1) + b"</feed>"
                publish(out, [Document("feed.xml", body, "application/atom+xml; charset=utf-8", stamp)])
                time.sleep(0.003)
            stop.set()
            for t in threads:
                t.join(timeout=20)
    finally:
        holder.stop()
    assert failures == []
    assert len(seen) > 10  # the readers really did see many versions
    assert not [p for p in out.rglob(".tmp-*")]


def test_503_before_anything_is_published(tmp_path: Path) -> None:
    from live import feed_env

    port = free_port()
    env = feed_env(tmp_path, tmp_path / "missing-seeds", tmp_path / "out", FEEDSVC_SCAN_INTERVAL="1")
    with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log", ready=False) as srv:
        srv.wait_ready("/healthz", status=503)
        status, headers, body = srv.get("/feed.xml")
        assert status == 503 and headers["retry-after"] == "5"
        assert b"Traceback" not in body
        import json

        # The first 503 can come before the first build has even run: wait for its report.
        health = wait_for(lambda: (h := json.loads(srv.get("/healthz")[2]))["last_build"] and h, 10,
                          what="the failed build's report")
        assert health["status"] == "unavailable" and "does not exist" in health["last_build"]["error"]
        # The seeds folder appears: the interval rescan publishes, and the 503 ends.
        (tmp_path / "missing-seeds").mkdir()
        shutil.copy(SAMPLE, tmp_path / "missing-seeds" / SAMPLE.name)
        srv.wait_ready("/feed.xml", status=200, timeout=15)


def test_flask_development_server_works(tmp_path: Path, seeds: Path) -> None:
    from live import feed_env

    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out")
    args = [sys.executable, "-m", "flask", "--app", "feedsvc.host", "run", "--port", str(port)]
    with running(args, env, port, tmp_path / "flask.log") as srv:
        status, _, body = srv.get("/feed.xml")
        assert status == 200 and b"<feed" in body


def test_watch_is_the_builder_and_serve_defers_to_it(tmp_path: Path, seeds: Path) -> None:
    import json

    from live import Server, feed_env

    out = tmp_path / "out"
    env = feed_env(tmp_path, seeds, out)
    watcher = Server([*FEEDSVC, "watch"], env, 0, tmp_path / "watch.log")
    try:
        wait_for(lambda: (out / "feed.xml").exists(), 15, what="feed.xml from feedsvc watch")
        port = free_port()
        with running([*FEEDSVC, "serve", "--port", str(port)], env, port, tmp_path / "serve.log") as srv:
            health = json.loads(srv.get("/healthz")[2])
            assert health["is_builder"] is False and health["builder_pid"] == watcher.proc.pid
            write_seed(seeds, "w.txt", "Built by watch", n=7)
            wait_for(lambda: "Built by watch" in titles(srv), 10, what="watch's build served by serve")
            assert "feedsvc.build: build:" not in srv.log()
    finally:
        watcher.stop()
    assert watcher.proc.returncode == 0  # SIGTERM is a clean stop
