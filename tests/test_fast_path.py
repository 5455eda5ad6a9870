"""The WSGI fast path for published documents answers exactly as the Flask routes do."""

from __future__ import annotations

import pytest

from feedsvc.build import Builder
from feedsvc.web import create_app

REQUESTS = [
    ("GET", "/feed.xml", {}),
    ("GET", "/feed.xml", {"Accept-Encoding": "gzip, deflate, br"}),
    ("GET", "/feed.xml", {"Accept-Encoding": "gzip;q=0"}),
    ("HEAD", "/feed.xml", {"Accept-Encoding": "gzip"}),
    ("GET", "/", {}),
    ("GET", "/feed.xml", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}),
    ("GET", "/feed.xml", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    ("GET", "/feed.xml", {"If-None-Match": '"nope"', "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    ("POST", "/feed.xml", {}),
    ("GET", "/healthz", {}),
]


@pytest.fixture
def apps(make_seed, config):
    make_seed("a.txt", url="https://e.com/a", title="A & <b>")
    cfg = config()
    Builder(cfg).build()
    fast = create_app(cfg, run_builder=False).test_client()
    return fast, create_app(cfg, run_builder=False, fast_path=False).test_client()


def answer(client, method, path, headers):
    response = client.open(path, method=method, headers=headers)
    ignored = {"Date"} if path != "/healthz" else {"Date", "Content-Length"}
    return response.status, [(k, v) for k, v in response.headers.items() if k not in ignored], (
        response.data if path != "/healthz" else b"")


@pytest.mark.parametrize(("method", "path", "headers"), REQUESTS)
def test_same_answer(apps, method, path, headers) -> None:
    fast, flask = apps
    assert answer(fast, method, path, headers) == answer(flask, method, path, headers)


@pytest.mark.parametrize("gzip", [False, True])
def test_same_304_for_the_etag_it_sent(apps, gzip) -> None:
    fast, flask = apps
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    etag = fast.get("/feed.xml", headers=headers).headers["ETag"]
    for variant in (etag, "W/" + etag, f'"x", {etag}'):
        got = answer(fast, "GET", "/feed.xml", headers | {"If-None-Match": variant})
        assert got[0] == "304 NOT MODIFIED"
        assert got == answer(flask, "GET", "/feed.xml", headers | {"If-None-Match": variant})


def test_before_the_first_publish_flask_answers(config) -> None:
    client = create_app(config(), run_builder=False).test_client()
    response = client.get("/feed.xml")
    assert response.status_code == 503 and response.headers["Retry-After"]
