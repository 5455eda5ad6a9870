"""Independent "browser's eye" checker for sanitized HTML.

The output of the sanitizer is re-parsed with html5lib (a spec-compliant
HTML parser, i.e. the way a browser parses it) and every element and
attribute is inspected.  The checker is deliberately stricter than a browser:
it reports anything that *could* run script, load active content, or change
how the surrounding page behaves.

Public helpers:

* :func:`inert_problems` -- list of human-readable problems (empty == inert).
* :func:`visible_text` -- the text a browser would display for a fragment.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import html5lib
from html5lib.serializer import HTMLSerializer

__all__ = [
    "ALLOWED_SCHEMES",
    "DANGEROUS_ELEMENTS",
    "URL_ATTRIBUTES",
    "inert_problems",
    "url_problem",
    "visible_text",
]

SVG_NS = "http://www.w3.org/2000/svg"
MATHML_NS = "http://www.w3.org/1998/Math/MathML"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XMLNS_NS = "http://www.w3.org/2000/xmlns/"
_NS_PREFIX = {XLINK_NS: "xlink", XML_NS: "xml", XMLNS_NS: "xmlns"}

#: Elements that can run script, load active content, submit data, change
#: document-level behaviour, or whose content is parsed differently depending
#: on context (mutation-XSS carriers).
DANGEROUS_ELEMENTS: frozenset[str] = frozenset(
    {
        "script", "iframe", "frame", "frameset", "object", "embed", "applet",
        "style", "link", "svg", "math", "form", "input", "button", "textarea",
        "select", "keygen", "base", "meta", "noscript", "template", "isindex",
        "xmp", "plaintext", "noembed", "noframes", "portal", "fencedframe",
        "param", "animate", "animatemotion", "animatetransform", "set",
        "handler", "listener", "foreignobject", "bgsound", "layer", "ilayer",
        "xml", "import", "xss",
    }
)  # fmt: skip

#: Attributes whose value is (or contains) a URL.
URL_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "href", "src", "srcset", "action", "formaction", "xlink:href",
        "xml:base", "background", "poster", "lowsrc", "dynsrc", "data",
        "codebase", "cite", "longdesc", "usemap", "manifest", "ping",
        "profile", "icon", "classid", "archive", "code", "imagesrcset",
        "itemtype", "xmlns", "xmlns:xlink",
    }
)  # fmt: skip

#: Attributes that hold a list of URLs.
_MULTI_URL_ATTRIBUTES = frozenset({"srcset", "imagesrcset"})
_SPACE_LIST_URL_ATTRIBUTES = frozenset({"ping", "archive"})

#: The only URL schemes that count as inert.
ALLOWED_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})

# ASCII whitespace, C0 controls, DEL, C1 controls, U+FFFD (what a NUL turns
# into), backticks (legacy IE attribute quoting) and "invisible" characters.
_INVISIBLE_RE = re.compile(
    "["
    "\x00-\x20\x7f-\x9f`"
    "\u00a0\u00ad\u034f\u115f\u1160\u1680\u180e"
    "\u2000-\u200f\u2028-\u202f\u205f-\u206f"
    "\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffd"
    "]"
)
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_BAD_SCHEME_PREFIXES = ("javascript:", "vbscript:", "data:", "livescript:")

_CSS_COMMENT_RE = re.compile(r"/\*.*?(\*/|$)", re.DOTALL)
_CSS_ESCAPE_RE = re.compile(r"\\([0-9a-fA-F]{1,6})[ \t\r\n\f]?|\\(.)", re.DOTALL)
_CSS_BAD_TOKENS = (
    "url(", "expression", "@import", "javascript:", "vbscript:", "behavior",
    "binding", "image-set(", "image(", "src(",
)  # fmt: skip

_CONDITIONAL_COMMENT_RE = re.compile(r"\[\s*if\b|<!\[endif\]|\[endif\]", re.IGNORECASE)

#: Elements whose text content a browser does not display. (An `object` shows its content as the
#: fallback when its data cannot be shown, as for a javascript: or blocked URL: that text counts.)
_HIDDEN_TEXT_ELEMENTS = frozenset(
    {
        "script", "style", "template", "noscript", "noembed", "noframes",
        "iframe", "title", "head", "meta", "link", "frameset", "frame",
        "embed", "applet", "param", "desc", "metadata",
        "annotation-xml", "xml",
    }
)  # fmt: skip
_BLOCK_ELEMENTS = frozenset(
    {
        "p", "div", "br", "hr", "li", "dt", "dd", "tr", "td", "th", "h1",
        "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "figure",
        "figcaption", "caption", "table", "ul", "ol", "dl",
    }
)  # fmt: skip


def _split_ns(name: str) -> tuple[str | None, str]:
    """Split an ElementTree ``{ns}local`` name."""
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return None, name


def _tag_name(elem: ET.Element) -> str:
    """Lower-case local element name, prefixed for SVG/MathML."""
    ns, local = _split_ns(str(elem.tag))
    local = local.lower()
    if ns == SVG_NS:
        return f"svg:{local}"
    if ns == MATHML_NS:
        return f"math:{local}"
    return local


def _attr_name(name: str) -> str:
    """Lower-case attribute name; xlink/xml namespaced ones get a prefix."""
    ns, local = _split_ns(name)
    local = local.lower()
    if ns in _NS_PREFIX:
        return f"{_NS_PREFIX[ns]}:{local}" if local != "xmlns" else "xmlns"
    return local


def _strip_invisible(value: str) -> str:
    """Remove whitespace, controls and invisible characters; lower-case."""
    return _INVISIBLE_RE.sub("", value).lower()


def url_problem(value: str) -> str | None:
    """Return why a (decoded) URL attribute value is unsafe, or None."""
    cleaned = _strip_invisible(value)
    for prefix in _BAD_SCHEME_PREFIXES:
        if cleaned.startswith(prefix):
            return f"dangerous scheme {prefix!r}"
    match = _SCHEME_RE.match(cleaned)
    if match and match.group(1) not in ALLOWED_SCHEMES:
        return f"disallowed scheme {match.group(1)!r}"
    return None


def _srcset_urls(value: str) -> list[str]:
    """Every candidate URL of a srcset (plus the raw value, to be safe)."""
    urls = [value]
    for candidate in value.split(","):
        candidate = candidate.strip()
        if candidate:
            urls.append(candidate.split()[0])
    return urls


def _normalize_css(value: str) -> str:
    """Decode CSS escapes, drop comments/whitespace, lower-case."""

    def unescape(match: re.Match[str]) -> str:
        if match.group(1):
            try:
                return chr(int(match.group(1), 16))
            except (ValueError, OverflowError):
                return ""
        return match.group(2)

    text = _CSS_COMMENT_RE.sub("", value)
    text = _CSS_ESCAPE_RE.sub(unescape, text)
    text = _CSS_COMMENT_RE.sub("", text)
    return _strip_invisible(text)


def _css_problem(value: str) -> str | None:
    """Return why a style attribute value is unsafe, or None."""
    css = _normalize_css(value)
    for token in _CSS_BAD_TOKENS:
        if token in css:
            return f"style contains {token!r}"
    return None


def _attr_problems(tag: str, name: str, value: str) -> Iterator[str]:
    """Problems with one attribute of element ``tag``."""
    where = f"<{tag} {name}={value!r}>"
    if name.startswith("on"):
        yield f"event handler attribute {where}"
    if name == "srcdoc":
        yield f"srcdoc attribute {where}"
    if name == "style":
        why = _css_problem(value)
        if why:
            yield f"{why} {where}"
    if name == "http-equiv":
        yield f"http-equiv attribute {where}"
    if name in URL_ATTRIBUTES:
        if name in _MULTI_URL_ATTRIBUTES:
            urls = _srcset_urls(value)
        elif name in _SPACE_LIST_URL_ATTRIBUTES:
            urls = value.split() or [value]
        else:
            urls = [value]
        for url in urls:
            why = url_problem(url)
            if why:
                yield f"{why} in URL attribute {where}"
                break
    # SVG/SMIL: <animate attributeName=href values=javascript:...>, <set to=>.
    if name in ("values", "to", "from", "by") and tag.startswith("svg:"):
        for part in value.split(";"):
            why = url_problem(part)
            if why:
                yield f"{why} in animation value {where}"
                break


#: The only iframe a sanitized fragment may hold: an https player from one of these hosts, with
#: exactly these attributes, and a sandbox with no token beyond these (never top navigation).
PLAYER_HOSTS: frozenset[str] = frozenset(
    """
    www.youtube-nocookie.com player.vimeo.com www.dailymotion.com geo.dailymotion.com player.bilibili.com
    w.soundcloud.com open.spotify.com embed.acast.com embed.documentcloud.org www.documentcloud.org
    www.slideshare.net datawrapper.dwcdn.net flo.uri.sh
    """.split()
)
_PLAYER_ATTRIBUTES = frozenset({"src", "width", "height", "title", "allowfullscreen", "loading", "referrerpolicy",
                                "sandbox"})
_PLAYER_SANDBOX = frozenset({"allow-scripts", "allow-same-origin", "allow-popups", "allow-popups-to-escape-sandbox"})


def _sandboxed_player(elem: ET.Element) -> str | None:
    """None when ``elem`` (an iframe) is a safe player, else why not."""
    from urllib.parse import urlsplit

    attrs = {_attr_name(name): value for name, value in elem.attrib.items()}
    if not set(attrs) <= _PLAYER_ATTRIBUTES:
        return f"iframe attributes {sorted(set(attrs) - _PLAYER_ATTRIBUTES)}"
    if "sandbox" not in attrs or not set(attrs["sandbox"].lower().split()) <= _PLAYER_SANDBOX:
        return f"iframe sandbox {attrs.get('sandbox')!r}"
    src = attrs.get("src", "")
    parts = urlsplit(src)
    if src != src.strip() or parts.scheme != "https" or parts.netloc not in PLAYER_HOSTS:
        return f"iframe src {src!r}"
    return None


def _walk_problems(root: ET.Element) -> Iterator[str]:
    """Problems found anywhere under ``root`` (a parsed tree)."""
    for elem in root.iter():
        if elem.tag is ET.Comment:
            text = elem.text or ""
            if _CONDITIONAL_COMMENT_RE.search(text):
                yield f"conditional comment <!--{text}-->"
            continue
        if not isinstance(elem.tag, str) or elem.tag == "DOCUMENT_FRAGMENT":
            continue
        tag = _tag_name(elem)
        local = tag.split(":", 1)[-1]
        if local == "iframe" and ":" not in tag and _sandboxed_player(elem) is None:
            pass  # an allow-listed player in a sandbox that cannot navigate the page (checked below)
        elif tag.startswith(("svg:", "math:")) or local in DANGEROUS_ELEMENTS:
            kind = "foreign-content" if ":" in tag else "dangerous"
            yield f"{kind} element <{tag}>"
        for raw_name, value in elem.attrib.items():
            yield from _attr_problems(tag, _attr_name(raw_name), value)


def _parse_fragment(html: str) -> ET.Element:
    """Parse ``html`` as a fragment inside a ``<div>`` (innerHTML-style)."""
    return html5lib.parseFragment(html, container="div", treebuilder="etree", namespaceHTMLElements=False)


def _parse_document(html: str) -> ET.Element:
    """Parse ``html`` as a whole document (catches <body onload>, <frameset>)."""
    return html5lib.parse(html, treebuilder="etree", namespaceHTMLElements=False)


def _reserialize(root: ET.Element) -> str:
    """Serialize a parsed fragment back to HTML, as innerHTML would."""
    walker = html5lib.getTreeWalker("etree")
    serializer = HTMLSerializer(quote_attr_values="always", omit_optional_tags=False, resolve_entities=False)
    return serializer.render(walker(root))


def inert_problems(html: str) -> list[str]:
    """Return every reason ``html`` is not inert (empty list means inert).

    The HTML is parsed three ways: as a ``<div>`` fragment, as a full
    document, and as the fragment re-serialized and re-parsed (to catch
    mutation XSS).  Duplicate findings are reported once.
    """
    problems: list[str] = []
    seen: set[str] = set()

    def add(label: str, root: ET.Element) -> None:
        for problem in _walk_problems(root):
            if problem not in seen:
                seen.add(problem)
                problems.append(f"[{label}] {problem}")

    fragment = _parse_fragment(html)
    add("fragment", fragment)
    add("document", _parse_document(html))
    add("reparse", _parse_fragment(_reserialize(fragment)))
    return problems


_SVG_TEXT_ELEMENTS = frozenset({"text", "tspan", "textpath", "foreignobject"})


def _collect_text(elem: ET.Element, out: list[str], shows_text: bool) -> None:
    """Append the displayed text inside ``elem`` to ``out``.

    ``shows_text`` says whether character data directly inside ``elem`` is
    rendered (inside SVG only <text>/<tspan>/<textPath>/<foreignObject> are).
    """
    parent_is_svg = _split_ns(str(elem.tag))[0] == SVG_NS
    for child in elem:
        if isinstance(child.tag, str):
            ns, local = _split_ns(child.tag)
            local = local.lower()
            if local not in _HIDDEN_TEXT_ELEMENTS:
                child_shows = shows_text
                if ns == SVG_NS:
                    child_shows = local in _SVG_TEXT_ELEMENTS or (shows_text and parent_is_svg)
                if child.text and child_shows:
                    out.append(child.text)
                _collect_text(child, out, child_shows)
            if local in _BLOCK_ELEMENTS:
                out.append("\n")
        if child.tail and shows_text:
            out.append(child.tail)


def visible_text(html: str) -> str:
    """Text a browser would display for fragment ``html`` (tags removed)."""
    root = _parse_fragment(html)
    out: list[str] = [root.text or ""]
    _collect_text(root, out, shows_text=True)
    return "".join(out)
