"""What a build says about the files and about itself: the reports (skipped files, problems, notes)
in its result, the log lines, and status.json's contents (`status_of`).

A bad file is reported once per change of its bytes (logged when its bytes are new to this
process, not on every tick); every build's result and status list them all.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from feedsvc.model import BuildResult, Note, Problem, Record, Skipped
from feedsvc.publish.layout import FeedCount, Status

log = logging.getLogger("feedsvc.build")


class DuplicateUrl(Note):
    """A file whose article has the URL of a newer one: only the newer is published."""


def plural(count: int, word: str, words: str | None = None) -> str:
    """`1 entry`, `2 entries`: the count and the word as English says it."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {words or _plural(word)}"


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


# A build logs at most this many WARNING lines about files; then one line says how many more
# there are (a burst of 100k bad files must not flood the log: /healthz and status.json list them).
MAX_FILE_WARNINGS = 20


def log_fresh(seeds_dir: Path, fresh: Iterable[Record], limit: int = MAX_FILE_WARNINGS) -> None:
    """Warn about a skipped file, or a problem in a published one, when its bytes are new to this
    process, not on every tick (the first `limit` of a build, then a count); notes are information
    (at DEBUG past the same limit)."""
    warned = more = noted = 0
    for record in fresh:
        if not (record.problem or record.problems or record.notes):
            continue  # nearly every record (a new process finds all of them fresh)
        source = seeds_dir / record.rel
        lines = ([f"skipped {source}: {record.problem}"] if record.problem else []) + [
            f"{source}: {problem}" for problem in record.problems
        ]
        for line in lines:
            if warned < limit:
                log.warning("%s", line)
                warned += 1
            else:
                more += 1
        for note in record.notes:
            noted += 1
            log.log(logging.INFO if noted <= limit else logging.DEBUG, "%s: %s", source, note)
    if more:
        log.warning(
            "… and %d more skipped files or problems in this build (not logged one by one: "
            "/healthz and status.json list them)",
            more,
        )


def reports_of(records: Iterable[Record]) -> tuple[list[Skipped], list[Problem], list[Note]]:
    """(skipped files, problems in published files, notes), each named relative to the seeds folder."""
    skipped: list[Skipped] = []
    problems: list[Problem] = []
    notes: list[Note] = []
    # Named relative to the seeds folder (/healthz shows them). Few records have anything to say,
    # and a rebuild walks all of them: those few are picked out first.
    for record in [r for r in records if r.id is None or r.problems or r.notes]:
        if record.id is None:
            skipped.append(Skipped(record.rel, record.problem or "skipped"))
        problems += [Problem(record.rel, problem) for problem in record.problems]
        notes += [Note(record.rel, note) for note in record.notes]
    return skipped, problems, notes


def duplicate_urls(articles: Iterable[tuple[str, str, Any]]) -> list[DuplicateUrl]:
    """A note for each file whose article has the URL of a newer one, which alone is published:
    `articles` are (file, its article's dedup key, its order), the order as `select_entries`
    compares them (the largest wins). Naming both files, the older first."""
    newest: dict[str, tuple[str, Any]] = {}
    losers: list[tuple[str, str]] = []
    for rel, dedup, order in articles:
        kept = newest.get(dedup)
        if kept is None:
            newest[dedup] = (rel, order)
        elif order > kept[1]:
            losers.append((kept[0], dedup))
            newest[dedup] = (rel, order)
        else:
            losers.append((rel, dedup))
    return [
        DuplicateUrl(rel, f"same URL as {newest[dedup][0]}, which is newer: only that one is published")
        for rel, dedup in sorted(losers)
    ]


def duplicate_records(records: Iterable[Record]) -> list[DuplicateUrl]:
    """`duplicate_urls` of the published records."""
    return duplicate_urls((r.rel, r.dedup_key or r.id, r.order) for r in records if r.id is not None)


def log_duplicates(seeds_dir: Path, notes: Iterable[DuplicateUrl], told: set[str]) -> set[str]:
    """Log each duplicate note once per process (not on every build); returns what was told."""
    now = {str(note) for note in notes}
    new = [note for note in notes if str(note) not in told]
    for note in new[:MAX_FILE_WARNINGS]:
        log.info("%s: %s", seeds_dir / note.source, note.reason)
    if len(new) > MAX_FILE_WARNINGS:
        log.info("… and %d more notes (/healthz and status.json list them)", len(new) - MAX_FILE_WARNINGS)
    return now


def status_of(result: BuildResult) -> Status:
    """status.json's contents for a build of record (this process's pid with it)."""
    return Status(
        ok=result.ok,
        published=result.published,
        files=result.files,
        entries=result.entries,
        changed=result.changed,
        skipped=tuple(result.skipped),
        problems=tuple(result.problems),
        deferred=tuple(result.deferred),
        etag=result.etag,
        error=result.public_error,
        duration_ms=round(result.duration * 1000, 1),
        finished_at=result.finished_at.isoformat(timespec="milliseconds") if result.finished_at else None,
        number=result.number,
        warnings=tuple(result.warnings),
        feeds=tuple(FeedCount(name, n) for name, n in result.feeds.items()),
        notes=tuple(Note(n.source, n.reason) for n in result.notes),
        pid=os.getpid(),
    )


def log_build(result: BuildResult) -> None:
    """The build line of a successful build, its figures as fields too (for log_format = "json")."""
    figures = {
        "entries": result.entries,
        "files": result.files,
        "changed": result.changed,
        "skipped": len(result.skipped),
        "problems": len(result.problems),
        "duration_ms": round(result.duration * 1000, 1),
        "result": "published" if result.published else "unchanged",
        "etag": result.etag,
    }
    # The figures as fields too, for log_format = "json" (feedsvc/logs.py).
    log.info(
        "build: %s from %s, %d changed, %d skipped, %s, %.0f ms, %s %s",
        plural(result.entries, "entry", "entries"),
        plural(result.files, "file"),
        result.changed,
        len(result.skipped),
        plural(len(result.problems), "problem"),
        figures["duration_ms"],
        figures["result"],
        figures["etag"],
        extra=figures,
    )
