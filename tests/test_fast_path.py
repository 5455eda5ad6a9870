"""The WSGI fast path for published documents answers exactly as the Flask routes do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.http import http_date, is_resource_modified

from feedsvc.build.builder import Builder
from feedsvc.web import create_app, not_modified

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
    """The cached conditional check decides exactly as werkzeug's general-purpose one."""
    environ = {"REQUEST_METHOD": "GET"}
    if if_none_match is not None:
        environ["HTTP_IF_NONE_MATCH"] = if_none_match
    if if_modified_since is not None:
        environ["HTTP_IF_MODIFIED_SINCE"] = if_modified_since
    expected = not is_resource_modified(environ, etag=ETAG.strip('"'), last_modified=LAST_MODIFIED)
    assert not_modified(environ, ETAG, LAST_MODIFIED) == expected
