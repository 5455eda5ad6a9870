"""Which files are seeds, and reading them: the pipeline's file-system edge on the input side."""

from __future__ import annotations

import fnmatch
import operator
import os
import re
from pathlib import Path
from typing import NamedTuple

SEED_SUFFIX = ".txt"
# Editor swap, backup and temp files (vim, emacs, JetBrains, rsync, safe-save) and dotfiles.
IGNORED_PATTERNS = ("*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", "*.tmp", "*.part", ".*")


class SeedsDirError(OSError):
    """The seeds directory is missing or unreadable: nothing can be built, the last feed stays."""


class SeedFile(NamedTuple):
    """One seed file as a scan saw it. A tuple: a full rescan makes 10k of them, and a frozen
    dataclass costs three times as much to construct."""

    path: str | Path
    rel: str
    size: int
    mtime_ns: int
    inode: int

    @property
    def stat_key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


_IGNORED = re.compile("|".join(fnmatch.translate(p) for p in IGNORED_PATTERNS))


def is_seed_name(name: str) -> bool:
    """A file name that can be a seed: `*.txt`, not hidden, not an editor's leftover."""
    return name.endswith(SEED_SUFFIX) and _IGNORED.match(name) is None


def is_ignored_path(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """True for paths whose changes never matter: outside `root`, in hidden folders, or not seed names."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        return True
    if any(part.startswith(".") for part in rel.parts[:-1]):
        return True
    return not is_seed_name(rel.name) if rel.parts else True


_name = operator.attrgetter("name")


def scan_seeds(seeds_dir: Path) -> list[SeedFile]:
    """All seed files under `seeds_dir`, recursively, sorted by relative path.

    Symbolic links are followed only when their target stays inside the seeds directory:
    a seeds folder must not be able to publish /etc/passwd.
    """
    try:
        root = seeds_dir.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError, RuntimeError):
        raise SeedsDirError(f"seeds directory {seeds_dir} does not exist") from None
    except OSError as exc:
        raise SeedsDirError(f"seeds directory {seeds_dir}: {exc.strerror or exc}") from None
    if not root.is_dir():
        raise SeedsDirError(f"seeds directory {seeds_dir} is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SeedsDirError(f"seeds directory {seeds_dir} is not readable")

    found: list[SeedFile] = []
    visited: set[tuple[int, int]] = set()

    def inside(path: str) -> bool:
        real = os.path.realpath(path)
        return real == str(root) or real.startswith(str(root) + os.sep)

    def walk(directory: str, rel_prefix: str) -> None:
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in visited:
                return
            visited.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(directory), key=_name)
        except OSError:
            if directory == str(root):
                raise SeedsDirError(f"seeds directory {seeds_dir} cannot be listed") from None
            return
        for item in entries:
            name = item.name
            if name.startswith("."):
                continue
            try:
                if item.is_symlink() and not inside(item.path):
                    continue
                if is_seed_name(name) and item.is_file():
                    st = item.stat()
                    found.append(SeedFile(item.path, rel_prefix + name, st.st_size, st.st_mtime_ns, st.st_ino))
                elif item.is_dir():
                    walk(item.path, f"{rel_prefix}{name}/")
            except OSError:
                continue  # vanished between listing and stat: the next scan sees the truth

    walk(str(root), "")
    return found


def read_seed(seed: SeedFile, limit: int) -> bytes:
    """The file's bytes, at most `limit` of them (the parser reports the truncation)."""
    # Asking for `limit` bytes (megabytes) costs an allocation that size: ask for what the scan saw.
    want = min(limit, seed.size + 4096)
    with open(seed.path, "rb", buffering=0) as fh:
        data = fh.read(want)
        if len(data) == want < limit:  # it grew since the scan
            data += fh.read(limit - want)
    return data
