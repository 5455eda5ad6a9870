"""The deploy plan without a bucket: targets, stages, what a listing and the records decide, and the
configuration's errors (tests/test_deploy.py runs the real thing against SeaweedFS)."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

from feedsvc.config import ConfigError, load_config
from feedsvc.publish.deploy import DeployError, Target, Upload, make_client, make_plan, parse_target, stage_of


def test_a_target_is_a_bucket_and_a_prefix() -> None:
    assert parse_target("s3://my-bucket") == Target("my-bucket", "")
    assert parse_target("s3://my-bucket/") == Target("my-bucket", "")
    assert parse_target("s3://my-bucket/a/feed/") == Target("my-bucket", "a/feed/")
    assert str(parse_target("s3://my-bucket/feed")) == "s3://my-bucket/feed/"
    for bad in ("https://my-bucket/feed", "s3://", "s3://UPPER/x", "my-bucket/feed"):
        with pytest.raises(ValueError, match="s3://bucket/prefix"):
            parse_target(bad)


def test_pages_go_first_then_the_feeds_then_what_links_to_the_feeds() -> None:
    site = {"feed.xml", "world/feed.xml"}
    stages = {n: stage_of(n, site) for n in ("archive/202401001.xml", "feed.xsl", "world/archive/202401001.xml")}
    assert set(stages.values()) == {0}
    assert [stage_of(n, site) for n in ("feed.xml", "feed.rss", "feed.json", "world/feed.xml")] == [1, 1, 1, 1]
    assert [stage_of(n, site) for n in ("index.html", "world/index.html", "feeds.opml")] == [2, 2, 2]
    # Article pages (to come) are pages, whatever they are called.
    for page in ("articles/2024/hello.html", "hello/index.html", "a/b/index.html", "hello/feed.json"):
        assert stage_of(page, site) == 0, page


def upload(name: str, obj: str) -> Upload:
    return Upload(name, name, obj, {"ContentType": "text/html", "CacheControl": "public"}, stage_of(name, {"feed.xml"}))


def test_the_plan_uploads_what_differs_asks_only_about_the_unknown_and_deletes_what_is_gone() -> None:
    want = {
        u.key: u
        for u in (
            upload("feed.xml", "a"),
            upload("archive/1.xml", "b"),
            upload("index.html", "c"),
            upload("archive/2.xml", "d"),
            upload("archive/0.xml", "e"),
        )
    }
    listed = {
        "feed.xml": '"e1"',
        "archive/1.xml": '"e2"',
        "index.html": '"e3"',
        "old.xml": '"e4"',
        "archive/0.xml": '"e5"',
    }
    recorded = {
        "feed.xml": ('"e1"', want["feed.xml"].fingerprint),  # the same: left alone
        "archive/1.xml": ('"e0"', want["archive/1.xml"].fingerprint),
    }  # another ETag: asked
    asked: list[str] = []

    def head(key: str) -> str:
        asked.append(key)
        return want[key].fingerprint if key == "archive/1.xml" else "other"  # archive/0.xml changed

    plan = make_plan(want, listed, recorded, head)
    assert sorted(asked) == ["archive/0.xml", "archive/1.xml", "index.html"]
    stages = [[u.name for u in stage] for stage in plan.stages]
    assert stages == [["archive/2.xml"], ["archive/0.xml"], [], ["index.html"]]
    assert plan.delete == ["old.xml"] and plan.unchanged == 2


def test_deploy_to_is_checked_when_the_configuration_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, env={}).deploy_to == ""
    assert load_config(empty, env={"FEEDSVC_DEPLOY_TO": "s3://b-1/x", "FEEDSVC_DEPLOY_GZIP": "true"}).deploy_gzip
    with pytest.raises(ConfigError, match=r"deploy_to \(from environment variable FEEDSVC_DEPLOY_TO\): expected s3://"):
        load_config(empty, env={"FEEDSVC_DEPLOY_TO": "https://example.org/"})
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if not installed
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else object())
    with pytest.raises(ConfigError, match=r"boto3 is not installed; pip install 'feedsvc\[deploy\]'"):
        load_config(empty, env={"FEEDSVC_DEPLOY_TO": "s3://b-1/x"})
    with pytest.raises(DeployError, match=r"^deploy: boto3 is not installed; pip install 'feedsvc\[deploy\]'$"):
        make_client()


def test_the_deployer_retries_with_backoff_warns_once_and_healthz_shows_no_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from feedsvc.publish.deploy import Outcome, read_status
    from feedsvc.service.deployer import Deployer

    empty = tmp_path / "empty.toml"
    empty.write_text("")
    config = load_config(
        empty,
        env={},
        overrides={"output_dir": str(tmp_path / "out"), "metrics": False, "deploy_to": "s3://my-bucket/feed"},
    )
    config.output_dir.mkdir()
    calls: list[float] = []
    seen: list[dict[str, object] | None] = []

    def failing_then_ok(target: Target) -> Outcome:
        calls.append(time.monotonic())
        seen.append(read_status(config.output_dir))
        if len(calls) < 4:
            raise DeployError(f"deploy to {target}: Unable to parse config file: /root/.aws/config")
        return Outcome(str(target), uploaded=2)

    deployer = Deployer(config, run=failing_then_ok, backoff=0.05, backoff_max=0.2)
    with caplog.at_level("INFO", logger="feedsvc.deploy"):
        deployer.start()
        deployer.on_publish()
        try:
            deadline = time.monotonic() + 10
            while deployer.deploys < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert deployer.deploys == 1 and deployer.failures == 3
        finally:
            deployer.stop()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1, "doubling backoff"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "deploy to s3://my-bucket/feed/: Unable to parse config file: /root/.aws/config; "
        "retrying with backoff (the bucket keeps the last good feeds)"
    ]
    assert any("works again" in r.getMessage() for r in caplog.records)
    failing = seen[1]
    assert failing is not None and failing["state"] == "failing" and failing["target"] == "s3://my-bucket/feed/"
    assert failing["error"] == "deploy to s3://my-bucket/feed/: Unable to parse config file: (path)"
    status = read_status(config.output_dir)
    assert status is not None and status["state"] == "ok" and status["uploaded"] == 2
