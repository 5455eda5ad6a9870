"""The browser-eye checker must flag every raw XSS vector and pass clean HTML."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import bleach
import pytest
from browser_eye import inert_problems, url_problem, visible_text

TESTS = Path(__file__).resolve().parent
CORPUS_PATH = TESTS / "data" / "xss_vectors.json"
SAMPLE = TESTS.parent / "seeds" / "000_76cb3dcc68cf4183.txt"

CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))

ALLOWED_TAGS = frozenset(
    "p br div span h1 h2 h3 h4 h5 h6 b strong i em u s small sub sup mark code pre blockquote q cite "
    "ul ol li dl dt dd a img figure figcaption table thead tbody tfoot tr th td caption hr abbr time".split()
)
ALLOWED_ATTRIBUTES = {"a": ["href", "title"], "img": ["src", "alt", "width", "height", "title"]}
ALLOWED_PROTOCOLS = frozenset({"http", "https", "mailto"})

REQUIRED_CLASSES = {
    "script_tag",
    "event_handler",
    "js_entity_obfuscation",
    "js_whitespace_control",
    "js_invisible_chars",
    "vbscript",
    "data_url",
    "js_digits",
    "svg_namespace",
    "mathml_namespace",
    "mutation_xss",
    "iframe",
    "form_action",
    "meta_refresh",
    "base_href",
    "object_embed",
    "link_import",
    "css",
    "srcset",
    "legacy_url_attrs",
    "isindex",
    "frameset",
    "template",
    "attribute_breaking",
    "malformed_tag",
    "cdata",
    "unicode_escape",
}


def _ids(items: list[dict[str, Any]]) -> list[str]:
    """Test ids from the corpus names."""
    return [item["name"] for item in items]


# --------------------------------------------------------------- the corpus


def test_corpus_shape() -> None:
    """At least 180 well-formed, uniquely named vectors covering every class."""
    assert len(CORPUS) >= 180
    names = [item["name"] for item in CORPUS]
    assert len(names) == len(set(names)), "duplicate vector names"
    for item in CORPUS:
        assert set(item) == {"name", "class", "html", "keep"}, item["name"]
        assert isinstance(item["html"], str) and item["html"]
        assert isinstance(item["keep"], list) and item["keep"], item["name"]
        assert all(isinstance(k, str) and k and "alert" not in k.lower() for k in item["keep"])
    counts = Counter(item["class"] for item in CORPUS)
    assert not REQUIRED_CLASSES - set(counts), REQUIRED_CLASSES - set(counts)


@pytest.mark.parametrize("item", CORPUS, ids=_ids(CORPUS))
def test_raw_vector_is_flagged(item: dict[str, Any]) -> None:
    """Every unsanitized vector is reported as not inert."""
    assert inert_problems(item["html"]), f"checker missed {item['html']!r}"


@pytest.mark.parametrize("item", CORPUS, ids=_ids(CORPUS))
def test_keep_texts_are_real_text(item: dict[str, Any]) -> None:
    """The keep fragments are text a browser displays for the raw input."""
    text = visible_text(item["html"])
    for keep in item["keep"]:
        assert keep in text, f"{keep!r} not visible in {text!r}"


# ------------------------------------------------------------- clean input


def _sample_body() -> str:
    """The body of the real article sample: everything after its 4th line."""
    lines = SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(lines[4:])


def test_bleached_article_sample_is_inert() -> None:
    """A real article, cleaned by bleach with a simple allowlist, passes."""
    body = _sample_body()
    assert "<img" in body and "<p>" in body
    cleaned = bleach.clean(
        body, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, protocols=ALLOWED_PROTOCOLS, strip=True
    )
    assert inert_problems(cleaned) == []
    assert "李尚福" in visible_text(cleaned)


CLEAN_FRAGMENTS = [
    '<p>Read <a href="https://example.com/news?id=1&amp;lang=en#top" title="News">the news</a>.</p>',
    '<p><a href="http://example.org/">http</a> and <a href="mailto:editor@example.com">mail us</a></p>',
    '<p><a href="/relative/path">root-relative</a> <a href="../up/one.html">parent</a></p>',
    '<p><a href="page.html">page</a> <a href="?q=1">query</a> <a href="#frag">fragment</a></p>',
    '<img src="//cdn.example.com/img.png" alt="protocol-relative" width="10" height="10">',
    '<img src="images/a.png" alt="relative" title="t"><img src="https://example.com/b.jpg?w=100%25" alt="">',
    '<p><a href="path/with:colon">colon after a slash is a path</a> <a href="https://x.example/?t=12:30">x</a></p>',
    "<p>Plain text mentioning javascript:alert(1) and &lt;script&gt;alert(1)&lt;/script&gt; is just text.</p>",
    "<pre><code>&lt;img src=x onerror=alert(1)&gt;</code></pre>",
    "<table><thead><tr><th>h</th></tr></thead><tbody><tr><td>c</td></tr></tbody></table>",
    "<ul><li>one</li><li><b>two</b> <i>three</i></li></ul><blockquote>quote</blockquote><hr>",
    '<figure><img src="https://example.com/c.png" alt="c"><figcaption>cap</figcaption></figure>',
    '<p><abbr title="HyperText">HTML</abbr> <time>2023-04-16</time> <q>q</q> <cite>c</cite></p>',
    '<div><span title="on hover: https://x">onion</span> <a href="">empty href</a></div>',
]


@pytest.mark.parametrize("html", CLEAN_FRAGMENTS)
def test_clean_fragment_is_inert(html: str) -> None:
    """Hand-written clean HTML (http/https/mailto and relative links) passes."""
    assert inert_problems(html) == []


# ------------------------------------------------------------ checker rules


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "\x01javascript:1",
        "java\u200bscript:1",
        "java\u00adscript:1",
        "java\ufeffscript:1",
        "vbscript:x",
        "livescript:x",
        "data:text/html,x",
        "javascript:123",
        "file:///etc/passwd",
        "`javascript:1`",
    ],
)
def test_url_problem_flags(url: str) -> None:
    """Dangerous or unknown schemes are caught, however they are disguised."""
    assert url_problem(url)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "HTTP://EXAMPLE.COM", "mailto:a@b.c", "/x", "x/y:z", "?a=b:c", "#f:g", "", "//h.example"],
)
def test_url_problem_passes(url: str) -> None:
    """http/https/mailto and scheme-less relative URLs are fine."""
    assert url_problem(url) is None


def test_document_parse_catches_body_attributes() -> None:
    """<body onload> only shows up when parsed as a whole document."""
    assert any("onload" in p for p in inert_problems("<p>x</p><body onload=alert(1)>"))


def test_visible_text_skips_script_and_attributes() -> None:
    """Script bodies and attribute values are not visible text."""
    html = '<p title="alert(2)">a<script>alert(1)</script>b</p><style>s{}</style><svg><g>g</g></svg>'
    assert "alert" not in visible_text(html)
    assert "a" in visible_text(html) and "b" in visible_text(html)
