"""Untrusted article HTML → HTML that is safe to embed in a feed, plus its plain text.

bleach does the parsing, the allowlisting and the serialising, through its public `Cleaner` only.
Around it, what bleach does not do, in one html5lib filter over its token stream (`_Pass._filter`):
elements like <script> go with their content, every URL passes our own scheme check (bleach keeps
`javascript:123`, and bleach 6.4.0 is its final release), relative URLs become absolute, lazy
images get their `src`, and the visible text is collected on the way.
"""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterable, Iterator
from html.entities import html5 as html5_entities
from typing import Any

from bleach.sanitizer import Cleaner  # type: ignore[import-untyped]  # bleach ships no types

import feedsvc.core.sanitize.policy as policy
from feedsvc.core.nesting import bound_nesting
from feedsvc.core.sanitize.embeds import finish
from feedsvc.core.text import one_line, xml_safe
from feedsvc.core.urls import safe_srcset, safe_url

# bleach's tokenizer drops every tag outside its `tags` before the tree is built, so such a tag can
# shape the tree no more. Elements that go with their content must be parsed as what they are (or
# <script>'s text would be text), and so must the tags that change how a browser builds the tree
# around them: svg/math integration points (what is inside <svg><desc> stays inside the svg),
# containers that close an open <p>, formatting elements, <image> (an <img>). bleach lets these
# through without attributes; the filter below drops the first kind with their content and unwraps
# the rest, so only `policy.TAGS` reach the output.
_STRUCTURAL_TAGS = frozenset(
    """
    foreignobject desc mi mo mn ms mtext annotation-xml mglyph malignmark
    address article aside center dir fieldset footer form header hgroup listing main menu nav section
    big font nobr strike tt marquee image rb rtc input keygen body
    """.split()
)
_PARSED_TAGS = policy.TAGS | policy.REMOVE_WITH_CONTENT | _STRUCTURAL_TAGS
_LAZY = frozenset(policy.LAZY_SRC_ATTRIBUTES)
# Lazy attributes are let through on <img> only so the filter can promote them; they never reach the output.
_ATTRIBUTES = {tag: sorted(names | _LAZY if tag == "img" else names) for tag, names in policy.ATTRIBUTES.items()}
_START = frozenset({"StartTag", "EmptyTag"})
_TEXT = frozenset({"Characters", "SpaceCharacters"})
# A character reference as Python's html.unescape finds them (the HTML 5 tokenizer's rules).
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")
_ALNUM_OR_EQUALS = re.compile(r"[A-Za-z0-9=]")


def _attribute_reference(match: re.Match[str]) -> str:
    """One character reference in an attribute value, decoded as a browser does (HTML 5, 13.2.5.73)."""
    name = match.group(1)
    if name[0] == "#" or name in html5_entities:
        return html.unescape(match.group(0))
    for end in range(len(name) - 1, 1, -1):
        if name[:end] in html5_entities:
            # A legacy reference without ";" followed by "=" or a letter or digit stays as it is, in attributes.
            if _ALNUM_OR_EQUALS.match(name[end]):
                return match.group(0)
            return html5_entities[name[:end]] + name[end:]
    return match.group(0)


def _decode_attribute(value: str) -> str:
    """bleach hands attribute values on as written (references undecoded): the value a browser sees."""
    return _CHARREF.sub(_attribute_reference, value) if "&" in value else value


def _encode_attribute(value: str) -> str:
    """The inverse of `_decode_attribute` for bleach's serialiser, which keeps `&name;` as written.

    `"` is written as a reference too: the value then goes in double quotes, the only ones for which
    bleach's serialiser keeps references as written (in single quotes it would escape `&amp;` again).
    """
    return value.replace("&", "&amp;").replace('"', "&quot;")


