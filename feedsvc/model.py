"""Every shape a datum takes on its way: seed file → Article → Entry → Outcome → Record → Document.

Plain data, declared once. No I/O, no clock, no behaviour beyond derived fields.

    SeedFile   a file as a scan saw it (stat)                    pipeline/seeds.py
    Article    the file's bytes, parsed                           core/parse.py
    Entry      the article sanitized, with its id and summary     core/entry.py
    Outcome    what one file version became: an Entry or why not  core/outcome.py
    Record     what the builder and the cache remember of it      pipeline/, pipeline/cache.py
    FeedSpec   one declared feed ([[feeds]] in the configuration)  config.py
    Feed       one feed a build publishes, from the same Records  pipeline/feeds.py, core/filters.py
    Document   one published URL's bytes                          core/render/, publish/
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from feedsvc.core.urls import url_identity


class StatKey(NamedTuple):
    """A seed file's stat, as the builder and the cache compare it: a new one, a file to look at."""

    size: int
    mtime_ns: int
    inode: int


# Defaults declared once: the configuration (config.Config), the settings that key the cache
# (EntrySettings), a feed's metadata (FeedMeta) and the core's functions all take theirs from here.
DEFAULT_MAX_ARTICLE_BYTES = 1_000_000
DEFAULT_MAX_ENTRY_BYTES = 250_000
DEFAULT_SUMMARY_CHARS = 200
DEFAULT_LEGACY_ENCODINGS: tuple[str, ...] = ("cp950", "big5hkscs", "gb18030")
DEFAULT_SANITIZER = "bleach"
DEFAULT_STRIP_TRACKING = True  # tracking pixels and query parameters removed (core/sanitize/tracking.py)
DEFAULT_LANGUAGE = "zh-Hant"  # a feed's, unless the configuration or a [[feeds]] table names one

# The words the parser uses (in a note, or in an invalid stamp's problem) when the file's mtime
# became the entry's date: such an outcome depends on the mtime as well as on the bytes.
MTIME_NOTE = "date taken from the file's modification time"


class SeedFile(NamedTuple):
    """One seed file as a scan saw it. A tuple: a full rescan makes 10k of them."""

    path: str
    rel: str
    size: int
    mtime_ns: int
    inode: int
    # Where the read finds the bytes the scan saw (pipeline/seeds.py): the device (0: unknown),
    # the resolved seeds folder ("": the file's own folder) and the file's resolved path under it
    # ("": `rel` itself).
    dev: int = 0
    root: str = ""
    target: str = ""

    @property
    def stat_key(self) -> StatKey:
        return StatKey(self.size, self.mtime_ns, self.inode)


@dataclass(frozen=True)
class Article:
    """A seed file's parts. `body_html` is "" for a link post (a title with a link, no body).

    `problems`: what the user must fix although the article is published (an invalid stamp, a
    truncated body); `notes`: liberties the parser took (an encoding, a date's source).
    `valid_until`: set when the article depends on the time of parsing (a stamp too far in the
    future was rejected): the instant from which the same bytes give another article.
    """

    source: str
    title: str
    link: str | None
    published: datetime | None
    updated: datetime
    body_html: str
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    valid_until: datetime | None = None


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    link: str | None
    published: datetime | None
    updated: datetime
    content_html: str
    summary: str
    source: str
    image: str | None = None

    @property
    def dedup_key(self) -> str:
        return url_identity(self.link) if self.link else self.id


@dataclass(frozen=True)
class EntrySettings:
    """The settings that decide what a file's bytes become (and so key the cache)."""

    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
    summary_chars: int = DEFAULT_SUMMARY_CHARS
    legacy_encodings: tuple[str, ...] = DEFAULT_LEGACY_ENCODINGS
    sanitizer: str = DEFAULT_SANITIZER
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    strip_tracking: bool = DEFAULT_STRIP_TRACKING


