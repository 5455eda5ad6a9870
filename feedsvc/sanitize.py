"""Untrusted article HTML → HTML that is safe to embed in a feed, plus its plain text.

bleach does the allowlisting. Around it, three things bleach does not do: elements like
<script> go with their content, every URL passes our own scheme check (bleach keeps
`javascript:123`, and bleach 6.4.0 is its final release), and relative URLs become absolute.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from urllib.parse import urljoin, urlsplit
from xml.etree import ElementTree

from bleach import html5lib_shim
from bleach.sanitizer import BleachSanitizerFilter, Cleaner

from feedsvc import policy
from feedsvc.text import one_line, shorten, xml_safe

_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
# Printable ASCII without spaces: no character in it can be whitespace, control or invisible.
_PLAIN_URL = re.compile(r"[!-_a-~]+\Z")  # printable ASCII, no space, no backtick
# Most URLs in articles: absolute http(s), a plain host name, then plain characters. safe_url
# would keep them as they are (urlsplit has nothing to reject), so they need no further look.
_SIMPLE_HTTP = re.compile(r"https?://[A-Za-z0-9.\-]+(?:[/?#][!-_a-~]*)?\Z")
# Elements whose edges separate words in the plain text.
BLOCK_TAGS = frozenset(
    "p div br li dt dd h1 h2 h3 h4 h5 h6 blockquote figure figcaption tr td th table pre hr caption".split()
)


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")


def safe_url(value: str, base: str | None) -> str | None:
    """A URL attribute's value → an absolute http(s)/mailto URL, or None to drop the attribute.

    The scheme is judged with whitespace, controls and invisible characters removed,
    as a browser would, so `jav&#x09;ascript:` or `java\\u200bscript:` cannot slip past.
    """
    if _SIMPLE_HTTP.match(value):
        return value
    if _PLAIN_URL.match(value):
        probe, cleaned = value.lower(), value  # nothing invisible to remove: the common case, fast
    else:
        # Backticks go too: legacy IE took them as quotes, so "`vbscript:" must not pass as relative.
        probe = "".join(ch for ch in value if not _invisible(ch) and ch != "`").lower()
        if not probe:
            return None
        cleaned = "".join(
            ch for ch in value.strip() if not (unicodedata.category(ch) in ("Cc", "Cf") or ch in "\t\n\r")
        )
        cleaned = cleaned.replace(" ", "%20")
    if m := _SCHEME.match(probe):
        url = cleaned if m.group(1) in policy.PROTOCOLS else None
    elif base is None:
        url = cleaned if not cleaned.startswith("//") else "https:" + cleaned
    else:
        try:
            url = urljoin(base, cleaned)
        except ValueError:
            return None  # e.g. "//[x": urllib raises "Invalid IPv6 URL"; no browser can follow it either
    return url if url is not None and _well_formed(url) else None


def _well_formed(url: str) -> bool:
    """Every URL we emit can be taken apart again (host, port), by us and by the readers."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    return not parts.scheme or parts.scheme.lower() in policy.PROTOCOLS


def _prepare(root: ElementTree.Element, base: str | None) -> str:
    """One pass over the parsed tree: drop elements with their content (and comments, and svg/math,
    whose namespaced tags never match), promote lazy image sources, rewrite every URL attribute.
    Returns the visible text of what stays, with block edges as spaces."""
    parts: list[str] = []
    _walk(root, base, parts)
    return one_line("".join(parts))


def _walk(element: ElementTree.Element, base: str | None, parts: list[str]) -> None:
    block = element.tag in BLOCK_TAGS
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


def summarize(plain_text: str, limit: int = 200) -> str:
    """The first `limit` characters of an article's visible text, for <summary>."""
    # one_line of a prefix is a prefix of one_line of the whole: a long enough one is all we need.
    head = one_line(plain_text[: 4 * limit + 8])
    return shorten(head if len(head) > limit or 4 * limit + 8 >= len(plain_text) else one_line(plain_text), limit)
