"""Retention: deleting whole, closed segments from the oldest on (twin of ``retention.rs``).

First by age (a segment whose largest batch max timestamp is older than
now - retention_ms), then by size (while the log without the oldest segment
still holds >= retention_bytes). Only a prefix of the log is ever deleted and
the active segment never is.

Deletion is crash safe: rename to ``*.deleted``, fsync the directory, move the
log start in the checkpoint, then unlink (a crash in between leaves
``*.deleted`` files that the next open removes).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from streamcore._atomic_file import fsync_dir
from streamcore._reference.wal.segment import Segment
from streamcore.errors import OffsetOutOfRangeError

if TYPE_CHECKING:
    from streamcore._reference.wal import WalLog

__all__ = ["apply", "count_victims", "delete_records"]


def count_victims(
    segments: list[Segment], retention_ms: int | None, retention_bytes: int | None, now_ms: float
) -> int:
    """How many segments, from the oldest, retention deletes (the last one never)."""
    closed = segments[:-1]
    victims = 0
    if retention_ms is not None:
        for seg in closed:
            largest = seg.largest_timestamp()
            if largest is None or largest >= now_ms - retention_ms:
                break
            victims += 1
    if retention_bytes is not None:
        total = sum(s.size for s in segments[victims:])
        while victims < len(closed) and total - closed[victims].size >= retention_bytes:
            total -= closed[victims].size
            victims += 1
    return victims


def apply(log: WalLog, retention_ms: int | None, retention_bytes: int | None, now_ms: float) -> int:
    """Delete ``log``'s segments past retention; return how many were deleted.

    Works on the log's shared state under its locks, as the writer does: the
    segment list changes under the state lock, the files go after it.
    """
    with log._retention_lock:
        with log._lock:
            log._check_readable()
            victims = count_victims(log._segments, retention_ms, retention_bytes, now_ms)
            if not victims:
                return 0
            doomed = log._segments[:victims]
            renamed = []
            for seg in doomed:
                for path in (seg.log_path, seg.index_path, seg.timeindex_path):
                    if os.path.exists(path):
                        os.replace(path, path + ".deleted")
                        renamed.append(path + ".deleted")
            del log._segments[:victims]
            del log._bases[:victims]
            log._log_start = max(log._log_start, log._segments[0].base)
            for seg in doomed:
                seg.forget_files()
        fsync_dir(log._directory)
        log._write_checkpoint()
        for path in renamed:
            os.unlink(path)
        return victims


def delete_records(log: WalLog, offset: int) -> int:
    """Move ``log``'s start up to ``offset`` (DeleteRecords); return the log start afterwards.

    Closed segments wholly below the new start are deleted the same crash-safe way as
    retention's; the segment holding ``offset`` stays, and the checkpoint keeps the
    start across a restart. An offset below the current start changes nothing; a
    negative one or one above the high watermark is OffsetOutOfRangeError.
    """
    with log._retention_lock:
        with log._lock:
            log._check_readable()
            start, hw = log._log_start, log._hw
            if offset < 0 or offset > hw:
                raise OffsetOutOfRangeError(
                    f"cannot delete records before offset {offset}: the log holds [{start}, {hw}] "
                    f"({log._directory})"
                )
            if offset <= start:
                return start
            segments = log._segments
            victims = 0
            # A closed segment goes when the next one starts at or below the new log start.
            while victims + 1 < len(segments) and segments[victims + 1].base <= offset:
                victims += 1
            doomed = segments[:victims]
            renamed = []
            for seg in doomed:
                for path in (seg.log_path, seg.index_path, seg.timeindex_path):
                    if os.path.exists(path):
                        os.replace(path, path + ".deleted")
                        renamed.append(path + ".deleted")
            del log._segments[:victims]
            del log._bases[:victims]
            log._log_start = offset
            # Only the first remaining segment's base is known fsynced by the deletion.
            log._recovery_point = max(log._recovery_point, log._segments[0].base)
            for seg in doomed:
                seg.forget_files()
        if renamed:
            fsync_dir(log._directory)
        # The new log start is durable before the caller acknowledges it.
        log._write_checkpoint()
        for path in renamed:
            os.unlink(path)
        return offset
