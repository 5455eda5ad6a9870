"""Publishing: one build's documents become the next published version, atomically.

A publish writes new objects first and then replaces manifest.json in one `os.replace`, so a
reader sees all documents of one version or all of the next, never a mix; a gzip variant can
never be staler than its identity body. Objects of the previous version are kept, so a reader
that has just read the old manifest still finds its files. Every write is a temp file in the
same directory, fsync, chmod 0644, `os.replace`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from feedsvc.model import Document, Reuse
from feedsvc.publish.article_index import IndexUpdate, collect, sweep_articles, update_index
from feedsvc.publish.layout import (
    ARTICLE_OBJECTS,
    HEARTBEAT,
    MANIFEST,
    OBJECTS,
    PUBLISH_LOCK,
    STATUS,
    STORING,
    TMP_PREFIX,
    WARMING,
    ArticleShard,
    Manifest,
    ManifestRow,
    Stale,
    Status,
    Stored,
    compress,
    digest,
    etag_of_digest,
    fsync_dir,
    load_manifest,
    write_atomic,
    write_many,
)

__all__ = ["Stale", "begin_storing", "end_storing", "publish", "publish_manifest", "store", "store_many"]


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


def _remove_leftovers(out_dir: Path, folders: Sequence[Path] = ()) -> None:
    """Temp files of writers that died mid-write. Under the publish lock no publish is under way.
    Not objects/articles/, which holds two files an entry page: a writer that dies storing pages
    leaves a mark, and the publish that sweeps them takes its temp files too (`sweep_articles`)."""
    for directory in (out_dir, out_dir / OBJECTS, *folders):
        with contextlib.suppress(OSError):
            for item in os.scandir(directory):
                if item.name.startswith(TMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(item.path)


def writer_alive(temp_name: str) -> bool:
    """Whether a temp file's name (`write_many`'s `.tmp-<pid>-<name>`) names a running process
    (another writer may be storing entry pages now, outside the publish lock)."""
    pid = temp_name[len(TMP_PREFIX) :].partition("-")[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process (EPERM): running
    return True


def store(out_dir: Path, doc: Document) -> Stored:
    """Write `doc`'s objects ahead of `publish`, which then only checks they are still there."""
    objects = out_dir / OBJECTS
    objects.mkdir(parents=True, exist_ok=True)
    return Stored(doc.name, doc.source_key, _write_objects(objects, doc, None))


def store_many(out_dir: Path, docs: Sequence[Document]) -> list[Stored]:
    """Entry pages' objects (under objects/articles/), many small documents at once (`write_many`:
    each name given only once its bytes are on disk)."""
    objects = out_dir / OBJECTS / ARTICLE_OBJECTS
    objects.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    stored: list[Stored] = []
    for doc in docs:
        gz = doc.gzip if doc.gzip is not None else compress(doc.body)
        sha, gz_sha = digest(doc.body), digest(gz)
        files[sha], files[gz_sha + ".gz"] = doc.body, gz
        row = ManifestRow(
            object=f"{ARTICLE_OBJECTS}/{sha}",
            etag=etag_of_digest(sha),
            size=len(doc.body),
            gzip_object=f"{ARTICLE_OBJECTS}/{gz_sha}.gz",
            gzip_etag=etag_of_digest(gz_sha),
            gzip_size=len(gz),
            content_type=doc.content_type,
            last_modified=doc.last_modified.isoformat(),
            source_key=doc.source_key,
            in_memory=False,
        )
        stored.append(Stored(doc.name, doc.source_key, row))
    write_many(objects, files)
    return stored


def _write_objects(objects: Path, doc: Document, before: ManifestRow | None) -> ManifestRow:
    """Write the objects of `doc` not there yet (not fsynced: the caller syncs the directory once)
    and return its manifest row. `before` is its row in the last manifest, whose gzip variant is
    reused when the body is the same."""
    sha = digest(doc.body)
    if (
        before is not None
        and before.object == sha
        and before.gzip_size is not None
        and (objects / before.gzip_object).is_file()
    ):
        gz_object, gz_etag, gz_size = before.gzip_object, before.gzip_etag, before.gzip_size
    else:
        gz = doc.gzip if doc.gzip is not None else compress(doc.body)  # compressing is the cost
        gz_sha = digest(gz)
        gz_object, gz_etag, gz_size = gz_sha + ".gz", etag_of_digest(gz_sha), len(gz)
        if not (objects / gz_object).exists():
            write_atomic(objects / gz_object, gz, sync_dir=False)
    if not (objects / sha).exists():
        write_atomic(objects / sha, doc.body, sync_dir=False)
    return ManifestRow(
        object=sha,
        etag=etag_of_digest(sha),
        size=len(doc.body),
        gzip_object=gz_object,
        gzip_etag=gz_etag,
        gzip_size=gz_size,
        content_type=doc.content_type,
        last_modified=doc.last_modified.isoformat(),
        source_key=doc.source_key,
        in_memory=doc.in_memory,
    )


