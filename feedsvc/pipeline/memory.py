"""What a builder remembers between builds (`Memory`), and whether what it last published is
still the published state (`still_ours`), so an unchanged build renders nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from feedsvc.model import BuildResult, Record
from feedsvc.pipeline.feeds import FeedMemory
from feedsvc.pipeline.render_and_publish import FeedPlan, LastPublish
from feedsvc.pipeline.reporting import DuplicateUrl
from feedsvc.publish.layout import Rendered, manifest_stat


@dataclass
class Memory:
    """What a builder remembers between builds: plain data."""

    records: dict[str, Record] | None = None  # None: nothing built in this process yet
    last_publish: LastPublish = field(default_factory=LastPublish)
    rendered: Rendered | None = None  # this builder's last publish, right after it
    feeds: FeedMemory | None = None  # the feeds, their match results and transformed entries
    duplicates: list[DuplicateUrl] | None = None  # the duplicate-URL notes of the current records
    told: set[str] = field(default_factory=set)  # the duplicate-URL notes logged already


def remember_published(
    memory: Memory, out_dir: Path, plans: Sequence[FeedPlan], result: BuildResult, at: datetime
) -> None:
    """What this build published, in the result and in the builder's memory (see `still_ours`)."""
    result.entries = len(plans[0].current)
    result.feeds = {plan.feed.name: len(plan.current) for plan in plans[1:]}
    until = min((dated_until(plan.current, at) for plan in plans), default=math.inf)
    memory.rendered = Rendered(manifest_stat(out_dir), result.entries, result.etag, until)


def still_ours(memory: Memory, out_dir: Path, now: float) -> Rendered | None:
    """The last publish, when the manifest is the one this builder wrote last (no other writer
    published since) and its documents' date still holds at `now` (see `dated_until`)."""
    rendered = memory.rendered
    if rendered is not None and rendered.manifest == manifest_stat(out_dir) and now < rendered.until:
        return rendered
    return None


def dated_until(newest: Sequence[Record], at: datetime) -> float:
    """Until when the subscription documents rendered at `at` hold: for ever, unless their newest
    entry is stamped ahead of `at`, which dated them at `at` instead (never in the future). Then
    they are rendered again once that stamp has passed, and dated by it, as any replica that
    builds later dates them: replicas that built at different times agree again."""
    ahead = max((r.updated for r in newest if r.updated is not None), default=None)
    return ahead.timestamp() if ahead is not None and ahead > at else math.inf
