"""The one responder: every GET/HEAD of a published document is answered here, for every server.

`DocumentResponder` is a WSGI callable in front of the Flask app (`app.wsgi_app`), so gunicorn
(the Procfile, `feedsvc serve`), `flask run` and Flask's test client all go through it. It
answers the routes of the document table (`feedsvc.core.render.documents`) and the RFC 5005
archive pages (`/archive/<n>.xml`), including the 503 before the first publish, the 404 for a
name that is not published and the 405 for other methods; it refuses a request body over 16 KiB
on any path (413). Everything else (`/healthz`, other paths' 404 pages) goes to Flask, which has
no route that answers a document.

The bytes, the gzip variant and every header are fixed per published version, so header lists
are built once per (document version, encoding) and a request costs a dict lookup and a cached
conditional check.

An Atom or RSS document (feed.xml, feed.rss, each archive page) asked for by a request that
ranks text/html above the document's type (a browser) is answered with its browser page, the
HTML published beside it (`page_name`): text/html, the page's own ETag and strict CSP. Every
answer for such a URL carries `Vary: Accept`. Readers, which list feed types or send `*/*` or
no Accept, get the feed's bytes and ETag.

`Last-Modified` is never later than the response's `Date` (RFC 9110 §8.8.2.1): a document dated
ahead of this clock is sent with the request's time, checked per request. Every 200 and 304 of a
document carries the configured `Cache-Control` (`Config.cache_control`: max-age, and s-maxage,
stale-while-revalidate and stale-if-error for the caches in front).

Every answer given here is counted by document and status (`count`, from `feedsvc.web.metrics_endpoint`):
one dict lookup and one increment.
"""

from __future__ import annotations

import functools
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from werkzeug.datastructures import ETags, MIMEAccept
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge
from werkzeug.http import http_date, parse_accept_header, parse_date

from feedsvc.config import Config
from feedsvc.core.routes import ROUTES, document_name, is_article, is_topic, page_name
from feedsvc.publish.reader import Served, Snapshot
from feedsvc.web.headers import article_headers, security_headers_for

MAX_BODY = 16 * 1024  # no document takes a body, and neither does /healthz
RETRY_AFTER = 5
METHODS = ("GET", "HEAD")
# The documents that have a browser page, by type: a browser gets that page at their URL.
_XML_FEED_TYPES = ("application/atom+xml", "application/rss+xml")

Headers = list[tuple[str, str]]
# Counts one answer: (document label, status code), e.g. ("feed.xml", "304"); feedsvc.web.metrics_endpoint.
Count = Callable[[str, str], None]
_LABELS = {name: name for name in ROUTES.values()}
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Store(Protocol):
    """What the responder needs of `feedsvc.publish.PublishedStore`."""

    @property
    def snapshot(self) -> Snapshot | None: ...

    def refresh(self) -> bool: ...


# Request headers are client bytes (up to 32 KiB a head, feedsvc.web.worker.MAX_HEAD): what is
# cached is keyed by short values only, and what is parsed is bounded, so a flood of large,
# distinct values costs neither memory nor much time. Readers and browsers send values far
# shorter than these bounds; a longer one is only ever parsed in part (below).
CACHED_VALUE = 512  # bytes: longer values are parsed on each request (bounded), never cached
PARSED_LIST = 1024  # bytes of an Accept or Accept-Encoding list parsed: its items up to this far
MAX_ETAGS = 64  # If-None-Match entries compared: a longer list is answered as if it matched none
MAX_DATE = 64  # an If-Modified-Since longer than this is not an HTTP date: ignored
_ETAG = re.compile(r'[ \t]*([Ww]/)?(?:"([^"]*)"|([^" \t,]+))[ \t]*(?:,|\Z)')


def _listed(header: str) -> str:
    """An Accept-style list cut to its whole items within PARSED_LIST bytes."""
    return header if len(header) <= PARSED_LIST else header[:PARSED_LIST].rpartition(",")[0]


def _accepts_gzip(header: str) -> bool:
    return _accepts_gzip_listed(_listed(header))


@functools.lru_cache(maxsize=256)
def _accepts_gzip_listed(header: str) -> bool:
    return parse_accept_header(header)["gzip"] > 0


def _prefers_page(accept: str, feed_type: str) -> bool:
    """A browser: it ranks text/html above the feed's own type."""
    return _prefers_page_listed(_listed(accept), feed_type)


@functools.lru_cache(maxsize=256)
def _prefers_page_listed(accept: str, feed_type: str) -> bool:
    parsed = parse_accept_header(accept, MIMEAccept)
    return parsed.quality("text/html") > parsed.quality(feed_type)


