"""One build: scan seeds → parse → sanitize → entries → render → publish, reusing unchanged work.

The Builder keeps, per seed file, its (size, mtime, inode), the hash of its bytes and what they
became (an Entry or the reason it was skipped). A rebuild reads only files whose stat changed,
and re-parses only those whose bytes changed. A bad file is reported once per change and
skipped; it never stops the build, and a failed build never replaces the last good feed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedsvc.config import Config
from feedsvc.entry import Entry, make_entry, select_entries
from feedsvc.parse import SeedError, parse_seed
from feedsvc.publish import Document, etag_for, publish, write_status
from feedsvc.render import FeedMeta
from feedsvc.render.documents import render_documents
from feedsvc.render.xsl import STYLESHEET_PATH
from feedsvc.seeds import SeedFile, SeedsDirError, read_seed, scan_seeds

log = logging.getLogger("feedsvc.build")

# Room for the header lines on top of the article body cap.
_HEADER_ALLOWANCE = 64 * 1024


@dataclass(frozen=True)
class Problem:
    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Outcome:
    """What one seed file's bytes became."""

    entry: Entry | None
    problem: str | None = None
    notes: tuple[str, ...] = ()


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


def process_seed(data: bytes, source: str, mtime: datetime | None, config: Config) -> Outcome:
    """Pure: one file's bytes → Outcome. Never raises; an unexpected error is a reason to skip the file."""
    try:
        article = parse_seed(
            data,
            source,
            mtime,
            max_article_bytes=config.max_article_bytes,
            legacy_encodings=config.legacy_encodings,
        )
        return Outcome(make_entry(article, summary_chars=config.summary_chars), None, article.notes)
    except SeedError as exc:
        return Outcome(None, str(exc))
    except Exception as exc:
        log.exception("unexpected error on %s", source)
        return Outcome(None, f"internal error: {type(exc).__name__}: {exc}")


@dataclass
class _Cached:
    stat_key: tuple[int, int, int]
    sha: str
    outcome: Outcome


class Builder:
    """Builds and publishes; safe to call from several threads (builds are serialised).

    `settle`: a file modified less than this many seconds ago is not read yet (it may still be
    being written); the build then publishes nothing and `BuildResult.deferred` asks for another
    build once it is `settle` seconds old. Waiting is capped at `max_wait` seconds in a row
    (default: the config's `debounce_max`): a folder that always holds a fresh file (a scraper
    writing every 100 ms) would otherwise never be published. Past the cap the build publishes
    the settled files, and still-unsettled ones keep their last version (or stay out).
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
        self._cache: dict[str, _Cached] = {}
        self._reported: dict[str, str] = {}
        self._lock = threading.Lock()
        self.last_result: BuildResult | None = None
        # The last build of record as status.json should hold it, even when writing it failed
        # (disk full, read-only): the web side of this process reports it from memory.
        self.last_status: dict[str, Any] | None = None
        self.builds = 0

    @property
    def out_dir(self) -> Path:
        return self.config.output_dir

    def build(self, progress: Callable[[int, int], None] | None = None) -> BuildResult:
        """Build and publish once. `progress(done, total)` is called as files are read."""
        with self._lock:
            started = time.perf_counter()
            try:
                result = self._build(progress)
            except SeedsDirError as exc:
                result = BuildResult(ok=False, error=str(exc))
                log.error("build failed: %s (the last published feed stays)", exc)
            except OSError as exc:
                result = BuildResult(ok=False, error=f"cannot publish to {self.out_dir}: {exc.strerror or exc}")
                log.error("build failed: %s (the last published feed stays)", result.error)
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

    def _build(self, progress: Callable[[int, int], None] | None) -> BuildResult:
        config = self.config
        files = scan_seeds(config.seeds_dir)
        result = BuildResult(ok=True, files=len(files))
        now = self.clock()
        fresh: dict[str, _Cached] = {}
        for done, seed in enumerate(files, 1):
            if progress is not None and (done % 100 == 0 or done == len(files)):
                progress(done, len(files))
            cached = self._cache.get(seed.rel)
            age = now - seed.mtime_ns / 1e9
            if cached is not None and cached.stat_key == seed.stat_key:
                fresh[seed.rel] = cached
                continue
            if self.settle and 0 <= age < self.settle:
                result.deferred.append(seed.rel)
                if cached is not None:
                    fresh[seed.rel] = cached
                continue
            item = self._load(seed, cached)
            if item is None:
                continue
            if cached is None or cached.sha != item.sha:
                result.changed += 1
            fresh[seed.rel] = item
        for rel in self._cache.keys() - fresh.keys():
            if rel not in result.deferred:
                result.changed += 1  # deleted
        self._cache = fresh
        if not result.deferred:
            self._waiting_since = None
        else:
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self.max_wait:
                # Publishing now would show a half-written file's old version (or none) and then
                # churn again moments later: keep the last feed and build once the files settle.
                result.waiting = True
                return result
            log.info("publishing without %d file(s) still being written after %.1f s", len(result.deferred),
                     now - self._waiting_since)
            self._waiting_since = now

        entries: list[Entry] = []
        for rel, item in fresh.items():
            source = str(config.seeds_dir / rel)
            if item.outcome.entry is not None:
                entries.append(item.outcome.entry)
            else:
                result.skipped.append(Problem(source, item.outcome.problem or "skipped"))
            for note in item.outcome.notes:
                result.notes.append(Problem(source, note))
            self._report(rel, source, item)
        for rel in self._reported.keys() - fresh.keys():
            del self._reported[rel]

        # All entries, not only the newest max_entries: the older ones fill the RFC 5005 archive.
        everything = select_entries(entries)
        rendered = render_documents(feed_meta(config), everything, config.max_entries, config.archive_page_size)
        result.entries = min(len(everything), config.max_entries)
        result.etag = etag_for(rendered[0].body)
        documents = [Document(r.name, r.body, r.content_type, r.last_modified) for r in rendered]
        result.published = publish(config.output_dir, documents)
        return result

    def _load(self, seed: SeedFile, cached: _Cached | None) -> _Cached | None:
        """Read a changed file; reuse the old outcome when only its stat, not its bytes, changed."""
        limit = self.config.max_article_bytes + _HEADER_ALLOWANCE
        try:
            data = read_seed(seed, limit)
        except FileNotFoundError:
            return None  # deleted since the scan
        except OSError as exc:
            # A fake stat key: an unreadable file is retried on the next build, not remembered.
            return _Cached((-1, -1, -1), "", Outcome(None, f"cannot read: {exc.strerror or exc}"))
        sha = hashlib.sha256(data).hexdigest()
        if cached is not None and cached.sha == sha:
            return _Cached(seed.stat_key, sha, cached.outcome)
        mtime = datetime.fromtimestamp(seed.mtime_ns / 1e9, tz=UTC)
        outcome = process_seed(data, seed.rel, mtime, self.config)
        if seed.size > limit and outcome.entry is not None:
            outcome = Outcome(
                outcome.entry, None, (*outcome.notes, f"only the first {limit} of {seed.size} bytes read")
            )
        return _Cached(seed.stat_key, sha, outcome)

    def _report(self, rel: str, source: str, item: _Cached) -> None:
        """Warn about a bad file once per change of its bytes, not on every tick."""
        if self._reported.get(rel) == item.sha:
            return
        self._reported[rel] = item.sha
        if item.outcome.problem:
            log.warning("skipped %s: %s", source, item.outcome.problem)
        for note in item.outcome.notes:
            log.info("%s: %s", source, note)
