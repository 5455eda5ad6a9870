"""Logging for every feedsvc process: one format, one level, APScheduler's chatter kept down.

`log_format = "text"` writes `FORMAT` lines; `"json"` writes one JSON object per line (`JsonFormatter`):
`time`, `level`, `logger`, `message`, `pid`, every field a call passed with `extra=` (the build line's
figures), and an `exception` field for a traceback, still on one line. Under gunicorn the same
formatter is installed for gunicorn's own loggers through its `logconfig_dict` setting
(`gunicorn_logconfig`, used by `feedsvc.web.server.gunicorn_options`).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from feedsvc.config import Config

FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"

# What every LogRecord carries; any other attribute came with `extra=` and becomes a field.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (JSON escapes the newlines of a traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update((key, value) for key, value in record.__dict__.items() if key not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT)


def configure_logging(config: Config) -> None:
    """Log to stderr at `config.log_level` in `config.log_format`, unless the process has configured
    logging already (a gunicorn worker whose master did, `feedsvc serve` before it starts gunicorn)."""
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter(config.log_format))
        logging.basicConfig(level=config.log_level, handlers=[handler])
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def gunicorn_logconfig(level: str, accesslog: str | None) -> dict[str, Any]:
    """gunicorn's `logconfig_dict` for JSON lines: its error log and the root logger (feedsvc's
    loggers, in the master and in the workers it forks) on stderr, its access log where
    `accesslog` says (`-`: stdout, as gunicorn does) or nowhere."""
    json_handler = {"formatter": "json", "class": "logging.StreamHandler"}
    handlers: dict[str, dict[str, Any]] = {"stderr": {**json_handler, "stream": "ext://sys.stderr"}}
    if accesslog == "-":
        handlers["access"] = {**json_handler, "stream": "ext://sys.stdout"}
    elif accesslog:
        handlers["access"] = {**json_handler, "class": "logging.FileHandler", "filename": accesslog}
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": handlers,
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            # Without an access log, gunicorn still hands each request to this logger: drop it.
            "gunicorn.access": {
                "level": "INFO" if accesslog else "CRITICAL",
                "handlers": ["access"] if accesslog else [],
                "propagate": False,
            },
        },
    }
