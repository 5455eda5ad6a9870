"""The `feedsvc` command: build, check, serve, watch, deploy."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from feedsvc import __version__
from feedsvc.config import Config, ConfigError, load_config, path_for_log
from feedsvc.logs import configure_logging
from feedsvc.pipeline.reporting import DuplicateUrl, duplicate_urls, plural
from feedsvc.pipeline.seeds import SeedsDirError, read_limit, read_seed, scan_seeds


def _progress_bar(stream: Any) -> Any:
    """A one-line progress bar for terminals; nothing when output is a pipe or a log."""
    if not stream.isatty():
        return None

    def show(done: int, total: int) -> None:
        if total < 200:
            return
        width = 30
        filled = width * done // total
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def _config(args: argparse.Namespace) -> Config:
    overrides = {
        "seeds_dir": getattr(args, "seeds", None),
        "output_dir": getattr(args, "out", None),
        "static_dir": getattr(args, "static", None),
        "max_entries": getattr(args, "max_entries", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    return load_config(args.config, overrides=overrides)


def cmd_build(args: argparse.Namespace) -> int:
    from feedsvc.pipeline.builder import Builder

    config = _config(args)
    if unusable := _unusable_static(config):
        print(f"feedsvc build: {unusable}", file=sys.stderr)
        return 2
    # Only what this command does not print itself: a failed build is the one `feedsvc build:` line.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    builder = Builder(config)
    try:
        result = builder.build(progress=_progress_bar(sys.stderr))
    finally:
        builder.close()  # the cache file is whole, no write-ahead log left beside it
    if not result.ok:
        print(f"feedsvc build: {result.error}", file=sys.stderr)
        return 2
    state = "published" if result.published else "unchanged (nothing rewritten)"
    counted = f"{plural(result.entries, 'entry', 'entries')} from {plural(result.files, 'file')}"
    print(f"{counted} -> {config.output_dir / 'feed.xml'}: {state}")
    for name, entries in result.feeds.items():
        print(f"feed {name}: {plural(entries, 'entry', 'entries')} -> {config.output_dir / name / 'feed.xml'}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    if config.static_path is not None:
        print(f"static tree -> {config.static_path} ({os.readlink(config.static_path)})")
    if getattr(args, "deploy", False) and (failed := _deploy(config, config.deploy_to)):
        return failed
    for skipped in result.skipped:  # the console names files in full; /healthz relative to seeds/
        print(f"skipped {config.seeds_dir / skipped.source}: {skipped.reason}")
    for found in result.problems:
        print(f"problem {config.seeds_dir / found.source}: {found.reason}")
    for note in result.notes:
        if isinstance(note, DuplicateUrl):  # dropped from the feed: the other notes are `feedsvc check`'s
            print(f"note {config.seeds_dir / note.source}: {note.reason}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """`path: reason` per problem a user must fix (exit 1 if any), `path: note: …` per note."""
    from feedsvc.core.outcome import process_file

    config = _config(args)
    problems = notes = 0
    files = scan_seeds(config.seeds_dir)
    limit = read_limit(config.max_article_bytes)
    now = datetime.now(UTC)
    articles: list[tuple[str, str, tuple[Any, ...]]] = []  # (file, dedup key, order), for duplicate URLs
    for seed in files:
        shown = config.seeds_dir / seed.rel
        try:
            data = read_seed(seed, limit)
        except OSError as exc:
            print(f"{shown}: cannot read: {exc.strerror or exc}")
            problems += 1
            continue
        outcome = process_file(data, seed, config.entry_settings, limit, now)
        for reason in ([outcome.problem] if outcome.problem else []) + list(outcome.problems):
            print(f"{shown}: {reason}")
            problems += 1
        for note in outcome.notes:
            print(f"{shown}: note: {note}")
            notes += 1
        if (entry := outcome.entry) is not None:  # ordered as a Record is (model.Record.order)
            order = (entry.updated, entry.published or entry.updated, entry.id, seed.rel)
            articles.append((seed.rel, entry.dedup_key, order))
    for duplicate in duplicate_urls(articles):
        print(f"{config.seeds_dir / duplicate.source}: note: {duplicate.reason}")
        notes += 1
    print(f"{plural(len(files), 'file')} checked, {problems} problem(s), {notes} note(s)", file=sys.stderr)
    return 1 if problems else 0


def _unusable_output(config: Config) -> str | None:
    """Why `serve` and `watch` cannot use the output directory (create it, write in it), or None.

    Said once at start-up, rather than as a traceback from every process that would build.
    """
    out = config.output_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"output directory {path_for_log(out)} is not a directory"
    except OSError as exc:
        return f"output directory {path_for_log(out)}: {exc.strerror or exc}"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"output directory {path_for_log(out)} is not writable"
    return _unusable_static(config)


def _unusable_static(config: Config) -> str | None:
    """Why the static folder is not one feedsvc may replace (a plain directory there), or None."""
    from feedsvc.publish.static import StaticDirError, current_version

    if config.static_path is None:
        return None
    try:
        current_version(config.static_path)
    except StaticDirError as exc:
        return str(exc)
    return None


def cmd_serve(args: argparse.Namespace) -> int:
    from feedsvc.host import create_app
    from feedsvc.web.server import AddressError, serve

    config = _config(args)
    if problem := _unusable_output(config):
        print(f"feedsvc serve: {problem}", file=sys.stderr)
        return 2
    configure_logging(config)
    try:
        # Each gunicorn worker makes its app; the elected one builds in a child process.
        return serve(config, functools.partial(create_app, config, builder_in_child=True))
    except AddressError as exc:
        print(f"feedsvc serve: {exc}", file=sys.stderr)
        return 2


def cmd_watch(args: argparse.Namespace) -> int:
    from feedsvc.host import run_builder

    config = _config(args)
    if problem := _unusable_output(config):
        print(f"feedsvc watch: {problem}", file=sys.stderr)
        return 2
    configure_logging(config)
    return run_builder(config)


def _deploy(config: Config, where: str) -> int:
    """Deploy the output folder's current publish to `where`: one line either way; 2 on failure."""
    from urllib.parse import urlsplit

    from feedsvc.publish.deploy import DeployError, deploy, invalidate, make_client, parse_target

    if not where:
        print("feedsvc deploy: no target: give s3://bucket/prefix or set deploy_to", file=sys.stderr)
        return 2
    try:
        target = parse_target(where)
        outcome = deploy(config.output_dir, target, config.cache_control, config.deploy_gzip, make_client())
    except ValueError as exc:
        print(f"feedsvc deploy: {exc}", file=sys.stderr)
        return 2
    except DeployError as exc:
        print(f"feedsvc {exc}" if str(exc).startswith("deploy") else f"feedsvc deploy: {exc}", file=sys.stderr)
        return 2
    print(
        f"deployed to {target}: {outcome.uploaded} uploaded, {outcome.deleted} deleted, "
        f"{outcome.unchanged} unchanged ({outcome.requests} requests)"
    )
    if config.deploy_invalidate and (outcome.uploaded or outcome.deleted):
        failed = invalidate(config.deploy_invalidate, outcome.changed_paths(target, urlsplit(config.base_url).path))
        if failed:
            print(f"feedsvc deploy: {failed}", file=sys.stderr)
            return 1
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    config = _config(args)
    return _deploy(config, args.target or config.deploy_to)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feedsvc", description="A folder of article files in, an Atom feed out.")
    parser.add_argument("--version", action="version", version=f"feedsvc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str, *, out: bool = True, net: bool = False) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            metavar="FILE",
            type=Path,
            help="configuration file (default: $FEEDSVC_CONFIG or config/feedsvc.toml)",
        )
        sub.add_argument("--seeds", metavar="DIR", help="seeds directory")
        if out:
            sub.add_argument("--out", metavar="DIR", help="output directory")
            sub.add_argument("--static", metavar="DIR", help="also lay out every document as a file under DIR")
        if net:
            sub.add_argument("--host", metavar="H", help="address to listen on (default 127.0.0.1)")
            sub.add_argument("--port", metavar="P", type=int, help="port to listen on (default 8000)")
        return sub

    build = add("build", "build the feed once and publish OUT/feed.xml atomically")
    build.add_argument("--max-entries", metavar="N", type=int, help="entries in the feed")
    build.add_argument("--deploy", action="store_true", help="then deploy the publish to deploy_to (a bucket)")
    build.set_defaults(func=cmd_build)
    add(
        "check", "lint the seed files: one line per problem and per note, exit 1 if any problem", out=False
    ).set_defaults(func=cmd_check)
    add(
        "serve",
        "build, watch and serve the feed over HTTP: gunicorn's workers serve it, and the one "
        "elected to build does so in a child process of its own",
        net=True,
    ).set_defaults(func=cmd_serve)
    add("watch", "the builder alone: rebuild on every change").set_defaults(func=cmd_watch)
    deploy = commands.add_parser(
        "deploy",
        help="upload what is published in OUT to a bucket: new pages, then the feeds, then deletions",
        description="upload what is published in OUT to a bucket (s3://bucket/prefix; default: deploy_to)",
    )
    deploy.add_argument("--config", metavar="FILE", type=Path, help="configuration file")
    deploy.add_argument("--out", metavar="DIR", help="output directory")
    deploy.add_argument("target", metavar="TARGET", nargs="?", help="s3://bucket/prefix (default: deploy_to)")
    deploy.set_defaults(func=cmd_deploy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"feedsvc: configuration error: {exc}", file=sys.stderr)
        return 2
    except SeedsDirError as exc:
        print(f"feedsvc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
