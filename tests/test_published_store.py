"""PublishedStore under concurrent first requests (a regression: they got 503 while a feed existed)."""

from __future__ import annotations

import gzip
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedsvc.model import Document
from feedsvc.publish.layout import OBJECTS, read_manifest
from feedsvc.publish.reader import PublishedStore
from feedsvc.publish.writer import Stale, publish, store


def test_requests_during_the_first_load_wait_for_it(tmp_path: Path, monkeypatch) -> None:
    publish(tmp_path, [Document("feed.xml", b"<feed/>", "application/atom+xml", datetime(2024, 1, 1, tzinfo=UTC))])
    store = PublishedStore(tmp_path, check_interval=60)
    loading, release = threading.Event(), threading.Event()
    real_load = store._load

    def slow_load():
        loading.set()
        release.wait(10)
        return real_load()

    monkeypatch.setattr(store, "_load", slow_load)
    first: list[object] = []
    loader = threading.Thread(target=lambda: first.append(store.snapshot))
    loader.start()
    assert loading.wait(10)
    second: list[object] = []
    waiter = threading.Thread(target=lambda: second.append(store.snapshot))
    waiter.start()
    waiter.join(0.2)
    release.set()
    loader.join(10)
    waiter.join(10)
    assert first[0] is not None
    assert second == [first[0]]  # not None: it waited for the load instead of answering 503


def test_archive_pages_are_read_from_disk_and_survive_collection(make_seed, config) -> None:
    """Archive pages are not held in memory; a page collected under a stale snapshot is served anew."""
    from feedsvc.host import create_app
    from feedsvc.pipeline.builder import Builder

    for i in range(5):
        make_seed(f"{i:03}.txt", stamp_ms=1700000000000 + i * 60_000, title=f"A{i}", url=f"https://e.com/{i}")
    cfg = config(max_entries=1, archive_page_size=2)
    builder = Builder(cfg)
    builder.build()
    app = create_app(cfg, run_builder=False)
    store = app.extensions["feedsvc"].store
    snapshot = store.snapshot
    assert snapshot.documents["feed.xml"].identity.data is not None
    page = snapshot.documents["archive/202311749001.xml"]  # a burst of minutes: its first page
    assert page.identity.data is None and page.gzip.data is None
    client = app.test_client()
    assert client.get("/archive/202311749001.xml").data == page.identity.body

    store.check_interval = 3600  # keep the stale snapshot: the race a busy process can see
    for n in range(2):  # two publishes: page 1's old objects are collected
        make_seed("000.txt", stamp_ms=1700000000000, title=f"edited {n}", url="https://e.com/0")
        assert builder.build().published
    with pytest.raises(OSError):
        _ = page.identity.body  # its object file was collected
    response = client.get("/archive/202311749001.xml")
    assert response.status_code == 200 and b"edited 1" in response.data


def test_documents_stored_ahead_are_published_unless_collected_meanwhile(tmp_path: Path) -> None:
    """A worker stores a page's objects before the publish; publish names them, or raises Stale when
    another writer's publish collected them in between (the builder then renders the page itself)."""
    when = datetime(2024, 1, 1, tzinfo=UTC)
    page = Document("archive/1.xml", b"<feed>old</feed>", "application/atom+xml", when, "k1", in_memory=False)
    stored = store(tmp_path, page)
    assert publish(tmp_path, [Document("feed.xml", b"<feed/>", "application/atom+xml", when), stored])
    entry = read_manifest(tmp_path)["documents"]["archive/1.xml"]
    assert entry == stored.row.to_json() and entry["source_key"] == "k1" and entry["in_memory"] is False
    assert (tmp_path / OBJECTS / entry["object"]).read_bytes() == page.body
    assert gzip.decompress((tmp_path / OBJECTS / entry["gzip_object"]).read_bytes()) == page.body

    newer = store(tmp_path, Document("archive/1.xml", b"<feed>new</feed>", "application/atom+xml", when, "k2"))
    publish(tmp_path, [Document("feed.xml", b"<feed>2</feed>", "application/atom+xml", when)])  # collects it
    before = read_manifest(tmp_path)
    with pytest.raises(Stale) as raised:
        publish(tmp_path, [Document("feed.xml", b"<feed>3</feed>", "application/atom+xml", when), newer])
    assert raised.value.names == ["archive/1.xml"] and read_manifest(tmp_path) == before


def test_the_same_bytes_under_a_new_date_are_sent_with_it(config) -> None:
    """A body published again unchanged under a new date (/feed.xsl is dated by the feed): a web
    process that holds it sends the new Last-Modified, as one started afresh does (replicas agree)."""
    from werkzeug.http import http_date

    from feedsvc.host import create_app

    cfg = config()
    april, may = datetime(2023, 4, 1, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC)
    xsl = "text/xsl; charset=utf-8"
    publish(cfg.output_dir, [Document("feed.xml", b"<feed>1</feed>", "application/atom+xml", april),
                             Document("feed.xsl", b"<xsl/>", xsl, april)])
    app = create_app(cfg, run_builder=False)
    client, store = app.test_client(), app.extensions["feedsvc"].store
    held = store.snapshot.documents["feed.xsl"]
    assert client.get("/feed.xsl").headers["Last-Modified"] == http_date(april)
    assert client.get("/feed.xsl", headers={"Accept-Encoding": "gzip"}).headers["Last-Modified"] == http_date(april)

    publish(cfg.output_dir, [Document("feed.xml", b"<feed>2</feed>", "application/atom+xml", may),
                             Document("feed.xsl", b"<xsl/>", xsl, may)])
    assert store.refresh()
    again = store.snapshot.documents["feed.xsl"]
    assert again.last_modified == may and again.identity is held.identity  # the bytes held, not read again
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        response = client.get("/feed.xsl", headers=headers)
        body = gzip.decompress(response.data) if headers else response.data
        assert (response.headers["Last-Modified"], body) == (http_date(may), b"<xsl/>")
        assert client.get("/feed.xsl", headers=headers | {"If-Modified-Since": http_date(april)}).status_code == 200


def test_the_typed_manifest_and_status_write_the_bytes_they_read(tmp_path: Path, make_seed, config) -> None:
    """manifest.json and status.json are read into their dataclasses (publish/layout.py) and
    written from them: the same JSON, byte for byte."""
    import json

    from feedsvc.pipeline.builder import Builder
    from feedsvc.publish.layout import MANIFEST, STATUS, Manifest, Status, load_manifest

    for n in range(3):
        make_seed(f"s{n}.txt", stamp_ms=1681696026000 + n * 1000, title=f"T{n}", url=f"https://e.com/{n}")
    make_seed("empty.txt", raw=b"")
    cfg = config(max_entries=1, archive_page_size=1)
    builder = Builder(cfg)
    assert builder.build().published
    make_seed("s9.txt", stamp_ms=1681696099000, title="T9", url="https://e.com/9")
    assert builder.build().published  # a manifest with a previous version, archive pages, reused rows
    raw = (cfg.output_dir / MANIFEST).read_bytes()
    manifest = load_manifest(cfg.output_dir)
    assert manifest is not None and manifest.previous and any(not r.in_memory for r in manifest.documents.values())
    assert json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode() == raw
    assert Manifest.from_json(json.loads(raw)) == manifest
    status = (cfg.output_dir / STATUS).read_bytes()
    typed = Status.from_json(json.loads(status))
    assert typed.skipped[0].kind == "skipped" and typed == builder.status
    assert json.dumps(typed.to_json(), indent=1, sort_keys=True, default=str).encode() == status
    assert builder.last_status == json.loads(status)