def begin_storing(out_dir: Path) -> bool:
    """Mark the output folder as having entry pages stored ahead of their publish (`store_many`).
    Returns True when the mark was already there: a build died (or another writer is storing
    now) between storing pages and publishing them, so the next publish should sweep."""
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(out_dir / STORING, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return True
    return False


def end_storing(out_dir: Path) -> None:
    """The pages stored since `begin_storing` are published (or were not needed)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out_dir / STORING)


def publish(
    out_dir: Path,
    documents: Sequence[Document | Reuse | Stored],
    plain_copies: Sequence[str] = ("feed.xml",),
    articles: Sequence[ArticleShard] | None = None,
    sweep: bool = False,
) -> bool:
    """`publish_manifest`: True when it published a new version."""
    return publish_manifest(out_dir, documents, plain_copies, articles, sweep) is not None


def publish_manifest(
    out_dir: Path,
    documents: Sequence[Document | Reuse | Stored],
    plain_copies: Sequence[str] = ("feed.xml",),
    articles: Sequence[ArticleShard] | None = None,
    sweep: bool = False,
) -> Manifest | None:
    """Publish `documents` and the entry pages' index (`articles`, see `feedsvc.publish.article_index`;
    None: the index stays as published) as one version, and return its manifest; None (and nothing
    touched but new objects) when nothing changed.

    A `Reuse` costs nothing: its manifest row is carried over, its objects are already there.
    `plain_copies` are written as files too (`feed.xml`, a declared feed's `world/feed.xml`).
    Raises Stale (before writing anything) when one is not in the current manifest, when a
    `Stored` document's objects are gone, or when `articles` was planned from another index.
    `sweep`: also delete every entry page's object no version a reader may read names (what a
    build killed between storing pages and publishing them left: see `begin_storing`).
    """
    objects = out_dir / OBJECTS
    folders = sorted({(out_dir / name).parent for name in plain_copies} - {out_dir})
    with publish_lock(out_dir):
        _remove_leftovers(out_dir, folders)
        objects.mkdir(exist_ok=True)
        old = load_manifest(out_dir)
        rows, bodies = _rows(documents, old.documents if old else {}, objects)
        index = update_index(out_dir, old, articles)
        manifest = None
        if old is None or old.documents != rows or old.articles != index.articles:
            manifest = _write_version(out_dir, old, rows, index, {n: bodies[n] for n in plain_copies if n in bodies})
        current = manifest or old
        if sweep and current is not None:
            sweep_articles(out_dir, current, writer_alive)
        return manifest


def _rows(
    documents: Sequence[Document | Reuse | Stored], previous: Mapping[str, ManifestRow], objects: Path
) -> tuple[dict[str, ManifestRow], dict[str, bytes]]:
    """Each document's row (a new document's objects written now) and the new documents' bodies.
    Raises Stale, before writing anything, when one is not as `_still_there` expects."""
    stale = [doc.name for doc in documents if not _still_there(doc, previous, objects)]
    if stale:
        raise Stale(stale)
    rows: dict[str, ManifestRow] = {}
    bodies: dict[str, bytes] = {}
    for doc in documents:
        if isinstance(doc, Reuse):
            rows[doc.name] = previous[doc.name]
        elif isinstance(doc, Stored):
            rows[doc.name] = doc.row
        else:
            rows[doc.name] = _write_objects(objects, doc, previous.get(doc.name))
            bodies[doc.name] = doc.body
    return rows, bodies


def _write_version(
    out_dir: Path, old: Manifest | None, rows: dict[str, ManifestRow], index: IndexUpdate, copies: Mapping[str, bytes]
) -> Manifest:
    """Make the new version the current one: its objects durable, what no version a reader may
    read names deleted, the plain copies written, then manifest.json replaced, then the objects
    of neither it nor the previous version collected."""
    objects = out_dir / OBJECTS
    fsync_dir(objects)  # every new object's name is durable before the manifest names it
    fsync_dir(objects / ARTICLE_OBJECTS)
    collect(out_dir, index.collect)  # named by no version a reader may still be reading
    for name, body in copies.items():
        (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out_dir / name, body)
    previous = old.documents if old else {}
    manifest = Manifest(
        generation=(old.generation if old else 0) + 1,
        published_at=datetime.now().astimezone().isoformat(timespec="milliseconds"),
        documents=rows,
        previous=previous,
        articles=index.articles,
        released=index.released,
    )
    # Compact: json's C encoder does not indent, and a long archive makes this file big.
    write_atomic(out_dir / MANIFEST, json.dumps(manifest.to_json(), sort_keys=True, separators=(",", ":")).encode())
    _collect_garbage(objects, [rows, previous])
    return manifest


def _still_there(doc: Document | Reuse | Stored, previous: Mapping[str, ManifestRow], objects: Path) -> bool:
    """A `Reuse` is in the current manifest with its key; a `Stored` document's objects exist."""
    if isinstance(doc, Reuse):
        row = previous.get(doc.name)
        return row is not None and row.source_key == doc.source_key
    if isinstance(doc, Stored):
        return all((objects / name).is_file() for name in doc.row.objects)
    return True


def _collect_garbage(objects: Path, keep: Sequence[Mapping[str, ManifestRow]]) -> None:
    """Every object no row of `keep` names, except the entry pages' (`objects/articles/`, see
    `feedsvc.publish.article_index`)."""
    live = {name for rows in keep for row in rows.values() for name in row.objects}
    with contextlib.suppress(OSError):
        for item in os.scandir(objects):
            if item.name not in live and not item.name.startswith(TMP_PREFIX) and not item.is_dir():
                with contextlib.suppress(OSError):
                    os.unlink(item.path)


def write_status(out_dir: Path, status: Status) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / STATUS, json.dumps(status.to_json(), indent=1, sort_keys=True, default=str).encode())


def write_warming(out_dir: Path, state: Mapping[str, Any] | None) -> None:
    """A cold start's progress (`{"pid", "done", "total"}`); None: it ended, the file goes."""
    if state is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(out_dir / WARMING)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / WARMING, json.dumps(state, sort_keys=True).encode(), sync_dir=False)


def write_heartbeat(out_dir: Path, beat: Mapping[str, Any]) -> None:
    """The builder's heartbeat (`{"pid", "time", "state", "progress_at", "seen", "done", "total"}`),
    replaced atomically, never fsynced: it is rewritten every few seconds."""
    write_atomic(out_dir / HEARTBEAT, json.dumps(beat, sort_keys=True).encode(), sync_dir=False, sync=False)
