"""A web process's view of the published state: the manifest's documents, held in memory, and
the entry pages, found through their index's shards (read when asked for, a few kept)."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from feedsvc.publish.layout import (
    HEARTBEAT,
    OBJECTS,
    STATUS,
    WARMING,
    ManifestRow,
    ManifestStat,
    Shard,
    etag_for,
    load_manifest,
    manifest_stat,
    read_shard,
    shard_of,
)


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


class Shards:
    """The entry pages' index shards a web process has read, the last `keep` of them: a shard is an
    immutable object, so one read stays true for every version that names it."""

    def __init__(self, out_dir: Path, keep: int = 16) -> None:
        self.out_dir = out_dir
        self.keep = keep
        self._held: OrderedDict[str, dict[str, ManifestRow]] = OrderedDict()
        self._lock = threading.Lock()

    def rows(self, shard: Shard) -> dict[str, ManifestRow]:
        """Raises OSError when the shard's object is gone (a later publish collected it)."""
        with self._lock:
            rows = self._held.get(shard.object)
            if rows is not None:
                self._held.move_to_end(shard.object)
                return rows
        try:
            rows = read_shard(self.out_dir, shard)
        except ValueError:
            rows = {}  # not a shard: its pages are not found
        with self._lock:
            self._held[shard.object] = rows
            while len(self._held) > self.keep:
                self._held.popitem(last=False)
        return rows


@dataclass(frozen=True)
class Snapshot:
    generation: int
    published_at: str
    documents: Mapping[str, Served]
    articles: Mapping[str, Shard] = field(default_factory=dict)
    shards: Shards | None = None

    def get(self, name: str) -> Served | None:
        """The document `name`: the manifest's, or an entry page found through its shard (which may
        raise OSError: a later publish collected what this version names; read the new one)."""
        doc = self.documents.get(name)
        if doc is not None or self.shards is None:
            return doc
        shard = self.articles.get(shard_of(name))
        row = self.shards.rows(shard).get(name) if shard is not None else None
        if row is None:
            return None
        path = self.shards.out_dir / OBJECTS
        identity = Variant(row.etag, row.size or 0, path=path / row.object)
        gz = Variant(row.gzip_etag, row.gzip_size or 0, path=path / row.gzip_object)
        return Served(name, row.content_type, datetime.fromisoformat(row.last_modified), identity, gz)


def read_status(out_dir: Path) -> dict[str, Any] | None:
    """status.json as JSON (its shape is `layout.Status`), or None."""
    return _read_json(out_dir / STATUS)


def read_warming(out_dir: Path) -> dict[str, Any] | None:
    """A cold start's progress while its build runs (`write_warming`), or None."""
    return _read_json(out_dir / WARMING)


def read_heartbeat(out_dir: Path) -> dict[str, Any] | None:
    """The builder's heartbeat (`write_heartbeat`), or None."""
    return _read_json(out_dir / HEARTBEAT)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


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
        self._stat_key: ManifestStat | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._shards = Shards(out_dir)

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
            key = manifest_stat(self.out_dir)
            if key is None or key == self._stat_key:
                return False
            for _attempt in range(3):
                snapshot = self._load()
                if snapshot is not None:
                    self._snapshot, self._stat_key = snapshot, key
                    return True
            return False

    def _load(self) -> Snapshot | None:
        manifest = load_manifest(self.out_dir)
        if manifest is None:
            return None
        held = self._snapshot.documents if self._snapshot else {}
        documents: dict[str, Served] = {}
        try:
            for name, row in manifest.documents.items():
                current = held.get(name)
                last_modified = datetime.fromisoformat(row.last_modified)
                if current is None or (current.identity.etag, current.gzip.etag) != (row.etag, row.gzip_etag):
                    identity = self._variant(row.object, row.etag, row.size, row)
                    gz = self._variant(row.gzip_object, row.gzip_etag, row.gzip_size, row)
                    current = Served(name, row.content_type, last_modified, identity, gz)
                elif (current.content_type, current.last_modified) != (row.content_type, last_modified):
                    # The same bytes, held already, under a new date (e.g. /feed.xsl, whose date is
                    # the feed's): sent with the manifest's, as by a process started now.
                    current = dataclasses.replace(current, content_type=row.content_type, last_modified=last_modified)
                documents[name] = current
        except (OSError, KeyError, TypeError, ValueError):
            return None  # a publish raced us and collected these objects: read the newer manifest
        return Snapshot(manifest.generation, manifest.published_at, documents, manifest.articles, self._shards)

    def _variant(self, name: str, etag: str, size: int | None, row: ManifestRow) -> Variant:
        """A document held in memory (checked against its ETag), or a reference to its object file."""
        path = self.out_dir / OBJECTS / name
        if row.in_memory:
            data = path.read_bytes()
            if etag_for(data) != etag:
                raise ValueError(f"{path} does not match its ETag")
            return Variant(etag, len(data), data)
        return Variant(etag, os.stat(path).st_size if size is None else int(size), path=path)
