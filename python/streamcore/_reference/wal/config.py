"""Settings of one reference WAL log, checked once when the log opens (twin of ``config.rs``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MEMORY_BUDGET_BYTES", "FSYNC_POLICIES", "WalConfig"]

#: Accepted values of ``fsync``.
FSYNC_POLICIES = ("always", "interval", "never")
#: The "medium" profile's queue memory budget (100 MiB), the default of a log.
DEFAULT_MEMORY_BUDGET_BYTES = 100 << 20


@dataclass(frozen=True)
class WalConfig:
    """Checked, int-normalised settings of one log; ``WalLog`` documents each one.

    Raises ValueError naming the first setting out of range (same order and
    wording as before the split, which the storage tests pin).
    """

    fsync: str = "interval"
    fsync_interval_ms: int = 1000
    queue_depth: int = 10000
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES
    max_group_batches: int = 15000
    max_wait_ms: int = 10
    segment_bytes: int = 1 << 30
    segment_ms: int | None = None
    index_interval_bytes: int = 4096

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {FSYNC_POLICIES}, not {self.fsync!r}")
        for name in (
            "fsync_interval_ms",
            "queue_depth",
            "memory_budget_bytes",
            "max_group_batches",
            "segment_bytes",
            "index_interval_bytes",
        ):
            value = getattr(self, name)
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, not {value!r}")
            object.__setattr__(self, name, int(value))
        if int(self.max_wait_ms) < 0:
            raise ValueError(f"max_wait_ms must be >= 0, not {self.max_wait_ms!r}")
        object.__setattr__(self, "max_wait_ms", int(self.max_wait_ms))
        if self.segment_ms is not None:
            if int(self.segment_ms) < 1:
                raise ValueError(f"segment_ms must be >= 1 or None, not {self.segment_ms!r}")
            object.__setattr__(self, "segment_ms", int(self.segment_ms))

    @property
    def fsync_interval_s(self) -> float:
        """Period of the "interval" policy, in seconds."""
        return self.fsync_interval_ms / 1000.0
