"""The persistent cache of build work: SQLite in the output directory (`cache.sqlite3`).

Tables. `outcomes` holds what each file version became (the sanitized entry or the reason
it was skipped, its problems and notes, and until when it holds if it depends on the time),
keyed by `outcome_key` (the fingerprint of policy VERSION, sanitizer backend and the settings
that matter, the file's path and the SHA-256 of its bytes): a restart, or a new `feedsvc build`
process, re-sanitizes nothing that did not change, and a policy change misses every key. `files`
remembers each seed's (size, mtime, inode) and hash, so a new process need not even read a file
whose stat did not change. A third, `matches`, remembers whether each entry version passes a
declared feed's folder and include/exclude patterns (keyed by `filters_key`), so choosing a
filtered feed never needs the content again (created beside the others in a cache of an earlier
release: it adds what the others do not hold).

The builder keeps only light records in memory and loads full entries from here for the few it
publishes, so a long-lived server's memory grows with `max_entries`, not with the corpus.
`MemoryCache` is the same interface in memory: the fallback when the file cannot be used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import cast

from feedsvc.model import Entry, Outcome, Record, StatKey

log = logging.getLogger("feedsvc.cache")

CACHE_FILE = "cache.sqlite3"
SCHEMA = 4
_BATCH = 500


class CacheError(OSError):
    """The cache file failed mid-build (disk full, corrupted, locked too long)."""


def _strings(value: str) -> tuple[str, ...]:
    """A JSON list of strings (notes, problems): nearly always empty, read for every record."""
    return () if value == "[]" else tuple(json.loads(value))


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class MemoryCache:
    """The cache's interface, in memory (also what a build uses when the SQLite file is unusable)."""

    def __init__(self) -> None:
        self._outcomes: dict[str, tuple[Record, Outcome]] = {}
        self._files: dict[str, dict[str, tuple[StatKey, str]]] = {}
        self._matches: dict[str, dict[str, bool]] = {}

    def files(self, root: str) -> dict[str, tuple[StatKey, str]]:
        return dict(self._files.get(root, {}))

    def records(self, stats: Mapping[str, StatKey]) -> dict[str, Record]:
        return {k: replace(self._outcomes[k][0], stat_key=stat) for k, stat in stats.items() if k in self._outcomes}

    def entries(self, keys: Sequence[str]) -> dict[str, Entry]:
        found = {k: self._outcomes[k][1].entry for k in keys if k in self._outcomes}
        return {k: e for k, e in found.items() if e is not None}

    def is_empty(self) -> bool:
        return not self._outcomes

    def put(self, items: Iterable[tuple[Record, Outcome]]) -> None:
        for record, outcome in items:
            self._outcomes[record.key] = (record, outcome)

    def save_files(self, root: str, upserts: Mapping[str, tuple[StatKey, str]], removed: Iterable[str]) -> None:
        files = self._files.setdefault(root, {})
        files.update(upserts)
        for rel in removed:
            files.pop(rel, None)

    def matches(self, filters: str) -> Iterator[tuple[str, bool]]:
        return iter(list(self._matches.get(filters, {}).items()))

    def save_matches(self, filters: str, results: Mapping[str, bool]) -> None:
        self._matches.setdefault(filters, {}).update(results)

    def needs_pruning(self, live: int) -> bool:
        return len(self._outcomes) > live

    def prune(self, live: set[str]) -> None:
        for key in self._outcomes.keys() - live:
            del self._outcomes[key]
        for results in self._matches.values():
            for key in results.keys() - live:
                del results[key]

    def close(self) -> None:
        pass


