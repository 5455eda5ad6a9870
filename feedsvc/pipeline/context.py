"""What every stage of one build needs, carried as one value (`BuildContext`) instead of the same
ten parameters threaded through every function: the configuration, the cache, the worker pool, the
compressing threads (`Zipper`), the build's time and the processing fingerprint.

A stage takes the context and its own inputs; `build()` (pipeline/builder.py) makes the context
once the workers are started, and hands it down.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from feedsvc.config import Config
from feedsvc.model import EntrySettings
from feedsvc.pipeline.cache import MemoryCache, SqliteCache
from feedsvc.pipeline.workers import Workers, default_workers

Cache = SqliteCache | MemoryCache
Progress = Callable[[int, int], None]
# The threads that gzip new bodies while the next one renders (zlib lets go of the GIL). One per
# builder, kept open between builds; its one name is `zipper`.
Zipper = ThreadPoolExecutor


def start_zipper() -> Zipper:
    """The threads that compress new bodies while the next one renders."""
    return ThreadPoolExecutor(max_workers=default_workers(), thread_name_prefix="feedsvc-gzip")


@dataclass(frozen=True)
class BuildContext:
    """What every stage of one build reads: set when the build starts, never changed by a stage."""

    config: Config
    cache: Cache
    workers: Workers
    zipper: Zipper
    at: datetime  # the build's time: files are processed, feeds dated, at it
    fingerprint: str  # what the settings and the sanitizer's version make of bytes (keys the cache)
    progress: Progress | None = None

    @property
    def seeds_dir(self) -> Path:
        return self.config.seeds_dir

    @property
    def out_dir(self) -> Path:
        return self.config.output_dir

    @property
    def settings(self) -> EntrySettings:
        return self.workers.settings

    @property
    def cache_path(self) -> Path | None:
        """The cache file, which pool workers open read-only (None: the cache is in memory)."""
        return self.cache.path if isinstance(self.cache, SqliteCache) else None
