from __future__ import annotations

import os
from pathlib import Path

import pytest

from feedsvc.pipeline.seeds import SeedsDirError, is_ignored_path, is_seed_name, scan_seeds


@pytest.mark.parametrize(
    ("name", "ok"),
    [("000_abc.txt", True), ("a.txt", True), (".hidden.txt", False), (".a.txt.swp", False), ("a.txt~", False),
     (".#a.txt", False), ("4913", False), ("a.txt.tmp", False), ("a.md", False), ("#a.txt#", False)],
)
def test_seed_names(name: str, ok: bool) -> None:
    assert is_seed_name(name) is ok


def test_scan_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    for rel in ["b.txt", "a.txt", "sub/c.txt", "sub/deeper/d.txt", ".git/e.txt", ".hidden/f.txt", "x.swp", "notes.md"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert [s.rel for s in scan_seeds(tmp_path)] == ["a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt"]
    assert is_ignored_path(tmp_path / ".git" / "e.txt", tmp_path)
    assert not is_ignored_path(tmp_path / "sub" / "c.txt", tmp_path)


def test_symlinks_outside_are_never_followed(tmp_path: Path) -> None:
    seeds, outside = tmp_path / "seeds", tmp_path / "outside"
    seeds.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (seeds / "inside.txt").write_text("ok")
    os.symlink(outside / "secret.txt", seeds / "leak.txt")
    os.symlink(outside, seeds / "leakdir")
    os.symlink("/etc/passwd", seeds / "passwd.txt")
    os.symlink(seeds / "inside.txt", seeds / "alias.txt")
    os.symlink(seeds, seeds / "loop")
    assert [s.rel for s in scan_seeds(seeds)] == ["alias.txt", "inside.txt"]


def test_missing_seeds_dir(tmp_path: Path) -> None:
    with pytest.raises(SeedsDirError, match="does not exist"):
        scan_seeds(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(SeedsDirError, match="not a directory"):
        scan_seeds(tmp_path / "file")
