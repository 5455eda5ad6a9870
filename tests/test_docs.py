"""The documents cannot drift: the configuration reference matches `Config`; every relative link in
README.md, BENCHMARKS.md, feedsvc/core/README.md and docs/ reaches a file (and, with `#anchor`, a
heading); and the README stays short (it is also the wheel's long description)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from feedsvc.config import ENV_PREFIX, Config

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = REPO / "README.md"
CONFIG_PAGE = DOCS / "configuration.md"
README_LIMIT = 12 * 1024

# Fields of Config that are not keys a user sets: where each value came from, and the [[feeds]]
# tables (documented on their own row and in docs/many-feeds.md).
NOT_KEYS = {"sources", "feeds"}

FENCE = re.compile(r"^(```|~~~)")
CODE_SPAN = re.compile(r"(`+).*?\1")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
ROW = re.compile(r"^\|\s*`([a-z_]+)`\s*\|\s*`([A-Z0-9_]+)`\s*\|\s*`([^`]*)`\s*\|")


def markdown_files() -> list[Path]:
    return [README, REPO / "BENCHMARKS.md", REPO / "feedsvc" / "core" / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks (a `# comment` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading.strip())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = text.lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(path: Path) -> list[str]:
    out = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        out.extend(LINK.findall(CODE_SPAN.sub("", line)))
    return out


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; the limit is {README_LIMIT}: move text to docs/"


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest}")
            continue
        if anchor:
            if dest.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(dest):
                broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO)}")
    assert not broken, "\n".join(broken)


def test_slug_is_github_style() -> None:
    assert slug("A static tree: any web server, CDN or bucket") == "a-static-tree-any-web-server-cdn-or-bucket"
    assert slug("Archives (RFC 5005)") == "archives-rfc-5005"
    assert slug("The default `base_url`") == "the-default-base_url"


def documented_keys() -> dict[str, tuple[str, str]]:
    """key → (environment variable, default) from the table rows of docs/configuration.md."""
    rows: dict[str, tuple[str, str]] = {}
    for line in prose_lines(CONFIG_PAGE.read_text(encoding="utf-8")):
        m = ROW.match(line)
        if m:
            key, env, default = m.groups()
            assert key not in rows, f"{key} is documented twice"
            rows[key] = (env, default)
    return rows


def config_defaults() -> dict[str, Any]:
    defaults = Config()
    return {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Config) if f.name not in NOT_KEYS}


def as_toml(value: Any) -> Any:
    """A default as the TOML file spells it: a path as a string, a tuple as a list."""
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, tuple):
        return [as_toml(v) for v in value]
    return value


def test_every_config_key_is_documented_with_its_variable_and_default() -> None:
    rows = documented_keys()
    wrong = []
    for key, default in config_defaults().items():
        if key not in rows:
            wrong.append(f"{key}: not in docs/configuration.md")
            continue
        env, shown = rows[key]
        if env != ENV_PREFIX + key.upper():
            wrong.append(f"{key}: documented variable {env}, expected {ENV_PREFIX + key.upper()}")
        try:
            documented = tomllib.loads(f"v = {shown}")["v"]
        except tomllib.TOMLDecodeError:
            wrong.append(f"{key}: documented default `{shown}` is not a TOML value")
            continue
        expected = as_toml(default)
        if documented != expected or type(documented) is not type(expected):
            wrong.append(f"{key}: documented default `{shown}`, Config has {expected!r}")
    assert not wrong, "\n".join(wrong)


def test_no_documented_key_is_unknown() -> None:
    unknown = sorted(set(documented_keys()) - set(config_defaults()))
    assert not unknown, f"docs/configuration.md documents keys Config does not have: {unknown}"


def test_feeds_table_is_documented() -> None:
    assert "`[[feeds]]`" in CONFIG_PAGE.read_text(encoding="utf-8")


def test_every_test_file_is_in_the_tests_readme() -> None:
    """tests/README.md maps each test file to the module or behaviour it covers: a new file gets a row."""
    table = (REPO / "tests" / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((REPO / "tests").glob("test_*.py")) if f"| `{p.name}` |" not in table]
    assert missing == [], f"add a row to tests/README.md for {missing}"
