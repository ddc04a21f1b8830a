"""Adaptive wall-clock timing with ``time.perf_counter``: best of several runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["QUICK", "STANDARD", "TimingPolicy", "best_seconds_per_call"]


@dataclass(frozen=True)
class TimingPolicy:
    """How long and how often to time one benchmark subject.

    ``min_run_seconds``: each run repeats the call until at least this long (seconds).
    ``runs``: number of runs; the fastest run is reported, because slower runs measure
    interference from other processes rather than the code.
    """

    min_run_seconds: float = 0.2
    runs: int = 5

    def __post_init__(self) -> None:
        if self.min_run_seconds <= 0 or self.runs < 1:
            raise ValueError(f"invalid timing policy {self!r}: need min_run_seconds > 0 and runs >= 1")


STANDARD = TimingPolicy()
#: For tests and smoke runs: figures are noisy but every code path runs.
QUICK = TimingPolicy(min_run_seconds=0.002, runs=1)


def _time_calls(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return time.perf_counter() - start


def best_seconds_per_call(fn: Callable[[], object], policy: TimingPolicy = STANDARD) -> float:
    """Return the best observed time of one call of ``fn``, in seconds.

    The number of calls per run grows until one run lasts ``policy.min_run_seconds``
    (that calibration run counts as the first run), then the remaining runs reuse it.
    """
    calls = 1
    elapsed = _time_calls(fn, calls)
    while elapsed < policy.min_run_seconds:
        # Aim 20 % past the target so the next run usually suffices, but never grow
        # more than 100x at once: the first calls can be slowed by cold caches.
        wanted = int(calls * policy.min_run_seconds * 1.2 / max(elapsed, 1e-9)) + 1
        calls = max(calls * 2, min(wanted, calls * 100))
        elapsed = _time_calls(fn, calls)
    best = elapsed / calls
    for _ in range(policy.runs - 1):
        best = min(best, _time_calls(fn, calls) / calls)
    return best
