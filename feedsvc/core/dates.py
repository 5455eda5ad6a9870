"""Stamps and dates: when an article was updated and published. Pure: no files, no clock.

Rule: the header stamp `<!--…-->` is `updated`: a whole number of epoch milliseconds (13 digits) or
seconds (10 digits; other lengths guessed by magnitude, and seconds are noted), from 1990 to 2200,
and at most FUTURE_SLACK ahead of the build's `now` (a stamp further ahead is invalid until then).
The body's own leading date line `<div><i><br>ISO 8601</i></div>` is `published` (UTC when it names
no offset), and leaves the body. An invalid stamp is a reason, never an exception: the caller falls
back on the body date, then the file's time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

_DIGITS = re.compile(r"[0-9]+")
_BODY_DATE = re.compile(
    r"^\s*<div>\s*<i>\s*(?:<br\s*/?>\s*)?"
    r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s*</i>\s*</div>",
    re.IGNORECASE,
)
# Epoch stamps outside this window are typos, not dates.
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)
# A header stamp may be this far ahead of the time of parsing (clocks differ, stamps are rounded).
FUTURE_SLACK = timedelta(days=1)


class _InvalidStamp(ValueError):
    """A header stamp that cannot be the entry's date; `valid_from`: when a future one becomes valid."""

    def __init__(self, reason: str, valid_from: datetime | None = None) -> None:
        super().__init__(reason)
        self.valid_from = valid_from


def _from_stamp(line: str, now: datetime | None) -> tuple[datetime, bool]:
    """A `<!--…-->` header line → (its instant, whether it counted seconds), or _InvalidStamp.

    10 digits are seconds (until 2286), 13 milliseconds; other lengths are guessed by magnitude.
    Valid: a whole number of (milli)seconds from 1990 to 2200, at most FUTURE_SLACK after `now`
    (when given): a stamp further ahead would make the entry the newest for years.
    """
    if not line.endswith("-->") or len(line) < 7:
        raise _InvalidStamp("not a comment closed on its line")
    digits = line[4:-3].strip()
    if not _DIGITS.fullmatch(digits):
        raise _InvalidStamp("not a number of milliseconds since 1970")
    if len(digits) > 20:  # int() refuses past 4300 digits; a date needs at most 13
        raise _InvalidStamp("out of range")
    value = int(digits)
    in_seconds = value < 100_000_000_000
    try:
        stamp = datetime.fromtimestamp(value if in_seconds else value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _InvalidStamp("out of range") from None
    if not _EARLIEST <= stamp <= _LATEST:
        raise _InvalidStamp(f"out of range ({stamp:%Y-%m-%d}; valid from 1990 to 2200)")
    if now is not None and stamp > now + FUTURE_SLACK:
        raise _InvalidStamp(f"{stamp:%Y-%m-%d %H:%M} UTC is more than a day in the future", stamp - FUTURE_SLACK)
    return stamp, in_seconds


def _parse_iso(text: str) -> datetime | None:
    text = text.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    stamp = stamp.astimezone(UTC)
    return stamp if _EARLIEST <= stamp <= _LATEST else None




def body_date(body: str) -> tuple[datetime | None, str]:
    """The body's own date line (`published`), and the body without it."""
    if m := _BODY_DATE.match(body):
        published = _parse_iso(m.group(1))
        if published is not None:
            return published, body[m.end() :].lstrip()
    return None, body


class Stamp(NamedTuple):
    """What a header stamp line gave: its instant, or why it is invalid (and when a future one
    becomes valid); the notes it leaves."""

    when: datetime | None = None
    invalid: str | None = None
    valid_until: datetime | None = None
    notes: tuple[str, ...] = ()


def header_stamp(line: str, now: datetime | None) -> Stamp:
    try:
        when, in_seconds = _from_stamp(line, now)
    except _InvalidStamp as exc:
        return Stamp(invalid=f"invalid timestamp {line[:40]!r}: {exc}", valid_until=exc.valid_from)
    return Stamp(when, notes=("timestamp in seconds, not milliseconds",) if in_seconds else ())
