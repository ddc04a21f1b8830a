"""Reference twin of the ``wal`` capability: a segmented, group-committed write-ahead log.

One ``WalLog`` is one partition directory (format: docs/storage.md). Appends are
copied into a bounded queue; the log's writer writes them in groups, with one
fsync per group under fsync="always" (see ``writer.py``). Writers run on the
threads of a shared ``WalPool`` (``pool.py``: a few writer threads and a notifier
thread for many logs) and open segment files through its bounded cache
(``files.py``), so an idle log holds no thread and no descriptor.

The package mirrors ``rust/core/src/wal/`` file for file:

==================  ===============================================================
``__init__.py``     ``WalLog``: the public face and the state its threads share
``config.py``       settings and their checks
``error.py``        which ``streamcore.errors`` class the WAL raises, for what
``completion.py``   queued requests and how their outcome reaches the caller
``pool.py``         ``WalPool``: writer threads, notifier thread, the default pool
``files.py``        the bounded LRU cache of open segment files
``writer.py``       a log's writer: group commit, roll, fsync policy, close
``read.py``         locating what a read returns
``segment.py``      segment files, names and header walks
``index.py``        sparse offset/time indexes and the rule that picks entries
``recovery.py``     opening a directory: clean-shutdown fast path, crash recovery
``retention.py``    deleting old segments crash-safely
``swap.py``         swapping cleaned segments in, completing a swap at open
``checkpoint.py``   the checkpoint file and the clean-shutdown marker
==================  ===============================================================

Threads: appenders touch only the queue (under ``_cond``); the writer (run by one
thread at a time: a pool thread, or a blocking appender that found it idle and
leads its group) owns the active segment and its own counters; readers,
retention and the writer share the segment list, high watermark and index lists
under ``_lock``.
``writer.py`` and ``retention.py`` work on that shared state (the attributes
below with a leading underscore), as their Rust twins work on ``Shared``.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import threading
import time
from collections import deque
from typing import Any

from streamcore._reference._batch_header import (
    BATCH_LENGTH_AT,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    PREFIX,
)
from streamcore._reference.wal import checkpoint, error, read, retention, swap
from streamcore._reference.wal.completion import AppendTuple, Callback, CompletionQueue, Item
from streamcore._reference.wal.config import DEFAULT_MEMORY_BUDGET_BYTES, WalConfig
from streamcore._reference.wal.files import READ
from streamcore._reference.wal.pool import WalPool, default_pool, shutdown_all_pools
from streamcore._reference.wal.recovery import open_directory
from streamcore._reference.wal.segment import Segment
from streamcore._reference.wal.writer import Writer

__all__ = ["CompletionQueue", "WalLog", "WalPool"]

#: The atexit hook, under the native module's name.
_shutdown_all_pools = shutdown_all_pools

logger = logging.getLogger("streamcore.storage")


def check_append_header(batch: bytes | bytearray | memoryview) -> int:
    """Check the header of a batch handed to append; return its lastOffsetDelta.

    Only the framing is checked (length field, magic); the CRC and the records
    are the caller's job. Raises CorruptRecordError naming what is wrong.
    """
    size = len(batch)
    if size < HEADER_SIZE:
        raise error.corrupt_batch(
            f"record batch of {size} bytes is shorter than the {HEADER_SIZE}-byte header"
        )
    _base, length, _epoch, magic, _crc, _attrs, last_delta, _bts, _mts = PREFIX.unpack_from(batch, 0)
    if length != size - LOG_OVERHEAD:
        raise error.corrupt_batch(
            f"batchLength field at byte {BATCH_LENGTH_AT} is {length} but the buffer holds "
            f"{size - LOG_OVERHEAD} bytes after it"
        )
    if magic != MAGIC:
        raise error.corrupt_batch(
            f"magic byte at byte {MAGIC_AT} is {magic}, only record batch v2 (magic 2) is stored"
        )
    if last_delta < 0:
        raise error.corrupt_batch(
            f"lastOffsetDelta at byte {LAST_OFFSET_DELTA_AT} is negative ({last_delta})"
        )
    return last_delta


# Errors of a nowait read that say only that it cannot be done without waiting or at
# all (RWF_NOWAIT unknown here): the caller walks again without it.
_NOWAIT_REFUSALS = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class WalLog:
    """A partition's segmented log with a group-commit writer (see module docstring).

    Args:
        directory: partition directory (created if missing, recovered if present).
        fsync: "always" (append completes after the fsync covering it), "interval"
            (the writer fsyncs at most every ``fsync_interval_ms``), "never" (only at close).
        fsync_interval_ms: period of the "interval" policy (ms).
        queue_depth: appends queued but not yet written beyond which append raises BackpressureError.
        memory_budget_bytes: bytes of batches queued or being written beyond which append raises
            BackpressureError (an empty queue still takes one larger batch).
        max_group_batches: most batches written by one group (one writev + one fsync).
        max_wait_ms: longest the writer lingers for a bigger group, from the oldest queued
            append (ms); see ``writer.py`` for when it lingers at all.
        segment_bytes: roll before an append that would make the active segment larger (bytes).
        segment_ms: roll when the active segment's first append is older than this (ms).
        index_interval_bytes: bytes of log between sparse index entries.
        pool: the WalPool whose threads and file cache the log uses (None: a
            process-wide default pool of 2 writer threads and 256 open files).
    """

    def __init__(
        self,
        directory: str,
        *,
        fsync: str = "interval",
        fsync_interval_ms: int = 1000,
        queue_depth: int = 10000,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_BYTES,
        max_group_batches: int = 15000,
        max_wait_ms: int = 10,
        segment_bytes: int = 1 << 30,
        segment_ms: int | None = None,
        index_interval_bytes: int = 4096,
        pool: WalPool | None = None,
    ) -> None:
        self._config = WalConfig(
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            queue_depth=queue_depth,
            memory_budget_bytes=memory_budget_bytes,
            max_group_batches=max_group_batches,
            max_wait_ms=max_wait_ms,
            segment_bytes=segment_bytes,
            segment_ms=segment_ms,
            index_interval_bytes=index_interval_bytes,
        )
        self._directory = os.fspath(directory)
        if pool is None:
            pool = default_pool()
        elif not isinstance(pool, WalPool):
            raise TypeError(f"pool must be a streamcore._reference.wal.WalPool, not {type(pool).__name__}")
        pool.check_open()
        self._pool = pool
        # Handles left from an earlier open of this directory may name replaced files.
        pool.files.forget_dir(self._directory)

        rec = open_directory(self._directory, self._config.index_interval_bytes, pool.files)
        self._segments: list[Segment] = rec.segments
        self._bases = [s.base for s in self._segments]
        self._hw = rec.high_watermark
        self._log_start = rec.log_start_offset
        self._recovery_point = rec.high_watermark
        self._recovery_report: dict[str, Any] = dict(rec.report)
        #: Below this offset compaction may have removed offsets (``compacted-offset``).
        self._compacted_offset = rec.compacted_offset
        self._lock = threading.Lock()
        self._ckpt_lock = threading.Lock()
        self._retention_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._last_checkpoint = time.monotonic()
        #: The recovery point the checkpoint file holds.
        self._checkpointed_rp = self._recovery_point
        try:
            checkpoint.write_checkpoint(self._directory, self._log_start, self._recovery_point)
        except OSError:
            pool.files.forget_dir(self._directory)
            raise

        self._queue: deque[Item] = deque()
        self._cond = threading.Lock()
        self._closing = False
        self._closed = False
        self._offline: str | None = None
        #: Test-only failure injection: "write" or "fsync" makes the next such call fail with EIO.
        self._fail_next_io: str | None = None
        #: Smoothed writer time per append (s), for the backpressure throttle suggestion.
        self._seconds_per_append = 0.0
        self._stats = {
            "appends": 0,
            "groups": 0,
            "fsyncs": 0,
            "fsync_total_us": 0,
            "writeback_starts": 0,
            "bytes_written": 0,
            "backpressure_rejections": 0,
        }
        self._writer = Writer(self, self._hw, pool)
        try:
            self._task = pool.register(self._writer)
        except BaseException:
            pool.files.forget_dir(self._directory)
            raise
        self._writer.task = self._task

    # -- appending -------------------------------------------------------------

    def _enqueue(self, item: Item) -> None:
        self._writer.enqueue(item)

    def _prepare(self, batch: Any) -> Item:
        # The caller may reuse its buffer at once: copy before queueing.
        buf = bytearray(batch)
        return Item(buf, check_append_header(buf))

    def append(self, batch: Any) -> AppendTuple:
        """Append one v2 record batch; return (base_offset, last_offset, log_append_time_ms).

        Blocks until written (fsync="always": until fsynced); when the writer is
        idle, the calling thread writes the group itself instead of handing the
        append to a pool thread (leader/follower group commit). Raises
        CorruptRecordError for a bad header, BackpressureError when the queue is
        full, LogOfflineError after a storage failure.
        """
        item = self._prepare(batch)
        item.make_waitable()
        # The writer was idle: this thread writes the group itself (leader/follower).
        if self._writer.enqueue(item, may_lead=True):
            self._pool.lead(self._task, item)
        result = item.wait()
        assert result is not None
        return result

    def submit(self, batch: Any, callback: Callback) -> None:
        """Queue one batch without waiting; ``callback(result, exc)`` runs once on the pool's notifier thread.

        Never writes on the calling thread (an event loop must not wait for the disk).
        """
        item = self._prepare(batch)
        item.callback = callback
        self._enqueue(item)

    def submit_to(self, batch: Any, queue: CompletionQueue, token: Any, *, lend: bool = False) -> None:
        """Queue one batch without waiting, as :meth:`submit`; ``(token, result, exc)``
        goes to ``queue`` once the writer finished the batch's group, put there by the
        writer itself (no notifier thread). ``lend`` (the caller promises not to change
        the batch's memory until its outcome is drained) lets the native twin write
        from that memory; this twin copies either way, with the same results."""
        item = self._prepare(batch)
        item.inline = functools.partial(queue.put, token)
        self._enqueue(item)

    def flush(self) -> None:
        """Block until everything appended so far is written and fsynced. Raises
        LogOfflineError on an offline log, once every earlier append's outcome was
        delivered (waiters woken, queues filled)."""
        item = Item(None, 0)
        item.make_waitable()
        self._enqueue(item)
        item.wait()

    # -- shared with the writer and retention --------------------------------

    def _write_checkpoint(self) -> None:
        with self._ckpt_lock:
            rp = self._recovery_point
            checkpoint.write_checkpoint(self._directory, self._log_start, rp)
            self._checkpointed_rp = rp
            self._last_checkpoint = time.monotonic()

    def _check_readable(self) -> None:
        if self._closed:
            raise error.closed(self._directory)

    # -- reading ---------------------------------------------------------------

    def _spans(self, offset: int, max_bytes: int) -> list[read.Span]:
        return read.find_spans(
            self._segments, self._bases, self._log_start, self._hw, self._directory, offset, max_bytes
        )

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one containing ``offset``: at least one, more while <= ``max_bytes``.

        Returns b"" at the high watermark; raises OffsetOutOfRangeError below the
        log start or above the high watermark.
        """
        with self._lock:
            self._check_readable()
            parts = []
            for seg, pos, length in self._spans(offset, max_bytes):
                with seg.files.use(seg.log_path, READ) as fd:
                    parts.append(os.pread(fd, length, pos))
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def read_spans(self, offset: int, max_bytes: int) -> list[tuple[str, int, int]]:
        """(segment file path, position, length) runs covering exactly what ``read`` returns."""
        with self._lock:
            self._check_readable()
            return [(seg.log_path, pos, length) for seg, pos, length in self._spans(offset, max_bytes)]

    def file_ranges(
        self, offset: int, max_bytes: int, stop_before: int | None = None, nowait: bool = False
    ) -> tuple[list[tuple[int, int, int]], int, int] | None:
        """What ``read(offset, max_bytes)`` returns as ``([(fd, position, length), ...],
        records, end_offset)``, each ``fd`` a new descriptor the caller closes.

        Located and opened under the state lock, so a compaction swap or retention cannot
        come in between (a descriptor keeps its file readable after the segment goes).
        ``stop_before`` ends the ranges before the first batch at or above it. None when
        nothing is to be sent from files (at the high watermark, nothing below
        ``stop_before``, a header that is not a v2 batch's, a file cut short). ``nowait``: headers only
        from the page cache, else BlockingIOError (or OSError EOPNOTSUPP/EINVAL/ENOSYS
        where that cannot be asked). Other errors as ``read``.
        """
        with self._lock:
            self._check_readable()
            try:
                spans = read.find_spans(
                    self._segments,
                    self._bases,
                    self._log_start,
                    self._hw,
                    self._directory,
                    offset,
                    max_bytes,
                    nowait,
                )
                return read.file_ranges(spans, stop_before, nowait)
            except OSError as exc:
                if nowait and (isinstance(exc, BlockingIOError) or exc.errno in _NOWAIT_REFUSALS):
                    raise
                raise error.StorageError(f"{self._directory}: reading a segment: {exc}") from exc

    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= ``ts_ms``; None if none."""
        with self._lock:
            self._check_readable()
            return read.offset_for_timestamp(self._segments, ts_ms)

    # -- retention -----------------------------------------------------------

    def apply_retention(
        self, retention_ms: int | None, retention_bytes: int | None, now_ms: int | None = None
    ) -> int:
        """Delete whole closed segments past retention; return how many were deleted.

        ``retention_ms``: a segment whose largest timestamp is older than
        now - retention_ms goes. ``retention_bytes``: oldest segments go while the
        log stays >= retention_bytes without them. Only a prefix of the log is
        ever deleted and the active segment never is.
        """
        now = time.time() * 1000.0 if now_ms is None else now_ms
        return retention.apply(self, retention_ms, retention_bytes, now)

    def delete_records(self, offset: int) -> int:
        """Move the log start up to ``offset`` (DeleteRecords), deleting closed segments wholly below it.

        Returns the new log start; the checkpoint is written before it returns. An
        offset below the log start changes nothing; a negative one or one above the
        high watermark raises OffsetOutOfRangeError.
        """
        return retention.delete_records(self, offset)

    # -- compaction ------------------------------------------------------------

    def replace_segments(self, cleaned_path: str, base: int, end: int) -> bool:
        """Swap a cleaned file in for the closed segments with a base in [``base``, ``end``), crash-safely.

        ``cleaned_path`` is ``<dir>/<base:020>.log.cleaned`` from the cleaner; ``base``
        must be a segment's base and ``end`` a later segment's base, at most the active
        one's. Returns False (the file deleted) when those segments are no longer the
        log's. Raises ValueError on bad arguments, CorruptRecordError when the cleaned
        file is malformed (it is deleted) and StorageError on I/O failure (the log goes
        offline). Contract: docs/storage.md, "Swapping cleaned segments into a live log".
        """
        return swap.replace_segments(self, cleaned_path, base, end)

    @property
    def compacted_offset(self) -> int:
        """Offset below which compaction may have removed offsets (0: never compacted)."""
        return self._compacted_offset

    # -- state ---------------------------------------------------------------

    @property
    def recovery_report(self) -> dict[str, Any]:
        """What opening did: clean marker, segments scanned, bytes and offsets dropped, where and why."""
        return dict(self._recovery_report)

    @property
    def high_watermark(self) -> int:
        """Next offset to assign; everything below is written (fsync="always": fsynced)."""
        return self._hw

    @property
    def log_start_offset(self) -> int:
        """First offset still in the log."""
        return self._log_start

    @property
    def recovery_point(self) -> int:
        """Offset below which everything is known fsynced."""
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        """Bytes of committed batches across all segments."""
        with self._lock:
            return sum(s.size for s in self._segments)

    @property
    def segment_count(self) -> int:
        """Number of segments, the active one included."""
        return len(self._segments)

    @property
    def is_offline(self) -> bool:
        """True after a failed write or fsync (until reopened)."""
        return self._offline is not None

    @property
    def directory(self) -> str:
        """The partition directory."""
        return self._directory

    def stats(self) -> dict[str, int]:
        """Counters: queue_depth (now queued), appends, groups, fsyncs, fsync_total_us, writeback_starts, bytes_written, backpressure_rejections."""
        with self._cond:
            out = {"queue_depth": len(self._queue)}
        out.update(self._stats)
        return out

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Drain the queue, fsync, checkpoint, write the clean-shutdown marker, then wait until
        every ``submit`` callback has run.

        Idempotent; every call raises what the first close raised (StorageError when
        a step failed; the log is then offline).
        """
        with self._close_lock:
            if not self._closed:
                self._writer.begin_close()
                self._task.finished.wait()
                self._pool.notifier_barrier()
                with self._lock:
                    self._closed = True
        failure = self._writer.close_error
        if failure is not None:
            raise failure

    def __enter__(self) -> WalLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WalLog {self._directory!r} [{self._log_start}, {self._hw}) fsync={self._config.fsync}>"
