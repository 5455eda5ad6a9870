"""Request headers are client bytes: the responder parses them within bounds and caches only short
values (If-None-Match, Accept, Accept-Encoding, If-Modified-Since), and the worker's head reader
says when a head is complete."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from werkzeug.http import parse_etags as werkzeug_parse_etags

from feedsvc.web import responder
from feedsvc.web.responder import MAX_ETAGS, not_modified, parse_etags
from feedsvc.web.worker import head_complete

ETAG = '"5f3c9a"'
NOW = time.time()
MODIFIED = datetime(2024, 1, 1, tzinfo=UTC)


def inm(value: str) -> bool:
    return not_modified({"HTTP_IF_NONE_MATCH": value}, ETAG, MODIFIED, NOW)


def test_a_304_for_ordinary_if_none_match_lists() -> None:
    assert inm(ETAG) and inm(f"W/{ETAG}") and inm("*")
    assert inm(f'"a", W/"b", {ETAG}') and inm(f'W/"x" , W/{ETAG}')
    assert not inm('"a", W/"b"') and not inm('"5f3c9"')


def test_parse_etags_agrees_with_werkzeug_within_its_cap() -> None:
    for value in ['"a"', 'W/"a", "b"', "*", ' "a" , W/"b",c', 'junk,,"x"', '"a", *', "", 'w/"c"', '"a,b", "c"']:
        assert parse_etags(value).to_header() == werkzeug_parse_etags(value).to_header(), value


def test_at_most_max_etags_entries_are_compared() -> None:
    others = [f'"other{n}"' for n in range(MAX_ETAGS - 1)]
    assert inm(", ".join([*others, ETAG]))  # the 64th entry: compared
    assert not inm(", ".join([*others, '"one more"', ETAG]))  # the 65th: not (a 200, never a wrong 304)
    assert not inm(",".join(["junk"] * 10_000 + [ETAG]))  # invalid entries count too


def test_long_values_are_never_cached() -> None:
    responder._etags_cached.cache_clear()
    responder._accepts_gzip_listed.cache_clear()
    responder._prefers_page_listed.cache_clear()
    for n in range(50):
        long = ", ".join(f'"{n}-{i}"' for i in range(3000))  # ~30 KB, distinct each time
        inm(long)
        responder._accepts_gzip(f"gzip, {long}")
        responder._prefers_page(f"text/html, {long}", "application/atom+xml")
    assert responder._etags_cached.cache_info().currsize == 0
    # Accept lists are parsed up to PARSED_LIST bytes: what is cached is that long at most.
    assert responder._accepts_gzip_listed.cache_info().currsize <= 50


def test_long_accept_lists_are_parsed_in_part_and_quickly() -> None:
    huge = ", ".join(["x" * 8000] * 45)  # 45 header lines of 8 KB, joined: 0.37 s of CPU before
    start = time.process_time()
    assert responder._accepts_gzip(f"gzip, {huge}")  # gzip comes first: seen
    assert not responder._accepts_gzip(f"{huge}, gzip")  # past PARSED_LIST: identity, a correct answer
    assert not responder._prefers_page(huge, "application/atom+xml")
    assert not_modified({"HTTP_IF_MODIFIED_SINCE": huge}, ETAG, MODIFIED, NOW) is False
    assert time.process_time() - start < 0.05


def test_a_head_is_complete_at_its_blank_line_or_a_bare_lf() -> None:
    assert head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert head_complete(b"GET / HTTP/1.1\nHost: x")  # refused by the parser at once
    head = bytearray()
    seen = []
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n\r\n":  # one byte at a time, as a slow client
        start = len(head)
        head.append(byte)
        seen.append(head_complete(head, start))
    assert seen.count(True) == 1 and seen[-1]
