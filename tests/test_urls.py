"""Every URL that reaches a feed is a URI: IRIs are converted as RFC 3987 §3.1 says (core/urls.py to_uri).

The W3C Feed Validator reported "IRI found where URL expected" for raw CJK article URLs in Atom `id`,
RSS `link`/`guid` and JSON Feed `url`. Its rule (a URI holds only RFC 3986's characters) is checked here
offline, with a strict RFC 3986 Appendix A grammar and the `rfc3986` package, on every URL of every
published document of a corpus of IRIs, built with both sanitizer backends.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import feedparser
import lxml.html
import pytest
import rfc3986
from conftest import SAMPLE, seed_text
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from rfc3986 import validators
from schemas import validate_atom, validate_jsonfeed

from feedsvc.config import ConfigError, load_config
from feedsvc.core.entry import make_entry
from feedsvc.core.parse import parse_seed
from feedsvc.core.sanitize import BACKENDS, get_sanitizer
from feedsvc.core.urls import canonical_url, http_url, safe_url, to_uri
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import read_manifest

# RFC 3986 Appendix A, for the absolute URIs a feed carries (http(s) with an authority; mailto:, urn:).
_UNRESERVED, _SUB_DELIMS, _PCT = r"A-Za-z0-9\-._~", r"!$&'()*+,;=", r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_AUTHORITY = (rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"
              rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)(?::[0-9]*)?")
_HIER = rf"(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/?(?:{_PCHAR}+(?:/{_PCHAR}*)*)?)"
STRICT_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:{_HIER}(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?\Z")
_VALIDATOR = (validators.Validator().require_presence_of("scheme")
              .check_validity_of("scheme", "userinfo", "host", "port", "path", "query", "fragment"))


def is_uri(url: str) -> bool:
    """ASCII, RFC 3986's grammar (what the W3C validator's character rule implies, and more), and rfc3986 agrees."""
    if not (url.isascii() and STRICT_URI.match(url)):
        return False
    try:
        _VALIDATOR.validate(rfc3986.uri_reference(url))
    except rfc3986.exceptions.ValidationError:
        return False
    return True


DW_IRI = "https://www.dw.com/zh/經濟上的-著作權法/a-70000000"
DW_URI = ("https://www.dw.com/zh/%E7%B6%93%E6%BF%9F%E4%B8%8A%E7%9A%84-%E8%91%97%E4%BD%9C%E6%AC%8A%E6%B3%95"
          "/a-70000000")
IDN_IRI = "https://例え.テスト/パス?q=値#frag"
IDN_URI = "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9?q=%E5%80%A4#frag"
SAMPLE_URL = ("https://www.dw.com/zh/%E4%B8%AD%E5%9C%8B%E9%98%B2%E9%95%B7%E6%9C%83%E8%A6%8B%E6%99%AE%E4%BA%AC"
              "%20%E8%AB%87%E5%8A%A0%E5%BC%B7%E8%BB%8D%E4%BA%8B%E5%90%88%E4%BD%9C/a-65338710")


@pytest.mark.parametrize(
    ("iri", "uri"),
    [
        (DW_IRI, DW_URI),
        (IDN_IRI, IDN_URI),
        ("https://e.com/a b/c d?x=1 2", "https://e.com/a%20b/c%20d?x=1%202"),
        ("https://e.com/100%-sure/a%2", "https://e.com/100%25-sure/a%252"),  # a lone "%": %25
        ("https://e.com/a[1]?b[]=2#x#y", "https://e.com/a%5B1%5D?b%5B%5D=2#x%23y"),
        ('https://e.com/"<>\\^`{|}', "https://e.com/%22%3C%3E%5C%5E%60%7B%7C%7D"),
        ("http://[2001:db8::1]:8080/ä", "http://[2001:db8::1]:8080/%C3%A4"),  # an IP literal keeps its brackets
        ("https://user:pä@例え。テスト:8443/", "https://user:p%C3%A4@xn--r8jz45g.xn--zckzah:8443/"),  # U+3002 is a dot
        ("https://ＷＷＷ.Bücher.de/", "https://www.xn--bcher-kva.de/"),  # UTS 46 maps full-width and case
        ("https://😀.example/", "https://%F0%9F%98%80.example/"),  # IDNA 2008 refuses it: percent-encoded
        ("mailto:名前@例え.jp", "mailto:%E5%90%8D%E5%89%8D@%E4%BE%8B%E3%81%88.jp"),  # no authority, no IDNA
        ("//例え.jp/x", "//xn--r8jz45g.jp/x"),
        ("/相對/路徑?q=中", "/%E7%9B%B8%E5%B0%8D/%E8%B7%AF%E5%BE%91?q=%E4%B8%AD"),
    ],
)
def test_iris_become_uris(iri: str, uri: str) -> None:
    assert to_uri(iri) == uri
    assert to_uri(uri) == uri


@pytest.mark.parametrize(
    "url",
    [
        SAMPLE_URL,
        "https://images.weserv.nl/?url=static.dw.com/image/65342044_303.jpg",
        "https://e.com/%e4%b8%ad?q=%E5%80%BC&r=a%2Fb;c=d,e#s/%20?",  # lowercase hex and %2F: never re-encoded
        "https://E.COM:443/A/./b/../c",  # no normalization: only characters a URI cannot hold change
        "http://[::1]/",
        "urn:uuid:6f1c1b38-6d43-4d8b-9d2e-5b0f6a1f0c4d",
        "",
    ],
)
def test_uris_are_kept_byte_for_byte(url: str) -> None:
    assert to_uri(url) == url


def test_the_samples_id_does_not_change() -> None:
    article = parse_seed(SAMPLE.read_bytes(), SAMPLE.name, None)
    assert article.link == SAMPLE_URL
    entry = make_entry(article)
    assert entry.link == SAMPLE_URL
    assert entry.id == SAMPLE_URL  # as it was published before IRIs were converted


URI_PIECES = ["http", "https", "://", ":", "/", "//", "?", "#", "@", "[", "]", "%", "%2", "%20", "%E4%B8%AD", "%e4",
              " ", "\t", "\x7f", "字", "例え", "テスト", ".", "。", "．", "e.com", "xn--", "-", "~", "&", "=", "+", "'",
              '"', "<", ">", "\\", "^", "`", "{", "|", "}", ":80", "😀", "ß", "Ä", "\u200b", "\ud800"]
_KEPT = r"[A-Za-z0-9\-._~!$&'()*+,;=:/?@]|%[0-9A-Fa-f]{2}"
_URI_TEXT = re.compile(rf"(?:{_KEPT}|[\[\]])*(?:#(?:{_KEPT})*)?\Z")


@settings(max_examples=200)
@given(st.lists(st.sampled_from(URI_PIECES), max_size=14).map("".join))
def test_converting_twice_is_converting_once(value: str) -> None:
    once = to_uri(value)
    assert to_uri(once) == once
    assert once.isascii() and _URI_TEXT.match(once), once  # only URI characters, "%" only in escapes, one "#"


@settings(max_examples=200)
@given(st.from_regex(STRICT_URI, fullmatch=True).filter(is_uri))  # the filter: rfc3986 also checks IP literals
def test_a_uri_is_unchanged(value: str) -> None:
    assert to_uri(value) == value


@settings(max_examples=200)
@given(st.lists(st.sampled_from(URI_PIECES), max_size=14).map("".join), st.sampled_from([None, IDN_IRI, DW_URI]))
def test_what_safe_url_and_http_url_keep_is_a_uri(value: str, base: str | None) -> None:
    for url in (safe_url(value, base), http_url(value)):
        assert url is None or to_uri(url) == url


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_sanitizers_convert_every_url_attribute(backend: str) -> None:
    html = ('<a href="/zh/相關/a-1">x</a><img src="https://例え.テスト/画像 1.png">'
            '<img data-src="//img.例え.jp/圖.jpg"><blockquote cite="https://e.com/引用">q</blockquote><a href="https://e.com/100%-sure">y</a>')
    safe, _ = get_sanitizer(backend)(html, DW_URI)
    urls = re.findall(r'(?:href|src|cite)="([^"]*)"', safe)
    assert urls == ["https://www.dw.com/zh/%E7%9B%B8%E9%97%9C/a-1", "https://xn--r8jz45g.xn--zckzah/%E7%94%BB%E5%83%8F%201.png",
                    "https://img.xn--r8jz45g.jp/%E5%9C%96.jpg", "https://e.com/%E5%BC%95%E7%94%A8",
                    "https://e.com/100%25-sure"]


# The corpus: raw-CJK article URLs, CJK image URLs, an IDN host, spaces, already-encoded URLs, a lone "%".
CORPUS = {
    "dw.txt": (DW_IRI, '<p>經濟</p><img src="https://static.dw.com/image/圖片_303.jpg"><a href="/zh/相關/a-1">相關</a>'
                       '<blockquote cite="https://例え.テスト/引用">q</blockquote>'),
    "idn.txt": (IDN_IRI, '<p>例</p><img data-src="https://例え.テスト/画像 1.png"><a href="?page=二">次</a>'),
    "spaces.txt": ("https://e.com/a b/c d?x=1 2",
                   '<p>s</p><img src="/img/a b.jpg"><a href="https://e.com/x y#z">z</a>'),
    "encoded.txt": ("https://e.com/%E4%B8%AD%E6%96%87/a?q=%E5%80%BC&r=1",
                    '<p>e</p><img src="https://images.weserv.nl/?url=static.dw.com/image/1_303.jpg&amp;w=300">'),
    "percent.txt": ("https://e.com/100%-sure/a",
                    '<p>p</p><img src="https://e.com/50%.png"><a href="mailto:名前@例え.jp">m</a>'),
}
BASE_IRI = "https://フィード.例え.テスト/ニュース/"
BASE_URI = "https://xn--dckzd8a1k.xn--r8jz45g.xn--zckzah/%E3%83%8B%E3%83%A5%E3%83%BC%E3%82%B9/"
EXPECTED_IDS = {
    DW_URI, "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9?q=%E5%80%A4", "https://e.com/a%20b/c%20d?x=1%202",
    "https://e.com/%E4%B8%AD%E6%96%87/a?q=%E5%80%BC&r=1", "https://e.com/100%25-sure/a", SAMPLE_URL,
}
NS = {"a": "http://www.w3.org/2005/Atom", "media": "http://search.yahoo.com/mrss/",
      "content": "http://purl.org/rss/1.0/modules/content/"}


def _content_urls(html: str) -> Iterator[str]:
    for element in lxml.html.fragment_fromstring(html, create_parent="div").iter():
        for name in ("href", "src", "cite"):
            if element.get(name) is not None:
                yield element.get(name)


def _atom_urls(root: etree._Element) -> Iterator[str]:
    yield from root.xpath("//a:id/text() | //a:link/@href | //a:generator/@uri | //media:thumbnail/@url", namespaces=NS)
    for content in root.xpath("//a:content/text()", namespaces=NS):
        yield from _content_urls(content)


def _rss_urls(root: etree._Element) -> Iterator[str]:
    yield from root.xpath("//link/text() | //guid/text() | //enclosure/@url | //media:thumbnail/@url"
                          " | //a:link/@href", namespaces=NS)
    for content in root.xpath("//content:encoded/text()", namespaces=NS):
        yield from _content_urls(content)


def _json_urls(feed: dict) -> Iterator[str]:
    yield from (feed["home_page_url"], feed["feed_url"], *(hub["url"] for hub in feed.get("hubs", [])))
    for item in feed["items"]:
        yield from (item[key] for key in ("id", "url", "image") if key in item)
        yield from _content_urls(item["content_html"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_corpus_of_iris_publishes_only_uris(tmp_path: Path, backend: str) -> None:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SAMPLE, seeds / SAMPLE.name)
    for i, (name, (url, body)) in enumerate(CORPUS.items()):
        (seeds / name).write_text(seed_text(1681700000000 + i * 60_000, f"標題 {i}", url, body), encoding="utf-8")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={}, overrides={
        "seeds_dir": str(seeds), "output_dir": str(tmp_path / "out"), "base_url": BASE_IRI, "sanitizer": backend,
        "site_url": "https://例え.テスト/サイト/", "websub_hub": "https://ハブ.例え.テスト/websub"})
    builder = Builder(config)
    assert builder.build().published
    builder.close()
    out = tmp_path / "out"
    documents = {name: (out / "objects" / doc["object"]).read_bytes()
                 for name, doc in read_manifest(out)["documents"].items()}

    atom, rss = etree.fromstring(documents["feed.xml"]), etree.fromstring(documents["feed.rss"])
    feed = json.loads(documents["feed.json"])
    found = {"atom": list(_atom_urls(atom)), "rss": list(_rss_urls(rss)), "json": list(_json_urls(feed))}
    for kind, urls in found.items():
        assert len(urls) > 6 * 4, kind  # every entry's link, id, image and content URLs are there
        assert [url for url in urls if not is_uri(url)] == [], kind
    assert set(atom.xpath("//a:entry/a:id/text()", namespaces=NS)) == EXPECTED_IDS
    assert set(rss.xpath("//guid/text()", namespaces=NS)) == EXPECTED_IDS
    assert rss.xpath("//guid/@isPermaLink") == ["true"] * 6
    assert {item["id"] for item in feed["items"]} == EXPECTED_IDS
    assert IDN_URI in {item["url"] for item in feed["items"]}  # the link keeps its fragment, the id does not
    assert atom.xpath("a:link[@rel='self']/@href", namespaces=NS) == [BASE_URI + "feed.xml"]
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://xn--mdko.xn--r8jz45g.xn--zckzah/websub"}]
    images = {item.get("image") for item in feed["items"]}
    assert "https://static.dw.com/image/%E5%9C%96%E7%89%87_303.jpg" in images
    assert "https://xn--r8jz45g.xn--zckzah/%E7%94%BB%E5%83%8F%201.png" in images  # promoted from data-src
    assert "https://images.weserv.nl/?url=static.dw.com/image/1_303.jpg&w=300" in images  # kept as it was

    assert validate_atom(documents["feed.xml"]) == []
    assert validate_jsonfeed(feed) == []
    for name in ("feed.xml", "feed.rss"):
        parsed = feedparser.parse(documents[name])
        assert parsed.bozo is False, (name, parsed.get("bozo_exception"))
        assert {entry.link for entry in parsed.entries} >= {DW_URI, IDN_URI, SAMPLE_URL}


def test_feed_level_urls_in_the_configuration_are_converted(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={"FEEDSVC_SITE_URL": "https://例え.テスト/サイト/"},
                         overrides={"base_url": BASE_IRI, "websub_hub": "https://ハブ.例え.テスト/websub"})
    assert config.base_url == BASE_URI
    assert config.self_url == BASE_URI + "feed.xml"
    assert config.site_url == "https://xn--r8jz45g.xn--zckzah/%E3%82%B5%E3%82%A4%E3%83%88/"
    assert config.websub_hub == "https://xn--mdko.xn--r8jz45g.xn--zckzah/websub"
    assert config.describe("site_url") == "environment variable FEEDSVC_SITE_URL"
    assert load_config(empty, env={}, overrides={"base_url": "https://e.com/%E4%B8%AD/"}).base_url == (
        "https://e.com/%E4%B8%AD/")  # a URI stays as it is
    with pytest.raises(ConfigError, match=r"base_url .*expected an absolute http\(s\) URL"):
        load_config(empty, env={}, overrides={"base_url": "https://例え.テスト/a b/"})  # whitespace: a typo, refused


def test_entry_ids_are_canonical_uris() -> None:
    """The id is canonical_url of the converted link: host lowercased, no fragment, percent-escapes as they were."""
    seed = seed_text(1681700000000, "t", "HTTPS://例え.テスト:443/パス#frag", "<p>b</p>")
    entry = make_entry(parse_seed(seed.encode(), "x.txt", None))
    assert entry.link == "HTTPS://xn--r8jz45g.xn--zckzah:443/%E3%83%91%E3%82%B9#frag"
    assert entry.id == canonical_url(entry.link) == "https://xn--r8jz45g.xn--zckzah/%E3%83%91%E3%82%B9"


def test_an_ipv6_link_keeps_its_brackets_in_the_id() -> None:
    assert canonical_url("http://[2001:DB8::1]:80/x#f") == "http://[2001:db8::1]/x"
    assert canonical_url(http_url("https://[::1]:8443/ä") or "") == "https://[::1]:8443/%C3%A4"
