"""Nesting bombs cost bounded time: `feedsvc.core.nesting.flatten` bounds the depth before either backend
parses, keeps the text, and leaves ordinary articles exactly as they were.

No wall-time assertions here (the machine is shared): `python -m benchmarks.bombs` measures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import html5lib
import pytest
from conftest import SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bombs import BOMBS
from benchmarks.corpus import article
from feedsvc.core.nesting import _MARKUP, VOID, flatten
from feedsvc.core.parse import parse_seed
from feedsvc.core.sanitize import BACKENDS, get_sanitizer, nh3_backend, policy
from feedsvc.core.sanitize.bleach_backend import _pass

XSS = [item["html"] for item in json.loads((Path(__file__).parent / "data" / "xss_vectors.json").read_text())]
_TAG = re.compile(r"<(/?)([a-z][a-z0-9]*)[^>]*>")


def serialized_depth(safe_html: str) -> int:
    """How deep a sanitizer's output nests (it is a normalised serialisation: every element closed)."""
    depth = deepest = 0
    for match in _TAG.finditer(safe_html):
        if match.group(2) in VOID:
            continue
        depth += -1 if match.group(1) else 1
        deepest = max(deepest, depth)
    return deepest


def parsed_depth(html: str) -> int:
    """How deep a browser's parser (html5lib) nests the fragment's elements that hold elements.

    A leaf (a void element, <script>, `<g/>` in SVG, the <p> a stray </p> inserts...) may sit one
    level below: it holds no markup, so it costs the parser nothing more."""
    root = html5lib.parseFragment(html, namespaceHTMLElements=False)
    deepest, todo = 0, [(child, 1) for child in root]
    while todo:
        element, depth = todo.pop()
        if isinstance(element.tag, str) and any(isinstance(child.tag, str) for child in element):
            deepest = max(deepest, depth)
        todo.extend((child, depth + 1) for child in element)
    return deepest


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_bomb_is_flattened_and_keeps_its_text(bomb: str, backend: str) -> None:
    html = BOMBS[bomb]()
    assert len(html) > 800_000
    safe, text = get_sanitizer(backend)(html, "https://e.com/a")
    assert serialized_depth(safe) <= policy.MAX_DEPTH
    assert text.startswith("before") and text.endswith("deep text after")


def test_only_whole_tags_go_and_their_end_tags_with_them() -> None:
    out = flatten("<div>" * 5 + "deep" + "</div>" * 5 + "<p>after</p>", 3)
    assert out == "<div>" * 3 + "deep" + "</div>" * 3 + "<p>after</p>"
    # runs of one dropped tag go in one step: still each end tag closes one start tag
    out = flatten("<div>" * 500 + "x" + "</div>" * 300 + "y" + "</div>" * 202 + "<b>" * 40 + "z" + "</b>" * 40, 4, 2)
    assert out == "<div>" * 4 + "xy" + "</div>" * 4 + "</div>" * 2 + "<b>" * 2 + "z" + "</b>" * 2
    # a kept "<" never joins the text after a dropped tag into a new tag
    assert flatten("<b><b>a<<b>script>", 2) == "<b><b>a<<!---->script>"
    # raw text is not markup: the <div>s in a script or a comment are not counted
    assert flatten("<script>" + "<div>" * 9 + "</script><!--" + "<div>" * 9 + "-->", 2).count("<div>") == 18
    # a quoted ">" does not end a tag; "=" that starts an attribute name does not start a value
    assert flatten('<b title="a>b"><b><b>x', 2) == '<b title="a>b"><b>x'
    assert flatten('<a ="x><b><b>">', 2) == '<a ="x><b>">'


def test_implied_closes_keep_sloppy_articles_shallow() -> None:
    """Paragraphs, list items, cells and formatting left open, as old articles leave them, do not add up."""
    sloppy = "<p>a<b>b</b><p>c<ul><li>d<li>e</ul><table><tr><td>f<td><i>g</i><tr><td>h</table><dl><dt>i<dd>j</dl>"
    assert flatten(sloppy * 2000, 8) == sloppy * 2000
    formatting = "<div><b>x</div>y</b><p><a href=/>z<p>w</a>"
    assert flatten(formatting * 2000, 8) == formatting * 2000


def test_articles_come_out_as_before() -> None:
    """Under the limit the pre-pass is the identity: every backend's output is what it was without it."""
    bodies = [parse_seed(SAMPLE.read_bytes(), SAMPLE.name).body_html]
    bodies += [parse_seed(article(n).encode(), f"{n}.txt").body_html for n in range(120)]
    for body in bodies + XSS:
        assert flatten(body, policy.MAX_DEPTH, policy.MAX_FORMATTING) is body
    sample = bodies[0]
    base = "https://www.dw.com/zh/a-1"
    assert get_sanitizer("bleach")(sample, base)[0] == _pass().clean(sample, base)[0]
    assert get_sanitizer("nh3")(sample, base)[0] == nh3_backend.clean(sample, base)


def tree(depth: int) -> st.SearchStrategy[str]:
    """Well-formed HTML nested at most `depth` deep."""
    text = st.sampled_from(["x", "a b", "&amp;", "<br>", "<img src=i.png>", "<!-- c -->", " "])
    if depth == 0:
        return text
    name = st.sampled_from(["div", "p", "b", "i", "span", "ul", "li", "blockquote", "em", "a", "section"])
    attrs = st.sampled_from(["", ' class="x"', " title='a>b'", " href=/x"])
    child = st.one_of(text, st.deferred(lambda: tree(depth - 1)))
    return st.builds(lambda n, a, kids: f"<{n}{a}>{''.join(kids)}</{n}>", name, attrs, st.lists(child, max_size=4))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(st.just(d), st.lists(tree(d), max_size=4).map("".join))))
def test_the_identity_under_the_limit(case: tuple[int, str]) -> None:
    depth, html = case
    assert flatten(html, depth) is html


SOUP = """<div> </div> <p> </p> <b> </b> <i> <font color=red> </font> <a href=x> </a> <table> </table> <tr> <td>
</td> <th> <tbody> <caption> <col> <li> <ul> </ul> <dd> <dt> <h1> </h2> <svg> </svg> <g> <g/> <span/> <math> <mi>
<foreignObject> <select> <option> <button> <object> </object> <template> </template> <br> </br> <body> </body>
<nobr> <textarea>t</textarea> <script>1<div></script> <style><p></style> <!--<div>--> <![CDATA[<div>]]> </span>
<span> <marquee> <form> </form> <html> <center> </p></p> <image> <xmp><b></xmp> <noscript> </noscript>""".split()


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.lists(st.sampled_from([*SOUP, "t"]), max_size=80).map("".join))
def test_tag_soup_is_bounded_as_a_browser_parses_it(limit: int, formatting: int, html: str) -> None:
    """What html5lib builds from the output holds no element below the limit (but leaves), and only
    whole tags went."""
    out = flatten(html, limit, formatting)
    assert parsed_depth(out) <= limit
    assert _MARKUP.sub("", out) == _MARKUP.sub("", html)


def test_the_pre_pass_runs_above_the_policys_tag_count_only() -> None:
    """Small HTML (up to FLATTEN_ABOVE_TAGS tags) goes to the parser as it is; larger HTML is flattened."""
    from feedsvc.core.nesting import bound_nesting

    small = "<div>" * policy.FLATTEN_ABOVE_TAGS
    assert bound_nesting(small) is small
    large = "<div>" * (policy.FLATTEN_ABOVE_TAGS + 1) + "x"
    assert bound_nesting(large).count("<div>") == policy.MAX_DEPTH and bound_nesting(large).endswith("x")
