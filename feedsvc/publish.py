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
    # What the body was made from, opaque to publishing; kept in the manifest so a builder can
    # tell that a document (an archive page) is already published and pass a `Reuse` instead.
    source_key: str = ""
    # False: web processes read it from its object file when asked (archive pages: many, cold),
    # so their memory grows with the subscription documents, not with the history.
    in_memory: bool = True
    # Its gzip variant when the builder already compressed it (in parallel with rendering).
    gzip: bytes | None = None


@dataclass(frozen=True)
class Reuse:
    """A document left as the current manifest has it, found by the `source_key` it was published with."""

    name: str
    source_key: str


@dataclass(frozen=True)
class Stored:
    """A document whose object files `store` has already written (in a pool worker, in parallel):
    publishing it only names them in the manifest."""

    name: str
    source_key: str
    entry: Mapping[str, Any]


class Stale(Exception):
    """Documents passed as `Reuse` that the current manifest does not have (another writer replaced
    them), or as `Stored` whose objects are gone (another writer's publish collected them)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"not published as expected: {', '.join(names)}")
        self.names = list(names)


@dataclass(frozen=True)
class Variant:
    """One encoding of a published body: held in memory (`data`), or read from `path` when asked for."""

    etag: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    @property
    def body(self) -> bytes:
        """The bytes. For a body on disk this reads the object file, and raises OSError when a
        later publish has collected it (the caller refreshes its snapshot and asks again)."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        with open(self.path, "rb") as fh:
            data = fh.read(self.size + 1)
        if len(data) != self.size:
            raise OSError(f"{self.path}: {len(data)} bytes, the manifest says {self.size}")
        return data


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
    return _etag(digest(data))


def _etag(sha: str) -> str:
    return '"' + sha[:32] + '"'


def compress(data: bytes, level: int = 9) -> bytes:
    """Deterministic gzip (no timestamp, no file name): the same body always compresses to the same bytes."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def write_atomic(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Temp file in the same directory, fsync, chmod, os.replace, fsync the directory (unless the
    caller does that once for many files)."""
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
    if sync_dir:
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


def store(out_dir: Path, doc: Document) -> Stored:
    """Write `doc`'s objects ahead of `publish`, which then only checks they are still there."""
    objects = out_dir / OBJECTS
    objects.mkdir(parents=True, exist_ok=True)
    return Stored(doc.name, doc.source_key, _write_objects(objects, doc, {}))


def _write_objects(objects: Path, doc: Document, before: Mapping[str, Any]) -> dict[str, Any]:
    """Write the objects of `doc` not there yet (not fsynced: the caller syncs the directory once)
    and return its manifest entry. `before` is its entry in the last manifest, whose gzip
    variant is reused when the body is the same."""
    sha = digest(doc.body)
    if before.get("object") == sha and "gzip_size" in before and (objects / before["gzip_object"]).is_file():
        gz_object, gz_etag, gz_size = before["gzip_object"], before["gzip_etag"], before["gzip_size"]
    else:
        gz = doc.gzip if doc.gzip is not None else compress(doc.body)  # compressing is the cost
        gz_sha = digest(gz)
        gz_object, gz_etag, gz_size = gz_sha + ".gz", _etag(gz_sha), len(gz)
        if not (objects / gz_object).exists():
            write_atomic(objects / gz_object, gz, sync_dir=False)
    if not (objects / sha).exists():
        write_atomic(objects / sha, doc.body, sync_dir=False)
    entry: dict[str, Any] = {
        "object": sha,
        "etag": _etag(sha),
        "size": len(doc.body),
        "gzip_object": gz_object,
        "gzip_etag": gz_etag,
        "gzip_size": gz_size,
        "content_type": doc.content_type,
        "last_modified": doc.last_modified.isoformat(),
    }
    if doc.source_key:
        entry["source_key"] = doc.source_key
    if not doc.in_memory:
        entry["in_memory"] = False
    return entry


def publish(
    out_dir: Path, documents: Sequence[Document | Reuse | Stored], plain_copies: Sequence[str] = ("feed.xml",)
) -> bool:
    """Publish `documents` as one version. Returns False (and touches nothing) when nothing changed.

    A `Reuse` costs nothing: its manifest entry is carried over, its objects are already there.
    Raises Stale (before writing anything) when one is not in the current manifest, or when a
    `Stored` document's objects are gone.
    """
    objects = out_dir / OBJECTS
    with publish_lock(out_dir):
        _remove_leftovers(out_dir)
        objects.mkdir(exist_ok=True)
        old = read_manifest(out_dir)
        entries: dict[str, dict[str, Any]] = {}
        bodies: dict[str, bytes] = {}
        previous_docs = old.get("documents", {}) if old else {}
        stale = [
            doc.name
            for doc in documents
            if (isinstance(doc, Reuse) and previous_docs.get(doc.name, {}).get("source_key") != doc.source_key)
            or (
                isinstance(doc, Stored)
                and not all((objects / doc.entry[k]).is_file() for k in ("object", "gzip_object"))
            )
        ]
        if stale:
            raise Stale(stale)
        for doc in documents:
            if isinstance(doc, Reuse):
                entries[doc.name] = previous_docs[doc.name]
            elif isinstance(doc, Stored):
                entries[doc.name] = dict(doc.entry)
            else:
                entries[doc.name] = _write_objects(objects, doc, previous_docs.get(doc.name, {}))
                bodies[doc.name] = doc.body
        if old is not None and old.get("documents") == entries:
            return False
        _fsync_dir(objects)  # every new object's name is durable before the manifest names it

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
        # Compact: json's C encoder does not indent, and a long archive makes this file big.
        write_atomic(out_dir / MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
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

    Documents published with `in_memory=False` (archive pages) are only referenced: their object
    files are read when asked for, so a process's memory does not grow with the archive.

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
                if current is not None and (current.identity.etag, current.gzip.etag) == (
                    meta["etag"],
                    meta["gzip_etag"],
                ):
                    documents[name] = current
                    continue
                identity = self._variant(meta["object"], meta["etag"], meta.get("size"), meta)
                gz = self._variant(meta["gzip_object"], meta["gzip_etag"], meta.get("gzip_size"), meta)
                documents[name] = Served(
                    name=name,
                    content_type=meta["content_type"],
                    last_modified=datetime.fromisoformat(meta["last_modified"]),
                    identity=identity,
                    gzip=gz,
                )
        except (OSError, KeyError, TypeError, ValueError):
            return None  # a publish raced us and collected these objects: read the newer manifest
        return Snapshot(manifest.get("generation", 0), manifest.get("published_at", ""), documents)

    def _variant(self, name: str, etag: str, size: int | None, meta: Mapping[str, Any]) -> Variant:
        """A document held in memory (checked against its ETag), or a reference to its object file."""
        path = self.out_dir / OBJECTS / name
        if meta.get("in_memory", True):
            data = path.read_bytes()
            if etag_for(data) != etag:
                raise ValueError(f"{path} does not match its ETag")
            return Variant(etag, len(data), data)
        return Variant(etag, os.stat(path).st_size if size is None else int(size), path=path)
