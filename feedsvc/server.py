"""`feedsvc serve`: gunicorn, embedded, running the app with its builder in one worker process.

A production WSGI server (not Flask's development server) with the same app factory the
Procfile uses; one worker with threads, so the builder election is won by that worker.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from feedsvc.config import Config


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EmbeddedServer(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self.feed_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from feedsvc.web import create_app

        return create_app(self.feed_config)


def gunicorn_options(config: Config) -> dict[str, Any]:
    return {
        "bind": [bind_address(config.host, config.port)],
        "workers": 1,
        "worker_class": "gthread",
        "threads": config.threads,
        "preload_app": False,
        "timeout": 30,
        "graceful_timeout": 5,
        "keepalive": 5,
        "errorlog": "-",
        "loglevel": config.log_level.lower(),
        "limit_request_line": 4094,
        "limit_request_fields": 50,
        "limit_request_field_size": 8190,
        "proc_name": "feedsvc",
        "control_socket_disable": True,
    }


def serve(config: Config) -> int:
    EmbeddedServer(config, gunicorn_options(config)).run()
    return 0
