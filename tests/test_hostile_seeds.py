"""Property-based: hostile seed files never break the build, the feed, or the good files beside them.

For arbitrary bytes, and for structured mutations of the real seed (header lines, random HTML
fragments and XSS vectors spliced into its body, random Unicode with control and astral
characters, legacy encodings, truncation), one build over a folder with two good files and the
hostile one must: not raise, publish a feed that is well-formed and valid Atom (RFC 4287 RELAX NG),
still carry both good articles, and carry nothing executable, as a browser sees it
(tests/browser_eye.py) in every entry's content and in the index page.

Examples per test: the `feedsvc` hypothesis profile (bounded, no deadline, for CI); set
HYPOTHESIS_PROFILE=feedsvc-long for a long run (README, "Hardening"). The profile is applied to
this file's tests only (as a decorator), never loaded globally: other files keep their own counts.
"""

from __future__ import annotations

import codecs
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import html5lib
import pytest
from browser_eye import DANGEROUS_ELEMENTS, inert_problems, url_problem
from conftest import SAMPLE, seed_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from schemas import validate_atom

from feedsvc.config import load_config
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.layout import OBJECTS, read_manifest

settings.register_profile("feedsvc", max_examples=250, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("feedsvc-long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# This file's settings: the chosen profile, applied per test below (never settings.load_profile,
# which would change the example counts of every other test file in the run).
PROFILE = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "feedsvc")))

ATOM = "{http://www.w3.org/2005/Atom}"
XSS = [item["html"] for item in json.loads((Path(__file__).parent / "data" / "xss_vectors.json").read_text())]
GOOD = {"good-1.txt": ("Good article one", "https://good.example/1"),
        "good-2.txt": ("Good article two", "https://good.example/2")}
SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")
SAMPLE_LINES = SAMPLE_TEXT.split("\n")


class Site:
    """One seeds folder and Builder shared by all examples: the good files are parsed once."""

    def __init__(self, root: Path) -> None:
        self.seeds, self.out = root / "seeds", root / "out"
        self.seeds.mkdir()
        for n, (name, (title, url)) in enumerate(GOOD.items()):
            (self.seeds / name).write_text(seed_text(1600000000000 + n * 1000, title, url, f"<p>{title} body</p>"))
        empty = root / "empty.toml"
        empty.write_text("")
        config = load_config(empty, env={}, overrides={"seeds_dir": str(self.seeds), "output_dir": str(self.out),
                                                       "base_url": "https://feeds.example.org/"})
        self.builder = Builder(config)
        self.counter = itertools.count()
        self.inert: dict[str, list[str]] = {}
        self.current: Path | None = None

    def build_with(self, data: bytes) -> bytes:
        """Replace the hostile file (under a new name: a same-size rewrite within one mtime tick
        would look unchanged to the incremental builder) and build; returns feed.xml."""
        if self.current is not None:
            self.current.unlink()
        self.current = self.seeds / f"hostile-{next(self.counter)}.txt"
        self.current.write_bytes(data)
        result = self.builder.build()
        assert result.ok, result.error
        return (self.out / "feed.xml").read_bytes()

    def check(self, feed: bytes) -> None:
        assert validate_atom(feed) == []
        root = etree.fromstring(feed, etree.XMLParser(resolve_entities=False, no_network=True))
        titles = [e.findtext(f"{ATOM}title") for e in root.iter(f"{ATOM}entry")]
        for title, _url in GOOD.values():
            assert title in titles, titles
        for content in root.iter(f"{ATOM}content"):
            assert content.get("type") == "html"
            html = content.text or ""
            if html not in self.inert:
                self.inert[html] = inert_problems(html)
            assert self.inert[html] == [], (html, self.inert[html])
        manifest = read_manifest(self.out)
        assert manifest is not None
        for name in ("index.html", "feed.xml.html", "feed.rss.html"):  # the index and the feed pages
            page = (self.out / OBJECTS / manifest["documents"][name]["object"]).read_bytes()
            assert index_problems(page) == [], name


