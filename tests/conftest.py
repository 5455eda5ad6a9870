"""Shared fixtures. tests/ is put on sys.path so the helper modules (schemas, browser_eye) import plainly."""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
sys.path.insert(0, str(TESTS))

from feedsvc.config import Config, load_config  # noqa: E402
from feedsvc.publish.layout import ManifestRow, load_manifest, published_rows  # noqa: E402

SAMPLE = REPO / "seeds" / "000_76cb3dcc68cf4183.txt"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEEDSVC_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("FEEDSVC_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _fresh_helpers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each test's builds get helper processes of their own (pipeline/helpers.py), forked after
    its monkeypatches (so they reach the processing), and none is left behind. Forked even when
    earlier tests left threads running (which makes the builder spawn them: a fresh interpreter,
    which the live tests cover)."""
    import multiprocessing

    import feedsvc.pipeline.workers as workers_module

    monkeypatch.setattr(workers_module, "pool_context", lambda: multiprocessing.get_context("fork"))
    yield
    from feedsvc.pipeline.helpers import stop_helpers

    stop_helpers()


@pytest.fixture
def sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


def seed_text(stamp_ms: int, title: str, url: str | None, body: str) -> str:
    header = f"[{title}]({url})" if url else title
    return f"<!--{stamp_ms}-->\n{header}\n------\n\n{body}\n"


def write_seed(folder: Path, name: str, stamp_ms: int = 1681696026000, title: str = "Title", url: str | None = None,
               body: str = "<p>Body text</p>", raw: bytes | None = None) -> Path:
    """The one seed writer: folder/name (its folders made) holding seed_text(...), UTF-8, or `raw` as it is."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw if raw is not None else seed_text(stamp_ms, title, url, body).encode())
    return path


@pytest.fixture
def make_seed(tmp_path: Path) -> Callable[..., Path]:
    """write_seed into tmp_path/seeds: make_seed(name, stamp_ms=..., title=..., url=..., body=..., raw=...)."""
    seeds = tmp_path / "seeds"
    seeds.mkdir(exist_ok=True)
    return functools.partial(write_seed, seeds)


@pytest.fixture
def config(tmp_path: Path) -> Callable[..., Config]:
    """A Config on tmp_path's seeds/ and out/, with overrides; never reads the repo's config file."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")

    def make(**overrides: object) -> Config:
        base = {"seeds_dir": str(tmp_path / "seeds"), "output_dir": str(tmp_path / "out"),
                "base_url": "https://feeds.example.org/"}
        base.update(overrides)
        return load_config(empty, env={}, overrides=base)

    return make


@pytest.fixture
def seeds(tmp_path: Path) -> Path:
    """tmp_path/seeds holding the real sample article."""
    folder = tmp_path / "seeds"
    folder.mkdir(exist_ok=True)
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    return folder


@pytest.fixture
def count_archive_pages(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """Call it to start counting: the numbers of the archive pages rendered from then on, in order
    (render_and_publish.archive_document, patched in this process)."""
    import feedsvc.pipeline.render_and_publish as render_module

    def start() -> list[int]:
        rendered: list[int] = []
        real = render_module.archive_document

        def counting(meta: Any, page: Any, key: Any) -> object:
            rendered.append(page.number)
            return real(meta, page, key)

        monkeypatch.setattr(render_module, "archive_document", counting)
        return rendered

    return start


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the builder has parsed and sanitized (in its helper processes), in order."""
    from feedsvc.pipeline.workers import Workers

    calls: list[str] = []
    real = Workers.process

    def counting(self: Workers, items: Any) -> Any:
        for chunk, results in real(self, items):
            calls.extend(seed.rel for (seed, _), (sha, _) in zip(chunk, results, strict=True) if sha)
            yield chunk, results

    monkeypatch.setattr(Workers, "process", counting)
    return calls


def published(out: Path) -> dict[str, ManifestRow]:
    """Every published document's row, by name: the manifest's and the entry pages' (its index)."""
    manifest = load_manifest(out)
    assert manifest is not None
    return published_rows(out, manifest)


def published_etags(out: Path) -> dict[str, str]:
    return {name: row.etag for name, row in published(out).items()}


def published_bodies(out: Path) -> dict[str, bytes]:
    return {name: (out / "objects" / row.object).read_bytes() for name, row in published(out).items()}
