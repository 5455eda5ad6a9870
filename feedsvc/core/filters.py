"""Which entries a declared feed takes: the seeds under its folder, and RE2 patterns searched in the
article's title and plain text.

Patterns are RE2 (google-re2), not Python's `re`: RE2 matches in time linear in the text and
has no backtracking, so no pattern (`(a+)+$` and the like) can make a build hang, whatever the
configuration says; RSSHub matches its `filter` parameters with RE2 for the same reason. What
RE2 cannot do (backreferences, lookaround) is refused when the configuration is loaded.

The text searched is the article as the sanitizer left it, before any `convert`: the title, a
newline, and the visible text of the content (`searchable`), as UTF-8, which RE2 reads natively
(searching bytes saves the binding's conversion of the text on every pattern).
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
from collections.abc import Iterable
from typing import Any, TypeVar

import re2  # type: ignore[import-untyped]  # google-re2 ships no types

# What a key of a match result depends on besides the patterns: bump it when `searchable` changes.
FILTERS_VERSION = 1
# A tag of sanitized HTML (its attribute values are quoted, and may hold ">").
TAG = re.compile(r"<(?:\"[^\"]*\"|'[^']*'|[^'\">])*>")


R = TypeVar("R", bound=Any)


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re2._Regexp:
    """The RE2 program of `pattern`, on UTF-8 bytes; PatternError when RE2 refuses it."""
    options = re2.Options()
    options.log_errors = False  # the error is raised (and reported by the configuration), not logged by RE2
    try:
        return re2.compile(pattern.encode("utf-8"), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise PatternError(reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)) from None


def in_folder(rel: str, folder: str) -> bool:
    """`rel` (a seed's path under the seeds folder, POSIX) is under `folder` ("" = every seed)."""
    return not folder or rel.startswith(folder + "/")


def by_top_folder(records: Iterable[R]) -> dict[str, list[R]]:
    """Records (with a `rel`) by the first folder of their path, in their order: a feed with a
    `folder` looks among its folder's records only."""
    groups: dict[str, list[R]] = {}
    for record in records:
        head, sep, _ = record.rel.partition("/")
        if sep:
            groups.setdefault(head, []).append(record)
    return groups


def searchable(title: str, content_html: str) -> bytes:
    """What include and exclude search: the title and the content's visible text, as UTF-8."""
    return (title + "\n" + html.unescape(TAG.sub(" ", content_html))).encode("utf-8")


def matches(text: bytes, include: str, exclude: str) -> bool:
    """Kept: `include` ("" = anything) is found in `text` and `exclude` ("" = nothing) is not."""
    if include and compile_pattern(include).search(text) is None:
        return False
    return not exclude or compile_pattern(exclude).search(text) is None


def filters_key(folder: str, include: str, exclude: str) -> str:
    """The key of a feed's match results (kept in the build cache per entry): its folder and patterns."""
    return hashlib.sha256(repr((FILTERS_VERSION, folder, include, exclude)).encode()).hexdigest()[:16]