class _Pass:
    """One thread's Cleaner and the state of the article it is cleaning.

    bleach's public Cleaner does the parsing, the allowlisting and the serialising; `_filter`, given
    to it as an html5lib filter, walks the token stream once after bleach's own sanitizing filter:
    it drops the elements of `policy.REMOVE_WITH_CONTENT` (and svg/math content) with everything
    inside them, promotes lazy image sources, passes every URL attribute through `safe_url`, and
    collects the visible text with block edges as spaces.
    """

    def __init__(self) -> None:
        self.base: str | None = None
        self.parts: list[str] = []
        # bleach's Cleaner holds parser state and is not thread-safe: one per thread (see _pass).
        self.cleaner = Cleaner(
            tags=_PARSED_TAGS,
            attributes=_ATTRIBUTES,
            protocols=policy.PROTOCOLS,
            strip=True,
            strip_comments=True,
            filters=[self._filter],
        )

    def clean(self, text: str, base: str | None) -> tuple[str, str]:
        """Return (safe HTML, visible plain text)."""
        self.base, self.parts = base, []
        # bleach's sanitizer turns `&amp;` in text into a bare `&` and merges it with the text around,
        # where every other `&` is as written: `&amp;copy 2020` and `&copy 2020` would look the same to
        # the filter. `&#38;` is the same reference wherever references count (text, attribute values)
        # and bleach hands it on as a reference; everywhere else (comments, <script>...) goes anyway.
        text = text.replace("&amp;", "&#38;")
        try:
            safe = self.cleaner.clean(text)
            return safe, one_line("".join(self.parts))
        finally:
            self.parts = []

    def _filter(self, source: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        base, parts = self.base, self.parts
        doomed = 0  # depth inside an element that goes with its content
        in_frame = False  # inside an <iframe>: its raw text is never shown (`embeds.finish` rebuilds it)
        for token in source:
            kind = token["type"]
            if in_frame and kind != "EndTag":
                continue
            if doomed:
                # The stream comes from a tree walker: every start tag inside has its end tag.
                if kind == "StartTag":
                    doomed += 1
                elif kind == "EndTag":
                    doomed -= 1
                continue
            if kind in _TEXT:
                # Text as written (see `clean`): its references decoded here once, as a browser does
                # (`&copy 2020` too), and escaped once by the serialiser.
                text = token["data"]
                if "&" in text:
                    text = html.unescape(text)
                    token = {"type": "Characters", "data": text}
                parts.append(text)
            elif kind == "Entity":
                # A `&name;` bleach found in the text: decoded here, escaped on output.
                text = html.unescape("&" + token["name"] + ";")
                parts.append(text)
                token = {"type": "Characters", "data": text}
            else:
                name = token.get("name")
                if name in policy.REMOVE_WITH_CONTENT or token.get("namespace") is not None:
                    if kind == "StartTag":
                        doomed = 1
                    continue  # their EmptyTag and a stray EndTag go too
                if name not in policy.TAGS:
                    continue  # parsed for the tree's shape only: unwrapped, its content stays
                if name in policy.BLOCK_TAGS:
                    parts.append(" ")
                if name == "iframe":
                    in_frame = kind == "StartTag"
                if kind in _START and token["data"]:
                    _rewrite_attributes(token, base)
            yield token


def _rewrite_attributes(token: dict[str, Any], base: str | None) -> None:
    attrs: dict[tuple[str | None, str], str] = token["data"]
    if token["name"] == "img":
        src = attrs.get((None, "src"))
        if not _has_real_src(None if src is None else _decode_attribute(src)):
            lazy = next((name for name in policy.LAZY_SRC_ATTRIBUTES if attrs.get((None, name))), None)
            if lazy is not None:
                value = attrs[(None, lazy)]
                if src is not None:
                    attrs[(None, "src")] = value
                else:  # bleach dropped a data: placeholder, or there was none: src takes the lazy one's place
                    attrs = {(None, "src") if key == (None, lazy) else key: v for key, v in attrs.items()}
        attrs = {key: value for key, value in attrs.items() if key[1] not in _LAZY}
        token["data"] = attrs
    for key in list(attrs):
        value = attrs[key]
        if key[1] in policy.URL_ATTRIBUTES:
            url = safe_url(_decode_attribute(value), base)
            if url is None:
                del attrs[key]
            else:
                attrs[key] = _encode_attribute(url)
        elif key[1] in policy.SRCSET_ATTRIBUTES:
            srcset = safe_srcset(_decode_attribute(value), base)
            if srcset is None:
                del attrs[key]
            else:
                attrs[key] = _encode_attribute(srcset)
        elif "&" in value or '"' in value:  # always double-quoted on output, as the other backend writes
            attrs[key] = _encode_attribute(_decode_attribute(value))


def _has_real_src(src: str | None) -> bool:
    return src is not None and src.strip() != "" and not src.strip().lower().startswith("data:")


_local = threading.local()


def _pass() -> _Pass:
    state = getattr(_local, "state", None)
    if state is None:
        state = _local.state = _Pass()
    return state


def sanitize(html: str, base_url: str | None = None, text_limit: int | None = None) -> tuple[str, str]:
    """Untrusted HTML → (safe HTML, its visible text). XML-illegal characters never survive.

    `text_limit` is the interface's (see `feedsvc.core.sanitize`): bleach's pass gathers the whole
    text as it goes, so it always returns all of it."""
    html = xml_safe(html)
    if not html.strip():
        return "", ""
    safe, plain = _pass().clean(bound_nesting(html), base_url)
    return xml_safe(finish(safe)), xml_safe(plain)


def sanitize_html(html: str, base_url: str | None = None) -> str:
    """Untrusted HTML → safe HTML (see `sanitize`)."""
    return sanitize(html, base_url)[0]
