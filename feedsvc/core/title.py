"""The title line: Markdown link or plain text. Pure: no files, no clock.

Rule: `[text](url)` is a title with a link; any other line (a leading `#` heading marker dropped)
is a plain title with no link. The text is plain text: Markdown backslash escapes and HTML entities
are decoded once, characters XML cannot carry are dropped, whitespace becomes single spaces. The
URL keeps its parentheses, loses `<…>` and a trailing "title", control and format characters, and
has its spaces escaped; an empty URL is no link.
"""

from __future__ import annotations

import html
import re
import unicodedata

from feedsvc.core.text import one_line, xml_safe

_HEADING = re.compile(r"^#{1,6}\s+")
_LINK_TITLE = re.compile(r"\s+(\"[^\"]*\"|'[^']*')$")
_MD_ESCAPABLE = re.compile(r"\\([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")


def parse_markdown_title(line: str) -> tuple[str, str | None]:
    """`[text](url)` → (text, url); a line that is not a link is a plain title with no link.

    Handles nested/escaped brackets in the text, parentheses in the URL, `<url>` and a trailing "title".
    """
    line = line.strip()
    if line.startswith("#"):
        line = _HEADING.sub("", line)
    if line.startswith("["):
        depth, i = 0, 0
        close = line.find("]")
        if close > 0 and "[" not in line[1:close] and "\\" not in line[1:close]:
            i = close  # where the scan below stops: no nesting and no escape before the first "]"
        else:
            while i < len(line):
                ch = line[i]
                if ch == "\\":
                    i += 2
                    continue
                if ch == "[":
                    depth += 1
                elif ch == "]":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
        if depth == 0 and line[i + 1 : i + 2] == "(" and line.endswith(")"):
            text = line[1:i]
            target = line[i + 2 : -1].strip()
            if target.startswith("<") and ">" in target:
                target = target[1 : target.index(">")]
            else:
                target = _LINK_TITLE.sub("", target) if target.endswith(("\"", "'")) else target
            return _inline_text(text), _clean_url(target)
        # Unbalanced: fall back on the last "](" before a closing parenthesis.
        split = line.rfind("](")
        if split > 0 and line.endswith(")"):
            return _inline_text(line[1:split]), _clean_url(line[split + 2 : -1])
    return _inline_text(line), None


def _inline_text(text: str) -> str:
    """Markdown link text to plain text: backslash escapes, then HTML entities, decoded once."""
    text = _MD_ESCAPABLE.sub(lambda m: m.group(1), text)
    return one_line(xml_safe(html.unescape(text)))


def _clean_url(url: str) -> str | None:
    url = url.strip()
    if not (url.isascii() and url.isprintable()):  # printable ASCII holds no control or format character
        url = "".join(ch for ch in url if unicodedata.category(ch) not in ("Cc", "Cf"))
    url = url.replace(" ", "%20")
    return url or None