def parse_etags(header: str, limit: int = MAX_ETAGS) -> ETags:
    """werkzeug's `parse_etags`, reading at most `limit` entries (valid or not) of the list."""
    if not header:
        return ETags()
    if header == "*":
        return ETags(star_tag=True)
    strong: list[str] = []
    weak: list[str] = []
    pos = 0
    for _entry in range(limit):
        match = _ETAG.match(header, pos)
        if match is None:
            pos = header.find(",", pos) + 1  # skip an invalid entry
            if pos == 0:
                break
            continue
        is_weak, tag, unquoted = match.groups()
        (weak if is_weak else strong).append(tag or unquoted)
        pos = match.end()
        if pos >= len(header):
            break
    return ETags(strong, weak)


def _etags(header: str) -> ETags:
    return _etags_cached(header) if len(header) <= CACHED_VALUE else parse_etags(header)


@functools.lru_cache(maxsize=1024)
def _etags_cached(header: str) -> ETags:
    return parse_etags(header)


@functools.lru_cache(maxsize=256)
def _since(header: str) -> datetime | None:
    return parse_date(header)


def not_modified(environ: Mapping[str, str], etag: str, last_modified: datetime, now: float) -> bool:
    """RFC 9110 §13.2.2 for GET/HEAD: If-None-Match (weak comparison) decides; without it,
    If-Modified-Since at one-second precision, against `last_modified` as sent (see `sent_date`).
    werkzeug's `is_resource_modified` with the short parsed headers cached: readers poll with the
    same few values, and parsing them on every request was a tenth of the request's cost
    (tests/test_documents.py checks they agree). Long values are parsed within bounds and never
    cached (`MAX_ETAGS`, `CACHED_VALUE`, `MAX_DATE`). One difference: an If-Modified-Since later than
    `now` (the request's time) is ignored, as RFC 2616 §14.25 and Apache do: no Last-Modified we
    send is ever that late, and a reader holding one from elsewhere would get 304s forever.
    """
    tags = _etags(environ.get("HTTP_IF_NONE_MATCH", ""))
    if tags:
        return tags.contains_weak(etag.strip('"'))
    since = environ.get("HTTP_IF_MODIFIED_SINCE")
    if not since:
        return False
    when = _since(since) if len(since) <= MAX_DATE else None
    return when is not None and when.timestamp() <= now and last_modified.replace(microsecond=0) <= when


def sent_date(last_modified: datetime, now: float) -> datetime:
    """The Last-Modified to send at `now`: never later than the response's Date (RFC 9110 §8.8.2.1)."""
    return last_modified if last_modified.timestamp() <= now else datetime.fromtimestamp(now, UTC)


@dataclass(frozen=True)
class Prepared:
    """One document version's answers for one encoding."""

    etag: str
    ok: Headers  # the 200's headers
    unchanged: Headers  # the 304's: no entity headers
    modified: float  # the document's last_modified, as a timestamp: a later request time sends it as is


@dataclass(frozen=True)
class Fixed:
    """A whole answer that never changes: the 503, 404, 405 and 413."""

    status: str
    headers: Headers
    body: bytes


def _page(error: HTTPException) -> Fixed:
    """werkzeug's page for an HTTP error (the one Flask sends), with the security headers."""
    response = error.get_response()
    headers = response.headers.to_wsgi_list()
    return Fixed(response.status, headers + security_headers_for(response.mimetype), response.get_data())


def _unavailable(message: str) -> Fixed:
    body = json.dumps({"message": message, "status": "unavailable"}, separators=(",", ":")).encode() + b"\n"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Retry-After", str(RETRY_AFTER)),
        ("Cache-Control", "no-store"),
    ]
    return Fixed("503 SERVICE UNAVAILABLE", headers + security_headers_for("application/json"), body)


NOT_FOUND = _page(NotFound())
NOT_ALLOWED = _page(MethodNotAllowed(valid_methods=list(METHODS)))
TOO_LARGE = _page(RequestEntityTooLarge())
NOT_PUBLISHED = _unavailable("no feed has been published yet")
REPUBLISHING = _unavailable("the archive is being republished")


