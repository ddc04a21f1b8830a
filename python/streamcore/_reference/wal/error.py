"""What the reference WAL raises, and for what (twin of ``error.rs``).

The native binding maps each ``WalError`` variant to one ``streamcore.errors``
class; these constructors are the reference twin's side of that table, so the
class and the wording of each failure are decided in one place:

=====================  =========================  ==========================================
situation              native ``WalError``        exception
=====================  =========================  ==========================================
setting out of range   ``InvalidArgument``        ValueError (raised by ``WalConfig``)
bad append framing     ``CorruptBatch``           CorruptRecordError
queue full             ``Backpressure``           BackpressureError (with throttle_time_ms)
open/read/close/state  ``Storage``                StorageError
failed write or fsync  ``Offline``                LogOfflineError (cause chained)
read outside the log   ``OffsetOutOfRange``       OffsetOutOfRangeError
=====================  =========================  ==========================================
"""

from __future__ import annotations

from streamcore.errors import (
    BackpressureError,
    CorruptRecordError,
    LogOfflineError,
    OffsetOutOfRangeError,
    StorageError,
)

__all__ = [
    "BackpressureError",
    "CorruptRecordError",
    "LogOfflineError",
    "OffsetOutOfRangeError",
    "StorageError",
    "backpressure",
    "closed",
    "corrupt_batch",
    "offline",
    "out_of_range",
]


def corrupt_batch(message: str) -> CorruptRecordError:
    """A batch handed to append whose framing is wrong (``message`` names the byte)."""
    return CorruptRecordError(message)


def closed(directory: str) -> StorageError:
    """An append, flush or read after ``close``."""
    return StorageError(f"{directory}: log is closed")


def backpressure(directory: str, queued: int, throttle_ms: int) -> BackpressureError:
    """The write queue holds ``queued`` appends already; the caller should retry after ``throttle_ms``."""
    return BackpressureError(
        f"{directory}: write queue full ({queued} appends waiting); retry later",
        throttle_ms,
    )


def offline(message: str, cause: BaseException | None = None) -> LogOfflineError:
    """The log is offline (``message`` says why); ``cause`` is the I/O error that took it there."""
    failure = LogOfflineError(message)
    if cause is not None:
        failure.__cause__ = cause
    return failure


def out_of_range(offset: int, log_start: int, high_watermark: int, directory: str) -> OffsetOutOfRangeError:
    """A read at ``offset`` outside [log_start, high_watermark]."""
    return OffsetOutOfRangeError(f"offset {offset} is outside [{log_start}, {high_watermark}] of {directory}")
