"""Which files are seeds, their stats, and reading them: the pipeline's file-system edge on the input side.

The rules, in one place: `*.txt`, not hidden, not an editor's leftover, not in a hidden folder, and a
symlink only when its target stays inside the seeds folder (a seeds folder must not publish /etc/passwd).

A file's name is its identity (`SeedFile.rel`: the id of a link-less entry, cache keys, logs,
/healthz): a name that is not valid UTF-8 gets one from its bytes, percent-escaped (`seed_rel`), so
nothing downstream ever holds a string that cannot be encoded.

Reading re-checks what the scan saw, because the folder can change in between: a seed is opened
relative to the seeds folder's handle, one component at a time, never following a symbolic link
(a link the scan accepted is read at its resolved target), without blocking (a FIFO swapped in), and
read only when it is a regular file with the scanned device and inode.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import operator
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

from feedsvc.config import path_for_log, path_for_public
from feedsvc.model import SeedFile

log = logging.getLogger("feedsvc.build")

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


def seed_rel(raw: str) -> str:
    """The name a seed is known by: `raw` (a path relative to the seeds folder, as the file
    system gave it) when it is valid UTF-8; else its bytes with each byte that is not valid UTF-8,
    and each `%`, percent-escaped (`bad\\xffname.txt` → `bad%FFname.txt`): printable, encodable
    anywhere, and the same for the same bytes."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_escaped(char) for char in raw)
    return raw


def _escaped(char: str) -> str:
    if char == "%":
        return "%25"
    if "\udc80" <= char <= "\udcff":  # a byte that is not UTF-8, as os.fsdecode gives it
        return f"%{ord(char) - 0xDC00:02X}"
    if "\ud800" <= char <= "\udfff":
        return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))
    return char


def seed_path(seeds_dir: str | os.PathLike[str], rel: str) -> str:
    """The path of the seed known as `rel` (see `seed_rel`): literally, or else its escaped bytes."""
    path = os.path.join(seeds_dir, rel)
    if "%" not in rel or os.path.lexists(path):
        return path
    raw = re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), rel.encode("utf-8"))
    return os.path.join(seeds_dir, os.fsdecode(raw))


def scan_seeds(seeds_dir: Path) -> list[SeedFile]:
    """All seed files under `seeds_dir`, recursively, sorted by relative path.

    Symbolic links are followed only when their target stays inside the seeds directory:
    a seeds folder must not be able to publish /etc/passwd.
    """
    real_root = _real_root(seeds_dir)
    found: list[SeedFile] = []
    escaped: set[int] = set()  # the indexes in `found` of names that are not UTF-8
    visited: set[tuple[int, int]] = set()

    def walk(directory: str, rel_prefix: str, real_prefix: str) -> None:
        """`real_prefix`: where `directory` is under the root once symlinks are resolved."""
        try:
            st = os.stat(directory)
            if (st.st_dev, st.st_ino) in visited:
                return
            visited.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(directory), key=_name)
        except OSError:
            if directory == real_root:
                raise SeedsDirError(seeds_dir, "cannot be listed") from None
            return
        for item in entries:
            name = item.name
            if name.startswith("."):
                continue
            try:
                real = _resolved(item.path, real_root) if item.is_symlink() else real_prefix + name
                if real is None:
                    continue
                if is_seed_name(name) and item.is_file():
                    st = item.stat()
                    rel = seed_rel(rel_prefix + name)
                    if rel != rel_prefix + name:
                        escaped.add(len(found))
                    target = "" if real == rel else real
                    found.append(
                        SeedFile(item.path, rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, real_root, target)
                    )
                elif item.is_dir():
                    walk(item.path, f"{rel_prefix}{name}/", f"{real}/")
            except OSError:
                continue  # vanished between listing and stat: the next scan sees the truth

    walk(real_root, "", "")
    if escaped:
        found = _without_clashes(found, escaped)
    return found


def _real_root(seeds_dir: Path) -> str:
    """The seeds folder's real path; a SeedsDirError when it is missing, not a folder or unreadable."""
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
    return str(root)


def _without_clashes(found: list[SeedFile], escaped: set[int]) -> list[SeedFile]:
    """A name that is not UTF-8 (at the indexes `escaped`) whose escaped name is another file's
    real name yields to that file."""
    named = {seed.rel for i, seed in enumerate(found) if i not in escaped}
    kept = []
    for i, seed in enumerate(found):
        if i in escaped and seed.rel in named:
            log.warning("skipped a file whose name is not UTF-8: another file is named %s", seed.rel)
            continue
        kept.append(seed)
    return kept


