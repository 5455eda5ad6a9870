"""The code's shape: ruff-clean, no import cycles, and a pure core that touches no edge library."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "feedsvc"
# Stages that must stay pure: text in, values out.
CORE = {"feedsvc.text", "feedsvc.parse", "feedsvc.policy", "feedsvc.sanitize", "feedsvc.entry",
        "feedsvc.render", "feedsvc.render.atom", "feedsvc.render.html", "feedsvc.render.rss",
        "feedsvc.render.jsonfeed", "feedsvc.render.archive", "feedsvc.render.documents", "feedsvc.render.xsl",
        "feedsvc.render.xmlparts", "feedsvc.sanitize_nh3", "feedsvc.sanitizers", "feedsvc.outcome"}
EDGE_LIBRARIES = {"flask", "werkzeug", "apscheduler", "watchdog", "gunicorn", "socket", "subprocess", "sqlite3",
                  "fcntl", "signal"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


GRAPH = {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_ruff_is_clean() -> None:
    targets = [name for name in ("feedsvc", "tests", "benchmarks", "scripts") if (REPO / name).is_dir()]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *targets], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_core_is_pure() -> None:
    for module in CORE:
        edge = {name for name in GRAPH[module] if name.split(".")[0] in EDGE_LIBRARIES}
        assert not edge, f"{module} imports {edge}"
        assert "feedsvc.web" not in GRAPH[module] and "feedsvc.build" not in GRAPH[module]


def test_no_import_cycles() -> None:
    internal = {m: {i for i in deps if i in GRAPH and i != m} for m, deps in GRAPH.items()}
    state: dict[str, int] = {}

    def visit(module: str, stack: list[str]) -> None:
        state[module] = 1
        for dep in internal[module]:
            if state.get(dep) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, module, dep]))
            if dep not in state:
                visit(dep, [*stack, module])
        state[module] = 2

    for module in internal:
        if module not in state:
            visit(module, [])
