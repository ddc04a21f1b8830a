"""Reference twin of the ``wal`` capability: a segmented, group-committed write-ahead log.

One ``WalLog`` is one partition directory (format: docs/storage.md). Appends are
copied into a bounded queue; ONE writer thread takes everything queued (up to
``max_group_batches``), assigns offsets by patching each batch's baseOffset,
writes the group to the active segment with one ``os.writev``, appends the
sparse index entries, and (fsync="always") fsyncs once for the whole group
before completing any of its appends: group commit.

The reference writer never lingers to grow a group: it writes as soon as it is
idle and something is queued. Groups form naturally while it is busy writing
or fsyncing, so ``max_wait_ms`` (a bound on lingering) is accepted and kept for
parity with the native twin but has nothing to bound here.

Threads: appenders touch only the queue (under ``_cond``); the writer owns the
active segment's file handles and counters; readers, retention and the writer
share the segment list, high watermark and index lists under ``_lock``.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from typing import Any

from streamcore._reference._wal_format import (
    BASE_OFFSET,
    CLEAN_SHUTDOWN_NAME,
    check_append_header,
    fsync_dir,
    write_checkpoint,
)
from streamcore._reference._wal_recovery import open_directory
from streamcore._reference._wal_segment import Segment, iter_headers
from streamcore.errors import BackpressureError, LogOfflineError, OffsetOutOfRangeError, StorageError

__all__ = ["WalLog"]

logger = logging.getLogger("streamcore.storage")

_FSYNC_POLICIES = ("always", "interval", "never")
_MAX_TS = struct.Struct(">q")
_CHECKPOINT_EVERY_S = 1.0
# os.writev takes at most IOV_MAX buffers per call.
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)
_sync_data = getattr(os, "fdatasync", os.fsync)

AppendTuple = tuple[int, int, int]
Callback = Callable[[AppendTuple | None, BaseException | None], Any]


class _Item:
    """One queued append (or, with ``buf`` None, a flush request)."""

    __slots__ = ("buf", "last_delta", "lock", "callback", "result", "exc")

    def __init__(self, buf: bytearray | None, last_delta: int) -> None:
        self.buf = buf
        self.last_delta = last_delta
        self.lock: Any = None
        self.callback: Callback | None = None
        self.result: AppendTuple | None = None
        self.exc: BaseException | None = None

    def complete(self) -> None:
        if self.lock is not None:
            self.lock.release()
        elif self.callback is not None:
            try:
                self.callback(self.result, self.exc)
            except Exception:
                logger.exception("append callback raised")


class WalLog:
    """A partition's segmented log with a group-commit writer thread (see module docstring).

    Args:
        directory: partition directory (created if missing, recovered if present).
        fsync: "always" (append completes after the fsync covering it), "interval"
            (the writer fsyncs at most every ``fsync_interval_ms``), "never" (only at close).
        fsync_interval_ms: period of the "interval" policy (ms).
        queue_depth: appends queued but not yet written beyond which append raises BackpressureError.
        max_group_batches: most batches written by one group (one writev + one fsync).
        max_wait_ms: bound on lingering for a bigger group (the reference never lingers).
        segment_bytes: roll before an append that would make the active segment larger (bytes).
        segment_ms: roll when the active segment's first append is older than this (ms).
        index_interval_bytes: bytes of log between sparse index entries.
    """

    def __init__(
        self,
        directory: str,
        *,
        fsync: str = "interval",
        fsync_interval_ms: int = 1000,
        queue_depth: int = 10000,
        max_group_batches: int = 15000,
        max_wait_ms: int = 10,
        segment_bytes: int = 1 << 30,
        segment_ms: int | None = None,
        index_interval_bytes: int = 4096,
    ) -> None:
        if fsync not in _FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {_FSYNC_POLICIES}, not {fsync!r}")
        for name, value in (
            ("fsync_interval_ms", fsync_interval_ms),
            ("queue_depth", queue_depth),
            ("max_group_batches", max_group_batches),
            ("segment_bytes", segment_bytes),
            ("index_interval_bytes", index_interval_bytes),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, not {value!r}")
        if int(max_wait_ms) < 0:
            raise ValueError(f"max_wait_ms must be >= 0, not {max_wait_ms!r}")
        if segment_ms is not None and int(segment_ms) < 1:
            raise ValueError(f"segment_ms must be >= 1 or None, not {segment_ms!r}")
        self._directory = os.fspath(directory)
        self._fsync = fsync
        self._fsync_interval_s = int(fsync_interval_ms) / 1000.0
        self._queue_depth = int(queue_depth)
        self._max_group = int(max_group_batches)
        self._max_wait_ms = int(max_wait_ms)
        self._segment_bytes = int(segment_bytes)
        self._segment_ms = None if segment_ms is None else int(segment_ms)
        self._interval = int(index_interval_bytes)

        rec = open_directory(self._directory, self._interval)
        self._segments: list[Segment] = rec.segments
        self._bases = [s.base for s in self._segments]
        self._hw = rec.high_watermark
        self._log_start = rec.log_start_offset
        self._recovery_point = rec.high_watermark
        self._lock = threading.Lock()
        self._ckpt_lock = threading.Lock()
        self._retention_lock = threading.Lock()
        self._close_lock = threading.Lock()
        try:
            write_checkpoint(self._directory, self._log_start, self._recovery_point)
        except OSError:
            for seg in self._segments:
                seg.close()
            raise

        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self._closed = False
        self._offline: str | None = None
        #: Test-only failure injection: "write" or "fsync" makes the next such call fail with EIO.
        self._fail_next_io: str | None = None

        # Writer-owned state.
        self._next_offset = self._hw
        self._dirty = False
        self._last_fsync = time.monotonic()
        self._last_checkpoint = time.monotonic()
        self._seconds_per_append = 0.0

        self._stats = {
            "appends": 0,
            "groups": 0,
            "fsyncs": 0,
            "fsync_total_us": 0,
            "bytes_written": 0,
            "backpressure_rejections": 0,
        }
        self._writer = threading.Thread(
            target=self._run, name=f"streamcore-wal:{os.path.basename(self._directory)}", daemon=True
        )
        self._writer.start()

    # -- appending -------------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        with self._cond:
            if self._offline is not None:
                raise LogOfflineError(self._offline)
            if self._closing:
                raise StorageError(f"{self._directory}: log is closed")
            if item.buf is not None:
                queued = len(self._queue)
                if queued >= self._queue_depth:
                    self._stats["backpressure_rejections"] += 1
                    throttle = max(1, int(queued * self._seconds_per_append * 1000.0 + 0.5))
                    raise BackpressureError(
                        f"{self._directory}: write queue full ({queued} appends waiting); retry later",
                        throttle,
                    )
            self._queue.append(item)
            self._cond.notify()

    def _prepare(self, batch: Any) -> _Item:
        # The caller may reuse its buffer at once: copy before queueing.
        buf = bytearray(batch)
        return _Item(buf, check_append_header(buf))

    def append(self, batch: Any) -> AppendTuple:
        """Append one v2 record batch; return (base_offset, last_offset, log_append_time_ms).

        Blocks until written (fsync="always": until fsynced). Raises
        CorruptRecordError for a bad header, BackpressureError when the queue is
        full, LogOfflineError after a storage failure.
        """
        item = self._prepare(batch)
        lock = threading.Lock()
        lock.acquire()
        item.lock = lock
        self._enqueue(item)
        lock.acquire()
        if item.exc is not None:
            raise item.exc
        assert item.result is not None
        return item.result

    def submit(self, batch: Any, callback: Callback) -> None:
        """Queue one batch without waiting; ``callback(result, exc)`` runs once on the writer thread."""
        item = self._prepare(batch)
        item.callback = callback
        self._enqueue(item)

    def flush(self) -> None:
        """Block until everything appended so far is written and fsynced."""
        item = _Item(None, 0)
        lock = threading.Lock()
        lock.acquire()
        item.lock = lock
        self._enqueue(item)
        lock.acquire()
        if item.exc is not None:
            raise item.exc

    # -- writer thread -------------------------------------------------------

    def _run(self) -> None:
        cond = self._cond
        queue = self._queue
        while True:
            with cond:
                while not queue and not self._closing:
                    timeout = None
                    if self._dirty and self._fsync == "interval":
                        timeout = self._last_fsync + self._fsync_interval_s - time.monotonic()
                        if timeout <= 0:
                            break
                    cond.wait(timeout)
                if not queue and self._closing:
                    return
                n = min(len(queue), self._max_group)
                group = [queue.popleft() for _ in range(n)]
            try:
                self._write_group(group)
            except OSError as exc:
                self._go_offline(exc, group)
                return
            except BaseException as exc:  # a bug must not leave appenders blocked forever
                self._go_offline(exc, group)
                raise

    def _inject(self, op: str) -> None:
        if self._fail_next_io == op:
            self._fail_next_io = None
            raise OSError(errno.EIO, f"injected {op} failure")

    def _writev(self, fd: int, bufs: list) -> None:
        self._inject("write")
        i = 0
        while i < len(bufs):
            chunk = bufs[i : i + _IOV_MAX]
            written = os.writev(fd, chunk)
            i += len(chunk)
            expected = sum(len(b) for b in chunk)
            if written < expected:
                # Short write (rare: signals, full disk): finish the rest piece by piece.
                rest = []
                for b in chunk:
                    if written >= len(b):
                        written -= len(b)
                        continue
                    rest.append(memoryview(b)[written:])
                    written = 0
                for view in rest:
                    while view:
                        view = view[os.write(fd, view) :]

    def _sync(self, fd: int) -> None:
        self._inject("fsync")
        start = time.perf_counter_ns()
        _sync_data(fd)
        self._stats["fsyncs"] += 1
        self._stats["fsync_total_us"] += (time.perf_counter_ns() - start) // 1000

    def _flush_segment(self, seg: Segment, iov: list, idx: bytearray, tidx: bytearray) -> None:
        if iov:
            self._writev(seg.fd, iov)
            if idx:
                os.write(seg.index_fd, idx)
            if tidx:
                os.write(seg.timeindex_fd, tidx)
            self._dirty = True

    def _roll(self, old: Segment, base: int) -> Segment:
        durable = self._fsync != "never"
        if durable and self._dirty:
            self._sync(old.fd)
            self._dirty = False
        old.close_index_writers(fsync=durable)
        seg = Segment(self._directory, base)
        seg.open_log(create=True)
        seg.open_index_writers()
        seg.next_offset = base
        if durable:
            fsync_dir(self._directory)
        with self._lock:
            self._segments.append(seg)
            self._bases.append(base)
        return seg

    def _write_group(self, group: list[_Item]) -> None:
        started = time.perf_counter()
        now_ms = time.time() * 1000.0
        append_time = int(now_ms)
        seg = self._segments[-1]
        pos = seg.size
        next_off = self._next_offset
        interval = self._interval
        seg_bytes = self._segment_bytes
        seg_ms = self._segment_ms
        iov: list = []
        idx = bytearray()
        tidx = bytearray()
        entries: list = []
        commits: list = []
        flushes = 0
        written = 0
        appended = 0
        pack_base = BASE_OFFSET.pack_into
        unpack_ts = _MAX_TS.unpack_from
        for item in group:
            buf = item.buf
            if buf is None:
                flushes += 1
                continue
            n = len(buf)
            if pos > 0 and (
                pos + n > seg_bytes
                or (
                    seg_ms is not None
                    and seg.first_append_ms is not None
                    and now_ms - seg.first_append_ms >= seg_ms
                )
            ):
                self._flush_segment(seg, iov, idx, tidx)
                commits.append((seg, entries, pos, next_off))
                seg = self._roll(seg, next_off)
                pos = 0
                iov, idx, tidx, entries = [], bytearray(), bytearray(), []
            if seg.first_append_ms is None:
                seg.first_append_ms = now_ms
            pack_base(buf, 0, next_off)
            last = next_off + item.last_delta
            item.result = (next_off, last, append_time)
            i_bytes, t_bytes = seg.plan_batch(next_off, pos, n, unpack_ts(buf, 35)[0], interval, entries)
            if i_bytes:
                idx += i_bytes
            if t_bytes:
                tidx += t_bytes
            iov.append(buf)
            pos += n
            written += n
            appended += 1
            next_off = last + 1
        self._flush_segment(seg, iov, idx, tidx)
        commits.append((seg, entries, pos, next_off))
        self._next_offset = next_off

        synced = False
        if self._dirty and (
            self._fsync == "always"
            or flushes
            or (self._fsync == "interval" and time.monotonic() - self._last_fsync >= self._fsync_interval_s)
        ):
            self._sync(seg.fd)
            self._dirty = False
            self._last_fsync = time.monotonic()
            synced = True
        elif flushes or self._fsync == "always":
            synced = True  # nothing new since the last fsync

        with self._lock:
            for cseg, centries, csize, cnext in commits:
                cseg.commit_entries(centries)
                cseg.size = csize
                cseg.next_offset = cnext
            self._hw = next_off
            if synced:
                self._recovery_point = next_off
        stats = self._stats
        stats["appends"] += appended
        if group:
            stats["groups"] += 1
        stats["bytes_written"] += written
        if appended:
            per = (time.perf_counter() - started) / appended
            self._seconds_per_append = (
                per if not self._seconds_per_append else 0.8 * self._seconds_per_append + 0.2 * per
            )
        for item in group:
            item.complete()
        if synced and time.monotonic() - self._last_checkpoint >= _CHECKPOINT_EVERY_S:
            self._write_checkpoint()

    def _write_checkpoint(self) -> None:
        with self._ckpt_lock:
            write_checkpoint(self._directory, self._log_start, self._recovery_point)
            self._last_checkpoint = time.monotonic()

    def _go_offline(self, exc: BaseException, group: list[_Item]) -> None:
        message = f"{self._directory}: storage failure, log is offline until reopened: {exc!r}"
        logger.error(message)
        with self._cond:
            self._offline = message
            pending = list(self._queue)
            self._queue.clear()
        for item in group + pending:
            item.result = None
            failure = LogOfflineError(message)
            failure.__cause__ = exc
            item.exc = failure
            item.complete()

    # -- reading ---------------------------------------------------------------

    def _check_readable(self) -> None:
        if self._closed:
            raise StorageError(f"{self._directory}: log is closed")

    def _spans(self, offset: int, max_bytes: int) -> list[tuple[Segment, int, int]]:
        """(segment, position, length) runs of whole batches from the one holding ``offset``."""
        if offset < self._log_start or offset > self._hw:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self._log_start}, {self._hw}] of {self._directory}"
            )
        if offset == self._hw:
            return []
        i = bisect_right(self._bases, offset) - 1
        pos = self._segments[i].find_batch(offset)
        if pos is None:  # offset in a later segment than its base suggests: start there
            i += 1
            pos = 0
        spans = []
        total = 0
        first = True
        segments = self._segments
        while i < len(segments):
            seg = segments[i]
            start = pos
            full = False
            for p, _base, size, _ld, _mts in iter_headers(seg.fd, pos, seg.size):
                if not first and total + size > max_bytes:
                    full = True
                    break
                first = False
                total += size
                pos = p + size
            if pos > start:
                spans.append((seg, start, pos - start))
            if full:
                break
            i += 1
            pos = 0
        return spans

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one containing ``offset``: at least one, more while <= ``max_bytes``.

        Returns b"" at the high watermark; raises OffsetOutOfRangeError below the
        log start or above the high watermark.
        """
        with self._lock:
            self._check_readable()
            parts = [os.pread(seg.fd, length, pos) for seg, pos, length in self._spans(offset, max_bytes)]
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def read_spans(self, offset: int, max_bytes: int) -> list[tuple[str, int, int]]:
        """(segment file path, position, length) runs covering exactly what ``read`` returns."""
        with self._lock:
            self._check_readable()
            return [(seg.log_path, pos, length) for seg, pos, length in self._spans(offset, max_bytes)]

    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= ``ts_ms``; None if none."""
        with self._lock:
            self._check_readable()
            for seg in self._segments:
                if seg.size == 0:
                    continue
                largest = seg.largest_timestamp()
                if largest is None or largest < ts_ms:
                    continue
                found = seg.first_batch_at_or_after_time(ts_ms)
                if found is not None:
                    return found
            return None

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
        with self._retention_lock:
            with self._lock:
                self._check_readable()
                closed = self._segments[:-1]
                victims = 0
                if retention_ms is not None:
                    for seg in closed:
                        largest = seg.largest_timestamp()
                        if largest is None or largest >= now - retention_ms:
                            break
                        victims += 1
                if retention_bytes is not None:
                    total = sum(s.size for s in self._segments[victims:])
                    while victims < len(closed) and total - closed[victims].size >= retention_bytes:
                        total -= closed[victims].size
                        victims += 1
                if not victims:
                    return 0
                doomed = closed[:victims]
                renamed = []
                for seg in doomed:
                    for path in (seg.log_path, seg.index_path, seg.timeindex_path):
                        if os.path.exists(path):
                            os.replace(path, path + ".deleted")
                            renamed.append(path + ".deleted")
                del self._segments[:victims]
                del self._bases[:victims]
                self._log_start = max(self._log_start, self._segments[0].base)
                for seg in doomed:
                    seg.close()
            fsync_dir(self._directory)
            self._write_checkpoint()
            for path in renamed:
                os.unlink(path)
            return victims

    # -- state ---------------------------------------------------------------

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
        """Counters: queue_depth (now queued), appends, groups, fsyncs, fsync_total_us, bytes_written, backpressure_rejections."""
        with self._cond:
            out = {"queue_depth": len(self._queue)}
        out.update(self._stats)
        return out

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Drain the queue, fsync, checkpoint, write the clean-shutdown marker; idempotent."""
        with self._close_lock:
            if self._closed:
                return
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._writer.join()
            try:
                if self._offline is None:
                    active = self._segments[-1]
                    self._sync(active.fd)
                    active.close_index_writers(fsync=True)
                    self._recovery_point = self._hw
                    self._write_checkpoint()
                    fd = os.open(
                        os.path.join(self._directory, CLEAN_SHUTDOWN_NAME), os.O_WRONLY | os.O_CREAT, 0o644
                    )
                    os.close(fd)
                    fsync_dir(self._directory)
            except OSError as exc:
                self._offline = f"{self._directory}: close failed: {exc!r}"
                logger.error(self._offline)
                raise StorageError(self._offline) from exc
            finally:
                with self._lock:
                    self._closed = True
                    for seg in self._segments:
                        seg.close()

    def __enter__(self) -> WalLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<WalLog {self._directory!r} [{self._log_start}, {self._hw}) fsync={self._fsync}>"
