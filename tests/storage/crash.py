"""Helpers that put a partition directory into the state a crash would leave."""

from __future__ import annotations

import os

CLEAN = ".clean_shutdown"


def set_crash_state(directory: str, recovery_point: int, log_start_offset: int | None = None) -> None:
    """Remove the clean-shutdown marker and rewrite the checkpoint with ``recovery_point``."""
    marker = os.path.join(directory, CLEAN)
    if os.path.exists(marker):
        os.unlink(marker)
    if log_start_offset is None:
        log_start_offset = read_checkpoint(directory)[0]
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as f:
        f.write(f"version 1\nlog_start_offset {log_start_offset}\nrecovery_point {recovery_point}\n")


def read_checkpoint(directory: str) -> tuple[int, int]:
    """(log_start_offset, recovery_point) from the checkpoint file."""
    fields = {}
    with open(os.path.join(directory, "checkpoint"), encoding="utf-8") as f:
        for line in f:
            key, _, value = line.strip().partition(" ")
            fields[key] = value
    assert fields["version"] == "1"
    return int(fields["log_start_offset"]), int(fields["recovery_point"])


def segment_logs(directory: str) -> list[str]:
    """Paths of the .log segment files, oldest first."""
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".log"))
