"""Configuration: defaults, then a TOML file, then FEEDSVC_* environment variables, then flags.

Every value remembers where it came from, so an error can name the key and its source.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
import re
import tomllib
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedsvc.core.filters import PatternError, compile_pattern
from feedsvc.core.routes import FEED_NAME, RESERVED
from feedsvc.core.transform import PLACEHOLDERS, proxied
from feedsvc.core.urls import to_uri
from feedsvc.model import (
    DEFAULT_LANGUAGE,
    DEFAULT_LEGACY_ENCODINGS,
    DEFAULT_MAX_ARTICLE_BYTES,
    DEFAULT_MAX_ENTRY_BYTES,
    DEFAULT_MAX_SEED_SECONDS,
    DEFAULT_SANITIZER,
    DEFAULT_STRIP_TRACKING,
    DEFAULT_SUMMARY_CHARS,
    EntrySettings,
    FeedSpec,
)

ENV_PREFIX = "FEEDSVC_"
CONFIG_ENV = "FEEDSVC_CONFIG"
# prometheus_client's folder for the metrics of several processes (set by feedsvc's gunicorn master).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_CONFIG = Path("config/feedsvc.toml")


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of range; the message names it."""


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`: did you mean max_entries?` for a key one typo away from a known one ("" when none is close)."""
    close = difflib.get_close_matches(key, list(known), n=1)
    return f": did you mean {close[0]}?" if close else ""


def path_for_log(path: Path) -> str:
    """A configured folder as the logs and the console name it: a relative path says which working
    directory it was taken from (`seeds (relative to /srv/app)`)."""
    if path.is_absolute():
        return str(path)
    try:
        cwd = os.getcwd()
    except OSError:
        return f"{path} (relative to a working directory that no longer exists)"
    return f"{path} (relative to {cwd})"


def path_for_public(path: Path, key: str) -> str:
    """A configured folder as /healthz and status.json name it: never an absolute path (it would tell
    anyone how the server is laid out); a relative one as configured, an absolute one by its key."""
    return path.as_posix() if not path.is_absolute() else f"({key})"


@dataclass(frozen=True)
class Config:
    seeds_dir: Path = Path("seeds")
    output_dir: Path = Path("var")
    static_dir: str = ""  # "" = no static tree; else a path (see `static_path`)
    # `feedsvc deploy`, and after every publish of serve/watch/build --deploy: s3://bucket/prefix ("" = none).
    deploy_to: str = ""
    deploy_gzip: bool = False  # upload the gzip bodies, with Content-Encoding: gzip
    deploy_invalidate: str = ""  # a command run with the changed URL paths after a deploy (a CDN purge)
    base_url: str = "http://127.0.0.1:8000/"
    site_url: str = ""
    title: str = "feedsvc"
    subtitle: str = ""
    author: str = "feedsvc"
    language: str = DEFAULT_LANGUAGE
    max_entries: int = 50
    max_article_bytes: int = DEFAULT_MAX_ARTICLE_BYTES
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES
    max_seed_seconds: float = DEFAULT_MAX_SEED_SECONDS
    max_feed_bytes: int = 1_000_000
    summary_chars: int = DEFAULT_SUMMARY_CHARS
    legacy_encodings: tuple[str, ...] = DEFAULT_LEGACY_ENCODINGS
    cache_max_age: int = 300
    cache_s_maxage: int = 0
    stale_while_revalidate: int = 60
    stale_if_error: int = 86400
    scan_interval: float = 60.0
    stall_seconds: float = 120.0
    debounce: float = 0.25
    debounce_max: float = 2.0
    watch: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    threads: int = 8
    log_level: str = "INFO"
    log_format: str = "text"
    metrics: bool = True
    metrics_token: str = field(default="", repr=False)  # a secret: kept out of reprs and error messages
    stylesheet: bool = True
    archive_page_size: int = 50
    websub_hub: str = ""
    sanitizer: str = DEFAULT_SANITIZER
    build_workers: int = 0
    strip_tracking: bool = DEFAULT_STRIP_TRACKING
    # A page for every entry (/articles/<key>.html), and what a feed reader opens: "origin" or "page".
    article_pages: bool = True
    entry_link: str = "origin"
    # The declared feeds ([[feeds]] in the TOML file only: the environment cannot express a list).
    feeds: tuple[FeedSpec, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def entry_settings(self) -> EntrySettings:
        """The settings that decide what a seed file's bytes become."""
        return EntrySettings(
            max_article_bytes=self.max_article_bytes,
            summary_chars=self.summary_chars,
            legacy_encodings=self.legacy_encodings,
            sanitizer=self.sanitizer,
            max_entry_bytes=self.max_entry_bytes,
            max_seed_seconds=self.max_seed_seconds,
            strip_tracking=self.strip_tracking,
        )

    @property
    def cache_control(self) -> str:
        """The Cache-Control of every published document: public, max-age, and the shared caches'
        directives (RFC 9111 s-maxage, RFC 5861 stale-while-revalidate and stale-if-error), each left
        out when 0."""
        directives = [
            f"{name}={seconds}"
            for name, seconds in (
                ("s-maxage", self.cache_s_maxage),
                ("stale-while-revalidate", self.stale_while_revalidate),
                ("stale-if-error", self.stale_if_error),
            )
            if seconds
        ]
        return ", ".join(["public", f"max-age={self.cache_max_age}", *directives])

    @property
    def static_path(self) -> Path | None:
        """Where every publish also lays out the static tree (`feedsvc.publish.static`), or None."""
        return Path(self.static_dir) if self.static_dir else None

    @property
    def self_url(self) -> str:
        return self.base_url.rstrip("/") + "/feed.xml"

    @property
    def alternate_url(self) -> str:
        return self.site_url or self.base_url

    def describe(self, key: str) -> str:
        return self.sources.get(key, "default")


