"""WAL profiles: named presets for queue depth, group size, max wait and queue memory (DESIGN.md).

A profile trades memory and latency for throughput. Every knob can be
overridden on its own: ``resolve_profile("high", max_wait_ms=5)``.
docs/storage.md explains when the writer lingers and how the budget is counted.
"""

from __future__ import annotations

from typing import NamedTuple

from streamcore.errors import ConfigError

__all__ = ["WalProfile", "PROFILES", "resolve_profile"]

_MiB = 1 << 20


class WalProfile(NamedTuple):
    """Queue and group-commit settings of a Log."""

    #: Appends queued but not yet written before append raises BackpressureError.
    queue_depth: int
    #: Most batches the writer takes into one group (one writev, one fsync).
    max_group_batches: int
    #: Longest the writer lingers for a bigger group, counted from the oldest queued
    #: append (ms); it lingers only under fsync "always" (a bigger group saves
    #: fsyncs) while more appenders are expected.
    max_wait_ms: int
    #: Bytes of batches queued or being written before append raises
    #: BackpressureError (an empty queue still takes one larger batch).
    memory_budget_bytes: int


# Memory budgets from the tuning guide's table (~25 MB, ~100 MB, ~500 MB, ~1 GB), in MiB.
PROFILES: dict[str, WalProfile] = {
    "low": WalProfile(
        queue_depth=2_500, max_group_batches=5_000, max_wait_ms=20, memory_budget_bytes=25 * _MiB
    ),
    "medium": WalProfile(
        queue_depth=10_000, max_group_batches=15_000, max_wait_ms=10, memory_budget_bytes=100 * _MiB
    ),
    "high": WalProfile(
        queue_depth=50_000, max_group_batches=50_000, max_wait_ms=100, memory_budget_bytes=500 * _MiB
    ),
    "ultra": WalProfile(
        queue_depth=100_000, max_group_batches=100_000, max_wait_ms=100, memory_budget_bytes=1024 * _MiB
    ),
}


def resolve_profile(
    name: str,
    *,
    queue_depth: int | None = None,
    max_group_batches: int | None = None,
    max_wait_ms: int | None = None,
    memory_budget_bytes: int | None = None,
) -> WalProfile:
    """The named profile with any knob given (not None) replacing the preset value.

    Raises ConfigError for an unknown name or a knob out of range (every knob is an
    int >= 1, except ``max_wait_ms`` >= 0, where 0 means never linger).
    """
    try:
        base = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown WAL profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    resolved = WalProfile(
        queue_depth=base.queue_depth if queue_depth is None else queue_depth,
        max_group_batches=base.max_group_batches if max_group_batches is None else max_group_batches,
        max_wait_ms=base.max_wait_ms if max_wait_ms is None else max_wait_ms,
        memory_budget_bytes=base.memory_budget_bytes if memory_budget_bytes is None else memory_budget_bytes,
    )
    for field, value in resolved._asdict().items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{field} must be an int, not {value!r}")
        if value < (0 if field == "max_wait_ms" else 1):
            raise ConfigError(f"{field} must be {'>= 0' if field == 'max_wait_ms' else '>= 1'}, not {value}")
    return resolved
