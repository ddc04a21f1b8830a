"""The writer of one log: group commit, segment roll, fsync policy, checkpoints, close (twin of ``writer.rs``).

It runs on the threads of a :class:`~streamcore._reference.wal.pool.WalPool`, one
step at a time (:meth:`Writer.step`): a step writes one group or does one periodic
round, or finds nothing to do and leaves the log idle, with a deadline when a
linger, an interval fsync or a checkpoint falls due. Files come from the pool's
file cache by path, so an idle log holds no thread and no descriptor.

ONE writer per log takes everything queued (up to ``max_group_batches``),
assigns offsets by patching each batch's baseOffset, writes the group to the
active segment with one ``os.writev``, appends the sparse index entries, and
(fsync="always") fsyncs once for the whole group before completing any of its
appends: group commit.

Groups form while the writer is busy writing or fsyncing; beyond that it
lingers for a bigger group only when waiting can help (the rule of
``Writer.linger_deadline``, the same as ``writer.rs``): under fsync "always" or
"interval", with no flush or close waiting and no backlog left by a full group,
while fewer appends are queued than were outstanding when the last group
completed, and never past ``max_wait_ms`` after the oldest queued append.

Appends enter through :meth:`Writer.enqueue`, which also enforces the queue's
bounds: ``queue_depth`` appends and ``memory_budget_bytes`` bytes, and wakes an
idle writer when it waits for this many appends.

The :class:`Writer` owns the active segment and the counters
only it changes (next offset, unsynced data, last fsync); it publishes the
high watermark, recovery point and index entries into the log's shared state
under the log's state lock.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from streamcore._atomic_file import fsync_dir
from streamcore._reference._batch_header import max_timestamp, patch_base_offset
from streamcore._reference.wal import error
from streamcore._reference.wal.checkpoint import write_clean_shutdown_marker
from streamcore._reference.wal.completion import Item
from streamcore._reference.wal.files import APPEND, SYNC, WRITE
from streamcore._reference.wal.index import plan_batch
from streamcore._reference.wal.pool import AGAIN, FINISHED, WAIT, LogTask, WalPool
from streamcore._reference.wal.segment import Segment

if TYPE_CHECKING:
    from streamcore._reference.wal import WalLog

__all__ = ["CHECKPOINT_EVERY_S", "Writer"]

logger = logging.getLogger("streamcore.storage")

#: Checkpoints are written at most this often while appends advance the recovery point (s).
CHECKPOINT_EVERY_S = 1.0
#: Under fsync="interval", writeback is started once this many bytes were written since
#: the last start (twin of ``WRITEBACK_CHUNK_BYTES`` in writer.rs, which says why).
WRITEBACK_CHUNK_BYTES = 4 << 20


def _libc_sync_file_range() -> object | None:
    """Linux's sync_file_range through ctypes (Python's os has none); None elsewhere."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_SYNC_FILE_RANGE = _libc_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2

# os.writev takes at most IOV_MAX buffers per call.
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)
_sync_data = getattr(os, "fdatasync", os.fsync)