def index_problems(page: bytes) -> list[str]:
    """The index page (or a feed page) has exactly its template's head elements, and no other active content."""
    doc = html5lib.parse(page, treebuilder="etree", namespaceHTMLElements=False)
    problems = []
    expected = {"meta": 2, "link": 3, "style": 1}  # autodiscovery: Atom, RSS, JSON Feed
    counts: dict[str, int] = {}
    for elem in doc.iter():
        if not isinstance(elem.tag, str):
            continue
        tag = elem.tag.split("}")[-1].lower()
        if tag in DANGEROUS_ELEMENTS:
            counts[tag] = counts.get(tag, 0) + 1
        for name, value in elem.attrib.items():
            if name.lower().startswith("on") or name.lower() == "srcdoc":
                problems.append(f"<{tag} {name}>")
            if name.lower() in ("href", "src") and url_problem(value):
                problems.append(f"<{tag} {name}={value!r}>")
    if counts != expected:
        problems.append(f"active elements {counts}, expected {expected}")
    return problems


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="feedsvc-hostile-"))
    try:
        yield Site(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- strategies ---------------------------------------------------------------------------------

# Any code point but lone surrogates (they cannot be written as UTF-8; arbitrary bytes cover them):
# C0/C1 controls, U+FFFE/FFFF, bidi controls, astral planes and private use included.
ANY_CHAR = st.characters(blacklist_categories=("Cs",))
NASTY_CHARS = st.sampled_from(["\x00", "\x01", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff",
                               "\ufffe", "\uffff", "\u200b", "\u202e", "\U0001f600", "\U0010fffd", "\U00020000",
                               "\r", "\r\n", "&", "<", ">", "]]>", "\"", "'", "`", "\\"])
TEXT = st.lists(st.one_of(ANY_CHAR, NASTY_CHARS), max_size=60).map("".join)

TAGS = ["p", "a", "img", "div", "script", "style", "svg", "math", "iframe", "object", "embed", "form", "input",
        "button", "base", "meta", "link", "noscript", "template", "textarea", "title", "table", "select", "option",
        "mglyph", "malignmark", "mtext", "foreignObject", "xmp", "noembed", "iframe", "frameset", "video", "source"]
ATTRS = ["href", "src", "srcset", "action", "formaction", "xlink:href", "background", "poster", "data", "srcdoc",
         "onerror", "onload", "style", "http-equiv", "content", "id", "class", "title", "alt"]
SCHEMES = ["javascript:", "JaVaScRiPt:", "java\tscript:", "java\x00script:", "&#106;avascript:", "jav&#x09;ascript:",
           "\u200bjavascript:", " javascript:", "vbscript:", "data:text/html,", "data:image/svg+xml;base64,",
           "https://", "//", "", "mailto:", "&#x6A;&#x61;vascript:", "javascript&colon;", "`vbscript:",
           "java`script:"]
URL_VALUE = st.builds(lambda s, rest: s + rest, st.sampled_from(SCHEMES), st.sampled_from(
    ["alert(1)", "example.com/x.png", "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "<script>alert(1)</script>", "",
     "[x", "[::1", "e.com:abc/", "e.com:99999/"]))
ATTR = st.tuples(st.sampled_from(ATTRS), st.one_of(URL_VALUE, TEXT))


def _element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    def make(tag: str, attrs: list[tuple[str, str]], inner: list[str], close: bool) -> str:
        rendered = "".join(f' {n}="{v.replace(chr(34), "&quot;")}"' for n, v in attrs)
        return f"<{tag}{rendered}>" + "".join(inner) + (f"</{tag}>" if close else "")

    return st.builds(make, st.sampled_from(TAGS), st.lists(ATTR, max_size=3), st.lists(children, max_size=3),
                     st.booleans())


HTML_FRAGMENT = st.recursive(st.one_of(TEXT, st.sampled_from(XSS), st.sampled_from(["<!--", "-->", "<![CDATA[",
                                                                                       "</", "<", "&", "&#0;"])),
                             _element, max_leaves=12)

STAMP_LINE = st.one_of(
    st.just("<!--1681696026000-->"),
    st.integers(min_value=-10**20, max_value=10**20).map(lambda n: f"<!--{n}-->"),
    st.integers(min_value=0, max_value=2**63).map(lambda n: f"<!-- {n} -->"),
    TEXT.map(lambda t: f"<!--{t}-->"),
    TEXT,
    st.just(""),
)
TITLE_LINE = st.one_of(
    st.just(SAMPLE_LINES[1]),
    st.builds(lambda t, u: f"[{t}]({u})", TEXT, st.one_of(URL_VALUE, TEXT)),
    st.builds(lambda t: f"# {t}", TEXT),
    TEXT,
    HTML_FRAGMENT,
)
DASHES = st.sampled_from(["------", "---", "===", "", "- - -", "-" * 300])


@st.composite
def mutated_sample(draw: st.DrawFn) -> bytes:
    """The real seed, with its header lines replaced and random fragments spliced into its body."""
    body = "\n".join(SAMPLE_LINES[4:])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(HTML_FRAGMENT) + body[at:]
    lines = [draw(STAMP_LINE), draw(TITLE_LINE), draw(DASHES), "", body]
    if draw(st.booleans()):
        del lines[draw(st.integers(0, 3))]  # a header line missing
    text = "\n".join(lines)
    if draw(st.booleans()):
        text = text.replace("\n", draw(st.sampled_from(["\r\n", "\r", "\n\n"])))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "gb18030", "big5", "latin-1"]))
    data = text.encode(encoding, errors="ignore")
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut short anywhere, even inside a character
    if draw(st.booleans()):
        data = codecs.BOM_UTF8 + data
    return data


