"""The anti-pattern the benchmark compares against: a Flask handler that builds the feed per request.

It reads, parses and sanitizes every seed file and renders the feed on every GET, the way a
first version of a feed endpoint often looks. Run only by the benchmark, on loopback:

    FEEDSVC_SEEDS_DIR=... gunicorn -w 1 -k gthread "benchmarks.naive:create_app()"
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, Response

from feedsvc.config import load_config
from feedsvc.core.choose import select_entries
from feedsvc.core.outcome import process_seed
from feedsvc.core.render.atom import render_atom
from feedsvc.pipeline.builder import feed_meta
from feedsvc.pipeline.seeds import read_seed, scan_seeds


def create_app() -> Flask:
    config = load_config(Path(os.devnull))
    app = Flask(__name__)

    @app.get("/feed.xml")
    def feed() -> Response:
        entries = []
        now = datetime.now(UTC)
        for seed in scan_seeds(config.seeds_dir):
            data = read_seed(seed, config.max_article_bytes)
            outcome = process_seed(data, seed.rel, None, config.entry_settings, now)
            if outcome.entry is not None:
                entries.append(outcome.entry)
        body = render_atom(feed_meta(config), select_entries(entries, config.max_entries))
        return Response(body, content_type="application/atom+xml; charset=utf-8")

    return app
