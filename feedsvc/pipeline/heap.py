"""Keeping the collector off what builds keep between them."""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """What builds keep (a Record per file) is long-lived plain data without cycles. Collected once
    and frozen (`gc.freeze`) after each build, it is no longer walked by the collector's full
    passes, which otherwise ran during every later build (at 100k seeds, most of a rescan's time)
    and in this process's serving threads. A record that a later build replaces is still freed at
    once, by reference counting; the collector keeps collecting everything created since."""
    gc.collect()
    gc.freeze()
