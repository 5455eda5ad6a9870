"""bleach and nh3, driven by the one policy, give the same visible text, links and images."""

from __future__ import annotations

import html5lib
import pytest
from browser_eye import visible_text
from conftest import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.corpus import article
from feedsvc.config import ConfigError, load_config
from feedsvc.core.entry import make_entry
from feedsvc.core.parse import parse_seed
from feedsvc.core.sanitize import BACKENDS, get_sanitizer, policy
from feedsvc.core.text import summarize, summary_reads

BASE = "https://www.dw.com/zh/a-1"
bleach_sanitize, nh3_sanitize = get_sanitizer("bleach"), get_sanitizer("nh3")


def elements(fragment: str) -> list[tuple[str, dict[str, str]]]:
    """Every element with its attributes, the way a browser parses the fragment."""
    tree = html5lib.parseFragment(fragment, namespaceHTMLElements=False)
    return [(el.tag, dict(el.attrib)) for el in tree.iter() if isinstance(el.tag, str)][1:]


def links_and_images(fragment: str) -> list[tuple[str, str | None]]:
    return [(tag, attrs.get("href") or attrs.get("src")) for tag, attrs in elements(fragment) if tag in ("a", "img")]


def assert_equivalent(source: str, base: str | None = BASE) -> None:
    (b_html, b_text), (n_html, n_text) = bleach_sanitize(source, base), nh3_sanitize(source, base)
    assert visible_text(n_html) == visible_text(b_html)
    assert links_and_images(n_html) == links_and_images(b_html)
    assert n_text == b_text


CORPUS = [parse_seed(article(n).encode(), f"{n}.txt") for n in range(120)]


@pytest.mark.parametrize("n", range(len(CORPUS)))
def test_same_result_on_the_benchmark_corpus(n: int) -> None:
    assert_equivalent(CORPUS[n].body_html, CORPUS[n].link)


@pytest.mark.parametrize("summary_chars", [1, 30, 200, 5000])
def test_same_summaries_on_the_benchmark_corpus(summary_chars: int) -> None:
    """The same summaries: nh3 hands `make_entry` only the start of a long text (`text_limit`),
    bleach all of it."""
    for seed in CORPUS[:40]:
        by_nh3, by_bleach = (make_entry(seed, backend, summary_chars) for backend in (nh3_sanitize, bleach_sanitize))
        assert by_nh3.summary == by_bleach.summary


def test_the_corpus_exercises_the_odd_cases() -> None:
    bodies = "".join(a.body_html for a in CORPUS)
    for marker in ("<script", "<iframe", "data-src=", 'href="/zh/', "<blockquote", "onclick=", 'rel="ArticleRef"'):
        assert marker in bodies


def test_same_result_on_the_real_sample() -> None:
    sample = parse_seed(SAMPLE.read_bytes(), SAMPLE.name)
    assert_equivalent(sample.body_html, sample.link)
    assert bleach_sanitize(sample.body_html, sample.link) == nh3_sanitize(sample.body_html, sample.link)


@pytest.mark.parametrize(
    "source",
    [
        '<img data-src="/lazy.jpg" alt="a"><img src="" data-original="b.png"><img src="data:x" data-lazy-src="c.png">',
        '<a href="rel/p?a=1&amp;b=2">r</a> <a href="//cdn.example/x">p</a> <q cite="/c">q</q>',
        '<a href="jav&#x09;ascript:alert(1)">x</a><a href="java\u200bscript:1">y</a><a href="mailto:a@b.org">m</a>',
        "<p>a&nbsp;b &lt;c&gt; &amp;amp;</p><!-- c --><div>d<br>e</div>",
        '<p title="x>y" lang="en" class="c" id="i">attrs</p><small style="color:#999">cap</small>',
        "<script>alert(1)</script><style>p{}</style><svg><p>z</p></svg><noscript>n</noscript>tail",
    ],
)
def test_same_result_on_edge_cases(source: str) -> None:
    assert_equivalent(source)


@pytest.mark.parametrize("tag", sorted(policy.TAGS - {"td", "th", "tr", "tbody", "thead", "tfoot", "col",
                                                       "colgroup", "caption"}))
def test_same_attributes_kept_per_tag(tag: str) -> None:
    """The allowlist is the policy's for both: nh3 must not keep its defaults (lang, title everywhere)."""
    attrs = ('title="t" lang="en" class="c" id="i" style="color:red" onclick="x()" href="https://e.com/" '
             'src="https://e.com/i.png" cite="https://e.com/c" datetime="2020-01-01" colspan="2" open dir="rtl"')
    source = f"<{tag} {attrs}>text</{tag}>"
    b, n = elements(bleach_sanitize(source, BASE)[0]), elements(nh3_sanitize(source, BASE)[0])
    assert [(t, sorted(a)) for t, a in n] == [(t, sorted(a)) for t, a in b]
    for element, kept in n:
        allowed = policy.ATTRIBUTES.get(element, frozenset()) | policy.SET_ATTRIBUTES.get(element, frozenset())
        assert set(kept) <= allowed


