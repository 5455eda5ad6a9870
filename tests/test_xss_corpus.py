"""Every XSS vector in the corpus comes out of both sanitizer backends inert, keeping the safe text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_eye import inert_problems, visible_text

from feedsvc.sanitizers import BACKENDS, get_sanitizer

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "xss_vectors.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
BASE_URL = "https://example.com/a/b"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("item", CORPUS, ids=[item["name"] for item in CORPUS])
def test_vector_is_neutralized(item: dict[str, Any], backend: str) -> None:
    """Sanitized output is inert, keeps the safe text, and shows no script text."""
    out = get_sanitizer(backend)(item["html"], BASE_URL)[0]
    assert isinstance(out, str)
    assert inert_problems(out) == [], f"output not inert: {out!r}"

    shown = visible_text(out)
    for keep in item["keep"]:
        assert keep in shown, f"lost safe text {keep!r}; visible text was {shown!r}"

    # Script text must go with its element.  "alert" may only be visible as often as
    # the keep texts contain it, plus as often as a browser already displays it as plain
    # text for the raw input (e.g. the text after a broken "<scr<script>ipt>" tag).
    allowed = sum(k.lower().count("alert") for k in item["keep"])
    allowed += visible_text(item["html"]).lower().count("alert")
    assert shown.lower().count("alert") <= allowed, f"script text leaked into visible text: {shown!r}"
