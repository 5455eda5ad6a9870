"""Choosing: every feed's entries and archive pages (a `FeedPlan` each), from the same Records,
each subscription kept at or under `max_feed_bytes`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence

from feedsvc.core.choose import by_order, select_entries, split_archive
from feedsvc.core.filters import by_top_folder
from feedsvc.core.render.documents import fit_feed, oversize_reason
from feedsvc.model import BuildResult, Entry, Problem, Record
from feedsvc.pipeline.context import BuildContext
from feedsvc.pipeline.feeds import FeedMemory
from feedsvc.pipeline.render_and_publish import FeedPlan

log = logging.getLogger("feedsvc.build")

EntriesByKey = Callable[[Sequence[Record]], dict[str, Entry]]


def plans(
    ctx: BuildContext, feeds: FeedMemory, records: Iterable[Record], entries: EntriesByKey, result: BuildResult
) -> list[FeedPlan]:
    """Every feed's entries and archive pages, chosen from the same Records: all of them are
    chosen once (one per article URL, newest first); each declared feed keeps those of its
    folder that its patterns pass, in that order. All records, not only the newest max_entries:
    the older ones fill the RFC 5005 archive."""
    chosen = select_entries((r for r in records if r.id is not None), key=by_order)
    feeds.matches.complete(chosen, ctx.cache, entries)
    folders = by_top_folder(chosen) if any(feed.folder for feed in feeds.feeds) else {}
    made = []
    for feed in feeds.feeds:
        candidates = folders.get(feed.folder.partition("/")[0], []) if feed.folder else chosen
        selected = feeds.matches.select(feed, candidates)
        newest, pages = feeds.split(feed, selected, ctx.config.archive_page_size)
        plan = FeedPlan(feed, newest, pages, feeds.transformed.entries_of(feed, entries))
        made.append(_fitted(ctx, plan, selected, result))
    return made


def _fitted(ctx: BuildContext, plan: FeedPlan, selected: list[Record], result: BuildResult) -> FeedPlan:
    """The plan whose subscription documents stay at or under `max_feed_bytes`: when they would be
    larger, the newest entries that fit stay (at least one) and the rest go to the archive,
    reported as a problem."""
    config = ctx.config
    current = plan.entries_of(plan.current)
    keep = fit_feed(plan.feed.meta, current, ctx.at, config.max_feed_bytes)
    if keep == len(current):
        return plan
    name = plan.feed.prefix + "feed.xml"
    result.problems.append(Problem(name, oversize_reason(len(current), keep, config.max_feed_bytes)))
    log.warning("%s: %s", name, result.problems[-1].reason)
    newest, pages = split_archive(selected, keep, config.archive_page_size)
    return dataclasses.replace(plan, current=newest, pages=pages)