class Writer:
    """The writer of one log and the state only it touches (see module docstring)."""

    def __init__(self, log: WalLog, next_offset: int, pool: WalPool) -> None:
        self.log = log
        self.pool = pool
        #: The log's place in the pool, set once registered.
        self.task: LogTask | None = None
        self.next_offset = next_offset
        # Queue accounting, guarded by ``log._cond`` (appenders and the writer share it).
        #: Bytes of appends queued or being written: what the memory budget bounds.
        self.pending_bytes = 0
        #: Flush requests in the queue (a queued flush is never kept waiting).
        self.flushes = 0
        #: Arrival (monotonic s) of the oldest append queued since the writer last took everything.
        self.oldest: float | None = None
        #: Queued appends at which an idle writer wants waking (more than 1 while lingering).
        self.wake_at = 1
        #: Nobody runs the writer and it is not scheduled: the next append it waits for,
        #: a flush, a close or a due timer schedules it.
        self.idle = False
        # Only the writer touches the rest.
        #: Appends outstanding when the last group completed (its own and those queued meanwhile).
        self.company = 1
        #: The last group was full and left appends queued: write the rest at once.
        self.backlog = False
        #: Groups written by a blocking appender on its own thread (``WalPool.lead``).
        self.groups_led = 0
        #: Data written since the last fsync.
        self.dirty = False
        self.last_fsync = time.monotonic()
        #: Bytes of the active segment whose writeback was started (fsync="interval";
        #: see ``_start_writeback``). None until the first group.
        self._wb_from: int | None = None
        #: What closing raised (StorageError), for every close() to raise.
        self.close_error: BaseException | None = None

    # -- scheduling ------------------------------------------------------------

    def _kick(self) -> bool:
        """Mark an idle writer busy (caller holds ``log._cond``); True when the caller must schedule it."""
        if not self.idle or self.task is None:
            return False
        self.idle = False
        return True

    def _schedule(self) -> None:
        assert self.task is not None
        self.pool.schedule(self.task)

    def wake_if_idle(self) -> bool:
        """A due timer: True when the writer was idle and the caller must schedule it."""
        with self.log._cond:
            return self._kick()

    def begin_close(self) -> None:
        """Stop the log taking appends and wake the writer to drain and finish."""
        with self.log._cond:
            self.log._closing = True
            kick = self._kick()
        if kick:
            self._schedule()

    # -- the queue -------------------------------------------------------------

    def enqueue(self, item: Item, may_lead: bool = False) -> bool:
        """Admit ``item`` under the queue's bounds and queue it (called by appenders).

        When the idle writer has to run for it, a caller with ``may_lead`` (a
        blocking append) claims the writer and gets True: it then runs the writer on
        its own thread (``WalPool.lead``); otherwise the log is scheduled on the pool
        and False returned.

        Raises LogOfflineError, StorageError (closed) or BackpressureError when
        ``queue_depth`` appends are queued or the batch would take the queued bytes
        past ``memory_budget_bytes`` (an empty queue takes even a larger batch:
        refusing it would ask for a retry that can never succeed).
        """
        log = self.log
        with log._cond:
            buf = item.buf
            # An offline log's flush queues too (unless the log is closing): the writer
            # fails the appends queued before it, delivering each outcome, and only
            # then the flush (see step).
            if log._offline is not None and (buf is not None or log._closing):
                raise error.offline(log._offline)
            if log._closing:
                raise error.closed(log._directory)
            queue = log._queue
            if buf is None:
                self.flushes += 1
                queue.append(item)
                kick = self._kick()
            else:
                kick = self._admit(item, buf, queue)
        if kick:
            if may_lead:
                return True
            self._schedule()
        return False

    def _admit(self, item: Item, buf: bytearray, queue: deque[Item]) -> bool:
        # Called with log._cond held; True when the writer must be scheduled.
        log = self.log
        cfg = log._config
        size = len(buf)
        queued = len(queue)
        over_budget = self.pending_bytes > 0 and self.pending_bytes + size > cfg.memory_budget_bytes
        if queued >= cfg.queue_depth or over_budget:
            log._stats["backpressure_rejections"] += 1
            # The time the writer needs to drain what is queued, at its recent pace.
            throttle = max(1, int(queued * log._seconds_per_append * 1000.0 + 0.5))
            if not over_budget:
                raise error.backpressure(log._directory, queued, throttle)
            raise error.BackpressureError(
                f"{log._directory}: write queue holds {self.pending_bytes} bytes and a {size}-byte "
                f"batch would pass its memory budget of {cfg.memory_budget_bytes} bytes; retry later",
                throttle,
            )
        self.pending_bytes += size
        if self.oldest is None:
            self.oldest = time.monotonic()
        queue.append(item)
        # An idle writer lingering for a group wants waking only once the whole group is here.
        return queued + 1 - self.flushes >= self.wake_at and self._kick()

    def linger_deadline(self) -> tuple[float, int] | None:
        """(monotonic time at which to stop lingering, appends to wait for); None: write what is queued now.

        Called with ``log._cond`` held. Only under fsync "always", where a bigger
        group saves fsyncs (under "interval" or "never" it would save only a write
        call, and the wait held whole bursts of acknowledgements). Waiting can only
        grow the group when its appenders are still to come: a single synchronous
        appender has no company (its next append follows the completion of the
        last), so it never waits; N threads appending in a loop get groups of N,
        written as soon as the N-th arrives. The wait ends ``max_wait_ms`` after the
        oldest queued append.
        """
        log = self.log
        cfg = log._config
        if log._closing or self.flushes or self.backlog or cfg.max_wait_ms == 0 or cfg.fsync != "always":
            return None
        target = min(self.company, cfg.max_group_batches)
        if len(log._queue) - self.flushes >= target or self.oldest is None:
            return None
        return self.oldest + cfg.max_wait_ms / 1000.0, target

    # -- one step ---------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """Monotonic time at which an interval fsync or a checkpoint falls due (None: none).

        Called with ``log._cond`` held.
        """
        log = self.log
        if log._offline is not None:
            return None
        due = None
        if self.dirty and log._config.fsync == "interval":
            due = self.last_fsync + log._config.fsync_interval_s
        if log._recovery_point != log._checkpointed_rp:
            at = log._last_checkpoint + CHECKPOINT_EVERY_S
            due = at if due is None else min(due, at)
        return due

    def _decide(self) -> tuple[str, float | None]:
        """What the writer has to do now: ("group", None), ("periodic", None),
        ("finish", None) or (WAIT, deadline or None), in which case the log is marked
        idle (with ``wake_at`` when it lingers for a group). Called with ``log._cond`` held.
        """
        log = self.log
        self.wake_at = 1
        if not log._queue:
            if log._closing:
                return "finish", None
            due = self.next_deadline()
            if due is None or due > time.monotonic():
                self.idle = True
                return WAIT, due
            return "periodic", None
        linger = self.linger_deadline()
        if linger is not None and time.monotonic() < linger[0]:
            self.wake_at = linger[1]
            self.idle = True
            return WAIT, linger[0]
        return "group", None

    def park(self) -> tuple[bool, float | None]:
        """For a leader whose own append is done: (True, deadline or None) when the log
        was left idle with nothing to do now; (False, None) when work is due (a group,
        a periodic round, the close), which the leader hands to the pool."""
        with self.log._cond:
            what, due = self._decide()
        if what == WAIT:
            return True, due
        return False, None

    def step(self) -> tuple[str, float | None]:
        """Run one step: one group, one periodic round, the close, or nothing (idle).

        Returns (AGAIN, None) when there may be more to do, (WAIT, deadline or None)
        when the log is idle until woken or until the monotonic deadline, and
        (FINISHED, None) once closed. Never blocks waiting for work.
        """
        log = self.log
        queue = log._queue
        max_group = log._config.max_group_batches
        # None: the log is closing with nothing queued.
        group: list[Item] | None
        with log._cond:
            what, due = self._decide()
            if what == WAIT:
                return WAIT, due
            if what == "finish":
                group = None
            elif what == "periodic":
                group = []
            else:
                group = []
                appends = 0
                while queue:
                    if queue[0].buf is None:
                        self.flushes -= 1
                    elif appends == max_group:
                        break
                    else:
                        appends += 1
                    group.append(queue.popleft())
                # What stays behind arrived while the writer was busy: no reason to wait for it.
                self.backlog = bool(queue)
                self.oldest = None
        if group is None:
            self.finish()
            return FINISHED, None
        if group and log._offline is not None:
            # A flush queued on the offline log, or appends queued before a failed
            # segment swap took it offline (the swap does not fail the queue): they fail
            # here, in queue order, so a flush is answered only after the appends queued
            # before it (the native writer's fail_all answers its flushes last).
            appended = sum(len(item.buf) for item in group if item.buf is not None)
            if appended:
                with log._cond:
                    self.pending_bytes -= appended
            message = log._offline
            self._fail(group, lambda: error.offline(message))
            return AGAIN, None
        if group:
            try:
                self.write_group(group)
            except OSError as exc:
                self.go_offline(exc, group)
            except BaseException as exc:  # a bug must not leave appenders blocked forever
                self.go_offline(exc, group)
                raise
        self.periodic()
        return AGAIN, None

    def periodic(self) -> None:
        """Interval fsync and checkpoint, when due; a failure takes the log offline."""
        log = self.log
        if log._offline is not None:
            return
        try:
            if self.dirty and log._config.fsync == "interval":
                if time.monotonic() - self.last_fsync >= log._config.fsync_interval_s:
                    active = log._segments[-1]
                    with active.files.use(active.log_path, SYNC) as fd:
                        self.sync(fd)
                    self.dirty = False
                    self.last_fsync = time.monotonic()
                    with log._lock:
                        log._recovery_point = self.next_offset
            if (
                log._recovery_point != log._checkpointed_rp
                and time.monotonic() - log._last_checkpoint >= CHECKPOINT_EVERY_S
            ):
                log._write_checkpoint()
        except OSError as exc:
            self.go_offline(exc, [])

    # -- I/O -------------------------------------------------------------------

    def _inject(self, op: str) -> None:
        log = self.log
        if log._fail_next_io == op:
            log._fail_next_io = None
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

    def sync(self, fd: int) -> None:
        """fsync the data of ``fd``, counted in the log's stats (and subject to failure injection)."""
        self._inject("fsync")
        start = time.perf_counter_ns()
        _sync_data(fd)
        stats = self.log._stats
        stats["fsyncs"] += 1
        stats["fsync_total_us"] += (time.perf_counter_ns() - start) // 1000

    def _flush_segment(self, seg: Segment, iov: list, idx: bytearray, tidx: bytearray) -> None:
        if iov:
            files = seg.files
            with files.use(seg.log_path, WRITE) as fd:
                self._writev(fd, iov)
            if idx:
                with files.use(seg.index_path, APPEND) as fd:
                    _write_all(fd, idx)
            if tidx:
                with files.use(seg.timeindex_path, APPEND) as fd:
                    _write_all(fd, tidx)
            self.dirty = True

    def _start_writeback(self, seg: Segment, end: int) -> None:
        """Under fsync="interval", ask the kernel to start writing ``seg``'s bytes up to
        ``end`` once ``WRITEBACK_CHUNK_BYTES`` have gathered (a hint: the fsync still
        makes them durable, and reports any failure)."""
        start = self._wb_from or 0
        unstarted = end - start
        if self.log._config.fsync != "interval" or unstarted < WRITEBACK_CHUNK_BYTES:
            return
        if _SYNC_FILE_RANGE is not None:
            with seg.files.use(seg.log_path, WRITE) as fd:
                _SYNC_FILE_RANGE(fd, start, unstarted, _SYNC_FILE_RANGE_WRITE)  # type: ignore[operator]
        self._wb_from = end
        self.log._stats["writeback_starts"] += 1

    def _sync_indexes(self, seg: Segment) -> None:
        for path in (seg.index_path, seg.timeindex_path):
            with seg.files.use(path, SYNC) as fd:
                os.fsync(fd)

    def _roll(self, old: Segment, base: int) -> Segment:
        log = self.log
        durable = log._config.fsync != "never"
        if durable and self.dirty:
            with old.files.use(old.log_path, SYNC) as fd:
                self.sync(fd)
            self.dirty = False
        if durable:
            self._sync_indexes(old)
        seg = Segment(log._directory, base, old.files)
        seg.create_files(truncate=True)
        seg.next_offset = base
        if durable:
            fsync_dir(log._directory)
        with log._lock:
            log._segments.append(seg)
            log._bases.append(base)
        return seg

    # -- one group -------------------------------------------------------------

    def write_group(self, group: list[Item]) -> None:
        """Write, index, fsync (per policy) and complete one group of queued items."""
        log = self.log
        cfg = log._config
        started = time.perf_counter()
        now_ms = time.time() * 1000.0
        append_time = int(now_ms)
        seg = log._segments[-1]
        pos = seg.size
        if self._wb_from is None:
            # What is on disk at open is the OS's business (or synced already).
            self._wb_from = pos
        next_off = self.next_offset
        interval = cfg.index_interval_bytes
        seg_bytes = cfg.segment_bytes
        seg_ms = cfg.segment_ms
        iov: list = []
        idx = bytearray()
        tidx = bytearray()
        entries: list = []
        commits: list = []
        flushes = 0
        written = 0
        appended = 0
        patch_base = patch_base_offset
        max_ts_of = max_timestamp
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
                self._start_writeback(seg, pos)
                commits.append((seg, entries, pos, next_off))
                seg = self._roll(seg, next_off)
                self._wb_from = 0
                pos = 0
                iov, idx, tidx, entries = [], bytearray(), bytearray(), []
            if seg.first_append_ms is None:
                seg.first_append_ms = now_ms
            patch_base(buf, next_off)
            last = next_off + item.last_delta
            item.result = (next_off, last, append_time)
            i_bytes, t_bytes = plan_batch(seg, next_off, pos, n, max_ts_of(buf), interval, entries)
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
        self._start_writeback(seg, pos)
        commits.append((seg, entries, pos, next_off))
        self.next_offset = next_off

        synced = False
        # A due interval fsync waits until this group's outcomes are delivered
        # (``periodic``, right after): its appends were never promised it.
        if self.dirty and (cfg.fsync == "always" or flushes):
            with seg.files.use(seg.log_path, SYNC) as fd:
                self.sync(fd)
            self.dirty = False
            self.last_fsync = time.monotonic()
            synced = True
        elif flushes or cfg.fsync == "always":
            synced = True  # nothing new since the last fsync

        with log._lock:
            for cseg, centries, csize, cnext in commits:
                cseg.commit_entries(centries)
                cseg.size = csize
                cseg.next_offset = cnext
            log._hw = next_off
            if synced:
                log._recovery_point = next_off
        if appended:
            with log._cond:
                self.company = appended + len(log._queue) - self.flushes
                self.pending_bytes -= written
        stats = log._stats
        stats["appends"] += appended
        if group:
            stats["groups"] += 1
        stats["bytes_written"] += written
        if appended:
            per = (time.perf_counter() - started) / appended
            log._seconds_per_append = (
                per if not log._seconds_per_append else 0.8 * log._seconds_per_append + 0.2 * per
            )
        self.complete(group)
        if synced and time.monotonic() - log._last_checkpoint >= CHECKPOINT_EVERY_S:
            log._write_checkpoint()

    def complete(self, items: list[Item]) -> None:
        """Deliver outcomes: wake waiters, hand callbacks to the pool's notifier thread."""
        callbacks: list = []
        for item in items:
            item.complete(callbacks)
        if callbacks:
            self.pool.notify(callbacks)

    def go_offline(self, exc: BaseException, group: list[Item]) -> None:
        """Take the log offline after ``exc``: fail this group and everything still queued."""
        log = self.log
        message = f"{log._directory}: storage failure, log is offline until reopened: {exc!r}"
        logger.error(message)
        with log._cond:
            log._offline = message
            pending = list(log._queue)
            log._queue.clear()
            self.pending_bytes = 0
            self.flushes = 0
        self._fail(group + pending, lambda: error.offline(message, exc))

    def _fail(self, items: list[Item], failure: Callable[[], BaseException]) -> None:
        """Deliver a new ``failure()`` as the outcome of each of ``items`` (an exception
        object each: waiters on several threads raise them)."""
        for item in items:
            item.result = None
            item.exc = failure()
        self.complete(items)

    def abandon(self, exc: BaseException) -> None:
        """After a bug in a step: the log goes offline, everything queued fails, a waiting close returns."""
        log = self.log
        if log._offline is None:
            self.go_offline(exc, [])
        with log._cond:
            log._closing = True
        self.close_error = error.offline(log._offline or "log is offline", exc)
        log._pool.files.forget_dir(log._directory)

    # -- close -----------------------------------------------------------------

    def finish(self) -> None:
        """The close, as the writer's last step: fsync, checkpoint, clean-shutdown marker.

        An offline log gets none of them (nothing is retried on its files). A failure
        takes the log offline and is kept in ``close_error`` for ``close()`` to raise.
        Afterwards the log holds no descriptor.
        """
        log = self.log
        try:
            if log._offline is None:
                active = log._segments[-1]
                with active.files.use(active.log_path, SYNC) as fd:
                    self.sync(fd)
                self._sync_indexes(active)
                log._recovery_point = log._hw
                log._write_checkpoint()
                write_clean_shutdown_marker(log._directory)
                fsync_dir(log._directory)
        except OSError as exc:
            message = f"{log._directory}: close failed: {exc!r}"
            with log._cond:
                log._offline = message
            logger.error(message)
            failure = error.StorageError(message)
            failure.__cause__ = exc
            self.close_error = failure
        finally:
            log._pool.files.forget_dir(log._directory)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
