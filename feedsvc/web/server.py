"""gunicorn for feedsvc: the one set of options, used by `feedsvc serve` and config/gunicorn.conf.py.

Both run the same stack: gunicorn's threaded (gthread) worker, with request heads read by its
event loop under a deadline (`feedsvc.web.worker.HeadFirstWorker`), `create_app()` loaded in every
worker (never preloaded, so every worker joins the builder election and exactly one builds), and
`feedsvc.web.responder.DocumentResponder` in front of Flask. They differ only in their defaults:
the Procfile listens on 0.0.0.0:$PORT behind a platform router; `feedsvc serve` listens on the
configured host and port and closes idle connections sooner, so that it stops within a second or
two of SIGTERM (a stopping gthread worker keeps kept-alive connections open up to their
keep-alive timeout, at most 2 s, for a request that may already be on its way).

The hooks keep `/metrics` right across the workers (prometheus_client's multiprocess mode, see
`feedsvc.web.metrics_endpoint`): the master makes a fresh `PROMETHEUS_MULTIPROC_DIR` as it starts, before
it forks a worker (or wipes the one it was given), tells prometheus_client when a worker died, and
removes the folder it made when it exits. With `log_format = "json"` gunicorn's own loggers
write JSON lines too (`logconfig_dict`, from `feedsvc.logs`).

`feedsvc serve` embeds gunicorn through its public `BaseApplication`. Before starting it, `serve`
binds the address once itself, as gunicorn will (SO_REUSEADDR), and lets it go: a port in use is
then one line and exit 2 at once, not gunicorn's five one-second retries with two ERROR lines each.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]  # gunicorn ships no types

from feedsvc.config import MULTIPROCESS_ENV, Config, ConfigError, load_config
from feedsvc.core.urls import is_loopback_host
from feedsvc.logs import gunicorn_logconfig
from feedsvc.web.worker import WORKER_CONNECTIONS

WORKER_CLASS = "feedsvc.web.worker.HeadFirstWorker"

# The folder this master made for the metrics files (None: it was given one, or made none yet).
_made_dir: str | None = None

# `feedsvc serve`: idle kept-alive connections close after this long (the Procfile keeps 5 s for
# its router), which bounds how long they delay a stop.
SERVE_KEEPALIVE = 1


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class AddressError(OSError):
    """`feedsvc serve` cannot listen on the configured address; the message says how to pick another."""


def check_address(host: str, port: int) -> None:
    """Bind (host, port) with the socket options gunicorn uses, then close it; raise AddressError if that fails."""
    address = bind_address(host, port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressError(
                f"cannot listen on {address}: it is already in use (another feedsvc serve?); "
                "pick another port with --port or FEEDSVC_PORT"
            ) from None
        raise AddressError(
            f"cannot listen on {address}: {exc.strerror or exc}; "
            "pick another address with --host/--port or FEEDSVC_HOST/FEEDSVC_PORT"
        ) from None



def loopback_self_link(base_url: str, binds: list[str]) -> str | None:
    """The warning when the server listens beyond this host while `base_url`, which every feed's
    `rel="self"` and links carry, names this host (the default, `http://127.0.0.1:8000/`); or None."""
    own = urlsplit(base_url).hostname or ""
    if not is_loopback_host(own):
        return None
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            continue
        host = bind.rsplit(":", 1)[0] if bind.count(":") == 1 or bind.startswith("[") else bind
        if not is_loopback_host(host.strip("[]")):
            return (
                f"listening on {bind}, but base_url is {base_url}: the feeds' self links name this host "
                "only, which readers elsewhere cannot reach; set base_url (FEEDSVC_BASE_URL) to the public URL"
            )
    return None


def _warn_loopback_self_link(server: Any) -> None:
    """Said once, by the master, as it starts (a worker's app is loaded only later)."""
    config = getattr(server.app, "feed_config", None)  # `feedsvc serve`'s; the Procfile's is the environment's
    if config is None:
        try:
            config = load_config()
        except (ConfigError, OSError):
            return  # every worker says why, as it loads its app
    if message := loopback_self_link(config.base_url, list(server.cfg.bind)):
        server.log.warning(message)


def worker_exit(_server: Any, _worker: Any) -> None:
    """gunicorn's `worker_exit` hook: the worker is exiting (SIGTERM, SIGINT, SIGQUIT, or a
    restart): stop its builder, if it is the elected one, and let the election lock go."""
    from feedsvc.web.app import stop_all  # loaded by then; not at import, so that a busy port is said at once

    stop_all()


def on_starting(server: Any) -> None:
    """gunicorn's `on_starting` hook, in the master before any worker: a metrics folder of this run's
    own. A folder named by the environment is used instead, emptied of a previous run's files. And
    one warning if the feeds would name a loopback base_url to readers on other hosts."""
    global _made_dir
    _warn_loopback_self_link(server)
    given = os.environ.get(MULTIPROCESS_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
    else:
        _made_dir = os.environ[MULTIPROCESS_ENV] = tempfile.mkdtemp(prefix="feedsvc-metrics-")


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's `child_exit` hook, in the master: a worker is gone; its live gauges go with it
    (the builder's figures are then the next builder's), its counts stay in the sums."""
    from prometheus_client.multiprocess import mark_process_dead  # after on_starting set the folder

    mark_process_dead(worker.pid)


def on_exit(_server: Any) -> None:
    """gunicorn's `on_exit` hook: remove the metrics folder this master made."""
    global _made_dir
    if _made_dir is not None:
        shutil.rmtree(_made_dir, ignore_errors=True)
        if os.environ.get(MULTIPROCESS_ENV) == _made_dir:
            del os.environ[MULTIPROCESS_ENV]
        _made_dir = None


def gunicorn_options(
    *,
    bind: list[str],
    workers: int,
    threads: int,
    loglevel: str = "info",
    log_format: str = "text",
    keepalive: int = 5,
    graceful_timeout: int = 10,
    accesslog: str | None = None,
    forwarded_allow_ips: str = "127.0.0.1",
    proc_name: str = "feedsvc",
) -> dict[str, Any]:
    """gunicorn's settings, by their setting names (a config file's module globals)."""
    return {
        "bind": bind,
        "workers": workers,
        # gthread, with request heads read by the event loop under a deadline: a slow or idle
        # client costs a file descriptor, never a thread (feedsvc/web/worker.py).
        "worker_class": WORKER_CLASS,
        "threads": threads,
        "worker_connections": WORKER_CONNECTIONS,
        # Each worker must create its own app (and so its own election ticket): never preload.
        "preload_app": False,
        "timeout": 30,
        "graceful_timeout": graceful_timeout,
        "keepalive": keepalive,
        "accesslog": accesslog,
        "errorlog": "-",
        "loglevel": loglevel.lower(),
        # Within the worker's 32 KiB a head (MAX_HEAD): a browser's head is 1-2 KB, a reader's less.
        "limit_request_line": 4094,
        "limit_request_fields": 50,
        "limit_request_field_size": 8190,
        "forwarded_allow_ips": forwarded_allow_ips,
        "proc_name": proc_name,
        "control_socket_disable": True,
        # JSON lines from gunicorn's loggers as from feedsvc's; text: gunicorn's own format.
        "logconfig_dict": gunicorn_logconfig(loglevel, accesslog) if log_format.lower() == "json" else {},
        "on_starting": on_starting,
        "child_exit": child_exit,
        "on_exit": on_exit,
        "worker_exit": worker_exit,
    }


def serve_options(config: Config) -> dict[str, Any]:
    """`feedsvc serve`'s defaults: the configured address, `workers` and `threads`."""
    return gunicorn_options(
        bind=[bind_address(config.host, config.port)],
        workers=config.workers,
        threads=config.threads,
        loglevel=config.log_level,
        log_format=config.log_format,
        keepalive=SERVE_KEEPALIVE,
        graceful_timeout=5,
    )


class EmbeddedServer(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any], load_app: Callable[[], Any]) -> None:
        self.feed_config = config
        self.options = options
        self.load_app = load_app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.load_app()  # in each worker, after the fork: never preloaded


def serve(config: Config, load_app: Callable[[], Any]) -> int:
    """`feedsvc serve`: builder and web under gunicorn, until SIGTERM or SIGINT. Raises AddressError
    (before starting anything) when the address cannot be bound. `load_app` makes each worker's app
    (the CLI passes `feedsvc.host.create_app`, which this package does not import)."""
    check_address(config.host, config.port)
    EmbeddedServer(config, serve_options(config), load_app).run()
    return 0
