"""Embeds and media, after either backend: what an article showed reaches the reader, or a link to it.

Both backends let `<iframe>`, `<embed>`, `<object>`, `<video>`, `<audio>`, `<source>` and
`<picture>` through with the policy's few attributes, every URL already through `safe_url` and every
`srcset` candidate through `safe_srcset`, and an iframe's raw text removed. `finish` then rebuilds
them from the policy's data (`policy.EMBED_PROVIDERS` and the rest), on the backends' serialised
output, which both write alike (double-quoted attributes, `<` escaped in text), so one pass gives
both the same result:

- an iframe, embed or object that shows an allowed provider's player becomes a sandboxed iframe
  (YouTube on its no-cookie host); a known wrapper (embedly, Facebook's video plugin, a WordPress
  post embed) is unwrapped first; widgets (like and share buttons) go;
- any other embed becomes a link to what it showed (its title, else its host and path, as text)
  when its URL is http(s), else goes; an object's fallback content stays;
- video and audio get `controls` and `preload="none"` (never autoplay) and a link to their media
  file inside, for readers that cannot play it;
- an `<img>` with a `srcset` but no `src` gets its largest candidate as `src`.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import feedsvc.core.sanitize.policy as policy
from feedsvc.core.urls import largest_candidate, safe_url

# A serialised tag: attribute values are always double-quoted and may hold ">", never a raw '"'.
_TAG_BODY = r'[^>"]*(?:"[^"]*"[^>"]*)*'
_ATTR = re.compile(r'\s([^\s=>/]+)(?:="([^"]*)")?')
_FRAME_TEXT = re.compile(rf"(<iframe\b{_TAG_BODY}>).*?(</iframe>)", re.DOTALL)
_TAGS = re.compile(
    rf"<iframe\b(?P<frame>{_TAG_BODY})></iframe>"
    rf"|<(?P<name>embed|object|video|audio|img)\b(?P<body>{_TAG_BODY})>"
    r"|</(?P<end>object|video|audio)>"
)
_MEDIA_END = {"video": "</video>", "audio": "</audio>"}
_SOURCE_SRC = re.compile(rf'<source\b{_TAG_BODY}?\ssrc="([^"]*)"')
_SIZE = re.compile(r"[0-9]{1,5}%?\Z")
_MEDIA = re.compile(rf"<(video|audio)\b({_TAG_BODY})>|<source\b({_TAG_BODY})>|</(video|audio)>")
_HINTS = ("<iframe", "<embed", "<object", "<video", "<audio", "srcset=")


def strip_frame_text(safe_html: str) -> str:
    """The raw text inside each `<iframe>` removed: a browser never shows it, and a serialiser
    writes it unescaped."""
    return _FRAME_TEXT.sub(r"\1\2", safe_html) if "<iframe" in safe_html else safe_html


def _attributes(body: str) -> dict[str, str]:
    """A serialised tag's attributes, values decoded."""
    return {name.lower(): html.unescape(value or "") for name, value in _ATTR.findall(body)}


def _tag(name: str, attrs: list[tuple[str, str]]) -> str:
    return f"<{name}" + "".join(f' {key}="{html.escape(value)}"' for key, value in attrs) + ">"


def _http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _label(url: str) -> str:
    """A URL as a link's text: its host and path."""
    parts = urlsplit(url)
    return (parts.netloc + parts.path).rstrip("/") or url


def _sizes(attrs: dict[str, str]) -> list[tuple[str, str]]:
    return [(key, attrs[key]) for key in ("width", "height") if _SIZE.match(attrs.get(key, ""))]


def player(url: str) -> str | None:
    """The https player URL to keep in an iframe when `url` is an allowed provider's player, else None."""
    parts = urlsplit(url)
    host = parts.netloc.lower()
    if parts.scheme.lower() not in ("http", "https") or host not in policy.EMBED_PROVIDERS:
        return None
    if not parts.path.startswith(policy.EMBED_PROVIDERS[host]):
        return None
    origin = policy.YOUTUBE_NOCOOKIE if host in policy.YOUTUBE_HOSTS else "https://" + host
    query = "?" + parts.query if parts.query else ""
    return origin + parts.path + query + ("#" + parts.fragment if parts.fragment else "")


def _unwrapped(url: str) -> list[str]:
    """The real targets of a known wrapper (player first, page last), or [url] itself."""
    parts = urlsplit(url)
    host, path = parts.netloc.lower(), parts.path
    names = policy.EMBED_WRAPPERS.get((host, path))
    if names is not None:
        params = dict(parse_qsl(parts.query))
        inner = [safe_url(params[name], None) for name in names if params.get(name)]
        targets = [target for target in inner if target is not None and _http(target)]
        if targets:
            return targets
    if (parts.fragment.startswith("?secret=") or "secret=" in parts.query) and path.rstrip("/").endswith("/embed"):
        # A WordPress post embed: ".../post/embed/#?secret=…" shows ".../post/".
        return [f"{parts.scheme}://{parts.netloc}{path.rstrip('/')[: -len('embed')]}"]
    return [url]


def _widget(url: str) -> bool:
    parts = urlsplit(url)
    where = parts.netloc.lower() + parts.path
    return any(where.startswith(widget) for widget in policy.EMBED_WIDGETS)


