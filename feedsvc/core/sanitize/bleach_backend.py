"""Untrusted article HTML → HTML that is safe to embed in a feed, plus its plain text.

bleach does the allowlisting. Around it, three things bleach does not do: elements like
<script> go with their content, every URL passes our own scheme check (bleach keeps
`javascript:123`, and bleach 6.4.0 is its final release), and relative URLs become absolute.
"""

from __future__ import annotations

import threading
from xml.etree import ElementTree

from bleach import html5lib_shim
from bleach.sanitizer import BleachSanitizerFilter, Cleaner

import feedsvc.core.sanitize.policy as policy
from feedsvc.core.text import one_line, xml_safe
from feedsvc.core.urls import safe_url


def _prepare(root: ElementTree.Element, base: str | None) -> str:
    """One pass over the parsed tree: drop elements with their content (and comments, and svg/math,
    whose namespaced tags never match), promote lazy image sources, rewrite every URL attribute.
    Returns the visible text of what stays, with block edges as spaces."""
    parts: list[str] = []
    _walk(root, base, parts)
    return one_line("".join(parts))


def _walk(element: ElementTree.Element, base: str | None, parts: list[str]) -> None:
    block = element.tag in policy.BLOCK_TAGS
    if block:
        parts.append(" ")
    if element.text:
        parts.append(element.text)
    doomed: list[ElementTree.Element] = []
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag.startswith("{") or tag.lower() in policy.REMOVE_WITH_CONTENT:
            doomed.append(child)
        else:
            if child.attrib:
                _rewrite_attributes(child, base)
            _walk(child, base, parts)
        if child.tail:
            parts.append(child.tail)
    for child in doomed:
        _remove_keep_tail(element, child)
    if block:
        parts.append(" ")


def _rewrite_attributes(element: ElementTree.Element, base: str | None) -> None:
    if element.tag == "img" and not _has_real_src(element.get("src")):
        for lazy in policy.LAZY_SRC_ATTRIBUTES:
            if element.get(lazy):
                element.set("src", element.get(lazy, ""))
                break
    for name in [name for name in element.attrib if name.lower() in policy.URL_ATTRIBUTES]:
        url = safe_url(element.get(name, ""), base)
        if url is None:
            del element.attrib[name]
        else:
            element.set(name, url)


def _has_real_src(src: str | None) -> bool:
    return src is not None and src.strip() != "" and not src.strip().lower().startswith("data:")


def _remove_keep_tail(parent: ElementTree.Element, child: ElementTree.Element) -> None:
    """Remove `child` but not the text that follows it."""
    if child.tail:
        index = list(parent).index(child)
        if index:
            previous = parent[index - 1]
            previous.tail = (previous.tail or "") + child.tail
        else:
            parent.text = (parent.text or "") + child.tail
    parent.remove(child)


class _DecodedTextFilter(BleachSanitizerFilter):
    """Text in our tree is already decoded; bleach's entity re-tokenising would decode `&amp;amp;` twice."""

    def sanitize_characters(self, token: dict) -> dict:  # type: ignore[override]
        return token


class _PolicyCleaner(Cleaner):
    """bleach's Cleaner with our tree pass between parsing and bleach's own filter."""

    def __init__(self) -> None:
        super().__init__(
            tags=policy.TAGS,
            attributes={tag: sorted(names) for tag, names in policy.ATTRIBUTES.items()},
            protocols=policy.PROTOCOLS,
            strip=True,
            strip_comments=True,
        )
        # bleach's own parser turns disallowed tags into text while parsing, which would leave
        # <script> bodies visible; we parse everything as a browser does and drop them from the tree.
        self.parser = html5lib_shim.BleachHTMLParser(
            tags=None, strip=True, consume_entities=True, namespaceHTMLElements=False
        )
        # With entities decoded in the tree, the plain html5lib serializer escapes exactly once.
        self.serializer = html5lib_shim.HTMLSerializer(
            quote_attr_values="always",
            omit_optional_tags=False,
            escape_lt_in_attrs=True,
            escape_rcdata=True,
            resolve_entities=False,
            sanitize=False,
            alphabetical_attributes=False,
        )

    def clean_with_base(self, text: str, base: str | None) -> tuple[str, str]:
        """Return (safe HTML, visible plain text)."""
        dom = self.parser.parseFragment(text)
        plain = _prepare(dom, base)
        filtered = _DecodedTextFilter(
            source=self.walker(dom),
            allowed_tags=self.tags,
            attributes=self.attributes,
            strip_disallowed_tags=self.strip,
            strip_html_comments=self.strip_comments,
            css_sanitizer=None,
            allowed_protocols=self.protocols,
        )
        return self.serializer.render(filtered), plain


# bleach's Cleaner holds parser state and is not thread-safe: one per thread.
_local_cleaners = threading.local()


def _cleaner() -> _PolicyCleaner:
    cleaner = getattr(_local_cleaners, "cleaner", None)
    if cleaner is None:
        cleaner = _local_cleaners.cleaner = _PolicyCleaner()
    return cleaner


def sanitize(html: str, base_url: str | None = None) -> tuple[str, str]:
    """Untrusted HTML → (safe HTML, its visible text). XML-illegal characters never survive."""
    html = xml_safe(html)
    if not html.strip():
        return "", ""
    safe, plain = _cleaner().clean_with_base(html, base_url)
    return xml_safe(safe), xml_safe(plain)


def sanitize_html(html: str, base_url: str | None = None) -> str:
    """Untrusted HTML → safe HTML (see `sanitize`)."""
    return sanitize(html, base_url)[0]
