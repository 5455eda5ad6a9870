"""The one responder (`feedsvc.web.responder.DocumentResponder`): every published document's answer,
header for header, for every server (the Flask test client goes through it as gunicorn does)."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from feedparser import http as feedparser_http
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.http import http_date, is_resource_modified

from feedsvc.core.routes import ROUTES
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest, write_atomic
from feedsvc.publish.reader import PublishedStore
from feedsvc.web.headers import CONTENT_SECURITY_POLICY, FEED_CONTENT_SECURITY_POLICY
from feedsvc.web.responder import DocumentResponder, not_modified

# Chromium's, for a page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
SECURITY = [("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]
HUB = "https://hub.example/"


@pytest.fixture
def published(make_seed, config):
    make_seed("a.txt", url="https://e.com/a", title="A & <b>")
    make_seed("b.txt", url="https://e.com/b", title="B", stamp_ms=1_600_000_000_000)
    cfg = config(archive_page_size=1, max_entries=1, websub_hub=HUB)
    assert Builder(cfg).build().published
    return cfg


@pytest.fixture
def client(published):
    return create_app(published, run_builder=False).test_client()


def manifest_entry(cfg, name: str) -> dict:
    """{"identity"|"gzip": {"etag", "size"}} of a published document, as a web process sees it."""
    doc = PublishedStore(cfg.output_dir).snapshot.documents[name]
    return {kind: {"etag": v.etag, "size": v.size} for kind, v in (("identity", doc.identity), ("gzip", doc.gzip))}


def headers_of(response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.items() if k != "Date"]


def expected_ok(content_type: str, etag: str, last_modified: str, length: int, vary: str, csp: str,
                link: str | None = None, gz: bool = False) -> list[tuple[str, str]]:
    return [
        ("Content-Type", content_type),
        ("Last-Modified", last_modified),
        *([("Content-Encoding", "gzip")] if gz else []),
        ("Content-Length", str(length)),
        *expected_unchanged(etag, vary, csp, link),
    ]


def expected_unchanged(etag: str, vary: str, csp: str, link: str | None = None) -> list[tuple[str, str]]:
    return [
        ("ETag", etag),
        ("Cache-Control", "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"),
        ("Vary", vary),
        *([("Link", link)] if link else []),
        *SECURITY,
        ("Content-Security-Policy", csp),
    ]


def test_flask_has_no_document_route(client) -> None:
    assert {rule.rule for rule in client.application.url_map.iter_rules()} == {"/healthz", "/metrics"}
    assert isinstance(client.application.wsgi_app, DocumentResponder)


@pytest.mark.parametrize("gz", [False, True])
def test_feed_header_for_header(published, client, gz: bool) -> None:
    entry = manifest_entry(published, "feed.xml")
    variant = entry["gzip" if gz else "identity"]
    response = client.get("/feed.xml", headers={"Accept-Encoding": "gzip, deflate, br"} if gz else {})
    assert response.status_code == 200
    link = f'<{HUB}>; rel="hub", <https://feeds.example.org/feed.xml>; rel="self"'
    assert headers_of(response) == expected_ok(
        "application/atom+xml; charset=utf-8", variant["etag"], response.headers["Last-Modified"], variant["size"],
        "Accept, Accept-Encoding", FEED_CONTENT_SECURITY_POLICY, link, gz=gz)
    body = gzip.decompress(response.data) if gz else response.data
    assert body.startswith(b"<?xml") and len(response.data) == variant["size"]

    # The ETag it sent, plain, weak or in a list: an empty 304 with no entity headers.
    for tag in (variant["etag"], "W/" + variant["etag"], f'"x", {variant["etag"]}'):
        again = client.get("/feed.xml", headers=({"Accept-Encoding": "gzip"} if gz else {}) | {"If-None-Match": tag})
        assert again.status_code == 304 and again.data == b""
        assert headers_of(again) == expected_unchanged(variant["etag"], "Accept, Accept-Encoding",
                                                       FEED_CONTENT_SECURITY_POLICY, link)

    head = client.head("/feed.xml", headers={"Accept-Encoding": "gzip"} if gz else {})
    assert head.status_code == 200 and head.data == b"" and headers_of(head) == headers_of(response)


def test_conditional_requests(client) -> None:
    plain = client.get("/feed.xml")
    last_modified = plain.headers["Last-Modified"]
    assert client.get("/feed.xml", headers={"If-Modified-Since": last_modified}).status_code == 304
    assert client.get("/feed.xml", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}).status_code == 200
    # Changed (issue 14): a date later than the server's clock is ignored (RFC 2616 §14.25, as Apache
    # does), so a reader holding a Last-Modified of 2100 from before is not answered 304 forever.
    assert client.get("/feed.xml", headers={"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}).status_code == 200
    # If-None-Match wins over If-Modified-Since.
    both = {"If-None-Match": '"nope"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    assert client.get("/feed.xml", headers=both).status_code == 200
    # The identity ETag does not validate the gzip variant.
    gz = client.get("/feed.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["ETag"]})
    assert gz.status_code == 200 and gz.headers["Content-Encoding"] == "gzip"
    assert client.get("/feed.xml", headers={"Accept-Encoding": "gzip;q=0"}).headers.get("Content-Encoding") is None


@pytest.mark.parametrize("gz", [False, True])
def test_browser_gets_the_feed_page(published, client, gz: bool) -> None:
    """A browser's Accept at /feed.xml and /feed.rss: the browser page, header for header: text/html,
    its own ETag, the strict CSP (no script at all), Vary: Accept."""
    encoding = {"Accept-Encoding": "gzip"} if gz else {}
    for path, name in (("/feed.xml", "feed.xml"), ("/feed.rss", "feed.rss")):
        page = manifest_entry(published, name + ".html")["gzip" if gz else "identity"]
        feed = manifest_entry(published, name)["gzip" if gz else "identity"]
        response = client.get(path, headers={"Accept": BROWSER_ACCEPT, **encoding})
        link = f'<{HUB}>; rel="hub", <https://feeds.example.org/{name}>; rel="self"'
        assert headers_of(response) == expected_ok(
            "text/html; charset=utf-8", page["etag"], response.headers["Last-Modified"], page["size"],
            "Accept, Accept-Encoding", CONTENT_SECURITY_POLICY, link, gz=gz)
        assert page["etag"] != feed["etag"]
        body = gzip.decompress(response.data) if gz else response.data
        assert body.startswith(b"<!DOCTYPE html>") and b"<script" not in body
        again = client.get(path, headers={"Accept": BROWSER_ACCEPT, "If-None-Match": page["etag"], **encoding})
        assert again.status_code == 304 and again.data == b""
        assert headers_of(again) == expected_unchanged(page["etag"], "Accept, Accept-Encoding",
                                                       CONTENT_SECURITY_POLICY, link)
        # The reader's ETag is not the browser's, and the browser's not the reader's.
        assert client.get(path, headers={"Accept": BROWSER_ACCEPT, "If-None-Match": feed["etag"],
                                         **encoding}).status_code == 200
        assert client.get(path, headers={"If-None-Match": page["etag"], **encoding}).status_code == 200


def test_browser_gets_the_archive_page_from_disk(published, client) -> None:
    page = manifest_entry(published, "archive/202009001.xml.html")["identity"]
    response = client.get("/archive/202009001.xml", headers={"Accept": BROWSER_ACCEPT})
    assert headers_of(response) == expected_ok("text/html; charset=utf-8", page["etag"],
                                               response.headers["Last-Modified"], page["size"],
                                               "Accept, Accept-Encoding", CONTENT_SECURITY_POLICY)
    assert b"This is an archive page" in response.data
    store = PublishedStore(published.output_dir)
    assert store.snapshot.documents["archive/202009001.xml.html"].identity.data is None  # on disk, like the page
    head = client.head("/archive/202009001.xml", headers={"Accept": BROWSER_ACCEPT})
    assert head.data == b"" and headers_of(head) == headers_of(response)


# What readers send (tests/test_readers.py records newsboat's for real): feedparser's own header,
# newsboat 2.21's and curl's (libcurl's default), a reader listing its feed types, and none.
READER_ACCEPTS = [
    feedparser_http.ACCEPT_HEADER,
    "*/*",
    "application/atom+xml, application/rss+xml;q=0.9, text/html;q=0.5, */*;q=0.1",
    "application/atom+xml, application/rss+xml, application/rdf+xml, application/xml, text/xml, text/html, */*",
    None,
]


@pytest.mark.parametrize("accept", READER_ACCEPTS)
def test_readers_get_the_feed_bytes_and_etag(published, client, accept: str | None) -> None:
    for name in ("feed.xml", "feed.rss", "archive/202009001.xml"):
        path = "/" + name
        doc = PublishedStore(published.output_dir).snapshot.documents[name]
        for gz in (False, True):
            variant = doc.gzip if gz else doc.identity
            headers = {"Accept-Encoding": "gzip"} if gz else {}
            if accept is not None:
                headers["Accept"] = accept
            response = client.get(path, headers=headers)
            assert response.data == variant.body and response.headers["ETag"] == variant.etag, (path, gz)
            assert response.headers["Content-Type"] == doc.content_type
            assert response.headers["Vary"] == "Accept, Accept-Encoding"
            assert client.get(path, headers={**headers, "If-None-Match": variant.etag}).status_code == 304


def test_browser_pages_have_no_route_of_their_own(client) -> None:
    for path in ("/feed.xml.html", "/feed.rss.html", "/archive/202009001.xml.html", "/index.html.html"):
        assert client.get(path, headers={"Accept": BROWSER_ACCEPT}).status_code == 404, path


def test_a_manifest_without_browser_pages_serves_the_feed(published, client) -> None:
    """A manifest an older builder published (no browser pages yet): a browser gets the feed itself."""
    manifest = read_manifest(published.output_dir)
    feed = manifest["documents"]["feed.xml"]
    manifest["documents"] = {k: v for k, v in manifest["documents"].items() if not k.endswith(".html")
                             or k == "index.html"}
    write_atomic(published.output_dir / "manifest.json", json.dumps(manifest).encode())
    store = client.application.extensions["feedsvc"].store
    assert store.refresh()
    response = client.get("/feed.xml", headers={"Accept": BROWSER_ACCEPT})
    assert response.headers["ETag"] == feed["etag"] and response.headers["Content-Type"] == feed["content_type"]
    assert response.headers["Vary"] == "Accept, Accept-Encoding"


def test_index_json_and_xsl(published, client) -> None:
    index = client.get("/", headers={"Accept": BROWSER_ACCEPT})
    entry = manifest_entry(published, "index.html")
    assert headers_of(index) == expected_ok("text/html; charset=utf-8", entry["identity"]["etag"],
                                            index.headers["Last-Modified"], entry["identity"]["size"],
                                            "Accept-Encoding", CONTENT_SECURITY_POLICY)
    feed_json = client.get("/feed.json")
    assert feed_json.status_code == 200 and feed_json.headers["Vary"] == "Accept-Encoding"
    assert json.loads(feed_json.data)["version"].startswith("https://jsonfeed.org/")
    assert "Link" in feed_json.headers
    xsl = client.get("/feed.xsl")
    assert xsl.status_code == 200 and xsl.headers["Content-Type"] == "text/xsl; charset=utf-8"
    assert "Link" not in xsl.headers


def test_archive_pages(published, client) -> None:
    # b.txt (September 2020) is the one archived entry: the first page of its month.
    entry = manifest_entry(published, "archive/202009001.xml")
    page = client.get("/archive/202009001.xml")
    assert headers_of(page) == expected_ok("application/atom+xml; charset=utf-8", entry["identity"]["etag"],
                                           page.headers["Last-Modified"], entry["identity"]["size"],
                                           "Accept, Accept-Encoding", FEED_CONTENT_SECURITY_POLICY)
    assert client.get("/archive/202009001.xml", headers={"If-None-Match": entry["identity"]["etag"]}).status_code == 304
    gz = client.get("/archive/202009001.xml", headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.data) == page.data
    assert client.head("/archive/202009001.xml").data == b""
    for path in ("/archive/1.xml", "/archive/202009002.xml", "/archive/0.xml", "/archive/01.xml", "/archive/1",
                 "/archive/", "/archive/x/1.xml"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize(("keys", "expected"), [
    ({"cache_max_age": 5, "cache_s_maxage": 120, "stale_while_revalidate": 30, "stale_if_error": 600},
     "public, max-age=5, s-maxage=120, stale-while-revalidate=30, stale-if-error=600"),
    ({"stale_while_revalidate": 0, "stale_if_error": 0}, "public, max-age=300"),
])
def test_cache_control_on_every_document(published, keys, expected) -> None:
    client = create_app(dataclasses.replace(published, **keys), run_builder=False).test_client()
    archive = [n for n in PublishedStore(published.output_dir).snapshot.documents if n.startswith("archive/")]
    routes = [route for route, name in ROUTES.items() if name != "feeds.opml"]  # no [[feeds]]: no OPML
    paths = [*routes, *("/" + n for n in archive if not n.endswith(".html"))]
    assert len(paths) == len(routes) + 1
    for path in paths:
        for headers in ({}, {"Accept-Encoding": "gzip"}, {"Accept": BROWSER_ACCEPT}):
            ok = client.get(path, headers=headers)
            assert ok.status_code == 200 and ok.headers["Cache-Control"] == expected, (path, headers)
            again = client.get(path, headers=headers | {"If-None-Match": ok.headers["ETag"]})
            assert again.status_code == 304 and again.headers["Cache-Control"] == expected, (path, headers)


def test_archive_page_collected_meanwhile_is_read_again_once(published) -> None:
    """An OSError reading a page's object file: the store is refreshed and the page read once more."""
    app = create_app(published, run_builder=False)
    client = app.test_client()
    store = app.extensions["feedsvc"].store
    path = store.snapshot.documents["archive/202009001.xml"].identity.path
    body = path.read_bytes()
    path.unlink()
    real_refresh = store.refresh
    refreshed: list[bool] = []

    def refresh() -> bool:
        refreshed.append(True)
        path.write_bytes(body)  # what a newer manifest would name
        return real_refresh()

    store.refresh = refresh
    assert client.get("/archive/202009001.xml").data == body and refreshed == [True]
    path.unlink()
    store.refresh = real_refresh
    gone = client.get("/archive/202009001.xml")
    assert gone.status_code == 503 and gone.headers["Retry-After"] == "5"


