from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedsvc.core.sanitize import policy
from feedsvc.core.sanitize.bleach_backend import sanitize, sanitize_html
from feedsvc.core.text import one_line, shorten, summarize, summary_reads
from feedsvc.core.urls import safe_url

BASE = "https://www.example.com/news/article-1"


@pytest.mark.parametrize(
    "vector",
    [
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//evil/x.js></SCRIPT>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        '<a href="javascript:123">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href="jav&#x09;ascript:alert(1)">x</a>',
        '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;:alert(1)">x</a>',
        '<a href=" \x01javascript:alert(1)">x</a>',
        '<a href="java\u200bscript:alert(1)">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
        '<iframe src="https://evil/" srcdoc="<script>alert(1)</script>"></iframe>',
        "<svg><script>alert(1)</script></svg>",
        "<svg onload=alert(1)>",
        "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
        "<style>body{background:url(javascript:alert(1))}</style>",
        '<p style="background:url(javascript:alert(1))">x</p>',
        '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">b</button></form>',
        '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
        '<base href="javascript:alert(1)//">',
        '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">',
        "<!--<script>alert(1)</script>-->",
        "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
        "<scr<script>ipt>alert(1)</scr</script>ipt>",
    ],
)
def test_starter_xss_vectors_are_neutralised(vector: str) -> None:
    out = sanitize_html(f"<p>before</p>{vector}", BASE).lower()
    assert out.startswith("<p>before</p>")
    for bad in ("<script", "javascript:", "vbscript:", "data:", "onerror", "onload", "<iframe", "srcdoc",
                "<svg", "<style", "style=", "<form", "formaction", "<meta", "<base", "<object", "<embed"):
        assert bad not in out, (bad, out)


def test_script_and_style_go_with_their_content() -> None:
    html, text = sanitize("<p>a<script>var secret = 1;</script>b<style>p{}</style>c</p>", BASE)
    assert html == "<p>abc</p>" and text == "abc"


def test_what_articles_need_is_kept() -> None:
    source = (
        '<h2>Head</h2><p><strong>b</strong> <em>e</em> <a href="https://e.com/x" title="t">l</a></p>'
        '<figure><img src="https://e.com/i.jpg" alt="A" width="100" height="50"><figcaption>C</figcaption></figure>'
        "<blockquote>q</blockquote><ul><li>1</li></ul><ol><li>2</li></ol>"
        "<table><caption>cap</caption><thead><tr><th>h</th></tr></thead><tbody><tr><td>d</td></tr></tbody></table>"
    )
    assert sanitize_html(source, BASE) == source


def test_unknown_tags_are_unwrapped_and_attributes_dropped() -> None:
    out = sanitize_html('<article class="x"><font color=red>text</font><small style="color:#999">cap</small></article>')
    assert out == "text<small>cap</small>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/img/a.jpg", "https://www.example.com/img/a.jpg"),
        ("b.jpg", "https://www.example.com/news/b.jpg"),
        ("//cdn.example.net/c.jpg", "https://cdn.example.net/c.jpg"),
        ("?page=2", "https://www.example.com/news/article-1?page=2"),
        ("https://other.org/x y", "https://other.org/x%20y"),
        ("  https://other.org/trim  ", "https://other.org/trim"),
        ("mailto:a@b.org", "mailto:a@b.org"),
        ("javascript:alert(1)", None),
        ("javascript:123", None),
        ("java\tscript:alert(1)", None),
        ("\x00javascript:alert(1)", None),
        ("java\u200dscript:alert(1)", None),
        ("ftp://e.com/file", None),
        ("data:image/png;base64,AAAA", None),
        ("", None),
    ],
)
def test_safe_url(value: str, expected: str | None) -> None:
    assert safe_url(value, BASE) == expected


def test_relative_urls_become_absolute_in_content() -> None:
    out = sanitize_html('<a href="../about">a</a><img src="/i.png">', BASE)
    assert out == '<a href="https://www.example.com/about">a</a><img src="https://www.example.com/i.png">'


