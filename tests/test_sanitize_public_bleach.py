"""The bleach backend uses bleach's public API only, and keeps what it did when it reached inside."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from feedsvc.core.sanitize.bleach_backend import sanitize, sanitize_html
from feedsvc.core.urls import safe_url

BASE = "https://www.example.com/news/article-1"
SOURCE = Path(__file__).resolve().parent.parent / "feedsvc" / "core" / "sanitize" / "bleach_backend.py"


def test_only_the_public_cleaner_is_used() -> None:
    tree = ast.parse(SOURCE.read_text())
    imported = {(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    plain = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {(m, n) for m, n in imported if m and m.startswith("bleach")} == {("bleach.sanitizer", "Cleaner")}
    assert not {name for name in plain if name.startswith(("bleach", "html5lib"))}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            assert not node.bases, f"{node.name} subclasses {[ast.unparse(b) for b in node.bases]}"


def test_attribute_references_are_decoded_once() -> None:
    """Values are as a browser decodes them, escaped once (`"` as `&quot;`: the old code single-quoted)."""
    out = sanitize_html('<a href="/x?a=1&amp;b=2&copy=3" title="AT&amp;amp;T &quot;q&quot;">l</a>'
                        '<img src="/i.png" alt="&copy 2020 &lt;b&gt;">', BASE)
    assert out == ('<a href="https://www.example.com/x?a=1&amp;b=2&amp;copy=3" title="AT&amp;amp;T &quot;q&quot;">'
                   'l</a><img src="https://www.example.com/i.png" alt="© 2020 &lt;b>">')


def test_text_references_are_decoded_as_a_browser_does() -> None:
    """Semicolon-less legacy references (`&copy 2020`) too, and `&amp;copy` still only once."""
    html, text = sanitize("<p>&copy 2020 &amp;copy &#169; &nbsp;x &ampy &notit;</p>", BASE)
    assert text == "© 2020 &copy © x &y ¬it;"
    assert html == "<p>© 2020 &amp;copy © \xa0x &amp;y ¬it;</p>"


@pytest.mark.parametrize("href", ["java&#0;script:alert(1)", "java\ufffdscript:alert(1)", "java\u3164script:1",
                                  "java&#128script:alert(1)"])
def test_scheme_is_judged_without_non_ascii(href: str) -> None:
    """bleach's own check no longer runs after ours: `safe_url` must not take these for relative paths."""
    assert sanitize_html(f'<a href="{href}">x</a>', None) == "<a>x</a>"
    assert safe_url("字/page.html", None) == "%E5%AD%97/page.html"  # a relative IRI, as a URI reference


def test_tags_outside_the_policy_still_shape_the_tree() -> None:
    """bleach's parser drops tags it does not allow before building the tree; the ones that change
    a browser's tree are parsed, then unwrapped."""
    assert sanitize("<p>a<section>b</section>c</p>", BASE) == ("<p>a</p>bc<p></p>", "a bc")
    # What is inside <svg><desc> or <math><annotation-xml> stays inside the svg/math, and goes with it.
    assert sanitize_html("<p>x</p><svg><desc><img src=y></desc></svg><p>z</p>", BASE) == "<p>x</p><p>z</p>"
    # <input> closes an open <select>: what follows is visible.
    assert sanitize("<select><option>o<input><p>after</p>", BASE) == ("<p>after</p>", "after")
    assert sanitize_html('<image src="/i.png">', BASE) == '<img src="https://www.example.com/i.png">'


def test_lazy_source_takes_the_place_of_the_lazy_attribute() -> None:
    out = sanitize_html('<img alt="a" data-original="/o.jpg"><img src="" data-lazy-src="/l.jpg" alt="b">', BASE)
    assert out == ('<img alt="a" src="https://www.example.com/o.jpg">'
                   '<img src="https://www.example.com/l.jpg" alt="b">')


def test_deep_nesting_does_not_raise() -> None:
    """The filter is a loop over bleach's token stream: no recursion (the old tree walk hit the limit)."""
    html, text = sanitize("<div>" * 5000 + "deep" + "<script>x</script>", BASE)
    assert text == "deep" and "script" not in html


def test_threads_get_their_own_cleaner() -> None:
    from concurrent.futures import ThreadPoolExecutor

    sources = [f'<p>n{n}</p><a href="/a{n}">l</a><script>s</script>' for n in range(200)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: sanitize(s, BASE), sources))
    assert results == [sanitize(s, BASE) for s in sources]
