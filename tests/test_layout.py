"""The code's shape: ruff-clean, no import cycles, a pure core, no patches of other libraries,
and small units (no class much over 250 lines, no function much over 60)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "feedsvc"
CORE_DIR = PACKAGE / "core"
# What the pure core may not touch: files, the clock, logging, network, processes, scheduler, servers.
EDGE_MODULES = {
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "sqlite3",
    "fcntl",
    "glob",
    "time",
    "logging",
    "socket",
    "ssl",
    "http",
    "urllib.request",
    "subprocess",
    "multiprocessing",
    "concurrent",
    "signal",
    "asyncio",
    "selectors",
    "importlib.metadata",
    "apscheduler",
    "watchdog",
    "flask",
    "werkzeug",
    "gunicorn",
    "requests",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


TREES = {module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports(tree) for name, tree in TREES.items()}
PURE = {name for name in TREES if name.startswith("feedsvc.core") or name == "feedsvc.model"}


# The direction between the package's parts: each may import itself, the package's version
# (`feedsvc/__init__.py`) and the parts named here, nothing else. core and model are the pure
# bottom; web serves what publish wrote and never reaches the builder (service, pipeline); host,
# the composition root, wires the rest; cli starts it all.
LAYERS: dict[str, set[str]] = {
    "core": {"model"},
    "model": {"core"},
    "config": {"core", "model"},
    "logs": {"config"},
    "metrics": {"config", "model"},
    "publish": {"core", "model", "config"},
    "pipeline": {"core", "model", "config", "publish"},
    "service": {"core", "model", "config", "logs", "metrics", "pipeline", "publish"},
    "web": {"core", "model", "config", "logs", "metrics", "publish"},
    "host": {"core", "model", "config", "logs", "metrics", "pipeline", "publish", "service", "web"},
    "cli": {"core", "model", "config", "logs", "metrics", "pipeline", "publish", "service", "web", "host"},
    "__main__": {"cli"},
}
ROOT = "feedsvc"  # the package's own __init__: its version


def part_of(name: str) -> str | None:
    """The part of feedsvc a dotted name belongs to (`feedsvc.web.app.make_app` -> "web"), or None
    outside feedsvc. Top-level modules are parts of their own; the version is the root's."""
    parts = name.split(".")
    if parts[0] != ROOT:
        return None
    if len(parts) == 1 or parts[1] == "__version__":
        return ROOT
    return parts[1]


def absolute_imports(module: str, is_package: bool, tree: ast.AST) -> set[str]:
    """Every module a module imports, anywhere in it (in functions, under TYPE_CHECKING too), with
    relative imports made absolute."""
    found = imports(tree)
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """`module imports name` for each import that goes against LAYERS."""
    found = []
    for module, names in sorted(graph.items()):
        part = part_of(module)
        assert part in LAYERS or part == ROOT, f"{module}: declare its part in LAYERS"
        allowed = LAYERS.get(part, set()) | {part, ROOT}
        found += [f"{module} imports {name}" for name in sorted(names) if part_of(name) not in allowed | {None}]
    return found


@pytest.mark.live
def test_ruff_is_clean() -> None:
    targets = [name for name in ("feedsvc", "tests", "benchmarks", "scripts") if (REPO / name).is_dir()]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", *targets], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_core_says_its_rule() -> None:
    assert "cannot do any I/O" in (CORE_DIR / "README.md").read_text()
    assert {"feedsvc.core.parse", "feedsvc.core.sanitize", "feedsvc.core.render.documents"} <= PURE


def test_core_is_pure() -> None:
    for module in sorted(PURE):
        edge = {name for name in GRAPH[module] if any(name == e or name.startswith(e + ".") for e in EDGE_MODULES)}
        assert not edge, f"{module} imports {edge}"
        outside = {
            name
            for name in GRAPH[module]
            if name.startswith("feedsvc.") and name.split(".")[1] not in ("core", "model", "__version__")
        }
        assert not outside, f"{module} imports {outside} from outside the core"
        for node in ast.walk(TREES[module]):
            if isinstance(node, ast.Call):
                func = node.func
                assert not (isinstance(func, ast.Name) and func.id in ("open", "print", "input")), f"{module}: I/O"
                assert not (isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS), f"{module}: the clock"


def test_the_pure_core_catches_an_impure_module() -> None:
    """The check above can fail: a module that logs, or reads the clock, is caught."""
    tree = ast.parse("import logging\nfrom datetime import datetime\nx = datetime.now()\n")
    assert "logging" in imports(tree)
    calls = [n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "now" in calls


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


def test_parts_import_only_downwards() -> None:
    """web never imports service or pipeline, core only core and model, and so on (LAYERS)."""
    graph = {
        name: absolute_imports(name, path.name == "__init__.py", TREES[name])
        for name, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
    }
    assert layering_violations(graph) == []


def test_the_layering_catches_an_upward_import() -> None:
    """The check above can fail: web reaching the builder, even inside a function, is caught."""
    tree = ast.parse("def f():\n    from ..service import leader\n    import feedsvc.pipeline.builder\n")
    graph = {"feedsvc.web.app": absolute_imports("feedsvc.web.app", False, tree)}
    assert layering_violations(graph) == [
        "feedsvc.web.app imports feedsvc.pipeline.builder",
        "feedsvc.web.app imports feedsvc.service",
        "feedsvc.web.app imports feedsvc.service.leader",
    ]
    assert layering_violations({"feedsvc.core.parse": {"feedsvc.publish.layout"}})
    assert layering_violations({"feedsvc.web.app": {"feedsvc.core.routes", "feedsvc.metrics", "flask"}}) == []


def patches(tree: ast.AST) -> list[str]:
    """Assignments into an imported library's module or class (`gasgi.ASGIProtocol = ...`)."""
    foreign: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            foreign.update((a.asname or a.name).split(".")[0] for a in node.names if not a.name.startswith("feedsvc"))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("feedsvc"):
            foreign.update(a.asname or a.name for a in node.names)
    found = []
    for node in ast.walk(tree):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AugAssign) else []
        )
        for target in targets:
            base = target
            while isinstance(base, ast.Attribute):
                base = base.value
            if target is not base and isinstance(base, ast.Name) and base.id in foreign:
                found.append(ast.unparse(target))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Name) and first.id in foreign:
                found.append(ast.unparse(node))
    return found


def test_nothing_patches_another_library() -> None:
    assert patches(ast.parse("from gunicorn.workers import gasgi\ngasgi.ASGIProtocol = object\n")) == [
        "gasgi.ASGIProtocol"
    ]
    for module, tree in TREES.items():
        assert patches(tree) == [], module


def test_units_stay_small() -> None:
    for module, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno < 270, f"{module}.{node.name} is a class of over 250 lines"
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno - node.lineno < 65, f"{module}.{node.name} is a function of over 60 lines"


def test_no_two_modules_share_a_name() -> None:
    """A file name says where a thing happens only if no other module has it (packages' __init__ aside)."""
    seen: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name != "__init__.py":
            seen.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