ENTRY_LINKS = ("origin", "page")
_FIELDS = {f.name: f for f in dataclasses.fields(Config) if f.name not in ("sources", "feeds")}
_TYPES = typing.get_type_hints(Config)
_CHOICES = {
    "watch": ("auto", "inotify", "polling", "off"),
    "log_level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "log_format": ("text", "json"),
    "sanitizer": ("bleach", "nh3"),
    "entry_link": ENTRY_LINKS,
}
_CASE = {"log_level": str.upper, "log_format": str.lower}
_MINIMUM = {
    "max_entries": 1,
    "max_article_bytes": 1024,
    "max_entry_bytes": 1024,
    "max_feed_bytes": 10_000,
    "summary_chars": 20,
    "cache_max_age": 0,
    "cache_s_maxage": 0,
    "stale_while_revalidate": 0,
    "stale_if_error": 0,
    "scan_interval": 0.5,
    "stall_seconds": 1.0,
    "debounce": 0.0,
    "debounce_max": 0.0,
    "port": 0,
    "workers": 1,
    "threads": 1,
    "archive_page_size": 1,
    "build_workers": 0,
    "max_seed_seconds": 0.1,
}
_MAXIMUM = {"max_seed_seconds": 3600.0}
_SECRETS = ("metrics_token",)  # never shown in an error message
# RFC 6750 §2.1: what `Authorization: Bearer <token>` can carry.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _coerce(key: str, value: Any, source: str) -> Any:
    """Turn a TOML value or an environment string into the field's type, or say why not."""
    kind = _TYPES[key]
    from_text = isinstance(value, str) and source.startswith("environment")

    def bad(expected: str) -> ConfigError:
        shown = "(hidden)" if key in _SECRETS else repr(value)
        return ConfigError(f"{key} (from {source}): expected {expected}, got {shown}")

    if kind is bool:
        if from_text and value.strip().lower() in _TRUE + _FALSE:
            value = value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if kind is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise bad("a path")
        return Path(value)
    if kind is int:
        if from_text:
            try:
                value = int(value.strip())
            except ValueError:
                raise bad("an integer") from None
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("an integer")
    elif kind is float:
        if from_text:
            try:
                value = float(value.strip())
            except ValueError:
                raise bad("a number") from None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise bad("a number")
        value = float(value)
    elif typing.get_origin(kind) is tuple:
        if from_text:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("a list of strings")
        value = tuple(value)
    elif kind is str and not isinstance(value, str):
        raise bad("a string")
    if key in _MINIMUM and value < _MINIMUM[key]:
        raise ConfigError(f"{key} (from {source}): must be at least {_MINIMUM[key]}, got {value!r}")
    if key in _MAXIMUM and value > _MAXIMUM[key]:
        raise ConfigError(f"{key} (from {source}): must be at most {_MAXIMUM[key]}, got {value!r}")
    if key in _CHOICES:
        value = _CASE.get(key, str)(value)
        if value not in _CHOICES[key]:
            raise ConfigError(f"{key} (from {source}): must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    return value


def _check_url(key: str, value: str, source: str) -> str:
    """An absolute http(s) URL, or ConfigError; an IRI comes back as its URI (`to_uri`), as it will be published."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise ConfigError(f"{key} (from {source}): expected an absolute http(s) URL, got {value!r}")
    return to_uri(value)


def _check_encodings(value: tuple[str, ...], source: str) -> None:
    import codecs

    for name in value:
        try:
            codecs.lookup(name)
        except LookupError:
            raise ConfigError(f"legacy_encodings (from {source}): unknown encoding {name!r}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path}: not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


FEED_KEYS = (
    "name",
    "title",
    "subtitle",
    "language",
    "folder",
    "include",
    "exclude",
    "max_entries",
    "convert",
    "image_proxy",
    "entry_link",
)


def _feed_string(where: str, table: Mapping[str, Any], key: str, source: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key} (from {source}): expected a string, got {value!r}")
    if any(ord(c) < 32 for c in value):
        raise ConfigError(f"{where}.{key} (from {source}): control characters are not allowed")
    return value


def _feed_name(where: str, name: str, seen: set[str], source: str) -> str:
    if not name:
        raise ConfigError(f"{where}.name (from {source}): every [[feeds]] table needs a name")
    if name in RESERVED:
        raise ConfigError(f"{where}.name (from {source}): {name!r} collides with the route /{name}")
    if not FEED_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name (from {source}): {name!r} must match [a-z0-9][a-z0-9-]* (the URL /{name}/)")
    if name in seen:
        raise ConfigError(f"{where}.name (from {source}): {name!r} names another feed too")
    seen.add(name)
    return name


def _feed_folder(where: str, folder: str, source: str) -> str:
    parts = [part for part in folder.replace("\\", "/").split("/") if part not in ("", ".")]
    if folder.startswith(("/", "\\")) or ".." in parts:
        raise ConfigError(f"{where}.folder (from {source}): expected a folder inside seeds_dir, got {folder!r}")
    return "/".join(parts)


def _feed_image_proxy(where: str, template: str, source: str) -> str:
    if not template:
        return ""
    if not any(p in template for p in PLACEHOLDERS):
        raise ConfigError(f"{where}.image_proxy (from {source}): needs {{url}} or {{url_noscheme}}, got {template!r}")
    example = proxied("https://example.org/a.jpg", template)
    checked = _check_url(f"{where}.image_proxy", example, source)
    if checked != example:
        raise ConfigError(f"{where}.image_proxy (from {source}): not a URI (percent-encode it), got {template!r}")
    return template


def _feed_entry_link(where: str, value: str, top: Config, source: str) -> str:
    if value and value not in ENTRY_LINKS:
        raise ConfigError(f"{where}.entry_link (from {source}): must be one of {', '.join(ENTRY_LINKS)}, got {value!r}")
    return value or top.entry_link


def _feed_pattern(where: str, key: str, pattern: str, source: str) -> str:
    try:
        compile_pattern(pattern)
    except PatternError as exc:
        raise ConfigError(f"{where}.{key} (from {source}): not an RE2 pattern: {exc}") from None
    return pattern


def _feed_convert(where: str, name: str, source: str) -> str:
    if not name:
        return ""
    import opencc  # only when a feed converts

    known = sorted(config.removesuffix(".json") for config in opencc.CONFIGS)
    if name.removesuffix(".json") not in known:
        raise ConfigError(f"{where}.convert (from {source}): unknown OpenCC conversion {name!r} ({', '.join(known)})")
    return name.removesuffix(".json")


def _feed(index: int, table: Any, top: Config, seen: set[str], source: str) -> FeedSpec:
    """One [[feeds]] table (counted from 1 in messages, as a person counts them)."""
    where = f"feeds[{index}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} (from {source}): expected a table ([[feeds]])")
    for key in table:
        if key not in FEED_KEYS:
            known = f"{did_you_mean(key, FEED_KEYS)} ({', '.join(FEED_KEYS)})"
            raise ConfigError(f"{where}.{key} (from {source}): unknown key of a feed{known}")
    text = {key: _feed_string(where, table, key, source) for key in FEED_KEYS if key != "max_entries"}
    name = _feed_name(where, text["name"], seen, source)
    max_entries = table.get("max_entries", top.max_entries)
    if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
        raise ConfigError(f"{where}.max_entries (from {source}): expected an integer, at least 1, got {max_entries!r}")
    if "title" in table and not text["title"].strip():
        raise ConfigError(f"{where}.title (from {source}): must not be empty")
    return FeedSpec(
        name=name,
        # Without a title of its own, one that tells it apart from the top-level feed in / and the OPML.
        title=text["title"] or f"{top.title} — {name}",
        subtitle=text["subtitle"] or top.subtitle,
        language=text["language"] or top.language,
        max_entries=max_entries,
        folder=_feed_folder(where, text["folder"], source),
        include=_feed_pattern(where, "include", text["include"], source),
        exclude=_feed_pattern(where, "exclude", text["exclude"], source),
        convert=_feed_convert(where, text["convert"], source),
        image_proxy=_feed_image_proxy(where, text["image_proxy"], source),
        entry_link=_feed_entry_link(where, text["entry_link"], top, source),
    )


def _feeds(tables: Any, top: Config, source: str) -> tuple[FeedSpec, ...]:
    if not isinstance(tables, list):
        raise ConfigError(f"feeds (from {source}): expected [[feeds]] tables")
    seen: set[str] = set()
    return tuple(_feed(i, table, top, seen, source) for i, table in enumerate(tables, 1))


def _checked(config: Config) -> Config:
    """The merged configuration, its URLs in URI form; a ConfigError for a value no layer could judge alone."""
    urls: dict[str, Any] = {
        key: _check_url(key, getattr(config, key), config.describe(key))
        for key in ("base_url", "site_url", "websub_hub")
        if key == "base_url" or getattr(config, key)
    }
    config = dataclasses.replace(config, **urls)
    _check_encodings(config.legacy_encodings, config.describe("legacy_encodings"))
    for key in ("title", "subtitle", "author", "language"):
        text = getattr(config, key)
        if any(ord(c) < 32 for c in text):
            raise ConfigError(f"{key} (from {config.describe(key)}): control characters are not allowed")
    if config.metrics_token and not _BEARER_TOKEN.fullmatch(config.metrics_token):
        raise ConfigError(
            f"metrics_token (from {config.describe('metrics_token')}): expected a bearer token "
            "(letters, digits and -._~+/, then any '=')"
        )
    if config.sanitizer == "nh3" and importlib.util.find_spec("nh3") is None:
        raise ConfigError(
            f"sanitizer (from {config.describe('sanitizer')}): nh3 is not installed; pip install nh3 "
            "(in a clone: pip install -e '.[nh3]')"
        )
    if config.static_dir and Path(config.static_dir).name in ("", ".", ".."):
        raise ConfigError(
            f"static_dir (from {config.describe('static_dir')}): must end in a folder name (it becomes a symlink), "
            f"got {config.static_dir!r}"
        )
    if not config.title.strip():
        raise ConfigError(f"title (from {config.describe('title')}): must not be empty")
    _check_deploy(config)
    return config


_DEPLOY_TARGET = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


def _check_deploy(config: Config) -> None:
    """deploy_to is an s3:// URL, and boto3 (the `deploy` extra) is there to reach it;
    deploy_invalidate is a command line."""
    if config.deploy_invalidate:
        import shlex

        try:
            parts = shlex.split(config.deploy_invalidate)
        except ValueError as exc:
            parts, why = [], f": {exc}"
        else:
            why = ""
        if not parts:
            where = f"deploy_invalidate (from {config.describe('deploy_invalidate')})"
            raise ConfigError(f"{where}: expected a command line{why}, got {config.deploy_invalidate!r}")
    if not config.deploy_to:
        return
    where = f"deploy_to (from {config.describe('deploy_to')})"
    if not _DEPLOY_TARGET.fullmatch(config.deploy_to):
        raise ConfigError(f"{where}: expected s3://bucket/prefix, got {config.deploy_to!r}")
    if importlib.util.find_spec("boto3") is None:
        raise ConfigError(f"{where}: boto3 is not installed; pip install 'feedsvc[deploy]'")


def load_config(
    file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge the layers. `file` None means $FEEDSVC_CONFIG, else config/feedsvc.toml when it exists."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(key: str, value: Any, source: str) -> None:
        if key not in _FIELDS:
            raise ConfigError(f"{key} (from {source}): unknown configuration key{did_you_mean(key, _FIELDS)}")
        values[key] = _coerce(key, value, source)
        sources[key] = source

    path: Path | None
    if file is not None:
        path = Path(file)
    elif env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
    else:
        path = DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    declared: Any = []
    if path is not None:
        for key, value in _read_toml(path).items():
            if key == "feeds":
                declared = value
                sources[key] = f"config file {path}"
                continue
            put(key, value, f"config file {path}")

    for name, value in env.items():
        if name == ENV_PREFIX + "FEEDS":
            raise ConfigError(f"feeds (from environment variable {name}): feeds are declared as [[feeds]] in a file")
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV:
            put(name[len(ENV_PREFIX) :].lower(), value, f"environment variable {name}")

    for key, value in (overrides or {}).items():
        if value is not None:
            put(key, value, f"option --{key.replace('_', '-')}")

    config = _checked(Config(**values, sources=sources))
    if declared:
        config = dataclasses.replace(config, feeds=_feeds(declared, config, config.describe("feeds")))
    if not config.article_pages and "page" in (config.entry_link, *(feed.entry_link for feed in config.feeds)):
        key = "entry_link" if config.entry_link == "page" else "feeds"
        raise ConfigError(
            f"{key} (from {config.describe(key)}): entry_link = \"page\" links to the entries' pages, "
            f"which article_pages (from {config.describe('article_pages')}) turns off: set article_pages = true"
        )
    return config
