"""The ``checkpoint`` file and the clean-shutdown marker (twin of ``checkpoint.rs``).

``checkpoint`` holds the log start offset and the recovery point as three
``key value`` lines; the native twin writes and reads exactly the same bytes.
It is only ever replaced through :func:`streamcore._atomic_file.write_atomic`
(``checkpoint.tmp`` -> fsync -> rename -> fsync of the directory).
"""

from __future__ import annotations

import os

from streamcore._atomic_file import write_atomic
from streamcore.errors import StorageError

__all__ = [
    "CHECKPOINT_NAME",
    "CLEAN_SHUTDOWN_NAME",
    "read_checkpoint",
    "render_checkpoint",
    "write_checkpoint",
    "write_clean_shutdown_marker",
]

#: Name of the checkpoint file inside a partition directory.
CHECKPOINT_NAME = "checkpoint"
#: Empty file present only between a clean close and the next open.
CLEAN_SHUTDOWN_NAME = ".clean_shutdown"


def render_checkpoint(log_start_offset: int, recovery_point: int) -> str:
    """The checkpoint text: exactly three lines, the first ``version 1``."""
    return f"version 1\nlog_start_offset {log_start_offset}\nrecovery_point {recovery_point}\n"


def read_checkpoint(directory: str) -> tuple[int, int] | None:
    """Return (log_start_offset, recovery_point) from ``checkpoint``, or None if there is none.

    A checkpoint that exists but does not parse is a StorageError: it is only
    ever replaced atomically, so a bad one means outside damage.
    """
    path = os.path.join(directory, CHECKPOINT_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields[key] = value
    try:
        if fields.get("version") != "1":
            raise ValueError(f"unknown version {fields.get('version')!r}")
        return int(fields["log_start_offset"]), int(fields["recovery_point"])
    except (KeyError, ValueError) as exc:
        raise StorageError(f"{path}: unreadable checkpoint ({exc}); expected 'version 1' lines") from exc


def write_checkpoint(directory: str, log_start_offset: int, recovery_point: int) -> None:
    """Atomically replace ``checkpoint`` (see the module docstring); OSError on failure."""
    write_atomic(
        os.path.join(directory, CHECKPOINT_NAME), render_checkpoint(log_start_offset, recovery_point)
    )


def write_clean_shutdown_marker(directory: str) -> None:
    """Create the empty marker; the caller fsyncs the directory to make it durable."""
    fd = os.open(os.path.join(directory, CLEAN_SHUTDOWN_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
