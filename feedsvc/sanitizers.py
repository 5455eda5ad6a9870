"""The sanitizer backends by name. Both read the one policy in `feedsvc.policy`.

bleach is the default (the project's brief asks for it); nh3 is the optional, faster and
maintained one (`pip install feedsvc[nh3]`, config `sanitizer = "nh3"`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

Sanitizer = Callable[[str, str | None], tuple[str, str]]

BACKENDS = ("bleach", "nh3")


def available(name: str) -> bool:
    """Whether the backend's library is installed (nh3 is an optional extra)."""
    return name in BACKENDS and importlib.util.find_spec(name) is not None


def get_sanitizer(name: str) -> Sanitizer:
    """The backend's `sanitize(html, base_url) -> (safe_html, plain_text)`."""
    if name == "bleach":
        from feedsvc.sanitize import sanitize

        return sanitize
    if name == "nh3":
        from feedsvc.sanitize_nh3 import sanitize as sanitize_nh3

        return sanitize_nh3
    raise ValueError(f"unknown sanitizer {name!r}: expected one of {', '.join(BACKENDS)}")
