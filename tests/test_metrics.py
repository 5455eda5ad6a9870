"""/metrics (Prometheus, read with prometheus_client's own parser) and JSON logs, against the real
components: gunicorn with 3 workers from the Procfile, `feedsvc serve`, `flask run`, the test client."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, SAMPLE, seed_text, write_seed
from live import BIN, feed_env, free_port, procfile_command, running, wait_for
from prometheus_client.parser import text_string_to_metric_families

from feedsvc.config import ConfigError, load_config
from feedsvc.host import create_app
from feedsvc.logs import JsonFormatter, gunicorn_logconfig
from feedsvc.model import BuildResult, Problem
from feedsvc.pipeline.builder import Builder
from feedsvc.web.metrics_endpoint import Metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
BUILD_FIELDS = ("entries", "files", "changed", "skipped", "duration_ms", "etag")


def parse(text: str | bytes) -> Samples:
    """Every sample of a scrape by (name, labels); each must appear once, and none per process."""
    text = text.decode() if isinstance(text, bytes) else text
    keys = [
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    repeated = [key for key, n in Counter((name, labels) for name, labels, _ in keys).items() if n > 1]
    assert not repeated, repeated
    assert not [key for key in keys if "pid" in dict(key[1])], "a per-process series"
    return {(name, labels): value for name, labels, value in keys}


def requests(samples: Samples, document: str, status: str) -> float:
    return samples.get(("feedsvc_http_requests_total", (("document", document), ("status", status))), 0.0)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def without_scrapes(samples: Samples) -> Samples:
    return {key: v for key, v in samples.items() if ("document", "metrics") not in key[1]}


def write_seeds(folder: Path, good: int) -> None:
    folder.mkdir(exist_ok=True)
    shutil.copy(SAMPLE, folder / SAMPLE.name)
    for i in range(good - 1):
        write_seed(folder, f"s{i}.txt", 1700000000000 + i, f"Story {i}", f"https://e.com/{i}", "<p>x</p>")
    (folder / "bad.txt").write_bytes(b"")  # reported and skipped


@pytest.mark.live
def test_three_gunicorn_workers_one_set_of_metrics(tmp_path: Path) -> None:
    seeds, out, tmp = tmp_path / "seeds", tmp_path / "out", tmp_path / "tmp"
    write_seeds(seeds, good=3)
    tmp.mkdir()
    port = free_port()
    # TMPDIR: the master makes its metrics folder there, where the test can watch it.
    env = feed_env(tmp_path, seeds, out, PORT=str(port), WEB_CONCURRENCY="3", TMPDIR=str(tmp))
    command = [str(BIN / "gunicorn"), *procfile_command("web")[1:], "--bind", f"127.0.0.1:{port}"]
    with running(command, env, port, tmp_path / "gunicorn.log") as srv:
        wait_for(lambda: srv.log().count("Booting worker with pid") >= 3, 20, what="3 workers")
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="first publish")
        (metrics_dir,) = tmp.glob("feedsvc-metrics-*")
        before = parse(srv.get("/metrics")[2])
        etag = srv.get("/feed.json")[1]["etag"]

        # Concurrent clients, so that every worker answers some; /healthz says which process did.
        def get(args: tuple[str, dict[str, str]]) -> tuple[int, dict[str, str], bytes]:
            return srv.get(args[0], headers=args[1])

        sent = [("/feed.rss", {"Accept-Encoding": "gzip"})] * 45
        sent += [("/feed.json", {"If-None-Match": etag})] * 30 + [("/archive/7.xml", {})] * 7
        pids: set[int] = set()
        healthz = 0
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(get, sent))
            while len(pids) < 3 and healthz < 600:  # until every worker has answered some
                pids |= {json.loads(body)["pid"] for _, _, body in pool.map(get, [("/healthz", {})] * 30)}
                healthz += 30
        assert Counter(status for status, _, _ in answers) == {200: 45, 304: 30, 404: 7}
        assert len(pids) >= 2, pids  # answered by several workers, counted as one

        scrapes = [parse(srv.get("/metrics")[2]) for _ in range(6)]  # each from whichever worker
        assert all(without_scrapes(s) == without_scrapes(scrapes[0]) for s in scrapes)
        after = scrapes[-1]
        for document, status, n in [("healthz", "200", healthz), ("feed.rss", "200", 45), ("feed.json", "304", 30),
                                    ("archive", "404", 7)]:
            assert requests(after, document, status) - requests(before, document, status) == n, document
        assert requests(after, "metrics", "200") >= 6

        # The builder's figures, once, with the right values.
        health = json.loads(srv.get("/healthz")[2])
        assert value(after, "feedsvc_entries", feed="feed.xml") == 3
        assert value(after, "feedsvc_seed_files") == 4 and value(after, "feedsvc_skipped_files") == 1
        assert value(after, "feedsvc_last_publish_timestamp_seconds") == datetime.fromisoformat(
            health["published_at"]).timestamp()
        builds = {r: after.get(("feedsvc_builds_total", (("result", r),)), 0) for r in ("published", "unchanged")}
        assert builds["published"] >= 1
        assert value(after, "feedsvc_build_duration_seconds_count") == sum(builds.values())
        assert value(after, "feedsvc_build_duration_seconds_bucket", le="+Inf") == sum(builds.values())
        assert value(after, "feedsvc_build_duration_seconds_sum") > 0

        # An edit: the new figures, from the same builder.
        (seeds / "new.txt").write_text(seed_text(1700000009000, "Fresh", "https://e.com/fresh", "<p>y</p>"))
        wait_for(lambda: value(parse(srv.get("/metrics")[2]), "feedsvc_entries", feed="feed.xml") == 4, 15,
                 what="the edit's figures")
        edited = parse(srv.get("/metrics")[2])
        assert value(edited, "feedsvc_seed_files") == 5
        assert edited[("feedsvc_builds_total", (("result", "published"),))] > builds["published"]

        # The builder dies: the master's child_exit drops its live gauges; the next builder's
        # figures replace them, and the dead worker's requests stay counted.
        leader = health["builder_pid"]
        dead_gauges = metrics_dir / f"gauge_livemostrecent_{leader}.db"
        assert dead_gauges.exists()
        os.kill(leader, signal.SIGKILL)
        wait_for(lambda: not dead_gauges.exists(), 10, what="child_exit's mark_process_dead")
        wait_for(lambda: ("feedsvc_entries", (("feed", "feed.xml"),)) in parse(srv.get("/metrics")[2]), 20,
                 what="the new builder's figures")
        taken_over = parse(srv.get("/metrics")[2])
        assert value(taken_over, "feedsvc_entries", feed="feed.xml") == 4
        assert value(taken_over, "feedsvc_seed_files") == 5
        assert requests(taken_over, "feed.rss", "200") == requests(after, "feed.rss", "200")
        assert json.loads(srv.get("/healthz")[2])["builder_pid"] != leader
    assert not list(tmp.glob("feedsvc-metrics-*")), "the master removes the folder it made"


@pytest.mark.live
def test_a_given_multiprocess_dir_is_wiped_between_runs(tmp_path: Path, seeds: Path) -> None:
    given = tmp_path / "prom"
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(given))
    for run in range(2):
        port = free_port()
        command = [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)]
        with running(command, env, port, tmp_path / f"serve-{run}.log") as srv:
            wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="the feed")
            for _ in range(5):
                assert srv.get("/feed.rss")[0] == 200
            assert requests(parse(srv.get("/metrics")[2]), "feed.rss", "200") == 5  # this run's only
        assert list(given.glob("counter_*.db")), "a given folder is the operator's: it stays"


@pytest.mark.live
def test_one_process_flask_run(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out")
    command = [sys.executable, "-m", "flask", "--app", "feedsvc.host", "run", "--port", str(port)]
    with running(command, env, port, tmp_path / "flask.log") as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="the feed")
        for _ in range(4):
            srv.get("/feed.xml")
        srv.get("/feed.xml", headers={"If-None-Match": srv.get("/feed.xml")[1]["etag"]})
        before = parse(srv.get("/metrics")[2])
        for _ in range(3):
            srv.get("/feed.rss")
        srv.get("/no/such/path")
        samples = parse(srv.get("/metrics")[2])
        assert requests(samples, "feed.xml", "200") >= 6 and requests(samples, "feed.xml", "304") == 1
        assert requests(samples, "feed.rss", "200") - requests(before, "feed.rss", "200") == 3
        assert requests(samples, "other", "404") - requests(before, "other", "404") == 1
        assert requests(samples, "metrics", "200") - requests(before, "metrics", "200") == 1
        assert value(samples, "feedsvc_entries", feed="feed.xml") == 1
        assert value(samples, "feedsvc_seed_files") == 1 and value(samples, "feedsvc_skipped_files") == 0
        assert value(samples, "feedsvc_builds_total", result="published") == 1
        assert value(samples, "feedsvc_build_duration_seconds_count") >= 1


@pytest.mark.live
def test_json_logs_of_a_serve_session(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", FEEDSVC_LOG_FORMAT="json")
    log_path = tmp_path / "serve.log"
    command = [sys.executable, "-m", "feedsvc", "serve", "--port", str(port)]
    with running(command, env, port, log_path) as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="the feed")
        (seeds / "bad.txt").write_bytes(b"\x00\x01")  # a warning: skipped, with the file and the reason
        (seeds / "new.txt").write_text(seed_text(1700000009000, "Fresh", "https://e.com/fresh", "<p>y</p>"))
        wait_for(lambda: b"Fresh" in srv.get("/feed.xml")[2], 15, what="the second build")
        wait_for(lambda: '"entries": 2' in srv.log(), 10, what="its build line")
        for path in ("/feed.rss", "/healthz", "/nope"):
            srv.get(path)
    assert srv.proc.returncode == 0
    lines = log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line, the master's and the workers' alike
    assert records and all({"time", "level", "logger", "message", "pid"} <= set(r) for r in records)
    assert all(datetime.fromisoformat(r["time"]).tzinfo is not None for r in records)
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "feedsvc.build", "feedsvc.leader"} <= loggers, loggers
    assert any(r["message"].startswith("Booting worker") for r in records)
    assert any(r["message"] == "Shutting down: Master" for r in records)
    builds = [r for r in records if r["message"].startswith("build: ")]
    assert [(b["entries"], b["files"], b["skipped"], b["result"]) for b in builds[:1]] == [(1, 1, 0, "published")]
    last = builds[-1]
    assert (last["entries"], last["files"], last["skipped"]) == (2, 3, 1)
    assert all(set(BUILD_FIELDS) <= set(b) and isinstance(b["duration_ms"], float) for b in builds)
    assert last["etag"] == srv_etag(tmp_path / "out")
    assert any(r["level"] == "WARNING" and "bad.txt" in r["message"] for r in records)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL") or "exception" in r]


def srv_etag(out: Path) -> str:
    return json.loads((out / "manifest.json").read_text())["documents"]["feed.xml"]["etag"]


@pytest.fixture
def published(tmp_path: Path, config):
    write_seeds(tmp_path / "seeds", good=1)
    cfg = config()
    assert Builder(cfg).build().published
    return cfg


STRANGER = {"REMOTE_ADDR": "203.0.113.9"}


def test_access_loopback_token_and_off(published, config) -> None:
    client = create_app(published, run_builder=False).test_client()
    response = client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.8.9.10"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"}).status_code == 200
    refused = client.get("/metrics", environ_base=STRANGER)
    assert refused.status_code == 403 and b"feedsvc_" not in refused.data
    assert client.get("/metrics", environ_base=STRANGER, headers={"Authorization": "Bearer x"}).status_code == 403
    # Forwarded by a proxy on this host: loopback says nothing about the client, and the header
    # never grants anything.
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403
    assert client.get("/metrics", environ_base=STRANGER, headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 403

    with_token = create_app(config(metrics_token="s3cret-Token_1="), run_builder=False).test_client()
    assert with_token.get("/metrics", environ_base=STRANGER).status_code == 403
    for wrong in ("Bearer s3cret", "Bearer s3cret-Token_1=x", "Basic s3cret-Token_1=", "s3cret-Token_1="):
        assert with_token.get("/metrics", environ_base=STRANGER, headers={"Authorization": wrong}).status_code == 403
    for right in ("Bearer s3cret-Token_1=", "bearer s3cret-Token_1="):
        answer = with_token.get("/metrics", environ_base=STRANGER, headers={"Authorization": right})
        assert answer.status_code == 200 and b"feedsvc_http_requests_total" in answer.data
    assert with_token.get("/metrics").status_code == 200  # loopback needs no token

    off = create_app(config(metrics=False), run_builder=False)
    assert {rule.rule for rule in off.url_map.iter_rules()} == {"/healthz"}
    client_off = off.test_client()
    assert client_off.get("/metrics").status_code == 404
    assert client_off.get("/feed.xml").status_code == 200


def test_test_client_counts_every_answer(published) -> None:
    client = create_app(published, run_builder=False).test_client()
    before = parse(client.get("/metrics").data)  # one process: counts are this process's, so deltas
    etag = client.get("/feed.xml").headers["ETag"]
    client.get("/feed.xml", headers={"If-None-Match": etag})
    client.head("/feed.rss")
    client.post("/feed.xml")
    client.get("/archive/3.xml")
    client.get("/healthz")
    client.get("/wp-login.php")
    client.get("/x/../feed.xml")
    client.get("/metrics", environ_base=STRANGER)
    client.post("/healthz", data=b"x" * 20000)  # refused in front of Flask, before routing
    after = parse(client.get("/metrics").data)
    expected = {("feed.xml", "200"): 1, ("feed.xml", "304"): 1, ("feed.rss", "200"): 1, ("feed.xml", "405"): 1,
                ("archive", "404"): 1, ("healthz", "200"): 1, ("other", "404"): 2, ("metrics", "403"): 1,
                ("other", "413"): 1, ("metrics", "200"): 1}
    counted = {(dict(labels)["document"], dict(labels)["status"]): v - before.get((name, labels), 0)
               for (name, labels), v in after.items() if name == "feedsvc_http_requests_total"}
    assert {key: n for key, n in counted.items() if n} == expected


def test_build_figures_follow_builds_of_record() -> None:
    metrics = Metrics(None)
    ok = BuildResult(ok=True, published=True, files=4, entries=3, skipped=[Problem("seeds/x.txt", "empty file")],
                     duration=0.2)
    metrics.observe_build(ok, "2026-01-02T03:04:05+00:00")
    metrics.observe_build(BuildResult(ok=True, waiting=True, duration=0.01), None)  # waited: not a build
    metrics.observe_build(BuildResult(ok=False, error="seeds gone", duration=0.001), "2026-01-02T03:04:05+00:00")
    metrics.observe_build(BuildResult(ok=True, files=4, entries=3, duration=0.004), "2026-01-02T03:04:05+00:00")
    samples = parse(metrics.exposition())
    assert value(samples, "feedsvc_builds_total", result="published") == 1
    assert value(samples, "feedsvc_builds_total", result="failed") == 1
    assert value(samples, "feedsvc_builds_total", result="unchanged") == 1
    assert value(samples, "feedsvc_build_duration_seconds_count") == 3
    assert value(samples, "feedsvc_build_duration_seconds_bucket", le="0.005") == 2
    assert value(samples, "feedsvc_entries", feed="feed.xml") == 3
    assert value(samples, "feedsvc_seed_files") == 4
    assert value(samples, "feedsvc_skipped_files") == 0  # the last good build's
    assert value(samples, "feedsvc_last_publish_timestamp_seconds") == 1767323045.0
    assert not [name for name, _ in samples if name.endswith("_created")]


def test_a_process_that_never_built_shows_no_build_figures() -> None:
    metrics = Metrics(None)
    metrics.count("feed.xml", "200")
    metrics.count("feed.xml", "200")
    assert parse(metrics.exposition()) == {
        ("feedsvc_http_requests_total", (("document", "feed.xml"), ("status", "200"))): 2.0
    }  # no zero-valued builder gauges from a worker that does not build


def test_json_formatter_one_line_with_fields_and_exception() -> None:
    logger = logging.getLogger("feedsvc.test")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        logger.warning("skipped %s: %s", "seeds/ä.txt", "no title line", extra={"entries": 2, "etag": '"a"'})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            logger.exception("build job failed")
    finally:
        logger.removeHandler(handler)
    lines = [JsonFormatter().format(r) for r in records]
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert (first["level"], first["logger"], first["message"]) == ("WARNING", "feedsvc.test",
                                                                  "skipped seeds/ä.txt: no title line")
    assert (first["entries"], first["etag"], first["pid"]) == (2, '"a"', os.getpid())
    assert "exception" not in first and "args" not in first and "msg" not in first
    assert second["level"] == "ERROR" and "ValueError: bad\nthing" in second["exception"]
    assert "Traceback (most recent call last)" in second["exception"]


def test_gunicorn_logconfig_routes_its_loggers() -> None:
    quiet = gunicorn_logconfig("info", None)
    assert quiet["loggers"]["gunicorn.error"] == {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    assert quiet["loggers"]["gunicorn.access"]["handlers"] == []  # no access log asked for: none
    assert quiet["root"]["handlers"] == ["stderr"] and quiet["formatters"]["json"]["()"] is JsonFormatter
    to_stdout = gunicorn_logconfig("debug", "-")
    assert to_stdout["handlers"]["access"]["stream"] == "ext://sys.stdout"
    assert to_stdout["loggers"]["gunicorn.access"] == {"level": "INFO", "handlers": ["access"], "propagate": False}
    assert gunicorn_logconfig("info", "/var/log/a.log")["handlers"]["access"]["filename"] == "/var/log/a.log"


@pytest.mark.live
def test_gunicorn_access_log_lines_are_json(tmp_path: Path, seeds: Path) -> None:
    port = free_port()
    env = feed_env(tmp_path, seeds, tmp_path / "out", PORT=str(port), WEB_CONCURRENCY="1",
                   GUNICORN_ACCESSLOG="-", FEEDSVC_LOG_FORMAT="json")
    command = [str(BIN / "gunicorn"), *procfile_command("web")[1:], "--bind", f"127.0.0.1:{port}"]
    log_path = tmp_path / "gunicorn.log"
    with running(command, env, port, log_path) as srv:
        wait_for(lambda: srv.get("/feed.xml")[0] == 200, 20, what="the feed")
        wait_for(lambda: '"logger": "gunicorn.access"' in srv.log(), 10, what="the access line")
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    access = [r["message"] for r in records if r["logger"] == "gunicorn.access"]
    assert any('"GET /feed.xml HTTP/1.1" 200' in message for message in access), access


def test_config_keys() -> None:
    config = load_config(None, env={"FEEDSVC_CONFIG": str(REPO / "config" / "feedsvc.toml")})
    assert (config.metrics, config.metrics_token, config.log_format) == (True, "", "text")
    config = load_config(None, env={"FEEDSVC_CONFIG": str(REPO / "config" / "feedsvc.toml"), "FEEDSVC_METRICS": "off",
                                    "FEEDSVC_METRICS_TOKEN": "abc.DEF-1~+/==", "FEEDSVC_LOG_FORMAT": "JSON"})
    assert (config.metrics, config.metrics_token, config.log_format) == (False, "abc.DEF-1~+/==", "json")
    assert "abc.DEF" not in repr(config)
    for bad in ("two words", "tab\tinside", "ünïcode", "=leading"):
        with pytest.raises(ConfigError, match=r"metrics_token \(from environment variable .*bearer token") as err:
            load_config(None, env={"FEEDSVC_CONFIG": str(REPO / "config" / "feedsvc.toml"),
                                   "FEEDSVC_METRICS_TOKEN": bad})
        assert bad not in str(err.value)  # a secret is never echoed
    with pytest.raises(ConfigError, match=r"log_format .*must be one of text, json"):
        load_config(None, env={"FEEDSVC_CONFIG": str(REPO / "config" / "feedsvc.toml"), "FEEDSVC_LOG_FORMAT": "xml"})


@pytest.mark.live
def test_no_prometheus_client_in_a_gunicorn_master_before_it_starts() -> None:
    """prometheus_client picks its multiprocess mode when first imported: a master that imported it
    before its on_starting hook set PROMETHEUS_MULTIPROC_DIR would hand every worker a private
    registry. What the master imports (the CLI, the gunicorn config file) must not import it."""
    code = ("import runpy, sys; import feedsvc.cli, feedsvc.web.server; runpy.run_path('config/gunicorn.conf.py'); "
            "print('prometheus_client' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_each_declared_feed_has_its_entries_gauge() -> None:
    """feedsvc_entries{feed}: the top-level feed as feed.xml, a declared feed as <name>/feed.xml."""
    from prometheus_client.parser import text_string_to_metric_families

    from feedsvc.model import BuildResult
    from feedsvc.web.metrics_endpoint import Metrics

    metrics = Metrics(None)
    metrics.observe_build(BuildResult(ok=True, published=True, entries=7, feeds={"world": 3, "sport": 0}), None)
    text = metrics.exposition().decode()
    entries = {s.labels["feed"]: s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == "feedsvc_entries"}
    assert entries == {"feed.xml": 7, "world/feed.xml": 3, "sport/feed.xml": 0}