def test_404_for_an_unpublished_document(make_seed, config) -> None:
    make_seed("a.txt", url="https://e.com/a")
    cfg = config(stylesheet=False)
    Builder(cfg).build()
    client = create_app(cfg, run_builder=False).test_client()
    missing = client.get("/feed.xsl")
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert missing.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert client.head("/feed.xsl").data == b""


def test_503_before_the_first_publish(config) -> None:
    client = create_app(config(), run_builder=False).test_client()
    for path in (*ROUTES, "/archive/1.xml"):
        response = client.get(path)
        assert response.status_code == 503 and response.headers["Retry-After"] == "5", path
        assert response.headers["Cache-Control"] == "no-store" and response.json["status"] == "unavailable"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/feed.xml", "/", "/archive/1.xml"])
def test_405_for_other_methods(client, path: str, method: str) -> None:
    response = client.open(path, method=method, data=b"x")
    assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY  # werkzeug's HTML page


def test_413_for_large_bodies_on_any_path(client) -> None:
    for path in ("/feed.xml", "/healthz", "/nope", "/archive/1.xml"):
        assert client.post(path, data=b"x" * (16 * 1024 + 1)).status_code == 413, path
        assert client.get(path, data=b"x" * 100_000).status_code == 413, path
    assert raw_call(client.application, "/feed.xml", b"", CONTENT_LENGTH="nonsense").startswith("413")
    assert client.post("/feed.xml", data=b"x").status_code == 405  # small: the method decides
    assert client.post("/feed.xml", data=b"x" * (16 * 1024)).status_code == 405


