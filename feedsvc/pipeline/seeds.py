"""Which files are seeds, their stats, and reading them: the pipeline's file-system edge on the input side.

The rules, in one place: `*.txt`, not hidden, not an editor's leftover, not in a hidden folder, and a
symlink only when its target stays inside the seeds folder (a seeds folder must not publish /etc/passwd).
"""

from __future__ import annotations

import fnmatch
import operator
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from feedsvc.config import path_for_log, path_for_public
from feedsvc.model import SeedFile

SEED_SUFFIX = ".txt"
# Editor swap, backup and temp files (vim, emacs, JetBrains, rsync, safe-save) and dotfiles.
IGNORED_PATTERNS = ("*.swp", "*.swo", "*.swx", "*~", ".#*", "#*#", "4913", "*.tmp", "*.part", ".*")


class SeedsDirError(OSError):
    """The seeds directory is missing or unreadable: nothing can be built, the last feed stays.

    `str()` names the folder for the logs and the console (with the working directory a relative
    path was taken from); `public` names it without an absolute path, for /healthz.
    """

    def __init__(self, seeds_dir: Path, problem: str) -> None:
        super().__init__(f"seeds directory {path_for_log(seeds_dir)} {problem}")
        self.public = f"seeds directory {path_for_public(seeds_dir, 'seeds_dir')} {problem}"


# Room for the header lines on top of the article body cap.
HEADER_ALLOWANCE = 64 * 1024
# What a header pass reads of each file: its stamp, title and dashes lines and the start of the
# body, where the body's date line is (a few hundred bytes in real seeds).
HEAD_BYTES = 1024


def read_limit(max_article_bytes: int) -> int:
    """How many bytes of a seed file are read at most: the body cap plus room for its header."""
    return max_article_bytes + HEADER_ALLOWANCE


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
        raise SeedsDirError(seeds_dir, "does not exist") from None
    except OSError as exc:
        raise SeedsDirError(seeds_dir, f"cannot be resolved: {exc.strerror or type(exc).__name__}") from None
    if not root.is_dir():
        raise SeedsDirError(seeds_dir, "is not a directory")
    if not os.access(root, os.R_OK | os.X_OK):
        raise SeedsDirError(seeds_dir, "is not readable")

    found: list[SeedFile] = []
    visited: set[tuple[int, int]] = set()

    def walk(directory: str, rel_prefix: str) -> None:
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in visited:
                return
            visited.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(directory), key=_name)
        except OSError:
            if directory == str(root):
                raise SeedsDirError(seeds_dir, "cannot be listed") from None
            return
        for item in entries:
            name = item.name
            if name.startswith("."):
                continue
            try:
                if item.is_symlink() and not _inside(item.path, str(root)):
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


def stat_seeds(seeds_dir: Path, rels: Iterable[str]) -> dict[str, SeedFile | None] | None:
    """rel → SeedFile (None: gone, or not a seed) for paths that file events reported, by the
    rules `scan_seeds` applies. None when only a full scan will do (the folder is gone, a path
    is odd, a stat fails)."""
    if not seeds_dir.is_dir():
        return None  # the full scan reports it, and the last feed stays
    root = os.path.realpath(seeds_dir)
    found: dict[str, SeedFile | None] = {}
    for rel in sorted(rels):
        if rel.startswith(("/", "../")) or not is_seed_name(os.path.basename(rel)):
            return None
        if any(part.startswith(".") for part in rel.split("/")[:-1]):
            continue
        path = os.path.join(seeds_dir, rel)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            found[rel] = None
            continue
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        found[rel] = SeedFile(path, rel, st.st_size, st.st_mtime_ns, st.st_ino) if _inside(path, root) else None
    return found


def _inside(path: str, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root + os.sep)


def read_seed(seed: SeedFile, limit: int) -> bytes:
    """The file's bytes, at most `limit` of them (the parser reports the truncation)."""
    # Asking for `limit` bytes (megabytes) costs an allocation that size: ask for what the scan saw.
    want = min(limit, seed.size + 4096)
    with open(seed.path, "rb", buffering=0) as fh:
        data = fh.read(want)
        if len(data) == want < limit:  # it grew since the scan
            data += fh.read(limit - want)
    return data


def read_head(seed: SeedFile, size: int = HEAD_BYTES) -> bytes:
    """The file's first `size` bytes (all of it when it is shorter)."""
    fd = os.open(seed.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)