@dataclass(frozen=True)
class Outcome:
    """What one seed file's bytes became.

    `problem`: why the file is skipped (then `entry` is None). `problems`: what a user must fix in
    a published file (a dropped link, truncation, an invalid stamp). `notes`: what is worth
    knowing but needs no fix (a legacy encoding, a date's source). `valid_until`: see Article.
    """

    entry: Entry | None
    problem: str | None = None
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    valid_until: datetime | None = None

    @property
    def uses_mtime(self) -> bool:
        return any(MTIME_NOTE in text for text in (*self.notes, *self.problems))


_UNREAD = StatKey(-1, -1, -1)


@dataclass(frozen=True, slots=True)
class Record:
    """One seed file version as the builder remembers it between builds, and as the cache keeps it.

    Light: what choosing and reporting read, never the content. `key` finds the full Entry in the
    cache; `mtime_ns` is set when the outcome depends on the file's mtime (its date came from it),
    `valid_until` when it depends on the time (it holds before that instant only).
    `order` is the feed's sort key (largest first), computed once.
    """

    rel: str
    sha: str
    key: str
    id: str | None
    dedup_key: str | None
    updated: datetime | None
    published: datetime | None
    problem: str | None = None
    notes: tuple[str, ...] = ()
    mtime_ns: int | None = None
    stat_key: StatKey = _UNREAD
    problems: tuple[str, ...] = ()
    valid_until: datetime | None = None
    order: tuple[Any, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.id is not None and not self.order:
            order = (self.updated, self.published or self.updated, self.id, self.rel)
            object.__setattr__(self, "order", order)

    @property
    def source(self) -> str:
        return self.rel

    @property
    def readable(self) -> bool:
        return bool(self.sha)

    def holds(self, now: float) -> bool:
        """Whether the outcome is still what the file's bytes give at `now` (seconds since the epoch)."""
        return self.valid_until is None or now < self.valid_until.timestamp()

    @classmethod
    def unreadable(cls, rel: str, reason: str) -> Record:
        """A file that could not be read: no stat key, so the next build tries it again."""
        return cls(rel, "", "", None, None, None, None, reason)

    @classmethod
    def of(cls, rel: str, sha: str, key: str, outcome: Outcome, seed: SeedFile) -> Record:
        entry = outcome.entry
        return cls(
            rel,
            sha,
            key,
            entry.id if entry else None,
            entry.dedup_key if entry else None,
            entry.updated if entry else None,
            entry.published if entry else None,
            outcome.problem,
            outcome.notes,
            seed.mtime_ns if outcome.uses_mtime else None,
            seed.stat_key,
            outcome.problems,
            outcome.valid_until,
        )


@dataclass(frozen=True)
class Report:
    """Something a build says about one file (`source`, relative to the seeds folder). Its kind is
    its type: `Skipped` (not published), `Problem` (published, but a user must fix it) or `Note`
    (worth knowing, no fix needed)."""

    source: str
    reason: str

    kind: ClassVar[str] = "report"

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class Skipped(Report):
    """A file that is not published, and why."""

    kind: ClassVar[str] = "skipped"


@dataclass(frozen=True)
class Problem(Report):
    """What a user must fix in a published file (a dropped link, truncation, an invalid stamp)."""

    kind: ClassVar[str] = "problem"


@dataclass(frozen=True)
class Note(Report):
    """What is worth knowing about a file but needs no fix (a legacy encoding, a date's source)."""

    kind: ClassVar[str] = "note"


@dataclass(frozen=True)
class FeedMeta:
    id: str
    title: str
    self_url: str
    alternate_url: str
    subtitle: str = ""
    author: str = "feedsvc"
    language: str = DEFAULT_LANGUAGE
    # WebSub hub advertised in every feed ("" = none).
    hub: str = ""
    # Path of the XSL stylesheet named by an <?xml-stylesheet?> in Atom and RSS ("" = none).
    stylesheet: str = ""

    def url(self, name: str) -> str:
        """The public URL of a published document, beside the subscription feed."""
        return self.self_url.rsplit("/", 1)[0] + "/" + name


@dataclass(frozen=True)
class FeedSpec:
    """One `[[feeds]]` table of the configuration, checked, with what it leaves out taken from the
    top level (title, subtitle, language, max_entries). "" means not given."""

    name: str
    title: str
    subtitle: str
    language: str
    max_entries: int
    folder: str = ""  # a folder under seeds_dir (POSIX, no leading or trailing "/"); "" = every seed
    include: str = ""  # an RE2 pattern searched in the title and the plain text
    exclude: str = ""
    convert: str = ""  # an OpenCC configuration name (t2s, s2t, ...)
    image_proxy: str = ""  # a URL template with {url} or {url_noscheme}


@dataclass(frozen=True)
class Feed:
    """One feed a build publishes: the top-level feed (`name` "") or a declared one. Plain data
    (picklable, its repr a key): which entries (folder, include, exclude), how many, and what is
    done to them on the way out (convert, image_proxy). Its documents are named with `prefix`."""

    name: str
    meta: FeedMeta
    max_entries: int
    folder: str = ""
    include: str = ""
    exclude: str = ""
    convert: str = ""
    image_proxy: str = ""

    @property
    def prefix(self) -> str:
        """What its documents' names start with: "" for the top-level feed, "world/" for "world"."""
        return self.name + "/" if self.name else ""

    @property
    def filters(self) -> tuple[str, str]:
        return (self.include, self.exclude)

    @property
    def transform(self) -> tuple[str, str]:
        """What is done to each entry on its way into this feed ("", "": nothing)."""
        return (self.convert, self.image_proxy)


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One RFC 5005 archive page's items (Entries to render, Records to plan with, or the cache
    keys of its entries, for a worker) and its neighbours, which its links name."""

    number: int  # YYYYMMPPP: the month, and the piece of it (feedsvc.core.choose)
    entries: tuple[T, ...]  # newest first, like every document
    older: int | None = None  # the next older page (prev-archive); None on the oldest
    newer: int | None = None  # the next newer page (next-archive); None on the newest


@dataclass(frozen=True)
class Document:
    """One URL's body as a renderer made it."""

    name: str
    body: bytes
    content_type: str
    last_modified: datetime
    # What the body was made from, opaque to publishing; kept in the manifest so a builder can
    # tell that a document (an archive page) is already published and pass a `Reuse` instead.
    source_key: str = ""
    # False: web processes read it from its object file when asked (archive pages: many, cold).
    in_memory: bool = True
    # Its gzip variant when the builder already compressed it (in parallel with rendering).
    gzip: bytes | None = None


@dataclass(frozen=True)
class Reuse:
    """A document left as the current manifest has it, found by the `source_key` it was published with."""

    name: str
    source_key: str


@dataclass
class BuildResult:
    """What one build did: the build line, status.json and /healthz say this."""

    ok: bool
    published: bool = False
    files: int = 0
    entries: int = 0
    changed: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    # What users must fix in published files (dropped links, truncation, invalid stamps).
    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    # Files modified too recently to read (they may still be being written), and the age of the
    # youngest: the service decides when to build again.
    deferred: list[str] = field(default_factory=list)
    youngest: float = 0.0
    # True when the build stopped early to let `deferred` files settle: nothing was published.
    waiting: bool = False
    etag: str | None = None
    # Why the build failed: `error` for the logs and the console (full paths), `public_error` for
    # status.json and /healthz (no absolute path). Problem sources are relative to the seeds folder.
    error: str | None = None
    public_error: str | None = None
    duration: float = 0.0
    number: int = 0
    finished_at: datetime | None = None
    # What needs a look but is no fault (a declared feed's folder that does not exist yet).
    warnings: list[str] = field(default_factory=list)
    # Entries in each declared feed's subscription documents, by name (none without [[feeds]]).
    feeds: dict[str, int] = field(default_factory=dict)
