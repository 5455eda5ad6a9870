"""Nesting bombs against both sanitizer backends, with and without the depth pre-pass.

    python -m benchmarks.bombs [--before] [--timeout SECONDS]

Each bomb is about 1 MB. "after" is the backend's `sanitize` (the pre-pass `feedsvc.core.nesting`
runs first); "before" (with --before) calls the backend's own pass on the raw bomb, as it ran
before the pre-pass, in a child process killed after --timeout (default 120 s: some take minutes).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from collections.abc import Callable

BEFORE, AFTER = "before", "deep text after"
BOMBS: dict[str, Callable[[], str]] = {
    "div x200k": lambda: BEFORE + "<div>" * 200_000 + AFTER,
    "b x330k": lambda: BEFORE + "<b>" * 330_000 + AFTER,
    "font-p x100k": lambda: BEFORE + "<font><p>" * 100_000 + AFTER,
}
# Not a nesting bomb: what is left once nesting is bounded, 1 MB of flat elements at the limit's
# depth (each tag's scope checks walk all of it).
AT_THE_LIMIT: dict[str, Callable[[], str]] = {
    "flat at limit": lambda: BEFORE + "<div>" * 99 + "<div>x</div>" * 83_000 + AFTER,
}


def _raw(backend: str, html: str) -> None:
    """The backend's pass without the pre-pass (what `sanitize` did before it)."""
    if backend == "bleach":
        from feedsvc.core.sanitize.bleach_backend import _pass

        _pass().clean(html, None)
    else:
        from feedsvc.core.sanitize.nh3_backend import clean

        clean(html, None)


def _make(bomb: str) -> str:
    return (BOMBS | AT_THE_LIMIT)[bomb]()


def _timed_raw(backend: str, bomb: str, queue: multiprocessing.Queue[float]) -> None:
    html = _make(bomb)
    start = time.perf_counter()
    _raw(backend, html)
    queue.put(time.perf_counter() - start)


def before(backend: str, bomb: str, timeout: float) -> str:
    queue: multiprocessing.Queue[float] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_timed_raw, args=(backend, bomb, queue))
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        return f"> {timeout:.0f}"
    return f"{queue.get():.2f}"


def after(backend: str, bomb: str) -> tuple[float, float]:
    """(seconds of the pre-pass alone, seconds of the whole sanitize)."""
    from feedsvc.core.nesting import flatten
    from feedsvc.core.sanitize import get_sanitizer, policy

    html = _make(bomb)
    start = time.perf_counter()
    flatten(html, policy.MAX_DEPTH, policy.MAX_FORMATTING)
    middle = time.perf_counter()
    get_sanitizer(backend)(html, None)
    return middle - start, time.perf_counter() - middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", action="store_true", help="also time the backends without the pre-pass")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    print(f"{'bomb':<14} {'backend':<7} {'MB':>5} {'pre-pass s':>10} {'after s':>8} {'before s':>9}")
    for bomb, make in (BOMBS | AT_THE_LIMIT).items():
        size = len(make().encode()) / 1e6
        for backend in ("bleach", "nh3"):
            prepass, total = after(backend, bomb)
            old = before(backend, bomb, args.timeout) if args.before else "-"
            print(f"{bomb:<14} {backend:<7} {size:5.2f} {prepass:10.2f} {total:8.2f} {old:>9}", flush=True)


if __name__ == "__main__":
    main()