class SqliteCache:
    """The persistent cache. One connection, used under a lock (the Builder serialises builds anyway)."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        """`readonly`: a reader beside the builder's connection (a pool worker rendering pages)."""
        self.path = path
        self._lock = threading.Lock()
        self._db = self._open_readonly(path) if readonly else self._open(path)
        self._rows: int | None = None  # outcomes in the table (an upper bound), counted when first needed

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            # Rows are whole articles (~6 KB): 16 KB pages keep most of them off overflow chains,
            # which halves the cost of a cold build's inserts. Only a new file takes it.
            db.execute("PRAGMA page_size=16384")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA:
                db.executescript(
                    f"""
                    BEGIN;
                    DROP TABLE IF EXISTS outcomes;
                    DROP TABLE IF EXISTS entries;
                    DROP TABLE IF EXISTS files;
                    DROP TABLE IF EXISTS matches;
                    CREATE TABLE outcomes (
                        key TEXT PRIMARY KEY, rel TEXT, sha TEXT, mtime_ns INTEGER, id TEXT, dedup TEXT,
                        updated TEXT, published TEXT, problem TEXT, notes TEXT, problems TEXT,
                        valid_until TEXT) WITHOUT ROWID;
                    CREATE TABLE entries (
                        key TEXT PRIMARY KEY, title TEXT, link TEXT, content TEXT, summary TEXT, source TEXT,
                        image TEXT);
                    CREATE TABLE files (
                        root TEXT, rel TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER, sha TEXT,
                        PRIMARY KEY (root, rel)) WITHOUT ROWID;
                    PRAGMA user_version = {SCHEMA};
                    COMMIT;
                    """
                )
            db.execute(
                "CREATE TABLE IF NOT EXISTS matches (filters TEXT, key TEXT, hit INTEGER, PRIMARY KEY (filters, key))"
                " WITHOUT ROWID"
            )
        except BaseException:
            db.close()
            raise
        return db

    @staticmethod
    def _open_readonly(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(
            path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30, check_same_thread=False, isolation_level=None
        )
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA:
                raise CacheError(f"{path}: not a cache of schema {SCHEMA}")
        except BaseException:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise CacheError(f"{self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._locked() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _select(self, sql: str, keys: Sequence[str]) -> list[tuple]:
        rows: list[tuple] = []
        with self._locked() as db:
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def files(self, root: str) -> dict[str, tuple[StatKey, str]]:
        with self._locked() as db:
            rows = db.execute("SELECT rel, size, mtime_ns, inode, sha FROM files WHERE root = ?", (root,))
            return {rel: (StatKey(size, mtime, inode), sha) for rel, size, mtime, inode, sha in rows}

    def records(self, stats: Mapping[str, StatKey]) -> dict[str, Record]:
        """The records of these outcome keys, each with the stat its file has now (`stats`: key → stat)."""
        sql = (
            "SELECT key, rel, sha, mtime_ns, id, dedup, updated, published, problem, notes, problems, valid_until "
            "FROM outcomes WHERE key IN ({marks})"
        )
        return {
            row[0]: Record(
                rel=row[1],
                sha=row[2],
                key=row[0],
                id=row[4],
                dedup_key=row[5],
                updated=_date(row[6]),
                published=_date(row[7]),
                problem=row[8],
                notes=_strings(row[9]),
                mtime_ns=row[3],
                stat_key=stats[row[0]],
                problems=_strings(row[10]),
                valid_until=_date(row[11]),
            )
            for row in self._select(sql, list(stats))
        }

    def entries(self, keys: Sequence[str]) -> dict[str, Entry]:
        """Full entries for `keys` (the ones being published); call it page by page for many."""
        return self._entries(keys, "e.content, e.summary, e.source, e.image")

    def headlines(self, keys: Sequence[str]) -> dict[str, Entry]:
        """Entries for `keys` without their content, summary or source: what a link to them shows
        (an entry's page links its neighbours by title), at a fraction of a full entry's cost."""
        return self._entries(keys, "'', '', '', NULL")

    def _entries(self, keys: Sequence[str], rest: str) -> dict[str, Entry]:
        sql = (
            f"SELECT o.key, o.id, e.title, e.link, o.published, o.updated, {rest} "
            "FROM outcomes o JOIN entries e ON e.key = o.key WHERE o.key IN ({marks})"
        )
        return {
            row[0]: Entry(
                id=row[1],
                title=row[2],
                link=row[3],
                published=_date(row[4]),
                updated=cast(datetime, _date(row[5])),  # an entry's outcome has a date
                content_html=row[6],
                summary=row[7],
                source=row[8],
                image=row[9],
            )
            for row in self._select(sql, list(keys))
        }

    def is_empty(self) -> bool:
        """No outcome at all (a cold build): hashing files up front would find nothing to reuse."""
        with self._locked() as db:
            return db.execute("SELECT 1 FROM outcomes LIMIT 1").fetchone() is None

    def put(self, items: Iterable[tuple[Record, Outcome]]) -> None:
        rows, entries = [], []
        for r, outcome in items:
            updated = r.updated.isoformat() if r.updated else None
            published = r.published.isoformat() if r.published else None
            notes = json.dumps(list(r.notes), ensure_ascii=False)
            problems = json.dumps(list(r.problems), ensure_ascii=False)
            valid_until = r.valid_until.isoformat() if r.valid_until else None
            row = (r.key, r.rel, r.sha, r.mtime_ns, r.id, r.dedup_key, updated, published, r.problem, notes)
            rows.append((*row, problems, valid_until))
            if (e := outcome.entry) is not None:
                entries.append((r.key, e.title, e.link, e.content_html, e.summary, e.source, e.image))
        if rows:
            with self._transaction() as db:
                db.executemany("INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", entries)
            if self._rows is not None:
                self._rows += len(rows)

    def save_files(self, root: str, upserts: Mapping[str, tuple[StatKey, str]], removed: Iterable[str]) -> None:
        """Update the stat index of `root`'s files with what changed in this build."""
        removed = list(removed)
        if not upserts and not removed:
            return
        with self._transaction() as db:
            db.executemany("DELETE FROM files WHERE root = ? AND rel = ?", ((root, rel) for rel in removed))
            db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                ((root, rel, *stat, sha) for rel, (stat, sha) in upserts.items()),
            )

    def matches(self, filters: str) -> Iterator[tuple[str, bool]]:
        """Every stored match result of a feed (its `filters_key`): (outcome key, hit), one at a time."""
        with self._locked() as db:
            for key, hit in db.execute("SELECT key, hit FROM matches WHERE filters = ?", (filters,)):
                yield key, bool(hit)

    def save_matches(self, filters: str, results: Mapping[str, bool]) -> None:
        if results:
            with self._transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO matches VALUES (?, ?, ?)",
                    ((filters, key, int(hit)) for key, hit in results.items()),
                )

    def needs_pruning(self, live: int) -> bool:
        """Whether outcomes no file refers to (old versions, old policies) have piled up."""
        if self._rows is None:
            with self._locked() as db:
                self._rows = db.execute("SELECT count(*) FROM outcomes").fetchone()[0]
        return self._rows > 2 * live + 1000

    def prune(self, live: set[str]) -> None:
        """Forget outcomes no file refers to any more (`live` are the keys still in use)."""
        with self._transaction() as db:
            db.execute("CREATE TEMP TABLE IF NOT EXISTS live (key TEXT PRIMARY KEY) WITHOUT ROWID")
            db.execute("DELETE FROM live")
            db.executemany("INSERT OR IGNORE INTO live VALUES (?)", ((k,) for k in live))
            db.execute("DELETE FROM outcomes WHERE key NOT IN (SELECT key FROM live)")
            db.execute("DELETE FROM entries WHERE key NOT IN (SELECT key FROM live)")
            db.execute("DELETE FROM matches WHERE key NOT IN (SELECT key FROM live)")
            db.execute("DELETE FROM live")
            self._rows = db.execute("SELECT count(*) FROM outcomes").fetchone()[0]

    def close(self) -> None:
        """Close the connection, its write-ahead log checkpointed into the file first: the last
        connection to close removes the log (a build of many files leaves megabytes in it)."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()


def open_cache(out_dir: Path) -> SqliteCache | MemoryCache:
    """The SQLite cache in `out_dir`, rebuilt if corrupt; in memory if the file cannot be used at all."""
    path = out_dir / CACHE_FILE
    for attempt in range(2):
        try:
            return SqliteCache(path)
        except sqlite3.OperationalError as exc:  # locked, read-only, cannot open: leave the file alone
            log.warning("cache %s unusable (%s): keeping build results in memory", path, exc)
            break
        except sqlite3.DatabaseError as exc:  # not a database, corrupted: it only holds derived data
            if attempt == 0:
                log.warning("cache %s corrupt (%s): starting it afresh", path, exc)
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        Path(str(path) + suffix).unlink()
                continue
            log.warning("cache %s unusable (%s): keeping build results in memory", path, exc)
        except OSError as exc:
            log.warning("cache %s unusable (%s): keeping build results in memory", path, exc)
            break
    return MemoryCache()
