"""The published state on disk, written by the builder and read by every web process.

Layout of the output directory::

    objects/<sha256>        immutable bodies, content-addressed (and <sha256>.gz beside them)
    manifest.json           which object each URL serves, with ETags and Last-Modified: THE switch
    feed.xml                a plain copy of the current feed, for scripts and static servers
    status.json             the last build's result (for /healthz); never part of a document's bytes

A publish writes new objects first and then replaces manifest.json in one `os.replace`, so a
reader sees all documents of one version or all of the next, never a mix; a gzip variant can
never be staler than its identity body. Objects of the previous version are kept, so a reader
that has just read the old manifest still finds its files.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
STATUS = "status.json"
OBJECTS = "objects"
PUBLISH_LOCK = ".publish.lock"
_TMP_PREFIX = ".tmp-"
FORMAT = 1


@dataclass(frozen=True)
class Document:
    """One URL's body as the builder made it."""

    name: str
    body: bytes
    content_type: str
    last_modified: datetime
    # What the body was made from, opaque to publishing; kept in the manifest so a new builder
    # process can tell that a document (an archive page) is already published and reuse it.
    source_key: str = ""


@dataclass(frozen=True)
class Variant:
    body: bytes
    etag: str


@dataclass(frozen=True)
class Served:
    """One URL's published bytes, held in memory by a web process."""

    name: str
    content_type: str
    last_modified: datetime
    identity: Variant
    gzip: Variant


@dataclass(frozen=True)
class Snapshot:
    generation: int
    published_at: str
    documents: Mapping[str, Served]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def etag_for(data: bytes) -> str:
    """A strong ETag from the bytes: the same body, the same tag, across rebuilds, restarts and hosts."""
    return '"' + digest(data)[:32] + '"'


def compress(data: bytes) -> bytes:
    """Deterministic gzip (no timestamp, no file name): the same body always compresses to the same bytes."""
    return gzip.compress(data, compresslevel=9, mtime=0)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Temp file in the same directory, fsync, chmod, os.replace, fsync the directory."""
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
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
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def publish_lock(out_dir: Path) -> Iterator[None]:
    """Serialises writers (a `feedsvc build` beside a running service) on one host."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / PUBLISH_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
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


