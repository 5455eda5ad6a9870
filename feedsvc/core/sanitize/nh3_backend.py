"""The nh3 (ammonia, Rust) sanitizer backend, driven by the same policy data as the bleach one.

About 25× faster per article than bleach, and maintained: the migration path now that bleach
6.4.0 is its final release. nh3 allowlists and removes `REMOVE_WITH_CONTENT` elements with
their content; around it we do what `feedsvc.sanitize` does around bleach: every URL attribute
goes through the same `safe_url` (scheme check after removing invisibles, relative → absolute)
in nh3's attribute filter, and lazy `data-src` images are promoted. nh3's output is a
normalised serialisation (double-quoted attributes, `<`/`&` escaped in text), so the small
post-passes below can read it with regular expressions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import nh3

import feedsvc.core.sanitize.policy as policy
from feedsvc.core.nesting import bound_nesting
from feedsvc.core.sanitize.embeds import finish, strip_frame_text
from feedsvc.core.text import one_line, xml_safe
from feedsvc.core.urls import safe_srcset, safe_url

_LAZY = frozenset(policy.LAZY_SRC_ATTRIBUTES)
_URLISH = policy.URL_ATTRIBUTES | _LAZY
# Lazy attributes are let through on <img> only so the promotion below can see them; they never
# reach the output.
_ATTRIBUTES = {tag: set(names) for tag, names in policy.ATTRIBUTES.items()}
_ATTRIBUTES["img"] = _ATTRIBUTES.get("img", set()) | set(_LAZY)
# ammonia allows `lang` and `title` on every tag unless told otherwise: the policy has no generic attributes.
_ATTRIBUTES["*"] = set()
_CLEAN_CONTENT = set(policy.REMOVE_WITH_CONTENT - policy.TAGS)
_TAGS, _SCHEMES = set(policy.TAGS), set(policy.PROTOCOLS)

# A serialised tag: attribute values are always double-quoted and may hold ">", never a raw '"'.
# (Unrolled: runs of other characters between quoted values, which the regex engine takes in one go.)
_TAG_BODY = r'[^>"]*(?:"[^"]*"[^>"]*)*'
_IMG = re.compile(rf"<img\b({_TAG_BODY})>")
_ATTR = re.compile(r'\s([^\s=>]+)="([^"]*)"')
_BLOCK_NAMES = "|".join(sorted(policy.BLOCK_TAGS, key=len, reverse=True))
_BLOCK_TAG = re.compile(rf"</?(?:{_BLOCK_NAMES})\b{_TAG_BODY}>", re.IGNORECASE)
_ANY_TAG = re.compile(rf"<{_TAG_BODY}>")


def _url_filter(base: str | None) -> Callable[[str, str, str], str | None]:
    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute.lower() in _URLISH:
            return safe_url(value, base)
        if attribute.lower() in policy.SRCSET_ATTRIBUTES:
            return safe_srcset(value, base)
        return value

    return keep


def _promote_lazy(match: re.Match[str]) -> str:
    """One serialised <img>: src from a lazy attribute when it has none, lazy attributes dropped."""
    attrs = _ATTR.findall(match.group(1))
    names = [name for name, _ in attrs]
    src = next((v for n, v in attrs if n == "src" and not html.unescape(v).strip().lower().startswith("data:")), None)
    if not src:
        lazy = {n: v for n, v in attrs if n in _LAZY and v}
        for name in policy.LAZY_SRC_ATTRIBUTES:
            if name in lazy:
                if "src" in names:
                    attrs = [(n, lazy[name] if n == "src" else v) for n, v in attrs]
                else:
                    attrs.append(("src", lazy[name]))
                break
    kept = "".join(f' {n}="{v}"' for n, v in attrs if n not in _LAZY)
    return f"<img{kept}>"


def plain_text(safe_html: str, limit: int | None = None) -> str:
    """Visible text of nh3's output: tags out (block tags count as spaces), entities decoded.

    With `limit`, possibly only a prefix of it that holds at least `limit` characters (all of it
    when shorter), read from as little of the HTML as that takes: a summary needs the first few
    hundred characters of a text of thousands.
    """
    if limit is not None:
        size = 2 * limit + 512
        while size < len(safe_html):
            text = _text_of_prefix(safe_html[:size])
            if len(text) >= limit:
                return text
            size *= 4
    return one_line(html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub(" ", safe_html))))


def _text_of_prefix(prefix: str) -> str:
    """The visible text of a prefix of nh3's output: a prefix of the whole one's.

    In nh3's output a raw "<" only starts a tag (text has "&lt;"), and "&" only starts a
    reference: the tag or reference the cut went through is the first "<" left after the whole
    tags are out, or an "&" with no ";" after it.
    """
    text = _ANY_TAG.sub("", _BLOCK_TAG.sub(" ", prefix))
    if (partial := text.find("<")) >= 0:
        text = text[:partial]
    if (amp := text.rfind("&")) >= 0 and ";" not in text[amp:]:
        text = text[:amp]
    return one_line(html.unescape(text))


def clean(html_text: str, base_url: str | None) -> str:
    """nh3's own pass: the policy's tags and attributes, each URL attribute through `safe_url`."""
    return nh3.clean(
        html_text,
        tags=_TAGS,
        clean_content_tags=_CLEAN_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_url_filter(base_url),
        url_schemes=_SCHEMES,
        strip_comments=True,
        link_rel=None,
    )


def sanitize(html_text: str, base_url: str | None = None, text_limit: int | None = None) -> tuple[str, str]:
    """Untrusted HTML → (safe HTML, its visible text), with the policy of `feedsvc.policy`; with
    `text_limit`, the text may be only a prefix of it of at least that many characters."""
    html_text = xml_safe(html_text)
    if not html_text.strip():
        return "", ""
    safe = clean(bound_nesting(html_text), base_url)
    if "<img" in safe and any(f' {name}="' in safe for name in _LAZY):  # else no <img> changes
        safe = _IMG.sub(_promote_lazy, safe)
    safe = xml_safe(strip_frame_text(safe))
    return xml_safe(finish(safe)), xml_safe(plain_text(safe, text_limit))
