"""Untrusted article HTML → safe HTML and its visible text, by one policy (`policy.py`, data).

Two backends read that policy: `bleach_backend` (the default) and `nh3_backend` (ammonia, Rust:
faster and maintained; `pip install 'feedsvc[nh3]'`). Each is `sanitize(html, base_url,
text_limit=None) -> (safe_html, plain_text)`; `get_sanitizer(name)` picks one. With `text_limit`
the text may be a prefix of the whole of at least that many characters (all of it when shorter):
what a summary needs.

Both backends end with the same passes over their output: `embeds.finish` (players, media,
srcset, embeds as links: from the policy's data). `tracking.untrack_html` (pixels, tracking
parameters) is applied by `feedsvc.core.entry.make_entry` when `strip_tracking` is on.
"""

from __future__ import annotations

from typing import Protocol


class Sanitizer(Protocol):
    def __call__(self, html: str, /, base_url: str | None = None, text_limit: int | None = None) -> tuple[str, str]: ...


BACKENDS = ("bleach", "nh3")


def get_sanitizer(name: str) -> Sanitizer:
    """The backend's `sanitize(html, base_url, text_limit=None) -> (safe_html, plain_text)`."""
    if name == "bleach":
        from feedsvc.core.sanitize.bleach_backend import sanitize

        return sanitize
    if name == "nh3":
        from feedsvc.core.sanitize.nh3_backend import sanitize as sanitize_nh3

        return sanitize_nh3
    raise ValueError(f"unknown sanitizer {name!r}: expected one of {', '.join(BACKENDS)}")