def test_lazy_images_are_promoted() -> None:
    out = sanitize_html('<img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg" alt="x">', BASE)
    assert out == '<img src="https://www.example.com/real.jpg" alt="x">'


def test_entities_are_decoded_once_and_escaped_once() -> None:
    html, text = sanitize("<p>AT&amp;T &lt;tag&gt; &amp;amp; 1 < 2</p>", BASE)
    assert html == "<p>AT&amp;T &lt;tag&gt; &amp;amp; 1 &lt; 2</p>"
    assert text == "AT&T <tag> &amp; 1 < 2"


def test_xml_illegal_characters_never_survive() -> None:
    html, text = sanitize("<p>a\x00b\x08c\x0bd\x1fe\ufffef\uffff&#1;g</p>", BASE)
    for ch in "\x00\x08\x0b\x1f\ufffe\uffff\x01":
        assert ch not in html and ch not in text
    assert text.startswith("abcdef")


def test_plain_text_separates_blocks() -> None:
    _, text = sanitize("<p>one</p><p>two</p><div>three<br>four</div>", BASE)
    assert text == "one two three four"


def test_summary_is_bounded() -> None:
    summary = summarize("word " * 100, 50)
    assert len(summary) <= 50 and summary.endswith("…")
    assert summarize("short", 50) == "short"


PIECES = ["a", "字", " ", "\n", "\t", "\u3000", " " * 300, "x" * 40]


@given(st.lists(st.sampled_from(PIECES), max_size=120).map("".join), st.integers(min_value=1, max_value=300))
def test_summary_reads_a_prefix_as_if_it_read_everything(text: str, limit: int) -> None:
    """summarize looks at a prefix of the text only: the same result as collapsing the whole text."""
    assert summarize(text, limit) == shorten(one_line(text), limit)


@given(st.lists(st.sampled_from(PIECES), max_size=120).map("".join), st.integers(min_value=1, max_value=300), st.data())
def test_summary_of_a_long_prefix_is_the_summary_of_the_whole(text: str, limit: int, data: st.DataObject) -> None:
    """What lets a sanitizer hand `make_entry` only the start of a long text (`text_limit`)."""
    whole = one_line(text)
    cut = data.draw(st.integers(min_value=min(len(whole), summary_reads(limit)), max_value=len(whole)))
    assert summarize(whole[:cut], limit) == summarize(whole, limit)


def test_policy_is_data() -> None:
    assert {"p", "a", "img", "figure", "figcaption", "table", "caption", "blockquote"} <= policy.TAGS
    assert policy.PROTOCOLS == {"http", "https", "mailto"}
    assert policy.TAGS.isdisjoint(policy.REMOVE_WITH_CONTENT)
    assert "style" not in {a for attrs in policy.ATTRIBUTES.values() for a in attrs}


URL_PIECES = ["http", "https", "HTTP", "://", ":", "/", "//", "?", "#", "e.com", "a-b.c", "[", "]", "@", "%20", " ",
              "`", "\t", "javascript", "mailto", ":80", ":99999", ":x", "\u200b", "字", "&", "=", "..", "-"]


@given(st.lists(st.sampled_from(URL_PIECES), max_size=12).map("".join), st.sampled_from([None, BASE]))
def test_the_common_url_shortcut_changes_no_answer(value: str, base: str | None) -> None:
    """safe_url keeps plain absolute http(s) URLs without a closer look: the closer look agrees."""
    import re

    import feedsvc.core.urls as sanitize_module

    fast = safe_url(value, base)
    real = sanitize_module._SIMPLE_HTTP
    sanitize_module._SIMPLE_HTTP = re.compile(r"(?!)")
    try:
        assert safe_url(value, base) == fast
    finally:
        sanitize_module._SIMPLE_HTTP = real