def _remove_leftovers(out_dir: Path) -> None:
    """Temp files from a writer that died mid-publish: under the publish lock, none is anyone's."""
    for directory in (out_dir, out_dir / OBJECTS):
        with contextlib.suppress(OSError):
            for item in os.scandir(directory):
                if item.name.startswith(_TMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(item.path)


def publish(out_dir: Path, documents: Sequence[Document], plain_copies: Sequence[str] = ("feed.xml",)) -> bool:
    """Publish `documents` as one version. Returns False (and touches nothing) when nothing changed."""
    objects = out_dir / OBJECTS
    with publish_lock(out_dir):
        _remove_leftovers(out_dir)
        objects.mkdir(exist_ok=True)
        old = read_manifest(out_dir)
        entries: dict[str, dict[str, Any]] = {}
        bodies: dict[str, bytes] = {}
        previous_docs = old.get("documents", {}) if old else {}
        for doc in documents:
            sha = digest(doc.body)
            same = previous_docs.get(doc.name, {})
            if same.get("object") == sha and (objects / same.get("gzip_object", "")).is_file():
                gz_sha, gz_etag = same["gzip_object"][: -len(".gz")], same["gzip_etag"]  # compressing is the cost
            else:
                gz = compress(doc.body)
                gz_sha, gz_etag = digest(gz), etag_for(gz)
                if not (objects / (gz_sha + ".gz")).exists():
                    write_atomic(objects / (gz_sha + ".gz"), gz)
            if not (objects / sha).exists():
                write_atomic(objects / sha, doc.body)
            entries[doc.name] = {
                "object": sha,
                "etag": etag_for(doc.body),
                "gzip_object": gz_sha + ".gz",
                "gzip_etag": gz_etag,
                "content_type": doc.content_type,
                "last_modified": doc.last_modified.isoformat(),
            }
            if doc.source_key:
                entries[doc.name]["source_key"] = doc.source_key
            bodies[doc.name] = doc.body
        if old is not None and old.get("documents") == entries:
            return False

        for name in plain_copies:
            if name in bodies:
                write_atomic(out_dir / name, bodies[name])
        previous = old.get("documents", {}) if old else {}
        manifest = {
            "format": FORMAT,
            "generation": (old.get("generation", 0) if old else 0) + 1,
            "published_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "documents": entries,
            "previous": previous,
        }
        write_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        _collect_garbage(objects, [entries, previous])
        return True


def _collect_garbage(objects: Path, keep: Sequence[Mapping[str, Mapping[str, Any]]]) -> None:
    live = {doc[k] for documents in keep for doc in documents.values() for k in ("object", "gzip_object")}
    with contextlib.suppress(OSError):
        for item in os.scandir(objects):
            if item.name not in live and not item.name.startswith(_TMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(item.path)


def write_status(out_dir: Path, status: Mapping[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / STATUS, json.dumps(status, indent=1, sort_keys=True, default=str).encode())


def read_status(out_dir: Path) -> dict[str, Any] | None:
    try:
        with open(out_dir / STATUS, "rb") as fh:
            status = json.load(fh)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


class PublishedStore:
    """A web process's view of the published state: bytes in memory, swapped when the manifest changes.

    Checking costs one stat() at most every `check_interval` seconds; a changed manifest is read
    and only objects not already held are loaded. A reader never sees a half-swapped state: the
    whole Snapshot is replaced by one assignment.
    """

    def __init__(self, out_dir: Path, check_interval: float = 0.05) -> None:
        self.out_dir = out_dir
        self.check_interval = check_interval
        self._snapshot: Snapshot | None = None
        self._stat_key: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> Snapshot | None:
        now = time.monotonic()
        # With nothing held yet, always go through refresh(): it waits on the lock for a load that
        # another thread has just started, instead of answering None (a 503) meanwhile.
        if self._snapshot is None or now - self._checked >= self.check_interval:
            self.refresh()
        return self._snapshot

    def refresh(self) -> bool:
        """Reload if the manifest changed. Returns True when a new snapshot was installed."""
        with self._lock:
            self._checked = time.monotonic()
            try:
                st = os.stat(self.out_dir / MANIFEST)
            except OSError:
                return False
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self._stat_key:
                return False
            for _attempt in range(3):
                snapshot = self._load()
                if snapshot is not None:
                    self._snapshot, self._stat_key = snapshot, key
                    return True
            return False

    def _load(self) -> Snapshot | None:
        manifest = read_manifest(self.out_dir)
        if manifest is None:
            return None
        held = self._snapshot.documents if self._snapshot else {}
        documents: dict[str, Served] = {}
        try:
            for name, meta in manifest["documents"].items():
                current = held.get(name)
                if current is not None and current.identity.etag == meta["etag"]:
                    documents[name] = current
                    continue
                body = (self.out_dir / OBJECTS / meta["object"]).read_bytes()
                gz = (self.out_dir / OBJECTS / meta["gzip_object"]).read_bytes()
                if etag_for(body) != meta["etag"] or etag_for(gz) != meta["gzip_etag"]:
                    return None
                documents[name] = Served(
                    name=name,
                    content_type=meta["content_type"],
                    last_modified=datetime.fromisoformat(meta["last_modified"]),
                    identity=Variant(body, meta["etag"]),
                    gzip=Variant(gz, meta["gzip_etag"]),
                )
        except (OSError, KeyError, TypeError, ValueError):
            return None  # a publish raced us and collected these objects: read the newer manifest
        return Snapshot(manifest.get("generation", 0), manifest.get("published_at", ""), documents)
