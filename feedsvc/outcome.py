"""One seed file's bytes → what they became (an Entry, or the reason to skip the file). Pure.

This is the unit of work of a build: picklable in and out, so a process pool can run it, and
deterministic for a given `fingerprint`, so its result can be cached across processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from feedsvc import __version__, policy
from feedsvc.config import Config
from feedsvc.entry import Entry, make_entry
from feedsvc.parse import SeedError, parse_seed
from feedsvc.sanitizers import get_sanitizer

log = logging.getLogger("feedsvc.build")

# The note parse_seed leaves when the file's mtime became the entry's date: such an outcome
# depends on the mtime as well as on the bytes.
MTIME_NOTE = "date taken from the file's modification time"


@dataclass(frozen=True)
class Outcome:
    """What one seed file's bytes became."""

    entry: Entry | None
    problem: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def uses_mtime(self) -> bool:
        return MTIME_NOTE in self.notes


ProcessSeed = Callable[[bytes, str, "datetime | None", Config], Outcome]


@dataclass(frozen=True)
class Job:
    """One file to process: its bytes, its path under seeds/, its mtime, and how big it really is."""

    data: bytes
    source: str
    mtime_ns: int
    size: int


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
        entry = make_entry(article, sanitizer=get_sanitizer(config.sanitizer), summary_chars=config.summary_chars)
        return Outcome(entry, None, article.notes)
    except SeedError as exc:
        return Outcome(None, str(exc))
    except Exception as exc:
        log.exception("unexpected error on %s", source)
        return Outcome(None, f"internal error: {type(exc).__name__}: {exc}")


def process_job(job: Job, config: Config, limit: int, process: ProcessSeed | None = None) -> Outcome:
    """`process_seed` (or `process`) for a file of which at most `limit` bytes were read."""
    mtime = datetime.fromtimestamp(job.mtime_ns / 1e9, tz=UTC)
    outcome = (process or process_seed)(job.data, job.source, mtime, config)
    if job.size > limit and outcome.entry is not None:
        outcome = Outcome(outcome.entry, None, (*outcome.notes, f"only the first {limit} of {job.size} bytes read"))
    return outcome


def _library_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def fingerprint(config: Config) -> str:
    """Everything besides a file's bytes, path and mtime that decides its Outcome.

    A cached outcome is only reused under the same fingerprint: a new policy VERSION, another
    sanitizer backend or library version, or another setting that changes entries invalidates it.
    """
    parts = {
        "feedsvc": __version__,
        "policy": policy.VERSION,
        "sanitizer": config.sanitizer,
        "library": _library_version(config.sanitizer),
        "max_article_bytes": config.max_article_bytes,
        "summary_chars": config.summary_chars,
        "legacy_encodings": list(config.legacy_encodings),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def outcome_key(fingerprint_: str, source: str, sha: str) -> str:
    """The cache key of one file version's outcome (the path matters: it is the id of a link-less entry)."""
    return hashlib.sha256(f"{fingerprint_}\0{source}\0{sha}".encode()).hexdigest()[:32]
