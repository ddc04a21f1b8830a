"""WAL profiles: named presets for queue depth, group size and max wait (DESIGN.md).

A profile trades memory and latency for throughput. Every knob can be
overridden on its own: ``resolve_profile("high", max_wait_ms=5)``.
"""

from __future__ import annotations

from typing import NamedTuple

from streamcore.errors import ConfigError

__all__ = ["WalProfile", "PROFILES", "resolve_profile"]


class WalProfile(NamedTuple):
    """Queue and group-commit settings of a Log."""

    #: Appends queued but not yet written before append raises BackpressureError.
    queue_depth: int
    #: Most batches the writer takes into one group (one writev, one fsync).
    max_group_batches: int
    #: Longest the writer lingers for a bigger group (ms).
    max_wait_ms: int


PROFILES: dict[str, WalProfile] = {
    "low": WalProfile(queue_depth=2_500, max_group_batches=5_000, max_wait_ms=20),
    "medium": WalProfile(queue_depth=10_000, max_group_batches=15_000, max_wait_ms=10),
    "high": WalProfile(queue_depth=50_000, max_group_batches=50_000, max_wait_ms=100),
    "ultra": WalProfile(queue_depth=100_000, max_group_batches=100_000, max_wait_ms=100),
}


def resolve_profile(
    name: str,
    *,
    queue_depth: int | None = None,
    max_group_batches: int | None = None,
    max_wait_ms: int | None = None,
) -> WalProfile:
    """The named profile with any knob given (not None) replacing the preset value.

    Raises ConfigError for an unknown name or a knob out of range.
    """
    try:
        base = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown WAL profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    resolved = WalProfile(
        queue_depth=base.queue_depth if queue_depth is None else queue_depth,
        max_group_batches=base.max_group_batches if max_group_batches is None else max_group_batches,
        max_wait_ms=base.max_wait_ms if max_wait_ms is None else max_wait_ms,
    )
    for field, value in resolved._asdict().items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{field} must be an int, not {value!r}")
        if value < (0 if field == "max_wait_ms" else 1):
            raise ConfigError(f"{field} must be {'>= 0' if field == 'max_wait_ms' else '>= 1'}, not {value}")
    return resolved