class DocumentResponder:
    """The WSGI callable in front of the Flask app (see the module docstring)."""

    def __init__(
        self,
        app: WSGIApp,
        store: Store,
        config: Config,
        max_body: int = MAX_BODY,
        count: Count | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.config = config
        self.cache_control = config.cache_control
        self.max_body = max_body
        self.count = count
        self._prepared: dict[tuple[str, str, bool, datetime, str], Prepared] = {}

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        name = document_name(environ.get("PATH_INFO", ""))
        if environ.get("CONTENT_LENGTH") or environ.get("HTTP_TRANSFER_ENCODING"):
            refused = self._check_body(environ)
            if refused is not None:
                return self._send(refused, name, environ, start_response)
        if name is None:
            return self.app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in METHODS:
            return self._send(NOT_ALLOWED, name, environ, start_response)
        status, headers, body = self.respond(environ, name)
        if self.count is not None:
            self.count(_label(name), status[:3])
        start_response(status, headers)
        return [body] if body and environ["REQUEST_METHOD"] == "GET" else []

    def respond(self, environ: Mapping[str, Any], name: str) -> tuple[str, Headers, bytes]:
        """(status line, headers, body) of a GET of document `name`; the same headers for HEAD."""
        snapshot = self.store.snapshot
        if snapshot is None or "feed.xml" not in snapshot.documents:
            return _fixed(NOT_PUBLISHED)
        for _attempt in range(2):
            try:
                doc = snapshot.get(name) if snapshot is not None else None
                if snapshot is None or doc is None:
                    return _fixed(NOT_FOUND)  # e.g. /feed.xsl with the stylesheet off, a page not yet archived
                feed_type = doc.content_type.split(";")[0]
                negotiated = feed_type in _XML_FEED_TYPES
                if negotiated and _prefers_page(environ.get("HTTP_ACCEPT", ""), feed_type):
                    # Its browser page (absent only from a manifest published before there were any).
                    doc = snapshot.documents.get(page_name(name), doc)
                return self.answer(environ, name, doc, negotiated)
            except OSError:
                # An archive or entry page (or its index's shard) is read from its object file,
                # which publishes since this snapshot may have collected: reload the manifest and
                # answer from the new one.
                self.store.refresh()
                snapshot = self.store.snapshot
        return _fixed(REPUBLISHING)

    def answer(
        self, environ: Mapping[str, Any], name: str, doc: Served, negotiated: bool
    ) -> tuple[str, Headers, bytes]:
        """200 or 304 for `doc` at the URL of document `name` (`negotiated`: a URL whose answer
        depends on Accept); the body is read (for an archive page, from disk) only for a 200."""
        gz = _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
        variant = doc.gzip if gz else doc.identity
        # The same bytes may be published again under a new date (or type): that is another answer.
        key = (name, variant.etag, gz, doc.last_modified, doc.content_type)
        prepared = self._prepared.get(key)
        if prepared is None:
            if len(self._prepared) > 256:
                self._prepared.clear()  # old versions
            prepared = self._prepared[key] = self._prepare(name, doc, gz, negotiated)
        now = time.time()
        if now >= prepared.modified:  # the normal case: the headers as prepared
            if not_modified(environ, prepared.etag, doc.last_modified, now):
                return "304 NOT MODIFIED", list(prepared.unchanged), b""
            return "200 OK", list(prepared.ok), variant.body
        # Dated ahead of this clock (an archive page's entry stamped up to a day ahead, another
        # host's clock): Last-Modified is now, and If-Modified-Since is compared with that.
        sent = sent_date(doc.last_modified, now)
        if not_modified(environ, prepared.etag, sent, now):
            return "304 NOT MODIFIED", list(prepared.unchanged), b""
        headers = [("Last-Modified", http_date(sent)) if k == "Last-Modified" else (k, v) for k, v in prepared.ok]
        return "200 OK", headers, variant.body

    def link(self, name: str) -> str | None:
        """WebSub discovery for the subscription feeds (the topics the builder pings)."""
        if not self.config.websub_hub or not is_topic(name):
            return None
        return f'<{self.config.websub_hub}>; rel="hub", <{self.config.base_url.rstrip("/")}/{name}>; rel="self"'

    def _prepare(self, name: str, doc: Served, gz: bool, negotiated: bool) -> Prepared:
        variant = doc.gzip if gz else doc.identity
        link = self.link(name)
        common = [
            ("ETag", variant.etag),
            ("Cache-Control", self.cache_control),
            ("Vary", "Accept, Accept-Encoding" if negotiated else "Accept-Encoding"),
            *([("Link", link)] if link else []),
            *(article_headers() if is_article(name) else security_headers_for(doc.content_type)),
        ]
        ok = [
            ("Content-Type", doc.content_type),
            ("Last-Modified", http_date(doc.last_modified)),
            *([("Content-Encoding", "gzip")] if gz else []),
            ("Content-Length", str(variant.size)),
            *common,
        ]
        return Prepared(variant.etag, ok, common, doc.last_modified.timestamp())

    def _check_body(self, environ: dict[str, Any]) -> Fixed | None:
        """413 for a body over `max_body`: a declared length is refused before a byte is read; a
        chunked body is read up to the limit (and handed on as a plain one when it fits)."""
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            return None if declared.isdigit() and int(declared) <= self.max_body else TOO_LARGE
        if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return None
        body = environ["wsgi.input"].read(self.max_body + 1)
        if len(body) > self.max_body:
            return TOO_LARGE
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return None

    def _send(
        self, fixed: Fixed, name: str | None, environ: Mapping[str, Any], start_response: StartResponse
    ) -> list[bytes]:
        if self.count is not None:
            self.count(_label(name), fixed.status[:3])
        start_response(fixed.status, list(fixed.headers))
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [fixed.body]


def _label(name: str | None) -> str:
    """The `document` label: a document's name, one label for every archive page and one for every
    entry's page, `other` for a path that names no document (never the raw path: the label set
    stays small)."""
    if name is None:
        return "other"
    return _LABELS.get(name) or ("article" if is_article(name) else "archive")


def _fixed(fixed: Fixed) -> tuple[str, Headers, bytes]:
    return fixed.status, list(fixed.headers), fixed.body