def raw_call(app, path: str, body: bytes, **extra: str) -> str:
    """A POST through the app's WSGI stack with a hand-made environ, as a server makes it; the status line."""
    started: list[str] = []
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "wsgi.input": io.BytesIO(body), "SERVER_NAME": "x",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.errors": io.StringIO(), **extra}
    b"".join(app.wsgi_app(environ, lambda status, headers, *_: started.append(status)))
    return started[0]


def test_413_for_a_chunked_body_beyond_the_limit(published) -> None:
    app = create_app(published, run_builder=False)

    def call(body: bytes, path: str = "/feed.xml") -> str:
        return raw_call(app, path, body, HTTP_TRANSFER_ENCODING="chunked")

    assert call(b"x" * 70_000).startswith("413")
    assert call(b"x" * 70_000, "/healthz").startswith("413")
    assert call(b"x" * 10).startswith("405")
    assert call(b"x" * 10, "/healthz").startswith("405")


def test_other_paths_go_to_flask(client) -> None:
    assert client.get("/healthz").status_code == 200
    for path in ("/nope", "/feed.xml/", "/FEED.XML", "/index.html"):
        response = client.get(path)
        assert response.status_code == 404 and response.headers["X-Frame-Options"] == "DENY", path
    assert client.post("/healthz").status_code == 405


