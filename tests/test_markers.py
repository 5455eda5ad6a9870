"""Every test that starts a real process or server is marked `live`, so `pytest -m "not live"` is
the fast loop (tests/README.md). Read from the source: a test is live when it, or a helper or
fixture of its module that it calls or takes as a parameter, or a helper it imports from another
test module, starts one: subprocess, Popen, tests/live.py's `running`/`Server`, a multiprocessing
context, the process pool forced on (its thresholds patched), the kill soak or the load run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}
LIVE_HELPERS = {"running", "Server"}  # tests/live.py: a real server on a free port
MULTIPROCESSING_CALLS = {"Process", "get_context", "Pool"}
# benchmarks/ helpers the tests call in their short form: each starts servers or builders.
BENCHMARK_STARTERS = {("kill_soak", "soak"), ("loadgen", "against")}
# Patched by name (monkeypatch.setattr(module, "NAME", ...)) to force the builder's process pool on.
POOL_NAMES = {"ProcessPoolExecutor", "POOL_MIN_FILES", "SPAWN_MIN_FILES", "POOL_MIN_PAGES", "BuilderProcess"}


def _starts_a_process(node: ast.AST, from_live: set[str]) -> bool:
    """Whether this node, on its own, starts (or forces the start of) a real process."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner, attr = node.value.id, node.attr
        if owner == "subprocess" and attr in SUBPROCESS_CALLS:
            return True
        if owner == "multiprocessing" and attr in MULTIPROCESSING_CALLS:
            return True
        if owner == "live" and attr in LIVE_HELPERS:
            return True
        if (owner, attr) in BENCHMARK_STARTERS:
            return True
    if isinstance(node, ast.Attribute) and node.attr in POOL_NAMES:
        return True
    if isinstance(node, ast.Name) and (node.id in from_live or node.id in {"Popen", *POOL_NAMES}):
        return True
    return isinstance(node, ast.Constant) and node.value in POOL_NAMES


def _marked_live(decorators: list[ast.expr]) -> bool:
    return any("mark.live" in ast.unparse(d) for d in decorators)


class Module:
    """One test module's functions (module level and in classes), what each uses, and its marks."""

    def __init__(self, source: str) -> None:
        tree = ast.parse(source)
        self.module_marked = any(
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets)
            and "mark.live" in ast.unparse(node.value)
            for node in tree.body
        )
        self.imported: dict[str, str] = {}  # name -> test module it comes from
        from_live: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    name = alias.asname or alias.name
                    if node.module == "live" and alias.name in LIVE_HELPERS:
                        from_live.add(name)
                    elif node.module.startswith("test_"):
                        self.imported[name] = node.module
        self.functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.marked: dict[str, bool] = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.functions[node.name] = node
                self.marked[node.name] = _marked_live(node.decorator_list)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        key = f"{node.name}.{item.name}"
                        self.functions[key] = item
                        self.marked[key] = _marked_live(node.decorator_list) or _marked_live(item.decorator_list)
        self.direct = {name: any(_starts_a_process(n, from_live) for n in ast.walk(fn))
                       for name, fn in self.functions.items()}
        self.uses = {name: self._uses(fn) for name, fn in self.functions.items()}

    def _uses(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
        """Module functions and imported helpers this one calls or names, and the fixtures it takes."""
        names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
        names |= {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        return names

    def live_names(self, imported_live: set[str]) -> set[str]:
        """The module's functions that start a process, themselves or through what they use."""
        live = {name for name, direct in self.direct.items() if direct}
        live |= {name for name in self.imported if name in imported_live}
        changed = True
        while changed:
            changed = False
            for name, uses in self.uses.items():
                if name not in live and uses & live:
                    live.add(name)
                    changed = True
        return live

    def unmarked_live_tests(self, imported_live: set[str]) -> list[str]:
        if self.module_marked:
            return []
        live = self.live_names(imported_live)
        return sorted(name for name in self.functions
                      if name.rsplit(".", 1)[-1].startswith("test_") and name in live and not self.marked[name])


def unmarked_live_tests(folder: Path) -> dict[str, list[str]]:
    modules = {path.stem: Module(path.read_text()) for path in sorted(folder.glob("*.py"))}
    # Helpers other test modules import (test_readers.run_newsboat, ...): live by their own module.
    exported: set[str] = set()
    for module in modules.values():
        wanted = {name for name, source in module.imported.items() if source in modules}
        for name in wanted:
            if name in modules[module.imported[name]].live_names(set()):
                exported.add(name)
    found = {}
    for stem, module in modules.items():
        if stem.startswith("test_"):
            missing = module.unmarked_live_tests(exported)
            if missing:
                found[stem] = missing
    return found


def test_every_test_that_starts_a_process_is_marked_live() -> None:
    assert unmarked_live_tests(TESTS) == {}, "mark these @pytest.mark.live (or the module's pytestmark)"


UNMARKED = '''
import subprocess
from live import running

def start_it():
    return subprocess.run(["true"])

def test_unit():
    assert 1

def test_through_a_helper():
    start_it()

@pytest.fixture
def server():
    with running([], {}, 0, None) as srv:
        yield srv

def test_through_a_fixture(server):
    pass

def test_forces_the_pool(monkeypatch):
    monkeypatch.setattr(workers_module, "POOL_MIN_FILES", {"bleach": 1})

@pytest.mark.live
def test_marked():
    start_it()
'''


def test_the_check_sees_unmarked_live_tests(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(UNMARKED)
    assert unmarked_live_tests(tmp_path) == {
        "test_sample": ["test_forces_the_pool", "test_through_a_fixture", "test_through_a_helper"]}
    (tmp_path / "test_sample.py").write_text("import pytest\npytestmark = pytest.mark.live\n" + UNMARKED)
    assert unmarked_live_tests(tmp_path) == {}


def test_the_check_follows_helpers_imported_from_other_test_modules(tmp_path: Path) -> None:
    (tmp_path / "test_owner.py").write_text("import subprocess\n\ndef run_reader():\n    subprocess.run([])\n")
    (tmp_path / "test_user.py").write_text("from test_owner import run_reader\n\ndef test_reads():\n"
                                           "    run_reader()\n")
    assert unmarked_live_tests(tmp_path) == {"test_user": ["test_reads"]}


@pytest.mark.parametrize("marker", ["live"])
def test_the_marker_is_registered(pytestconfig: pytest.Config, marker: str) -> None:
    assert any(line.split(":")[0].strip() == marker for line in pytestconfig.getini("markers"))