def test_table_attributes_follow_the_policy_in_both() -> None:
    source = '<table><tr><td colspan="2" title="t" style="x">a</td><th scope="col" lang="en">b</th></tr></table>'
    b, n = elements(bleach_sanitize(source, BASE)[0]), elements(nh3_sanitize(source, BASE)[0])
    assert n == b


def test_config_chooses_the_backend(tmp_path) -> None:
    empty = tmp_path / "c.toml"
    empty.write_text("")
    assert load_config(empty, env={}).sanitizer == "bleach"
    assert load_config(empty, env={"FEEDSVC_SANITIZER": "nh3"}).sanitizer == "nh3"
    with pytest.raises(ConfigError, match=r"sanitizer \(from environment variable FEEDSVC_SANITIZER\)"):
        load_config(empty, env={"FEEDSVC_SANITIZER": "lxml"})
    assert set(BACKENDS) == {"bleach", "nh3"}


def test_missing_nh3_is_a_configuration_error(tmp_path, monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nh3" else real(name, *a))
    (tmp_path / "c.toml").write_text('sanitizer = "nh3"\n')
    with pytest.raises(ConfigError, match=r"pip install 'feedsvc\[nh3\]'"):
        load_config(tmp_path / "c.toml", env={})


# Pieces of hostile markup for nh3's text of a prefix: tags with ">" and "<" in quoted values
# (nh3 keeps both raw there), references of every kind, blocks, long runs of text.
MARKUP = [
    *("<p>", "</p>", "<div>", "<br>", "<b>", "</b>", "字", "word ", "x" * 50, " \n\t "),
    *("&amp;", "&lt;", "&gt;", "&nbsp;", "&quot;", "&#169;", "&copy"),
    *('<a title="1 < 2 > 0 &amp; x" href="/x?a=1&b=2">', "</a>", '<img alt="<p>" src="/i.png">', "<script>x</script>"),
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MARKUP), max_size=150).map("".join), st.integers(min_value=1, max_value=400))
def test_nh3_text_limit_gives_a_prefix_of_the_whole_text(source: str, summary_chars: int) -> None:
    """With `text_limit`, nh3's text is a prefix of its whole text, of at least that many characters
    (or all of it), and the summary made from it is the summary made from the whole."""
    limit = summary_reads(summary_chars)
    safe, whole = nh3_sanitize(source, BASE)
    again, prefix = nh3_sanitize(source, BASE, text_limit=limit)
    assert again == safe
    assert whole.startswith(prefix)
    assert len(prefix) >= limit or prefix == whole
    assert summarize(prefix, summary_chars) == summarize(whole, summary_chars)


@pytest.mark.parametrize("shift", ["", "x"])
def test_nh3_text_limit_cut_through_every_tag_and_reference(shift: str) -> None:
    """Every cut position through tags with "<" and ">" in their values and through references:
    the text of the prefix is still a prefix of the whole text."""
    unit = 'word &amp; &lt;b&gt; <a title="1 < 2 > 0 &amp; x" href="/x?a=1&amp;b=2">link</a> 字&nbsp;字 <br>'
    source = shift + "<p>" + unit * 30 + "</p>"
    whole = nh3_sanitize(source, BASE)[1]
    for limit in range(1, 500):  # the first cut is at 2 * limit + 512 characters
        _, prefix = nh3_sanitize(source, BASE, text_limit=limit)
        assert whole.startswith(prefix), (limit, prefix[-40:])
        assert len(prefix) >= limit


def test_same_result_on_embeds_media_and_trackers_in_any_mix() -> None:
    """Real publishers' embed and media shapes (tests/test_faithful.py), mixed with stray tags in a
    fixed random order: both backends give the same bytes and the same text. (svg is left out: its
    content goes, and the two parsers already differ on stray end tags inside it.)"""
    import random

    import test_faithful as shapes

    pieces = [shapes.VOA_VIDEO, shapes.DW_CLIP, shapes.VOA_AUDIO, shapes.YOUTUBE, shapes.EMBEDLY, shapes.WORDPRESS,
              shapes.DATAWRAPPER, shapes.GITHUB_CHART, shapes.FACEBOOK_VIDEO, shapes.LIKE_BUTTON, shapes.ACAST,
              shapes.PICTURE, shapes.MEDIUM_PIXEL, shapes.UTM_LINKS, "<p>", "</p>", "<a href='https://x.example/'>",
              "</a>", "<video>", "</video>", "<object data='https://o.example/x'>", "</object>", "<audio src=a.mp3>",
              "<source src=b.ogg type=audio/ogg>", "<iframe src=https://player.vimeo.com/video/1>", "</iframe>",
              "<table><tr><td>", "<ul><li>", "text & more", "<img srcset='a.jpg 1x, b.jpg 2x'>", "<picture>",
              "</picture>", "<embed src=https://flo.uri.sh/visualisation/1/embed>"]
    rng = random.Random(22)
    for _ in range(400):
        source = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        assert bleach_sanitize(source, BASE) == nh3_sanitize(source, BASE), source
