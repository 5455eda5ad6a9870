"""One seed file's bytes → what they became: an Entry, or the reason to skip the file.

The unit of work of a build: picklable in and out, so a process pool can run it, and
deterministic for a given `fingerprint`, so its result can be cached across processes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from feedsvc import __version__
from feedsvc.core.entry import make_entry
from feedsvc.core.parse import SeedError, parse_seed
from feedsvc.core.sanitize import get_sanitizer, policy
from feedsvc.model import EntrySettings, Outcome, SeedFile


def process_seed(data: bytes, source: str, mtime: datetime | None, settings: EntrySettings) -> Outcome:
    """One file's bytes → Outcome. Never raises; an unexpected error is a reason to skip the file."""
    try:
        article = parse_seed(
            data,
            source,
            mtime,
            max_article_bytes=settings.max_article_bytes,
            legacy_encodings=settings.legacy_encodings,
        )
        entry = make_entry(article, get_sanitizer(settings.sanitizer), settings.summary_chars)
        return Outcome(entry, None, article.notes)
    except SeedError as exc:
        return Outcome(None, str(exc))
    except Exception as exc:  # a bug must cost one article, never the build: reported as its reason
        return Outcome(None, f"internal error: {type(exc).__name__}: {exc}")


def process_file(data: bytes, seed: SeedFile, settings: EntrySettings, limit: int) -> Outcome:
    """`process_seed` for the bytes read from `seed`, of which at most `limit` were read."""
    mtime = datetime.fromtimestamp(seed.mtime_ns / 1e9, tz=UTC)
    outcome = process_seed(data, seed.rel, mtime, settings)
    if seed.size > limit and outcome.entry is not None:
        outcome = Outcome(outcome.entry, None, (*outcome.notes, f"only the first {limit} of {seed.size} bytes read"))
    return outcome


def fingerprint(settings: EntrySettings, library_version: str) -> str:
    """Everything besides a file's bytes, path and mtime that decides its Outcome.

    A cached outcome is only reused under the same fingerprint: a new policy VERSION, another
    sanitizer backend or `library_version`, or another setting that changes entries invalidates it.
    """
    parts = {
        "feedsvc": __version__,
        "policy": policy.VERSION,
        "sanitizer": settings.sanitizer,
        "library": library_version,
        "max_article_bytes": settings.max_article_bytes,
        "summary_chars": settings.summary_chars,
        "legacy_encodings": list(settings.legacy_encodings),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def outcome_key(fingerprint_: str, source: str, sha: str) -> str:
    """The cache key of one file version's outcome (the path matters: it is the id of a link-less entry)."""
    return hashlib.sha256(f"{fingerprint_}\0{source}\0{sha}".encode()).hexdigest()[:32]
