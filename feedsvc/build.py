"""One build: scan seeds → parse → sanitize → entries → render → publish, reusing unchanged work.

The Builder keeps, per seed file, its (size, mtime, inode), the hash of its bytes and what they
became (an Entry or the reason it was skipped). A rebuild reads only files whose stat changed,
and re-parses only those whose bytes changed. A bad file is reported once per change and
skipped; it never stops the build, and a failed build never replaces the last good feed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import operator
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedsvc.cache import CacheError, Head, MemoryCache, SqliteCache, head_of, open_cache
from feedsvc.config import Config
from feedsvc.entry import Entry, newest_first, select_entries
from feedsvc.outcome import Outcome, fingerprint, outcome_key
from feedsvc.outcome import process_seed as process_seed
from feedsvc.pool import (
    PageTask,
    Task,
    archive_document,
    default_workers,
    pool_context,
    render_pages,
    run_tasks,
)
from feedsvc.publish import (
    MANIFEST,
    Document,
    Reuse,
    Stale,
    Stored,
    compress,
    etag_for,
    publish,
    read_manifest,
    write_status,
)
from feedsvc.render import FeedMeta, Rendered
from feedsvc.render.archive import Page, archive_name, split_archive
from feedsvc.render.documents import render_documents
from feedsvc.render.xsl import STYLESHEET_PATH
from feedsvc.seeds import SeedFile, SeedsDirError, is_seed_name, read_seed, scan_seeds

log = logging.getLogger("feedsvc.build")

# Room for the header lines on top of the article body cap.
_HEADER_ALLOWANCE = 64 * 1024
# Below this many files to (re)process, starting worker processes costs more than it saves.
# Measured here (2 cores, bleach ~2 ms a file, nh3 ~0.3 ms): a forked pool already wins at a few
# hundred files; a spawned one (threaded service) needs ~1 s to import and loses below ~2000.
POOL_MIN_FILES = {"bleach": 200, "nh3": 2000}
SPAWN_MIN_FILES = {"bleach": 2000, "nh3": 20000}
# Files per task sent to a worker: one pickle round trip per chunk, small enough to show progress.
_CHUNK = 64
# Archive pages rendered by the pool when at least this many changed, this many per task.
_POOL_MIN_PAGES = 8
_PAGES_PER_TASK = 4
# Outcomes written to the cache per transaction.
_WRITE_BATCH = 1024


@dataclass(frozen=True)
class Problem:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class BuildResult:
    ok: bool
    published: bool = False
    files: int = 0
    entries: int = 0
    changed: int = 0
    skipped: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    # True when the build stopped early to let `deferred` files settle: nothing was published.
    waiting: bool = False
    etag: str | None = None
    error: str | None = None
    duration: float = 0.0
    number: int = 0
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def as_status(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "published": self.published,
            "files": self.files,
            "entries": self.entries,
            "changed": self.changed,
            "skipped": [{"source": p.source, "reason": p.reason} for p in self.skipped],
            "deferred": self.deferred,
            "etag": self.etag,
            "error": self.error,
            "duration_ms": round(self.duration * 1000, 1),
            "finished_at": self.finished_at.isoformat(timespec="milliseconds"),
            "number": self.number,
            "pid": os.getpid(),
        }


def feed_meta(config: Config) -> FeedMeta:
    return FeedMeta(
        id=config.self_url,
        title=config.title,
        self_url=config.self_url,
        alternate_url=config.alternate_url,
        subtitle=config.subtitle,
        author=config.author,
        language=config.language,
        hub=config.websub_hub,
        stylesheet=STYLESHEET_PATH if config.stylesheet else "",
    )


class _Record:
    """One seed file as the builder remembers it between builds: light, no content.

    It has what select_entries reads (id, dedup_key, updated, published, source), copied from
    its Head as plain attributes, so 10k records are chosen from quickly and without loading
    any entry.
    """

    __slots__ = ("dedup_key", "head", "id", "order", "published", "rel", "sha", "source", "stat_key", "updated")

    def __init__(self, rel: str, stat_key: tuple[int, int, int], sha: str, head: Head) -> None:
        self.rel = rel
        self.stat_key = stat_key
        self.sha = sha
        self.head = head
        self.id = head.id
        self.dedup_key = head.dedup_key
        self.updated = head.updated
        self.published = head.published
        self.source = rel
        self.order = newest_first(self) if head.id is not None else None


_ORDER = operator.attrgetter("order")


def _given(document: Document | Stored) -> Callable[[], Document | Stored]:
    return lambda: document


def _unreadable(rel: str, reason: str) -> _Record:
    # A fake stat key: an unreadable file is retried on the next build, not remembered.
    return _Record(rel, (-1, -1, -1), "", Head("", None, None, None, None, None, reason, ()))


class Builder:
    """Builds and publishes; safe to call from several threads (builds are serialised).

    `settle`: a file modified less than this many seconds ago is not read yet (it may still be
    being written); the build then publishes nothing and `BuildResult.deferred` asks for another
    build once it is `settle` seconds old (`retry_in` says when). Waiting is capped at `max_wait`
    seconds in a row (default: the config's `debounce_max`): a folder that always holds a fresh file
    (a scraper writing every 100 ms) would otherwise never be published. Past the cap the build
    publishes the settled files, and still-unsettled ones keep their last version (or stay out).
    """

    def __init__(
        self,
        config: Config,
        settle: float = 0.0,
        on_publish: Callable[[BuildResult], None] | None = None,
        clock: Callable[[], float] = time.time,
        max_wait: float | None = None,
    ) -> None:
        self.config = config
        self.settle = settle
        self.max_wait = max(settle, config.debounce_max if max_wait is None else max_wait)
        self._waiting_since: float | None = None
        self.on_publish = on_publish
        self.clock = clock
        self.retry_in = settle
        self._records: dict[str, _Record] | None = None
        self._store: SqliteCache | MemoryCache | None = None
        self._fingerprint = fingerprint(config)
        # What this builder last published, by document name: the archive pages' composition
        # keys (None: not known yet, read from the manifest) and every body's SHA-256.
        self._page_keys: dict[str, str] | None = None
        self._shas: dict[str, str] = {}
        # (the manifest's stat, entries, ETag) after this builder's last render and publish.
        self._rendered: tuple[tuple[int, int, int] | None, int, str | None] | None = None
        self._zipper: ThreadPoolExecutor | None = None
        # Worker processes, during a build that has many files to process.
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self.last_result: BuildResult | None = None
        # The last build of record as status.json should hold it, even when writing it failed
        # (disk full, read-only): the web side of this process reports it from memory.
        self.last_status: dict[str, Any] | None = None
        self.builds = 0

    @property
    def out_dir(self) -> Path:
        return self.config.output_dir

    @property
    def store(self) -> SqliteCache | MemoryCache:
        if self._store is None:
            self._store = open_cache(self.out_dir)
        return self._store

    @property
    def workers(self) -> int:
        return self.config.build_workers or default_workers()

    def close(self) -> None:
        """Release the cache file and the compressing threads."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            if self._zipper is not None:
                self._zipper.shutdown()
                self._zipper = None

    def build(
        self, progress: Callable[[int, int], None] | None = None, changed: Iterable[str] | None = None
    ) -> BuildResult:
        """Build and publish once. `progress(done, total)` is called as files are processed.

        `changed`: paths under seeds/ that file events reported. Then only those are stat'ed,
        not the whole folder (a 10k-file scan is most of an incremental build); without it, or
        before the first build, every file is scanned. The interval rescan never passes it.
        """
        hint = None if changed is None else set(changed)
        with self._lock:
            started = time.perf_counter()
            try:
                try:
                    result = self._build(progress, hint)
                except CacheError as exc:
                    log.warning("cache failed (%s): building from the files, keeping results in memory", exc)
                    self._store, self._records = MemoryCache(), None
                    result = self._build(progress, None)
            except SeedsDirError as exc:
                result = BuildResult(ok=False, error=str(exc))
                log.error("build failed: %s (the last published feed stays)", exc)
            except OSError as exc:
                result = BuildResult(ok=False, error=f"cannot publish to {self.out_dir}: {exc.strerror or exc}")
                log.error("build failed: %s (the last published feed stays)", result.error)
            finally:
                self._stop_pool()
            result.duration = time.perf_counter() - started
            result.finished_at = datetime.now(UTC)
            self.builds += 1
            result.number = self.builds
            self.last_result = result
            if result.waiting and result.ok:
                log.info("build deferred: %d file(s) still being written", len(result.deferred))
                return result  # not a build of record: the status and the feed stay as they are
            self._write_status(result)
            if result.ok:
                log.info(
                    "build: %d entries from %d files, %d changed, %d skipped, %.0f ms, %s %s",
                    result.entries,
                    result.files,
                    result.changed,
                    len(result.skipped),
                    result.duration * 1000,
                    "published" if result.published else "unchanged",
                    result.etag,
                )
            if result.published and self.on_publish is not None:
                self.on_publish(result)
            return result

    def _write_status(self, result: BuildResult) -> None:
        status = result.as_status()
        try:
            write_status(self.out_dir, status)
        except OSError as exc:
            log.warning("cannot write build status to %s: %s", self.out_dir, exc)
            status["status_file_error"] = exc.strerror or str(exc)
        self.last_status = status

    def _build(self, progress: Callable[[int, int], None] | None, hint: set[str] | None) -> BuildResult:
        config = self.config
        first = self._records is None
        previous = self._records or {}
        hinted = None if hint is None or first else self._stat_hinted(hint)
        if hinted is None:
            files = scan_seeds(config.seeds_dir)
            fresh: dict[str, _Record] = {}
        else:
            files = [seed for seed in hinted.values() if seed is not None]
            fresh = {rel: record for rel, record in previous.items() if rel not in hinted}
        result = BuildResult(ok=True, files=len(files) + len(fresh))
        store = self.store
        root = str(config.seeds_dir.resolve())
        # In a new process, the cache's file index stands in for the records of the last build.
        known = store.files(root) if first else {}
        now = self.clock()
        pending: list[tuple[SeedFile, str | None]] = []  # (file, its hash when the index vouches for it)
        youngest = self.settle
        for seed in files:
            record = previous.get(seed.rel)
            if record is not None and record.stat_key == seed.stat_key:
                fresh[seed.rel] = record
                continue
            age = now - seed.mtime_ns / 1e9
            if self.settle and 0 <= age < self.settle:
                result.deferred.append(seed.rel)
                youngest = min(youngest, age)
                if record is not None:
                    fresh[seed.rel] = record
                continue
            index = known.get(seed.rel)
            pending.append((seed, index[1] if index is not None and index[0] == seed.stat_key else None))
        gone = (previous.keys() | known.keys()) - fresh.keys() - {seed.rel for seed, _ in pending}
        gone -= set(result.deferred)
        result.changed += len(gone)
        if not result.deferred:
            self._waiting_since = None
        else:
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self.max_wait:
                # Publishing now would show a half-written file's old version (or none) and then
                # churn again moments later: keep the last feed and build once the files settle.
                self.retry_in = max(0.05, self.settle - youngest)
                result.waiting = True
                if not first:
                    self._records = fresh | {rel: r for rel, r in previous.items() if rel not in fresh}
                return result
            log.info(
                "publishing without %d file(s) still being written after %.1f s",
                len(result.deferred),
                now - self._waiting_since,
            )
            self._waiting_since = now

        limit = config.max_article_bytes + _HEADER_ALLOWANCE
        new = self._load(pending, previous, known, limit, result, progress, result.files)
        fresh.update(new)
        self._records = fresh
        store.save_files(
            root,
            {rel: (r.stat_key, r.sha) for rel, r in new.items() if r.sha and known.get(rel) != (r.stat_key, r.sha)},
            gone,
        )
        if result.changed and store.needs_pruning(len(fresh)):
            store.prune({r.head.key for r in fresh.values() if r.head.key})

        records: list[_Record] = []
        for rel, record in fresh.items():
            head = record.head
            if head.id is not None:
                records.append(record)
            else:
                result.skipped.append(Problem(str(config.seeds_dir / rel), head.problem or "skipped"))
            for note in head.notes:
                result.notes.append(Problem(str(config.seeds_dir / rel), note))

        unchanged = not first and not result.changed and self._rendered is not None
        if unchanged and self._rendered[0] == self._stat_manifest():  # type: ignore[index]
            result.entries, result.etag = self._rendered[1:]  # type: ignore[index]
            return result  # nothing new, and the published state is still ours: nothing to render
        self._rendered = None

        # All records, not only the newest max_entries: the older ones fill the RFC 5005 archive.
        meta = feed_meta(config)
        chosen = select_entries(records, key=_ORDER)
        current, pages = split_archive(chosen, config.max_entries, config.archive_page_size)
        newest = pages[-1].number if pages else None
        subscription = render_documents(meta, self.entries(current), newest)
        result.entries = len(current)
        result.etag = etag_for(subscription[0].body)
        documents = [self._document(r) for r in subscription]
        archive = self._archive(meta, pages)
        try:
            result.published = publish(config.output_dir, [d() for d in documents + archive])
        except Stale as exc:
            # Another writer replaced pages this builder meant to keep: render those after all.
            log.info("%s: rendering them again", exc)
            self._page_keys = {}
            self._stop_pool()  # rendered here, every page goes to publish with its bytes
            archive = self._archive(meta, pages)
            result.published = publish(config.output_dir, [d() for d in documents + archive])
        self._page_keys = {d.name: d.source_key for d in (p() for p in archive)}
        self._rendered = (self._stat_manifest(), result.entries, result.etag)
        return result

    def _stat_manifest(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.out_dir / MANIFEST)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _document(self, rendered: Rendered) -> Callable[[], Document]:
        """The Document for `rendered`, its gzip variant compressed meanwhile in another thread
        (zlib lets go of the GIL) unless this body is the one already published."""
        sha = hashlib.sha256(rendered.body).hexdigest()
        unchanged = self._shas.get(rendered.name) == sha
        self._shas[rendered.name] = sha
        if self._zipper is None:
            self._zipper = ThreadPoolExecutor(max_workers=default_workers(), thread_name_prefix="feedsvc-gzip")
        gz = None if unchanged else self._zipper.submit(compress, rendered.body)
        body, name, content_type, modified = rendered.body, rendered.name, rendered.content_type, rendered.last_modified

        def document() -> Document:
            return Document(name, body, content_type, modified, gzip=gz.result() if gz else None)

        return functools.cache(document)

    def _archive(self, meta: FeedMeta, pages: list[Page[_Record]]) -> list[Callable[[], Document | Reuse | Stored]]:
        """The archive pages, rendered only where their entries (by cache key) changed.

        A page is planned from light records; its entries are loaded from the cache and rendered
        only when that page's composition is new, so memory and time grow with the pages that
        change, not with the whole history. A page already published with the same composition
        (the manifest keeps each page's key, so this holds for a new process too) is a `Reuse`:
        no bytes are read, held or hashed.
        """
        if self._page_keys is None:
            published = (read_manifest(self.out_dir) or {}).get("documents", {})
            self._page_keys = {name: doc.get("source_key", "") for name, doc in published.items()}
        newest = pages[-1].number if pages else 0
        keys = [
            hashlib.sha256(
                repr((meta, page.number, page.number < newest, [r.head.key for r in page.entries])).encode()
            ).hexdigest()
            for page in pages
        ]
        todo = [
            (page, key)
            for page, key in zip(pages, keys, strict=True)
            if self._page_keys.get(archive_name(page.number)) != key
        ]
        made = self._render_pages(meta, newest, todo)
        return [
            made.get(page.number) or functools.partial(Reuse, archive_name(page.number), key)
            for page, key in zip(pages, keys, strict=True)
        ]

    def _render_pages(
        self, meta: FeedMeta, newest: int, todo: list[tuple[Page[_Record], str]]
    ) -> dict[int, Callable[[], Document | Stored]]:
        """page number → its Document. Many pages (a cold build, an edit deep in the history) are
        rendered by the build's worker processes, which read their entries from the cache file
        and write the pages' objects; a few, or any a worker could not do, here."""
        made: dict[int, Callable[[], Document | Stored]] = {}
        pool, store = self._pool, self.store
        if pool is not None and isinstance(store, SqliteCache) and len(todo) >= _POOL_MIN_PAGES:
            batches = [todo[i : i + _PAGES_PER_TASK] for i in range(0, len(todo), _PAGES_PER_TASK)]
            try:
                futures = [
                    pool.submit(
                        render_pages,
                        store.path,
                        self.out_dir,
                        meta,
                        newest,
                        [PageTask(page.number, tuple(r.head.key for r in page.entries), key) for page, key in batch],
                    )
                    for batch in batches
                ]
                for batch, future in zip(batches, futures, strict=True):
                    for (page, _), document in zip(batch, future.result(), strict=True):
                        if document is not None:
                            made[page.number] = _given(document)
            except (BrokenProcessPool, OSError) as exc:
                log.warning("archive pages in the process pool failed (%s): rendering them in this process", exc)
                self._stop_pool()
        for page, key in todo:
            if page.number not in made:
                full = Page(page.number, tuple(self.entries(page.entries)))
                made[page.number] = _given(archive_document(meta, full, newest, key))
        return made

    def _stat_hinted(self, hint: set[str]) -> dict[str, SeedFile | None] | None:
        """rel → SeedFile (None: gone) for the reported paths; None when only a full scan will do."""
        root = self.config.seeds_dir
        if not root.is_dir():
            return None  # the full scan reports it, and the last feed stays
        real_root = os.path.realpath(root)
        found: dict[str, SeedFile | None] = {}
        for rel in sorted(hint):
            path = os.path.join(root, rel)
            if rel.startswith(("/", "../")) or not is_seed_name(os.path.basename(rel)):
                return None
            if any(part.startswith(".") for part in rel.split("/")[:-1]):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                found[rel] = None
                continue
            except OSError:
                return None
            if not stat.S_ISREG(st.st_mode):
                return None
            real = os.path.realpath(path)
            if not real.startswith(real_root + os.sep):
                found[rel] = None  # a symlink out of seeds/ is never a seed
                continue
            found[rel] = SeedFile(path, rel, st.st_size, st.st_mtime_ns, st.st_ino)
        return found

    def entries(self, records: Sequence[_Record]) -> list[Entry]:
        """The full entries of `records`, in their order, from the cache (for a few at a time)."""
        found = self.store.entries([r.head.key for r in records])
        missing = [r for r in records if r.head.key not in found]
        for record in missing:
            # Pruned by another process sharing the cache: make it again from the file.
            seed = SeedFile(str(self.config.seeds_dir / record.rel), record.rel, *record.stat_key)
            outcome = self._process([Task(seed, record.sha)])[0][1]
            if outcome is None:
                continue
            self.store.put([(record.head, outcome)])
            if outcome.entry is not None:
                found[record.head.key] = outcome.entry
        return [found[r.head.key] for r in records if r.head.key in found]

    def _load(
        self,
        pending: list[tuple[SeedFile, str | None]],
        previous: dict[str, _Record],
        known: dict[str, tuple[tuple[int, int, int], str]],
        limit: int,
        result: BuildResult,
        progress: Callable[[int, int], None] | None,
        total: int,
    ) -> dict[str, _Record]:
        """Records for the files whose stat changed: from memory or the cache when their bytes did not."""
        new: dict[str, _Record] = {}
        hashed: list[tuple[SeedFile, str]] = []
        # Nothing in memory and nothing cached (a cold build): hashing the files up front would
        # find nothing to reuse, so the workers hash what they read.
        unhashed: list[SeedFile] = []
        blind = not previous and self.store.is_empty()
        for seed, sha in pending:
            if sha is None and blind:
                unhashed.append(seed)
                continue
            if sha is None:
                try:
                    sha = hashlib.sha256(read_seed(seed, limit)).hexdigest()
                except FileNotFoundError:
                    continue  # deleted since the scan
                except OSError as exc:
                    new[seed.rel] = _unreadable(seed.rel, f"cannot read: {exc.strerror or exc}")
                    if seed.rel not in previous or previous[seed.rel].sha:
                        self._report(seed.rel, new[seed.rel].head)
                    continue
            record = previous.get(seed.rel)
            if record is not None and record.sha == sha and record.head.mtime_ns in (None, seed.mtime_ns):
                new[seed.rel] = _Record(seed.rel, seed.stat_key, sha, record.head)
                continue
            hashed.append((seed, sha))

        keys = {seed.rel: outcome_key(self._fingerprint, seed.rel, sha) for seed, sha in hashed}
        heads = self.store.heads(keys.values()) if hashed else {}
        todo: list[SeedFile] = []
        tasks: list[Task] = []
        for seed, sha in hashed:
            before = previous.get(seed.rel)
            old_sha = before.sha if before is not None else (known[seed.rel][1] if seed.rel in known else None)
            if old_sha != sha:
                result.changed += 1
            head = heads.get(keys[seed.rel])
            if head is not None and head.mtime_ns in (None, seed.mtime_ns):
                new[seed.rel] = _Record(seed.rel, seed.stat_key, sha, head)
                self._report(seed.rel, head)
                continue
            todo.append(seed)
            tasks.append(Task(seed, sha))
        todo += unhashed
        tasks += [Task(seed) for seed in unhashed]

        done = total - len(tasks)
        if progress is not None:
            progress(done, total)
        cursor, batch = 0, []
        for chunk, outcomes in self._run(tasks):
            for seed, task, (sha, outcome) in zip(todo[cursor : cursor + len(chunk)], chunk, outcomes, strict=True):
                if outcome is None:
                    continue  # changed or gone while being read: the next build sees the truth
                if not sha:
                    new[seed.rel] = _unreadable(seed.rel, outcome.problem or "cannot read")
                    if seed.rel not in previous or previous[seed.rel].sha:
                        self._report(seed.rel, new[seed.rel].head)
                    continue
                if not task.sha and (known[seed.rel][1] if seed.rel in known else None) != sha:
                    result.changed += 1
                key = outcome_key(self._fingerprint, seed.rel, sha)
                head = head_of(key, outcome, seed.mtime_ns)
                batch.append((head, outcome))
                new[seed.rel] = _Record(seed.rel, seed.stat_key, sha, head)
                self._report(seed.rel, head)
            if len(batch) >= _WRITE_BATCH:
                self.store.put(batch)
                batch = []
            cursor += len(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        self.store.put(batch)
        return new

    def _process(self, tasks: Sequence[Task]) -> list[tuple[str, Outcome | None]]:
        limit = self.config.max_article_bytes + _HEADER_ALLOWANCE
        # process_seed is looked up at call time, so tests can count the calls.
        return run_tasks(tasks, self.config, limit, process_seed)

    def _run(self, tasks: list[Task]) -> Iterator[tuple[Sequence[Task], list[tuple[str, Outcome | None]]]]:
        """(chunk, its results) in order: in a process pool when there are enough files to pay for it.

        The pool stays up until the build ends: the archive pages, if many changed, are rendered there too.
        """
        chunks = [tasks[i : i + _CHUNK] for i in range(0, len(tasks), _CHUNK)]
        pool = self._start_pool(len(tasks))
        if pool is None:
            for chunk in chunks:
                yield chunk, self._process(chunk)
            return
        limit = self.config.max_article_bytes + _HEADER_ALLOWANCE
        done = 0
        try:
            # A bounded window of chunks in flight: the workers stay busy, memory stays flat.
            window = 4 * self.workers
            futures: list[Future[list[tuple[str, Outcome | None]]] | None] = []
            for i, chunk in enumerate(chunks):
                futures.append(pool.submit(run_tasks, chunk, self.config, limit))
                if i + 1 >= window:
                    yield chunks[done], self._collect(futures, done)
                    done += 1
            while done < len(chunks):
                yield chunks[done], self._collect(futures, done)
                done += 1
        except (BrokenProcessPool, OSError) as exc:
            log.warning("process pool failed (%s): processing the rest in this process", exc)
            self._stop_pool()
            for chunk in chunks[done:]:
                yield chunk, self._process(chunk)

    def _start_pool(self, files: int) -> ProcessPoolExecutor | None:
        """Worker processes for this build, when `files` are enough to pay for starting them."""
        workers = min(self.workers, max(1, files // _CHUNK))
        context = pool_context()
        minimum = (POOL_MIN_FILES if context.get_start_method() == "fork" else SPAWN_MIN_FILES).get(
            self.config.sanitizer, 2000
        )
        if workers < 2 or files < minimum:
            return None
        self._stop_pool()
        self._pool = ProcessPoolExecutor(workers, mp_context=context)
        return self._pool

    def _stop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    @staticmethod
    def _collect(futures: list[Future[list[tuple[str, Outcome | None]]] | None], index: int) -> list:
        """A finished chunk's results, dropping the future: a cold build must not hold every entry."""
        future = futures[index]
        futures[index] = None
        assert future is not None
        return future.result()

    def _report(self, rel: str, head: Head) -> None:
        """Warn about a bad file when its bytes are new to this process, not on every tick."""
        source = self.config.seeds_dir / rel
        if head.problem:
            log.warning("skipped %s: %s", source, head.problem)
        for note in head.notes:
            log.info("%s: %s", source, note)
