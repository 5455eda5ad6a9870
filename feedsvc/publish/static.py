"""The static tree: every published document as a plain file at its URL path, for any web server,
CDN or bucket, switched atomically as a whole.

    DIR                            a symlink to DIR.versions/<version>: the switch, one rename(2)
    DIR.versions/<version>/        one complete version: feed.xml and feed.xml.gz, archive/<n>.xml …
    DIR.versions/<version>.json    which object each of its files is (not part of the tree)

A document named `a/b.xml` in the manifest is the file `a/b.xml`, with its gzip body beside it as
`a/b.xml.gz` (for nginx `gzip_static`). A document's browser page (`page_name`) is left out: it is
the same URL's other representation, picked by `Accept`, which a static server cannot do.

A new version is laid out in a temp folder beside the others, renamed to its name, and only then
does DIR point at it, by renaming a new symlink over the old one: a web server whose root is DIR
resolves it per request and sees one whole version or the next, never a mix, never a 404 for a
published document. The previous version stays (a request may have resolved it just before the
switch) until the next switch; older ones are removed. The temp folder is the version before the
previous one, due for removal then, recycled: only the files that differ from it are touched.

An unchanged file (the same object as in the previous version) is the previous version's file,
hard-linked: the same inode, the same mtime, so a web server's validators and a sync tool's
size-and-mtime check see it unchanged, and a republish of thousands of archive pages writes none of
them. Every other file is a hard link to its object in the output folder (already durable: nothing
is written), and a changed one gets the publish's time as its mtime, even when its object is older
(a body changed back). On another file system than the output folder, objects are copied.

DIR is feedsvc's: a plain directory or file there, or a symlink pointing elsewhere, is refused
(`StaticDirError`), never deleted. The layout follows the current manifest, under the output
folder's publish lock (no publish can collect an object while it is linked).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from feedsvc.config import path_for_log, path_for_public
from feedsvc.core.routes import page_name
from feedsvc.publish.layout import (
    OBJECTS,
    TMP_PREFIX,
    ManifestRow,
    fsync_dir,
    load_manifest,
    published_rows,
    write_atomic,
)
from feedsvc.publish.writer import publish_lock

VERSIONS_SUFFIX = ".versions"
GZIP_SUFFIX = ".gz"
# os.link's errors that mean "copy instead": another file system, a file system without hard
# links, an inode's link limit.
_CANNOT_LINK = (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP)


class StaticDirError(OSError):
    """The static folder is not one feedsvc may replace, or its tree could not be laid out: `str()`
    names it for the logs and the console, `public` without an absolute path (for /healthz)."""

    def __init__(self, static_dir: Path, problem: str, public_problem: str | None = None) -> None:
        super().__init__(f"static directory {path_for_log(static_dir)} {problem}")
        self.public = f"static directory {path_for_public(static_dir, 'static_dir')} {public_problem or problem}"


def versions_dir(static_dir: Path) -> Path:
    """Where the versions of `static_dir` live: beside it, so that the symlink can be relative."""
    return static_dir.with_name(static_dir.name + VERSIONS_SUFFIX)


def current_version(static_dir: Path) -> str | None:
    """The version DIR points at (None: DIR does not exist yet), or StaticDirError when DIR is not
    feedsvc's symlink."""
    try:
        target = os.readlink(static_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        kind = "a directory" if static_dir.is_dir() else "a file"
        raise StaticDirError(
            static_dir,
            f"is {kind}, not the symlink feedsvc switches between versions; "
            "move it away (feedsvc never deletes it) or choose another static_dir",
        ) from None
    folder, _, version = target.rpartition("/")
    if folder != versions_dir(static_dir).name or not version or version.startswith("."):
        versions = versions_dir(static_dir).name
        problem = f"not to a version in {versions}; move it away or choose another static_dir"
        raise StaticDirError(static_dir, f"is a symlink to {target}, {problem}", f"is a symlink, {problem}")
    return version


def tree_files(documents: Mapping[str, ManifestRow] | Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The tree's files (relative paths) and the object each one is: every document at its name and
    its gzip body beside it, except the browser pages (negotiated by Accept, no URL of their own).
    `documents`: a manifest's rows, typed or as JSON."""
    pages = {page_name(name) for name in documents}
    files: dict[str, str] = {}
    for name, given in documents.items():
        body, gz = given.objects if isinstance(given, ManifestRow) else (given["object"], given["gzip_object"])
        if name in pages:
            continue
        parts = name.split("/")
        if name.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"document name {name!r} is not a relative path")
        files[name] = body
        files[name + GZIP_SUFFIX] = gz
    return files


def version_name(generation: int, index: bytes) -> str:
    """`<generation>-<digest of the tree's index>`: the manifest's generation, for people, and what
    the tree holds, so that a version whose files are the same is known as such (`same_tree`),
    even when the manifest changed (a browser page only) or an output folder counts afresh."""
    return f"{generation}-{hashlib.sha256(index).hexdigest()[:16]}"


def same_tree(a: str | None, b: str) -> bool:
    return a is not None and a.rpartition("-")[2] == b.rpartition("-")[2]


def lay_out(out_dir: Path, static_dir: Path) -> bool:
    """Make DIR the current manifest's tree. Returns False when it already is (or nothing is
    published yet). Raises StaticDirError when DIR is not feedsvc's or the tree cannot be written
    (DIR still points at the last whole version)."""
    try:
        return _lay_out(out_dir, static_dir)
    except StaticDirError:
        raise
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        problem = f"cannot be laid out: {exc.strerror or exc}"
        raise StaticDirError(static_dir, problem, f"cannot be laid out: {reason}") from exc


def _lay_out(out_dir: Path, static_dir: Path) -> bool:
    with publish_lock(out_dir):
        current = current_version(static_dir)
        manifest = load_manifest(out_dir)
        if manifest is None:
            return False
        files = tree_files(published_rows(out_dir, manifest))
        index = json.dumps(files, sort_keys=True, separators=(",", ":")).encode()
        version = version_name(manifest.generation, index)
        if same_tree(current, version):
            return False
        versions = versions_dir(static_dir)
        versions.mkdir(parents=True, exist_ok=True)
        if not (versions / version).is_dir():
            _make_version(versions, version, index, files, out_dir / OBJECTS, current)
        _switch(static_dir, f"{versions.name}/{version}")
        _remove_old(versions, keep={version, current})
        return True


def _make_version(
    versions: Path, version: str, index: bytes, files: Mapping[str, str], objects: Path, current: str | None
) -> None:
    """Lay out `version` in a temp folder, renamed into place once whole (a version that has its
    name is complete). The temp folder is the version before the current one, which is due for
    removal now, recycled: only the files that differ from it are touched, so a republish costs
    what changed, not the size of the archive. Without one, a new folder."""
    tmp = versions / (TMP_PREFIX + version)
    shutil.rmtree(tmp, ignore_errors=True)
    recycled = next((v for v in _whole_versions(versions) if v != current), None)
    there = _read_index(versions, recycled)
    if there:
        os.rename(versions / str(recycled), tmp)
    else:
        tmp.mkdir()
    previous = versions / current if current else None
    _fill(tmp, objects, files, there, previous, _read_index(versions, current))
    write_atomic(versions / f"{version}.json", index, sync_dir=False)
    os.rename(tmp, versions / version)
    fsync_dir(versions)


def _fill(
    tmp: Path,
    objects: Path,
    files: Mapping[str, str],
    there: Mapping[str, str],
    previous: Path | None,
    before: Mapping[str, str],
) -> None:
    """Make `tmp`, which holds the files `there`, hold `files`: a file unchanged since the previous
    version (`before`) is that version's very file; any other is a link to its object (a copy on
    another file system). Names are relative to open folders: a file costs one linkat(2)."""
    touched = {""}
    with _folder(tmp) as new, _folder(objects) as objects_fd, _folder(previous) as old:
        for rel in there.keys() - files.keys():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(rel, dir_fd=new)
            touched.add(_remove_empty_folders(tmp, rel))
        for rel, obj in files.items():
            unchanged = old is not None and before.get(rel) == obj
            if unchanged and there.get(rel) == obj:
                continue  # the recycled folder's file is already the previous version's
            folder = rel.rpartition("/")[0]
            if folder not in touched:
                os.makedirs(tmp / folder, exist_ok=True)
                touched.update("/".join(folder.split("/")[: i + 1]) for i in range(folder.count("/") + 1))
            if rel in there:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(rel, dir_fd=new)
            if unchanged and _link(rel, old, rel, new):
                continue  # unchanged since the previous version: its very file
            if _link(obj, objects_fd, rel, new):
                if old is not None:
                    os.utime(rel, dir_fd=new)  # changed: new as of now, even when its object is older
                continue
            _copy(objects / obj, tmp / rel)  # on another file system than the output folder
    for folder in touched:
        fsync_dir(tmp / folder)  # linked and written names are durable before the version has its name


def _remove_empty_folders(tmp: Path, rel: str) -> str:
    """After removing the file `rel`, its folders that are now empty; returns the deepest folder left."""
    folder = rel.rpartition("/")[0]
    while folder:
        try:
            os.rmdir(tmp / folder)
        except OSError:
            break
        folder = folder.rpartition("/")[0]
    return folder


def _whole_versions(versions: Path) -> list[str]:
    """The versions that have their name (each is complete), oldest generation first."""
    names = [e.name for e in os.scandir(versions) if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")]
    return sorted(names, key=lambda name: (len(name.partition("-")[0]), name))


@contextlib.contextmanager
def _folder(path: Path | None) -> Iterator[int | None]:
    """An open folder to name files relative to (None: no such folder)."""
    try:
        fd = None if path is None else os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _link(source: str, source_dir: int | None, name: str, target_dir: int | None) -> bool:
    """Hard-link `source` as `name`; False when it is gone or cannot be linked there."""
    try:
        os.link(source, name, src_dir_fd=source_dir, dst_dir_fd=target_dir)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno not in _CANNOT_LINK:
            raise
        return False
    return True


def _copy(source: Path, path: Path) -> None:
    """The object's bytes as a new file (fsynced, 0644, its mtime now)."""
    write_atomic(path, source.read_bytes(), sync_dir=False)


def _read_index(versions: Path, version: str | None) -> dict[str, str]:
    if version is None:
        return {}
    try:
        index = json.loads((versions / f"{version}.json").read_bytes())
    except (OSError, ValueError):
        return {}  # lost or damaged: every file of the next version is written afresh
    return index if isinstance(index, dict) else {}


def _switch(static_dir: Path, target: str) -> None:
    """Point DIR at `target` with one rename(2) of a new symlink over it."""
    # Made among the versions (where a leftover is cleaned up), renamed beside DIR: a relative
    # symlink's target is resolved from where the link is, so it must say DIR.versions/<version>.
    tmp = versions_dir(static_dir) / f"{TMP_PREFIX}link"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, static_dir)
    fsync_dir(static_dir.parent)


def _remove_old(versions: Path, keep: set[str | None]) -> None:
    """Every version but the current and the previous one, their indexes, and temp leftovers."""
    for item in os.scandir(versions):
        if (item.name.removesuffix(".json") if item.name.endswith(".json") else item.name) in keep:
            continue
        if item.is_dir(follow_symlinks=False):
            shutil.rmtree(item.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(item.path)
