"""The published state's layout on disk, shared by its writer and its readers.

    objects/<sha256>        immutable bodies, content-addressed (and <sha256>.gz beside them)
    manifest.json           which object each URL serves, with ETags and Last-Modified: THE switch
    feed.xml                a plain copy of the current feed, for scripts and static servers
    <name>/feed.xml         the same for each declared feed ([[feeds]])
    status.json             the last build's result (for /healthz); never part of a document's bytes
    warming.json            a cold start's progress while its build runs (for /healthz)
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
STATUS = "status.json"
WARMING = "warming.json"
OBJECTS = "objects"
PUBLISH_LOCK = ".publish.lock"
TMP_PREFIX = ".tmp-"
FORMAT = 1


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def etag_for(data: bytes) -> str:
    """A strong ETag from the bytes: the same body, the same tag, across rebuilds, restarts and hosts."""
    return etag_of_digest(digest(data))


def etag_of_digest(sha: str) -> str:
    return '"' + sha[:32] + '"'


def compress(data: bytes, level: int = 9) -> bytes:
    """Deterministic gzip (no timestamp, no file name): the same body always compresses to the same bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Temp file in the same directory, fsync, chmod, os.replace, fsync the directory (unless the
    caller does that once for many files)."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        with open(out_dir / MANIFEST, "rb") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