def embed(url: str, attrs: dict[str, str]) -> str:
    """What an iframe, embed or object showing `url` becomes: a kept player, a link, or nothing."""
    if not url or _widget(url):
        return ""
    targets = _unwrapped(url)
    for target in targets:
        if (src := player(target)) is not None:
            kept = [("src", src), *_sizes(attrs)]
            if attrs.get("title", "").strip():
                kept.append(("title", attrs["title"]))
            kept += [
                ("allowfullscreen", ""),
                ("loading", "lazy"),
                ("referrerpolicy", policy.IFRAME_REFERRERPOLICY),
                ("sandbox", policy.IFRAME_SANDBOX),
            ]
            return _tag("iframe", kept) + "</iframe>"
    page = targets[-1]
    if not _http(page):
        return ""
    text = attrs.get("title", "").strip() or _label(page)
    return f'<a href="{html.escape(page)}">{html.escape(text, quote=False)}</a>'


def _media(name: str, attrs: dict[str, str], after: str) -> tuple[str, str]:
    """A video or audio start tag, playable on demand, and the link to its file to put before its
    end tag (after its `<source>` elements), for readers that cannot play it ("" when none)."""
    kept: list[tuple[str, str]] = []
    src = attrs.get("src", "")
    if _http(src):
        kept.append(("src", src))
    if name == "video":
        if _http(poster := attrs.get("poster", "")):
            kept.append(("poster", poster))
        kept += _sizes(attrs)
    if attrs.get("title", "").strip():
        kept.append(("title", attrs["title"]))
    kept += [("controls", ""), ("preload", "none")]
    start = _tag(name, kept)
    inside = after[:end] if (end := after.find(_MEDIA_END[name])) >= 0 else after
    if not _http(src) and (source := _SOURCE_SRC.search(inside)) is not None:
        src = html.unescape(source.group(1))
    href = html.escape(src)
    if not _http(src) or f'<a href="{href}">' in inside:  # already there: sanitizing twice adds nothing
        return start, ""
    return start, f'<a href="{href}">{html.escape(_label(src), quote=False)}</a>'


def finish(safe_html: str) -> str:
    """Embeds, media and srcset-only images rebuilt as the module docstring says."""
    if not any(hint in safe_html for hint in _HINTS):
        return safe_html

    pending: list[str] = []  # the fallback link of each open video/audio, innermost last

    def one(m: re.Match[str]) -> str:
        frame = m.group("frame")
        if frame is not None:
            attrs = _attributes(frame)
            return embed(attrs.get("src", ""), attrs)
        end = m.group("end")
        if end == "object":
            return ""  # every object is unwrapped, its fallback content kept
        if end is not None:
            return (pending.pop() if pending else "") + m.group(0)
        name = m.group("name")
        attrs = _attributes(m.group("body"))
        if name == "img":
            if "srcset" in attrs and "src" not in attrs and (src := largest_candidate(attrs["srcset"])):
                return f'<img src="{html.escape(src)}"' + m.group("body") + ">"
            return m.group(0)
        if name in ("video", "audio"):
            start, link = _media(name, attrs, safe_html[m.end() :])
            pending.append(link)
            return start
        return embed(attrs.get("src" if name == "embed" else "data", ""), attrs)

    return _TAGS.sub(one, safe_html)


# A fixed table, not `mimetypes`, whose answers depend on the host's /etc/mime.types.
_MEDIA_TYPES = {
    "mp3": "audio/mpeg", "m4a": "audio/mp4", "aac": "audio/aac", "oga": "audio/ogg", "ogg": "audio/ogg",
    "opus": "audio/ogg", "wav": "audio/wav", "flac": "audio/flac",
    "mp4": "video/mp4", "m4v": "video/mp4", "webm": "video/webm", "ogv": "video/ogg", "mov": "video/quicktime",
}  # fmt: skip
_GIVEN_TYPE = re.compile(r"(?:audio|video)/[A-Za-z0-9.+\-]+\Z")


def _media_type(url: str, given: str, kind: str) -> str:
    """The `type` given when it is a media type, else by the file's extension, else by the element."""
    if _GIVEN_TYPE.match(given.strip()):
        return given.strip().lower()
    guessed = _MEDIA_TYPES.get(urlsplit(url).path.rpartition(".")[2].lower())
    if guessed is None:
        return "video/mp4" if kind == "video" else "audio/mpeg"
    if kind == "audio" and guessed.startswith("video/"):  # an .mp4 or .webm played as audio
        return "audio/" + guessed.partition("/")[2]
    return guessed


def media_files(safe_html: str) -> list[tuple[str, str]]:
    """The (url, MIME type) of every video and audio file in sanitized content, in order, each once:
    what feeds publish as enclosures."""
    if "<video" not in safe_html and "<audio" not in safe_html:
        return []
    found: dict[str, str] = {}
    kind: str | None = None
    for m in _MEDIA.finditer(safe_html):
        if m.group(1):
            kind = m.group(1)
            attrs = _attributes(m.group(2))
        elif m.group(4):
            kind = None
            continue
        elif kind is not None:
            attrs = _attributes(m.group(3))
        else:
            continue  # a <picture>'s source
        url = attrs.get("src", "")
        if _http(url) and url not in found:
            found[url] = _media_type(url, attrs.get("type", ""), kind)
    return list(found.items())
