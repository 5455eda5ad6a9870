"""`feedsvc serve`: gunicorn, embedded, running the app with its builder in one worker process.

A production server (not Flask's development server) with the same app factory the Procfile
uses, in one worker, so the builder election is won by that worker. The worker is gunicorn's
asyncio one, with `feedsvc.asgi.FeedFront` answering documents on the event loop and handing the
rest to the Flask (WSGI) app in `threads` threads; see feedsvc/asgi.py for why.
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
        from feedsvc.asgi import create_front

        _answer_after_half_close()
        return create_front(self.feed_config)


def _answer_after_half_close() -> None:
    """Let gunicorn's asyncio worker answer a client that shuts its sending side after the request
    (`printf 'GET /feed.xml HTTP/1.0\r\n\r\n' | nc -N host port`): asyncio closes the connection
    on EOF unless the protocol keeps it open, and the response would be lost (RFC 9112 §9.6
    allows the half-close; gunicorn's threaded worker answers it)."""
    from gunicorn.asgi.protocol import ASGIProtocol
    from gunicorn.workers import gasgi

    class Protocol(ASGIProtocol):
        def eof_received(self) -> bool:
            return True  # keep the transport for writing; idle and keep-alive timeouts still close it

    gasgi.ASGIProtocol = Protocol


def gunicorn_options(config: Config) -> dict[str, Any]:
    return {
        "bind": [bind_address(config.host, config.port)],
        "workers": 1,
        "worker_class": "asgi",
        "worker_connections": 1000,
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
