from __future__ import annotations

from pathlib import Path

import pytest

from feedsvc.config import ConfigError, load_config

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "feedsvc.toml"


def test_repo_default_config_loads() -> None:
    config = load_config(REPO_CONFIG, env={})
    assert config.seeds_dir == Path("seeds") and config.max_entries == 50
    assert config.language == "zh-Hant"
    assert config.self_url == "http://127.0.0.1:8000/feed.xml"


def test_precedence_file_env_flags(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('title = "from file"\nmax_entries = 10\nbase_url = "https://a.example/"\n')
    config = load_config(file, env={"FEEDSVC_MAX_ENTRIES": "20", "FEEDSVC_TITLE": "from env"},
                         overrides={"max_entries": 30})
    assert (config.title, config.max_entries, config.base_url) == ("from env", 30, "https://a.example/")
    assert config.describe("max_entries") == "option --max-entries"
    assert config.describe("title") == "environment variable FEEDSVC_TITLE"
    assert config.describe("base_url") == f"config file {file}"


def test_feedsvc_config_points_at_another_file(tmp_path: Path) -> None:
    file = tmp_path / "other.toml"
    file.write_text('title = "other"\n')
    assert load_config(None, env={"FEEDSVC_CONFIG": str(file)}).title == "other"


def test_env_lists_and_floats() -> None:
    config = load_config(None, env={
        "FEEDSVC_CONFIG": str(REPO_CONFIG), "FEEDSVC_LEGACY_ENCODINGS": "gb18030, big5", "FEEDSVC_DEBOUNCE": "0.5"})
    assert config.legacy_encodings == ("gb18030", "big5") and config.debounce == 0.5


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("colour = 'red'\n", {}, r"colour \(from config file .*\): unknown configuration key"),
        ("max_entries = 'ten'\n", {}, r"max_entries \(from config file .*\): expected an integer"),
        ("max_entries = 0\n", {}, r"max_entries .*at least 1"),
        ("base_url = 'not a url'\n", {}, r"base_url \(from config file .*\): expected an absolute http\(s\) URL"),
        ("base_url = 'ftp://x.org/'\n", {}, r"base_url .*http\(s\)"),
        ("watch = 'sometimes'\n", {}, r"watch .*must be one of"),
        ("legacy_encodings = ['klingon']\n", {}, r"legacy_encodings .*unknown encoding 'klingon'"),
        ("", {"FEEDSVC_MAX_ENTRIES": "many"}, r"max_entries \(from environment variable FEEDSVC_MAX_ENTRIES\)"),
        ("", {"FEEDSVC_BOGUS": "1"}, r"bogus \(from environment variable FEEDSVC_BOGUS\): unknown"),
        ("title = [1, 2]\n", {}, r"title .*expected a string"),
        ("this is = not toml\n", {}, r"config file .*"),
    ],
)
def test_errors_name_the_key_and_the_source(tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(file, env=env)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_reader_keys_stylesheet_archive_and_websub(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={})
    assert (config.stylesheet, config.archive_page_size, config.websub_hub) == (True, 50, "")
    env = {"FEEDSVC_STYLESHEET": "off", "FEEDSVC_ARCHIVE_PAGE_SIZE": "7", "FEEDSVC_WEBSUB_HUB": "https://hub.example/"}
    config = load_config(empty, env=env)
    assert (config.stylesheet, config.archive_page_size, config.websub_hub) == (False, 7, "https://hub.example/")
    toml = tmp_path / "c.toml"
    toml.write_text('stylesheet = "no"\n')
    with pytest.raises(ConfigError, match=r"stylesheet \(from config file .*\): expected true or false"):
        load_config(toml, env={})
    for key, value, message in (("FEEDSVC_ARCHIVE_PAGE_SIZE", "0", "must be at least 1"),
                                ("FEEDSVC_WEBSUB_HUB", "hub.example", "expected an absolute http")):
        with pytest.raises(ConfigError, match=message):
            load_config(empty, env={key: value})


def test_cache_control_keys(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(empty, env={})
    assert (config.cache_s_maxage, config.stale_while_revalidate, config.stale_if_error) == (0, 60, 86400)
    assert config.cache_control == "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"
    env = {"FEEDSVC_CACHE_S_MAXAGE": "600", "FEEDSVC_STALE_WHILE_REVALIDATE": "0", "FEEDSVC_CACHE_MAX_AGE": "30"}
    config = load_config(empty, env=env)
    assert config.cache_control == "public, max-age=30, s-maxage=600, stale-if-error=86400"
    toml = tmp_path / "c.toml"
    toml.write_text("stale_if_error = 0\nstale_while_revalidate = 0\n")
    assert load_config(toml, env={}).cache_control == "public, max-age=300"
    for key in ("CACHE_S_MAXAGE", "STALE_WHILE_REVALIDATE", "STALE_IF_ERROR"):
        message = rf"{key.lower()} \(from environment variable FEEDSVC_{key}\): must be at least 0"
        with pytest.raises(ConfigError, match=message):
            load_config(empty, env={f"FEEDSVC_{key}": "-1"})


def test_defaults_are_declared_once() -> None:
    """The configuration, the cache's settings and the feeds' metadata take their defaults from
    feedsvc.model's DEFAULT_* constants: a default changed there is changed everywhere (issue 20)."""
    from feedsvc import model
    from feedsvc.config import Config
    from feedsvc.model import EntrySettings, FeedMeta

    config, settings = Config(), EntrySettings()
    meta = FeedMeta(id="i", title="t", self_url="s", alternate_url="a")
    assert config.language == meta.language == model.DEFAULT_LANGUAGE
    for key in ("max_article_bytes", "max_entry_bytes", "summary_chars", "legacy_encodings", "sanitizer"):
        assert getattr(config, key) == getattr(settings, key) == getattr(model, "DEFAULT_" + key.upper()), key
    assert config.entry_settings == settings


def test_an_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("max_entires = 5\n")
    with pytest.raises(ConfigError, match=r"max_entires \(from config file .*\): unknown configuration key: "
                                          r"did you mean max_entries\?"):
        load_config(toml, env={})
    toml.write_text("")
    with pytest.raises(ConfigError, match=r"SUMARY_CHARS\): unknown configuration key: did you mean summary_chars"):
        load_config(toml, env={"FEEDSVC_SUMARY_CHARS": "3"})
    toml.write_text('[[feeds]]\nname = "a"\nfolders = "x"\n')
    with pytest.raises(ConfigError, match=r"feeds\[1\]\.folders .*unknown key of a feed: did you mean folder\?"):
        load_config(toml, env={})


def test_entry_link_page_needs_the_pages(tmp_path) -> None:
    """entry_link = "page" with article_pages off would link readers into 404s: a clear error instead."""
    from feedsvc.config import ConfigError, load_config

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="set article_pages = true"):
        load_config(empty, env={"FEEDSVC_ENTRY_LINK": "page", "FEEDSVC_ARTICLE_PAGES": "false"})
    assert load_config(empty, env={"FEEDSVC_ENTRY_LINK": "page"}).article_pages  # pages are on by default
