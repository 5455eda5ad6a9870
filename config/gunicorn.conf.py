"""gunicorn settings for the Procfile:

    web: gunicorn --config config/gunicorn.conf.py "feedsvc.host:create_app(builder_in_child=True)"

`feedsvc.host` is the composition root; `builder_in_child=True` makes the worker that wins the
builder election build in a child process of its own, so that every web worker stays small.

The options are feedsvc's one set (`feedsvc.web.server.gunicorn_options`, which `feedsvc serve`
runs too), with the Procfile's defaults: every worker joins the builder election (an flock in the
output directory): exactly one of them builds, all of them serve the published bytes from memory,
the `worker_exit` hook stops the builder as its worker exits, and the metrics hooks keep /metrics
right across the workers. feedsvc settings come from the same FEEDSVC_* variables as the CLI.
"""

import os

from feedsvc.web.server import gunicorn_options

globals().update(
    gunicorn_options(
        bind=[f"0.0.0.0:{os.environ.get('PORT', '8000')}"],
        workers=int(os.environ.get("WEB_CONCURRENCY", "2")),
        threads=int(os.environ.get("GUNICORN_THREADS", "4")),
        accesslog=os.environ.get("GUNICORN_ACCESSLOG") or None,
        loglevel=os.environ.get("FEEDSVC_LOG_LEVEL", "info"),
        log_format=os.environ.get("FEEDSVC_LOG_FORMAT", "text"),
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        keepalive=5,
        graceful_timeout=10,
    )
)