# --- properties ---------------------------------------------------------------------------------


@PROFILE
@given(data=st.binary(max_size=4096))
def test_arbitrary_bytes(site: Site, data: bytes) -> None:
    site.check(site.build_with(data))


@PROFILE
@given(data=st.lists(st.one_of(ANY_CHAR, NASTY_CHARS), max_size=400).map(lambda cs: "".join(cs).encode()))
def test_random_unicode_text(site: Site, data: bytes) -> None:
    site.check(site.build_with(data))


@PROFILE
@given(data=mutated_sample())
def test_mutated_real_seed(site: Site, data: bytes) -> None:
    site.check(site.build_with(data))


@PROFILE
@given(title=TEXT.map(lambda t: t.replace("\r", "").replace("\n", "")),  # one line: the format says so
       fragments=st.lists(HTML_FRAGMENT, min_size=1, max_size=6))
def test_random_html_in_a_valid_seed_is_published_inert(site: Site, title: str, fragments: list[str]) -> None:
    """A well-formed header with hostile HTML: the entry is published, its content inert."""
    body = "<p>KEEP-THIS-TEXT</p>" + "".join(fragments)
    feed = site.build_with(seed_text(1700000000000, "Hostile " + title, "https://hostile.example/x", body).encode())
    site.check(feed)
    root = etree.fromstring(feed)
    entries = [e for e in root.iter(f"{ATOM}entry") if e.findtext(f"{ATOM}id") == "https://hostile.example/x"]
    assert len(entries) == 1 and entries[0].findtext(f"{ATOM}title").startswith("Hostile")


def test_checks_can_fail(site: Site) -> None:
    """The properties' checks are not vacuous: a script in content or a lost good file is caught."""
    feed = site.build_with(seed_text(1700000000000, "T", "https://hostile.example/y", "<p>x</p>").encode())
    site.check(feed)
    bad = feed.replace(b"&lt;p&gt;x&lt;/p&gt;", b"&lt;img src=x onerror=alert(1)&gt;")
    assert bad != feed
    with pytest.raises(AssertionError):
        site.check(bad)
    with pytest.raises(AssertionError):
        site.check(feed.replace(b"Good article one", b"Other"))
    assert index_problems(b"<!DOCTYPE html><script>1</script>") != []
