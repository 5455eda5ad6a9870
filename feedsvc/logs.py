"""Logging for every feedsvc process: one format, one level, APScheduler's chatter kept down."""

from __future__ import annotations

import logging
import sys

from feedsvc.config import Config

FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def configure_logging(config: Config) -> None:
    """Log to stderr at `config.log_level`, unless the process has configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=config.log_level, format=FORMAT, stream=sys.stderr)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