def _resolved(path: str, real_root: str) -> str | None:
    """Where the symlink `path` leads, relative to the root; None when that is outside it."""
    real = os.path.realpath(path)
    if real.startswith(real_root + os.sep):
        return real[len(real_root) + 1 :]
    return None


def stat_seeds(seeds_dir: Path, rels: Iterable[str]) -> dict[str, SeedFile | None] | None:
    """rel → SeedFile (None: gone, or not a seed) for paths that file events reported, by the
    rules `scan_seeds` applies. None when only a full scan will do (the folder is gone, a path
    is odd, a stat fails)."""
    if not seeds_dir.is_dir():
        return None  # the full scan reports it, and the last feed stays
    root = os.path.realpath(seeds_dir)
    found: dict[str, SeedFile | None] = {}
    for raw in sorted(rels):
        if raw.startswith(("/", "../")) or not is_seed_name(os.path.basename(raw)):
            return None
        if any(part.startswith(".") for part in raw.split("/")[:-1]):
            continue
        rel = seed_rel(raw)
        if rel != raw:
            return None  # a full scan settles which file such a name belongs to
        path = os.path.join(seeds_dir, raw)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            found[rel] = None
            continue
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        real = _resolved(path, root)
        if real is None:
            found[rel] = None
            continue
        target = "" if real == rel else real
        found[rel] = SeedFile(path, rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev, root, target)
    return found


class SeedSkipped(OSError):
    """The path no longer holds the file the scan saw, and what it holds must not be read (a
    FIFO, a socket, a symbolic link swapped in): `strerror` says why, as a skipped file's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(errno.EPERM, reason)


class SeedReplaced(FileNotFoundError):
    """Another regular file is at the path since the scan (renamed over it): as good as gone
    for this build; the next scan sees it."""

    def __init__(self) -> None:
        super().__init__(errno.ENOENT, "replaced since the scan")


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"))


def open_seed(seed: SeedFile) -> int:
    """A file descriptor on the bytes the scan saw at `seed`, opened without following any symbolic
    link under the seeds folder and without blocking; the caller closes it.

    Raises SeedSkipped when the path holds something that must not be read, SeedReplaced (a
    FileNotFoundError) when it holds another regular file, OSError when it cannot be opened."""
    if seed.root:
        base, parts = seed.root, (seed.target or seed.rel).split("/")
    else:  # a SeedFile not made by a scan: its own folder is the trusted part
        base, parts = os.path.dirname(seed.path) or ".", [os.path.basename(seed.path)]
    if any(part in ("", ".", "..") for part in parts):
        raise SeedSkipped(f"not a plain path under the seeds folder: {seed.rel!r}")
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = _open_at(part, _DIR_FLAGS, folder)
            os.close(folder)
            folder = inner
        fd = _open_at(parts[-1], _FILE_FLAGS, folder)
    finally:
        os.close(folder)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
            raise SeedSkipped(f"is {kind} now, not a regular file: not read")
        if (seed.inode and st.st_ino != seed.inode) or (seed.dev and st.st_dev != seed.dev):
            raise SeedReplaced()
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_at(name: str, flags: int, folder: int) -> int:
    try:
        return os.open(name, flags, dir_fd=folder)
    except OSError as exc:
        if flags & os.O_DIRECTORY and exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise SeedSkipped(f"its folder {name!r} is a symbolic link now (or no folder): not followed") from None
        if exc.errno == errno.ELOOP:
            raise SeedSkipped("is a symbolic link now, not the file the scan saw: not followed") from None
        if exc.errno == errno.ENXIO:
            raise SeedSkipped("is a socket now, not a regular file: not read") from None
        raise


def _read(fd: int, size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end of the file."""
    parts = []
    while size > 0:
        chunk = os.read(fd, min(size, 1 << 30))
        if not chunk:
            break
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def read_seed(seed: SeedFile, limit: int) -> bytes:
    """The file's bytes, at most `limit` of them (the parser reports the truncation)."""
    # Asking for `limit` bytes (megabytes) costs an allocation that size: ask for what the scan saw.
    want = min(limit, seed.size + 4096)
    fd = open_seed(seed)
    try:
        data = _read(fd, want)
        if len(data) == want < limit:  # it grew since the scan
            data += _read(fd, limit - want)
    finally:
        os.close(fd)
    return data


def read_head(seed: SeedFile, size: int = HEAD_BYTES) -> bytes:
    """The file's first `size` bytes (all of it when it is shorter)."""
    fd = open_seed(seed)
    try:
        return _read(fd, size)
    finally:
        os.close(fd)