def test_query_strings_are_ignored(client) -> None:
    assert client.get("/feed.xml?_=123").data == client.get("/feed.xml").data


ETAG = '"0123456789abcdef0123456789abcdef"'
LAST_MODIFIED = datetime(2024, 5, 6, 7, 8, 9, 500_000, tzinfo=UTC)
_tag = st.sampled_from([ETAG, "W/" + ETAG, '"other"', 'W/"other"', '"0123"', "*", "", "garbage", '"a,b"'])
_if_none_match = st.lists(_tag, max_size=3).map(", ".join) | st.text(alphabet='"W/ ,*ab', max_size=12)
_if_modified_since = st.sampled_from(
    [http_date(LAST_MODIFIED + timedelta(seconds=s)) for s in (-3600, -1, 0, 1, 86400)]
    + ["Sat, 01 Jan 2000 00:00:00 GMT", "not a date", "", "Mon, 06 May 2024 07:08:09"]
)


@given(st.none() | _if_none_match, st.none() | _if_modified_since)
def test_not_modified_agrees_with_werkzeug(if_none_match, if_modified_since) -> None:
    """The cached conditional check decides exactly as werkzeug's general-purpose one (for dates up
    to the request's time; a later If-Modified-Since is ignored: tests/test_dates.py)."""
    environ = {"REQUEST_METHOD": "GET"}
    if if_none_match is not None:
        environ["HTTP_IF_NONE_MATCH"] = if_none_match
    if if_modified_since is not None:
        environ["HTTP_IF_MODIFIED_SINCE"] = if_modified_since
    expected = not is_resource_modified(environ, etag=ETAG.strip('"'), last_modified=LAST_MODIFIED)
    assert not_modified(environ, ETAG, LAST_MODIFIED, time.time()) == expected
