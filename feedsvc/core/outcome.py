"""One seed file's bytes → what they became: an Entry, or the reason to skip the file.

The unit of work of a build: picklable in and out, so a process pool can run it, and
deterministic for a given `fingerprint`, so its result can be cached across processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime

from feedsvc import __version__
from feedsvc.core.entry import cap_content, make_entry
from feedsvc.core.parse import SeedError, parse_seed
from feedsvc.core.sanitize import get_sanitizer, policy
from feedsvc.core.text import shorten
from feedsvc.model import EntrySettings, Outcome, SeedFile


def process_seed(
    data: bytes, source: str, mtime: datetime | None, settings: EntrySettings, now: datetime | None
) -> Outcome:
    """One file's bytes → Outcome. Never raises; an unexpected error is a reason to skip the file.

    `now` is the time of the build (a header stamp more than a day after it is invalid).
    """
    try:
        article = parse_seed(
            data,
            source,
            mtime,
            max_article_bytes=settings.max_article_bytes,
            legacy_encodings=settings.legacy_encodings,
            now=now,
        )
        sanitizer = get_sanitizer(settings.sanitizer)
        entry = make_entry(article, sanitizer, settings.summary_chars, settings.strip_tracking)
        problems = list(article.problems)
        if article.link and entry.link is None:
            dropped = f"title link {shorten(article.link, 80)!r} dropped: not a usable http(s) URL"
            if not entry.content_html:
                return Outcome(None, f"{dropped}, and there is no article body: nothing to publish")
            problems.append(f"{dropped} (the entry has no link, and a urn:uuid id)")
        entry, cut = cap_content(entry, settings.max_entry_bytes, sanitizer)
        if cut:
            problems.append(cut)
        return Outcome(entry, None, article.notes, tuple(problems), article.valid_until)
    except SeedError as exc:
        return Outcome(None, str(exc))
    except Exception as exc:  # a bug must cost one article, never the build: reported as its reason
        return Outcome(None, f"internal error: {type(exc).__name__}: {exc}")


def process_file(data: bytes, seed: SeedFile, settings: EntrySettings, limit: int, now: datetime) -> Outcome:
    """`process_seed` for the bytes read from `seed`, of which at most `limit` were read."""
    mtime = datetime.fromtimestamp(seed.mtime_ns / 1e9, tz=UTC)
    outcome = process_seed(data, seed.rel, mtime, settings, now)
    if seed.size > limit and outcome.entry is not None:
        read = f"only the first {limit} of {seed.size} bytes read"
        outcome = dataclasses.replace(outcome, problems=(*outcome.problems, read))
    return outcome


def fingerprint(settings: EntrySettings, library_version: str) -> str:
    """Everything besides a file's bytes, path, mtime and the time that decides its Outcome (an
    outcome that depends on the time says until when it holds: `Outcome.valid_until`).

    A cached outcome is only reused under the same fingerprint: a new policy VERSION, another
    sanitizer backend or `library_version`, or another setting that changes entries invalidates it.
    """
    parts = {
        "feedsvc": __version__,
        "policy": policy.VERSION,
        "sanitizer": settings.sanitizer,
        "library": library_version,
        "max_article_bytes": settings.max_article_bytes,
        "max_entry_bytes": settings.max_entry_bytes,
        "summary_chars": settings.summary_chars,
        "legacy_encodings": list(settings.legacy_encodings),
        "strip_tracking": settings.strip_tracking,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def outcome_key(fingerprint_: str, source: str, sha: str) -> str:
    """The cache key of one file version's outcome (the path matters: it is the id of a link-less entry)."""
    # surrogateescape: a name that is not UTF-8 is keyed by its bytes, never an error.
    return hashlib.sha256(f"{fingerprint_}\0{source}\0{sha}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
