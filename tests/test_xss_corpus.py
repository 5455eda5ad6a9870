"""Every XSS vector in the corpus comes out of both sanitizer backends inert, keeping the safe text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from browser_eye import inert_problems, visible_text
from conftest import write_seed

from feedsvc.core.sanitize import BACKENDS, get_sanitizer

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "xss_vectors.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
BASE_URL = "https://example.com/a/b"
# Known backend difference, pinned: for this mutation vector html5ever (nh3) leaves the text that
# follows the broken <svg><title> inside the svg subtree, which goes with its content. The output
# is still inert; only the safe text after the vector is lost. Revisit if nh3's parser changes.
NH3_DROPS_TEXT_AFTER = {"h5_title_in_svg_breakout"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("item", CORPUS, ids=[item["name"] for item in CORPUS])
def test_vector_is_neutralized(item: dict[str, Any], backend: str) -> None:
    """Sanitized output is inert, keeps the safe text, and shows no script text."""
    out = get_sanitizer(backend)(item["html"], BASE_URL)[0]
    assert isinstance(out, str)
    assert inert_problems(out) == [], f"output not inert: {out!r}"

    shown = visible_text(out)
    keeps = item["keep"]
    if backend == "nh3" and item["name"] in NH3_DROPS_TEXT_AFTER:
        assert keeps[-1] not in shown, "nh3 now keeps this text: remove the exception"
        keeps = keeps[:-1]
    for keep in keeps:
        assert keep in shown, f"lost safe text {keep!r}; visible text was {shown!r}"

    # Script text must go with its element.  "alert" may only be visible as often as
    # the keep texts contain it, plus as often as a browser already displays it as plain
    # text for the raw input (e.g. the text after a broken "<scr<script>ipt>" tag).
    allowed = sum(k.lower().count("alert") for k in item["keep"])
    allowed += visible_text(item["html"]).lower().count("alert")
    assert shown.lower().count("alert") <= allowed, f"script text leaked into visible text: {shown!r}"


def test_whole_corpus_through_the_pipeline(tmp_path: Path) -> None:
    """Every vector as a seed file, built and published: what a feed reader gets is still inert.

    The reader's view: the published feed.xml, XML-parsed, each entry's `<content type="html">`
    unescaped and parsed as HTML, as a reader embedding it in its page would.
    """
    from lxml import etree
    from schemas import validate_atom

    from feedsvc.config import load_config
    from feedsvc.pipeline.builder import Builder

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for n, item in enumerate(CORPUS):
        write_seed(seeds, f"{n:04}.txt", 1600000000000 + n * 1000, item["name"], f"https://example.com/a/{n}",
                   item["html"])
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={}, overrides={"seeds_dir": str(seeds), "output_dir": str(tmp_path / "out"),
                                                   "base_url": "https://feeds.example.org/", "max_entries": 1000})
    result = Builder(config).build()
    assert result.ok and result.skipped == [] and result.entries == len(CORPUS)
    feed = (tmp_path / "out" / "feed.xml").read_bytes()
    assert validate_atom(feed) == []
    atom = "{http://www.w3.org/2005/Atom}"
    by_name = {item["name"]: item for item in CORPUS}
    seen = 0
    for entry in etree.fromstring(feed).iter(f"{atom}entry"):
        item = by_name[entry.findtext(f"{atom}title")]
        html = entry.findtext(f"{atom}content") or ""
        assert inert_problems(html) == [], (item["name"], html)
        shown = visible_text(html)
        for keep in item["keep"]:
            assert keep in shown, (item["name"], shown)
        seen += 1
    assert seen == len(CORPUS)
