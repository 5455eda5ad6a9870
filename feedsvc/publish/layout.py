"""The published state's layout on disk, shared by its writer and its readers.

    objects/<sha256>        immutable bodies, content-addressed (and <sha256>.gz beside them)
    objects/articles/       the entries' pages' bodies, and their index's shards (<sha256>.json)
    manifest.json           which object each URL serves, with ETags and Last-Modified: THE switch
    feed.xml                a plain copy of the current feed, for scripts and static servers
    <name>/feed.xml         the same for each declared feed ([[feeds]])
    status.json             the last build's result (for /healthz); never part of a document's bytes
    warming.json            a cold start's progress while its build runs (for /healthz)
    heartbeat.json          the builder's heartbeat: its pid, when it last beat, what it does and
                            when it last made progress (for /healthz's `stalled`)

The files' JSON shapes are typed here, each with `to_json` and `from_json` (the bytes on disk are
those of the dicts `to_json` returns, written with sorted keys):

    ManifestRow     one document's row in manifest.json: its objects, ETags, type and date
    Manifest        manifest.json: the current rows, the previous version's, its generation, and
                    the entry pages' index: one `Shard` per folder and first two hex digits of the
                    key, each an immutable object that holds its pages' rows
    Status          status.json: the last build of record (`read_status` hands web a dict)
    ManifestStat    the manifest file's stat: has another writer published since?
    Rendered        what a builder last published (the manifest's stat then, its feed's ETag)
    Stored          a document whose objects a worker wrote: publishing only names its row
    ArticleShard    a shard of the entry pages' index, as a build hands it to publishing
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from feedsvc.model import Note, Problem, Report, Skipped

MANIFEST = "manifest.json"
STATUS = "status.json"
WARMING = "warming.json"
HEARTBEAT = "heartbeat.json"
OBJECTS = "objects"
# Under objects/: the entry pages' bodies and their index's shards. They are many (two objects a
# page), so they are out of the manifest's rows and of its full collection: see `Shard`.
ARTICLE_OBJECTS = "articles"
SHARD_SUFFIX = ".json"
PUBLISH_LOCK = ".publish.lock"
# Present while a build has stored entry pages it has not published yet: found by the next build,
# it means one died meanwhile, and that build sweeps what it left (`article_index.sweep_articles`).
STORING = ".storing-articles"
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


def write_atomic(path: Path, data: bytes, mode: int = 0o644, sync_dir: bool = True, sync: bool = True) -> None:
    """Temp file in the same directory, fsync, chmod, os.replace, fsync the directory (unless the
    caller does that once for many files). `sync=False`: no fsync at all (a file rewritten every few
    seconds whose loss in a crash costs nothing, such as the heartbeat)."""
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir and sync:
        fsync_dir(path.parent)


# Up to this many files, write_many fsyncs each one; more are made durable by one sync(2).
FSYNC_EACH = 16


def write_many(directory: Path, files: dict[str, bytes]) -> None:
    """Many new files at once (entry pages' objects, index shards), each only if not there yet:
    written to temp files, made durable, and only then renamed to their names, so a name never
    points at bytes not yet on disk. A few (a new article's pages, its shards) are fsynced one by
    one: sync(2) would also wait for every other process's writes, and a file event's build must
    not. Many (a cold build's pages) are made durable by one sync(2): one fsync a file (~1 ms
    here) was most of a page's cost. Names are relative to the open folder (no path is built per
    file). The caller syncs the folder once the names are all in place."""
    prefix = f"{TMP_PREFIX}{os.getpid()}-"  # one writer per name and process: no random names needed
    folder = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    written: list[str] = []
    try:
        pending = [name for name in files if not _exists(name, folder)]
        each = len(pending) <= FSYNC_EACH
        for name in pending:
            fd = os.open(prefix + name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=folder)
            written.append(prefix + name)
            try:
                data = memoryview(files[name])
                while data:
                    data = data[os.write(fd, data) :]
                if each:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if pending and not each:
            os.sync()
        for name in pending:
            os.replace(prefix + name, name, src_dir_fd=folder, dst_dir_fd=folder)
        written.clear()
    finally:
        for tmp in written:  # a write failed (a full disk): no temp file stays behind
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
        os.close(folder)


def _exists(name: str, folder: int) -> bool:
    try:
        os.stat(name, dir_fd=folder)
    except FileNotFoundError:
        return False
    return True


def fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass(frozen=True)
class ManifestRow:
    """One published document's row in manifest.json: its identity and gzip objects (by SHA-256),
    their ETags and sizes, its type and Last-Modified. `source_key`: what its bytes were made from
    ("" = not kept); `in_memory`: False when web processes read it from its object file."""

    object: str
    etag: str
    size: int | None
    gzip_object: str
    gzip_etag: str
    gzip_size: int | None
    content_type: str
    last_modified: str  # ISO 8601, as written
    source_key: str = ""
    in_memory: bool = True

    @property
    def objects(self) -> tuple[str, str]:
        """The object files the row names: the identity body, the gzip body."""
        return (self.object, self.gzip_object)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "object": self.object,
            "etag": self.etag,
            "gzip_object": self.gzip_object,
            "gzip_etag": self.gzip_etag,
            "content_type": self.content_type,
            "last_modified": self.last_modified,
        }
        if self.size is not None:
            row["size"] = self.size
        if self.gzip_size is not None:
            row["gzip_size"] = self.gzip_size
        if self.source_key:
            row["source_key"] = self.source_key
        if not self.in_memory:
            row["in_memory"] = False
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> ManifestRow:
        """Raises KeyError or TypeError when `row` is not a manifest row."""
        if not isinstance(row, dict):
            raise TypeError(f"a manifest row is an object, not {type(row).__name__}")
        return cls(
            object=row["object"],
            etag=row["etag"],
            size=row.get("size"),
            gzip_object=row["gzip_object"],
            gzip_etag=row["gzip_etag"],
            gzip_size=row.get("gzip_size"),
            content_type=row["content_type"],
            last_modified=row["last_modified"],
            source_key=row.get("source_key", ""),
            in_memory=row.get("in_memory", True),
        )


    def to_compact(self) -> list[Any]:
        """An entry page's row in its index shard: the objects' digests (their folder and suffix are
        known), sizes, type, date and key, as a list (a shard holds thousands)."""
        return [
            _digest_of(self.object),
            self.size,
            _digest_of(self.gzip_object).removesuffix(".gz"),
            self.gzip_size,
            self.content_type,
            self.last_modified,
            self.source_key,
        ]

    @classmethod
    def from_compact(cls, row: list[Any]) -> ManifestRow:
        """Raises ValueError or TypeError when `row` is not one."""
        sha, size, gz_sha, gz_size, content_type, last_modified, source_key = row
        return cls(
            object=f"{ARTICLE_OBJECTS}/{sha}",
            etag=etag_of_digest(sha),
            size=size,
            gzip_object=f"{ARTICLE_OBJECTS}/{gz_sha}.gz",
            gzip_etag=etag_of_digest(gz_sha),
            gzip_size=gz_size,
            content_type=content_type,
            last_modified=last_modified,
            source_key=source_key,
            in_memory=False,
        )


def _digest_of(name: str) -> str:
    return name.rpartition("/")[2]


def rows_to_json(rows: dict[str, ManifestRow]) -> dict[str, dict[str, Any]]:
    return {name: row.to_json() for name, row in rows.items()}


def rows_from_json(rows: dict[str, Any]) -> dict[str, ManifestRow]:
    return {name: ManifestRow.from_json(row) for name, row in rows.items()}


@dataclass(frozen=True)
class Shard:
    """One shard of the entry pages' index, as manifest.json names it: the object that holds its
    rows (`objects/articles/<sha256>.json`, `{name: ManifestRow.to_compact()}`) and its key, the
    digest of its pages' names and composition keys (`shard_key`). A build whose pages of a shard
    have the key published reuses the shard whole, without reading it: publishing one article
    into 100k rewrites the shards of its page and its neighbours', not an index of 100k rows."""

    object: str
    key: str

    def to_json(self) -> dict[str, str]:
        return {"object": self.object, "key": self.key}


def shard_of(name: str) -> str:
    """The shard of an entry page's name: its folder and its key's first two hex digits
    (`world/articles/ab12….html` is in `world/articles/ab`)."""
    folder, _, file = name.rpartition("/")
    return f"{folder}/{file[:2]}"


def shard_key(pages: Iterable[tuple[str, str]]) -> str:
    """The key of a shard whose pages are these (name, composition key) pairs (neither holds a
    space or a newline: a name is a path of hex digits and a feed's name, a key is hex)."""
    return digest("\n".join(f"{name} {key}" for name, key in sorted(pages)).encode())


def shard_path(out_dir: Path, shard: Shard) -> Path:
    return out_dir / OBJECTS / ARTICLE_OBJECTS / (shard.object + SHARD_SUFFIX)


def shard_bytes(rows: dict[str, ManifestRow]) -> bytes:
    return json.dumps({n: r.to_compact() for n, r in rows.items()}, sort_keys=True, separators=(",", ":")).encode()


def read_shard(out_dir: Path, shard: Shard) -> dict[str, ManifestRow]:
    """A shard's rows. Raises OSError when its object is gone (a later publish collected it) and
    ValueError when it is not a shard."""
    with open(shard_path(out_dir, shard), "rb") as fh:
        rows = json.load(fh)
    try:
        return {name: ManifestRow.from_compact(row) for name, row in rows.items()}
    except (AttributeError, TypeError) as exc:
        raise ValueError(f"shard {shard.object}: {exc}") from exc


def shard_rows(out_dir: Path, shard: Shard | None) -> dict[str, ManifestRow]:
    """A published shard's rows; none when there is no shard or it cannot be read (then its pages
    are rendered again, and its objects are not released: a leak, never a deletion of what a
    version may name)."""
    if shard is None:
        return {}
    try:
        return read_shard(out_dir, shard)
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Manifest:
    """manifest.json: which row each URL serves (`documents`), and the previous version's rows,
    whose objects are kept for a reader that has just read that version; the entry pages' index
    (`articles`, by shard), and the objects under objects/articles/ that the previous version's
    index named and this one does not (`released`: the next publish deletes them)."""

    generation: int
    published_at: str
    documents: dict[str, ManifestRow] = field(default_factory=dict)
    previous: dict[str, ManifestRow] = field(default_factory=dict)
    format: int = FORMAT
    articles: dict[str, Shard] = field(default_factory=dict)
    released: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        manifest: dict[str, Any] = {
            "format": self.format,
            "generation": self.generation,
            "published_at": self.published_at,
            "documents": rows_to_json(self.documents),
            "previous": rows_to_json(self.previous),
        }
        if self.articles:
            manifest["articles"] = {name: shard.to_json() for name, shard in self.articles.items()}
        if self.released:
            manifest["released"] = sorted(self.released)
        return manifest

    @classmethod
    def from_json(cls, manifest: dict[str, Any]) -> Manifest:
        """Raises KeyError, TypeError or ValueError when `manifest` is not one."""
        return cls(
            generation=int(manifest.get("generation", 0)),
            published_at=str(manifest.get("published_at", "")),
            documents=rows_from_json(manifest.get("documents", {})),
            previous=rows_from_json(manifest.get("previous", {})),
            format=manifest.get("format", FORMAT),
            articles={n: Shard(s["object"], s["key"]) for n, s in manifest.get("articles", {}).items()},
            released=tuple(manifest.get("released", ())),
        )


@dataclass(frozen=True)
class Stored:
    """A document whose object files are already written (by a pool worker): publishing only names them."""

    name: str
    source_key: str
    row: ManifestRow


class Stale(Exception):
    """Documents passed as `Reuse` that the current manifest does not have (another writer replaced
    them), as `Stored` whose objects are gone (another writer's publish collected them), or entry
    pages' shards planned from an index another writer has replaced since."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(f"not published as expected: {', '.join(names)}")
        self.names = list(names)


@dataclass(frozen=True)
class ArticleShard:
    """One shard of the entry pages' index as a build hands it to publishing: `written` None
    means the published shard, unchanged (it must still have `key`); else the shard object this
    build wrote (`write_shards`), made from the published shard `base` (None: there was none)."""

    name: str
    key: str = ""
    written: Shard | None = None
    base: str | None = None


class ManifestStat(NamedTuple):
    """The manifest file's stat: a new one means a new publish (by this process or another)."""

    ino: int
    mtime_ns: int
    size: int


@dataclass(frozen=True)
class Rendered:
    """A builder's last publish, as it left the output folder: the manifest's stat right after it
    (None: there was none), the top-level feed's entries and ETag, and until when (seconds since
    the epoch) its documents' date holds."""

    manifest: ManifestStat | None
    entries: int
    etag: str | None
    until: float


def manifest_stat(out_dir: Path) -> ManifestStat | None:
    try:
        st = os.stat(out_dir / MANIFEST)
    except OSError:
        return None
    return ManifestStat(st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class FeedCount:
    """A declared feed's entries, in a status's `feeds`."""

    name: str
    entries: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "entries": self.entries}


@dataclass(frozen=True)
class Status:
    """status.json: the last build of record, as /healthz reports it (`error` has no absolute
    path). `feeds` is left out without declared feeds, `notes` without notes (information about a
file, such as a duplicate URL or a legacy encoding), `status_file_error` unless writing this
    file failed (then the web side of the builder's process reports it from memory)."""

    ok: bool
    published: bool
    files: int
    entries: int
    changed: int
    skipped: tuple[Skipped, ...]
    problems: tuple[Problem, ...]
    deferred: tuple[str, ...]
    etag: str | None
    error: str | None
    duration_ms: float
    finished_at: str | None
    number: int
    warnings: tuple[str, ...]
    feeds: tuple[FeedCount, ...] = ()
    notes: tuple[Note, ...] = ()
    pid: int | None = None
    status_file_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "ok": self.ok,
            "published": self.published,
            "files": self.files,
            "entries": self.entries,
            "changed": self.changed,
            "skipped": [_report_json(r) for r in self.skipped],
            "problems": [_report_json(r) for r in self.problems],
            "deferred": list(self.deferred),
            "etag": self.etag,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "finished_at": self.finished_at,
            "number": self.number,
            "warnings": list(self.warnings),
        }
        if self.feeds:
            status["feeds"] = [f.to_json() for f in self.feeds]
        if self.notes:
            status["notes"] = [_report_json(r) for r in self.notes]
        if self.pid is not None:
            status["pid"] = self.pid
        if self.status_file_error is not None:
            status["status_file_error"] = self.status_file_error
        return status

    @classmethod
    def from_json(cls, status: dict[str, Any]) -> Status:
        """Raises KeyError or TypeError when `status` is not one."""
        return cls(
            ok=bool(status["ok"]),
            published=bool(status.get("published", False)),
            files=int(status.get("files", 0)),
            entries=int(status.get("entries", 0)),
            changed=int(status.get("changed", 0)),
            skipped=tuple(Skipped(r["source"], r["reason"]) for r in status.get("skipped", [])),
            problems=tuple(Problem(r["source"], r["reason"]) for r in status.get("problems", [])),
            deferred=tuple(status.get("deferred", [])),
            etag=status.get("etag"),
            error=status.get("error"),
            duration_ms=float(status.get("duration_ms", 0.0)),
            finished_at=status.get("finished_at"),
            number=int(status.get("number", 0)),
            warnings=tuple(status.get("warnings", [])),
            feeds=tuple(FeedCount(f["name"], f["entries"]) for f in status.get("feeds", [])),
            notes=tuple(Note(r["source"], r["reason"]) for r in status.get("notes", [])),
            pid=status.get("pid"),
            status_file_error=status.get("status_file_error"),
        )


def _report_json(report: Report) -> dict[str, str]:
    return {"source": report.source, "reason": report.reason}


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """manifest.json as JSON (see `load_manifest` for the typed one), or None."""
    try:
        with open(out_dir / MANIFEST, "rb") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None




def load_manifest(out_dir: Path) -> Manifest | None:
    """The current manifest, typed; None when there is none, or it is not one of this format."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return None
    try:
        return Manifest.from_json(manifest)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def published_rows(out_dir: Path, manifest: Manifest) -> dict[str, ManifestRow]:
    """Every document of `manifest` with its row: its documents and every entry page of its index
    (each shard read: for the static tree and a deploy, which lay out everything). Raises OSError
    when a shard cannot be read (a later publish collected it: read the new one) or is not one."""
    rows = dict(manifest.documents)
    for shard in manifest.articles.values():
        try:
            rows.update(read_shard(out_dir, shard))
        except ValueError as exc:
            raise OSError(str(exc)) from exc
    return rows
