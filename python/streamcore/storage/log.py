"""``Log``: one partition's durable log, a thin typed layer over the active WAL implementation.

The WAL (``streamcore._impl.wal.WalLog``, native or reference) does the work:
segments, indexes, the group-commit writer thread, recovery. This layer adds
profiles, configured retention, typed results and an asyncio entry point that
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore.codec.batch_header import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, parse_header
from streamcore.errors import ConfigError, OffsetOutOfRangeError, StorageError
from streamcore.storage.dir_lock import DirLock
from streamcore.storage.profiles import WalProfile, resolve_profile

__all__ = ["AppendResult", "BatchHeader", "Log"]


class AppendResult(NamedTuple):
    """Where an appended batch landed."""

    #: Offset assigned to the batch's first record.
    base_offset: int
    #: Offset of the batch's last record (base_offset + lastOffsetDelta).
    last_offset: int
    #: Wall time at which the writer wrote the batch (ms since the epoch).
    log_append_time_ms: int


class _Completions:
    """Hands WAL completions to one event loop, waking it once per burst.

    The loop's appends go to the WAL with ``submit_to`` and this loop's
    ``CompletionQueue``; the writer thread puts each outcome there and writes one byte
    to the queue's pipe when it was empty, and the loop, which watches the pipe, settles
    every future waiting in the queue in one call. So one group commit (and any other
    partition's commit landing meanwhile) costs one wake-up, and the WAL side needs
    neither the GIL nor a thread hop: with ``submit`` callbacks the WAL's notifier
    thread took the GIL for each group, which on a busy broker meant waiting for the
    event loop to let it go (8 % of the broker's CPU under Kafka's producer perf tool).
    Needs a loop with ``add_reader`` (the selector loops; uvloop).
    """

    __slots__ = ("queue",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        #: The WAL delivers (future, result, exc) here (``WalLog.submit_to``).
        self.queue = _impl.wal.CompletionQueue()
        # The loop (its selector) keeps this object, and so the queue and its pipe,
        # while it lives; nothing here refers back to the loop, so both go together.
        loop.add_reader(self.queue.fileno(), self._drain)

    def _drain(self) -> None:
        new = tuple.__new__
        for token, result, exc in self.queue.drain():
            if type(token) is tuple:
                # (future, on_written): the hook runs here, before the future is
                # settled and whether or not it was cancelled (see Log.append_async).
                fut, on_written = token
                appended = None if exc is not None else new(AppendResult, result)
                try:
                    on_written(appended, exc)
                except Exception:
                    logger.exception("an append's on_written hook failed")
            else:
                fut = token
                appended = None
            if fut.cancelled():
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(appended if appended is not None else new(AppendResult, result))


# The loop of the last append (weakly) and its completion queue: a broker has one
# loop, so the lookup is one identity check; other loops (tests, several asyncio.run
# calls) get a queue each through the weak map, which drops it with its loop.
_last_completions: tuple[Callable[[], asyncio.AbstractEventLoop | None], _Completions | None] = (
    lambda: None,
    None,
)
_completions_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Completions] = (
    weakref.WeakKeyDictionary()
)


def _completions(loop: asyncio.AbstractEventLoop) -> _Completions:
    global _last_completions
    last_loop, last = _last_completions
    if last_loop() is loop and last is not None:
        return last
    found = _completions_by_loop.get(loop)
    if found is None:
        found = _completions_by_loop[loop] = _Completions(loop)
    _last_completions = (weakref.ref(loop), found)
    return found


_HEADER_WALK_CHUNK = 1 << 30  # bytes per read_spans call while walking headers


def _span_headers(path: str, position: int, length: int) -> Iterator[BatchHeader]:
    """Headers of the back-to-back batches in ``length`` bytes of ``path`` from byte ``position``."""
    end = position + length
    with open(path, "rb") as fh:
        while position + HEADER_SIZE <= end:
            fh.seek(position)
            head = fh.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                return
            header = parse_header(head)
            yield header
            position += header.batch_length + LOG_OVERHEAD


logger = logging.getLogger("streamcore.storage")


def describe_recovery(report: dict[str, Any]) -> str | None:
    """One line saying what recovery dropped, or None when it dropped nothing.

    ``report`` has the keys of ``Log.recovery_report``.
    """
    dropped = report.get("truncated_bytes", 0)
    if not dropped:
        return None
    first, old_end = report["first_dropped_offset"], report["old_end_offset"]
    if old_end > first:
        offsets = f"offsets {first} to {old_end - 1} ({old_end - first} offsets) were dropped"
    else:
        offsets = f"offsets from {first} on were dropped (the dropped bytes name no whole batch)"
    where = f"cut {report['cut_file']} at byte {report['cut_position']}: {report['reason']}"
    deleted = report.get("segments_deleted", 0)
    later = f"; {deleted} later segment(s) deleted" if deleted else ""
    return (
        f"recovery of {report['directory']} dropped {dropped} bytes: {offsets}; "
        f"the log now ends at offset {report['end_offset']} ({where}{later})"
    )


def _log_recovery(report: dict[str, Any]) -> None:
    line = describe_recovery(report)
    if line is not None:
        logger.warning(line)
    elif report and not report.get("clean", True) and report.get("old_end_offset", 0) > 0:
        # (A brand-new, empty log has no marker either; there was nothing to recover.)
        logger.info(
            "recovered %s after an unclean shutdown: %d segment(s) scanned, nothing dropped, "
            "the log ends at offset %d",
            report["directory"],
            report["scanned_segments"],
            report["end_offset"],
        )


def _optional_ms(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be a non-negative int (ms) or None, not {value!r}")
    return value


class Log:
    """A partition log in ``directory`` (created if missing, recovered if present).

    Args:
        directory: the partition directory.
        fsync: "always" (append returns after the fsync covering it; group commit),
            "interval" (fsync at most every ``fsync_interval_ms``), "never" (only at close).
        fsync_interval_ms: period of the "interval" policy (ms).
        profile: "low", "medium", "high" or "ultra": queue depth, group size, max wait.
        segment_bytes: largest segment file (bytes) before a roll.
        segment_ms: roll a segment this long after its first append (ms); None = never by age.
        retention_ms: ``apply_retention`` deletes closed segments whose newest
            timestamp is older than this (ms); None = keep.
        retention_bytes: ``apply_retention`` deletes oldest closed segments while the
            log stays at least this big without them (bytes); None = keep.
        queue_depth, max_group_batches, max_wait_ms, memory_budget_bytes: override the
            profile's values (memory_budget_bytes: bytes queued before BackpressureError).
        index_interval_bytes: bytes of log between sparse index entries.
        lock: take ``directory/.lock`` exclusively (and a shared lock on the parent's
            ``.lock`` if the parent is a broker's data directory) for as long as the log
            is open, so that no second process opens the same log. The broker passes
            False: its lock on the whole data directory covers every log in it.
        pool: the ``_impl.wal.WalPool`` whose writer threads and file cache the log
            uses (a LogManager passes the one pool of its data directory); None: the
            process-wide default pool (2 writer threads, 256 open files).

    Raises DataDirLockedError when another process has the log or its data directory open,
    and StorageError when fsynced data is damaged (the message names the file, the byte
    and ``streamcore log recover --truncate DIR``, the way out).

    ``recovery_report`` says what opening did, as a dict: ``directory``; ``clean``
    (the clean-shutdown marker was present); ``scanned_segments``; ``truncated_bytes``
    (bytes dropped); ``segments_deleted``; ``first_dropped_offset`` (None when nothing
    was dropped); ``old_end_offset`` and ``end_offset`` (the end before, as far as the
    dropped bytes' headers tell, and after); ``cut_file``, ``cut_position`` and
    ``reason`` (where and why the log was cut). When data was dropped, one WARNING on
    the ``streamcore.storage`` logger says so at open.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str = "interval",
        fsync_interval_ms: int = 1000,
        profile: str = "medium",
        segment_bytes: int = 1 << 30,
        segment_ms: int | None = None,
        retention_ms: int | None = None,
        retention_bytes: int | None = None,
        queue_depth: int | None = None,
        max_group_batches: int | None = None,
        max_wait_ms: int | None = None,
        memory_budget_bytes: int | None = None,
        index_interval_bytes: int = 4096,
        lock: bool = True,
        pool: Any | None = None,
    ) -> None:
        self._locks: list[DirLock] = []
        if lock:
            os.makedirs(directory, exist_ok=True)
            self._locks = [
                DirLock(os.path.dirname(os.path.abspath(directory)), shared=True, create=False),
                DirLock(directory),
            ]
            try:
                for held in self._locks:
                    held.acquire()
            except BaseException:
                self._release_locks()
                raise
        try:
            self._open(
                directory,
                fsync=fsync,
                fsync_interval_ms=fsync_interval_ms,
                profile=profile,
                segment_bytes=segment_bytes,
                segment_ms=segment_ms,
                retention_ms=retention_ms,
                retention_bytes=retention_bytes,
                queue_depth=queue_depth,
                max_group_batches=max_group_batches,
                max_wait_ms=max_wait_ms,
                memory_budget_bytes=memory_budget_bytes,
                index_interval_bytes=index_interval_bytes,
                pool=pool,
            )
        except BaseException:
            self._release_locks()
            raise

    def _open(
        self,
        directory: str | os.PathLike[str],
        *,
        fsync: str,
        fsync_interval_ms: int,
        profile: str,
        segment_bytes: int,
        segment_ms: int | None,
        retention_ms: int | None,
        retention_bytes: int | None,
        queue_depth: int | None,
        max_group_batches: int | None,
        max_wait_ms: int | None,
        memory_budget_bytes: int | None,
        index_interval_bytes: int,
        pool: Any | None,
    ) -> None:
        self.profile: WalProfile = resolve_profile(
            profile,
            queue_depth=queue_depth,
            max_group_batches=max_group_batches,
            max_wait_ms=max_wait_ms,
            memory_budget_bytes=memory_budget_bytes,
        )
        self.retention_ms = _optional_ms("retention_ms", retention_ms)
        self.retention_bytes = _optional_ms("retention_bytes", retention_bytes)
        # Kept so that reopen() builds the same WAL again.
        self._wal_settings: dict[str, Any] = {
            "fsync": fsync,
            "fsync_interval_ms": fsync_interval_ms,
            "queue_depth": self.profile.queue_depth,
            "memory_budget_bytes": self.profile.memory_budget_bytes,
            "max_group_batches": self.profile.max_group_batches,
            "max_wait_ms": self.profile.max_wait_ms,
            "segment_bytes": segment_bytes,
            "segment_ms": _optional_ms("segment_ms", segment_ms),
            "index_interval_bytes": index_interval_bytes,
        }
        if pool is not None:
            self._wal_settings["pool"] = pool
        self._wal = _impl.wal.WalLog(os.fspath(directory), **self._wal_settings)
        self.recovery_report: dict[str, Any] = dict(self._wal.recovery_report)
        _log_recovery(self.recovery_report)
        self.fsync = fsync
        #: The high watermark when this Log was opened: every batch at or above it was
        #: appended through this object (a broker's fetch path trusts those it validated).
        self.opened_end_offset: int = self._wal.high_watermark

    # -- writing ---------------------------------------------------------------

    def append(self, batch: bytes | bytearray | memoryview) -> AppendResult:
        """Append one v2 record batch; blocks until durable per the fsync policy.

        The batch's baseOffset is assigned here (the caller's buffer is copied,
        not modified). Raises CorruptRecordError (bad header), BackpressureError
        (queue full; see ``throttle_time_ms``), LogOfflineError (after a storage failure).
        """
        return AppendResult(*self._wal.append(batch))

    def append_async(
        self,
        batch: bytes | bytearray | memoryview,
        *,
        lend: bool = False,
        on_written: Callable[[AppendResult | None, BaseException | None], None] | None = None,
    ) -> asyncio.Future[AppendResult]:
        """``append`` for asyncio: queue the batch and return the future of its AppendResult.

        A plain function, not a coroutine: the batch is queued (copied, unless lent)
        before it returns, so BackpressureError, CorruptRecordError and LogOfflineError are
        raised by the call itself, and appends reach the log in call order. The future
        is settled on the running loop once the append is durable per the fsync
        policy; cancelling it only stops the wait, the append still happens.

        ``lend=True``: the batch is written from ``batch``'s own memory, not from a
        copy; the caller promises not to change that memory until the future is
        settled (the buffer export is held until then, so a ``bytearray`` cannot be
        resized meanwhile). A ``bytes`` batch is never copied, lent or not.

        ``on_written(result, exc)``: called on the loop once the append finished (the
        AppendResult and None, or None and the exception), just before the future is
        settled, and also when the future was cancelled meanwhile: work that must
        follow every append (a producer's sequence record, waking fetches) runs in the
        same call as the completion instead of as a done-callback scheduled after it.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[AppendResult] = loop.create_future()
        token: Any = fut if on_written is None else (fut, on_written)
        self._wal.submit_to(batch, _completions(loop).queue, token, lend=lend)
        return fut

    def flush(self) -> None:
        """Block until everything appended so far is written and fsynced."""
        self._wal.flush()

    # -- reading ---------------------------------------------------------------

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from the one containing ``offset``: at least one, more while the total <= ``max_bytes``.

        b"" at the high watermark; OffsetOutOfRangeError below ``log_start_offset``
        or above ``high_watermark``.
        """
        return self._wal.read(offset, max_bytes)

    def read_spans(self, offset: int, max_bytes: int) -> list[tuple[str, int, int]]:
        """(segment file path, byte position, length) runs covering exactly what ``read`` returns (for sendfile)."""
        return self._wal.read_spans(offset, max_bytes)

    def file_ranges(
        self, offset: int, max_bytes: int, stop_before: int | None = None, nowait: bool = False
    ) -> tuple[list[tuple[int, int, int]], int, int] | None:
        """What ``read`` returns as open file ranges for sendfile, found in one walk.

        ``([(fd, position, length), ...], records, end_offset)``: each ``fd`` is a new
        descriptor the caller owns (it keeps its file readable after retention or a
        compaction swap); ``records`` counts the records, ``end_offset`` is the offset
        after the last batch. ``stop_before`` ends the ranges before the first batch at
        or above it (read_committed). None when nothing is to be sent from files (at the
        high watermark, nothing below ``stop_before``, a header that is not a v2 batch's, a file cut short).
        ``nowait``: batch headers only from the page cache; BlockingIOError when one is
        not there, OSError (EOPNOTSUPP, EINVAL, ENOSYS) when that cannot be asked here.
        """
        return self._wal.file_ranges(offset, max_bytes, stop_before, nowait)

    def batch_headers(self, from_offset: int | None = None) -> Iterator[BatchHeader]:
        """The header of every batch from the one containing ``from_offset`` to the high watermark.

        ``from_offset`` defaults to ``log_start_offset``. Only the 61 header bytes of
        each batch are read, not its records, from the segment spans ``read_spans``
        gives. The headers are those of the batches up to the high watermark when
        the walk reaches them; batches appended meanwhile may or may not be included.
        Raises OffsetOutOfRangeError as ``read`` does.
        """
        start, end = self.log_start_offset, self.high_watermark
        position = start if from_offset is None else from_offset
        if not start <= position <= end:
            raise OffsetOutOfRangeError(f"offset {position} is outside the log's range [{start}, {end}]")
        while position < end:
            last: BatchHeader | None = None
            # Bounded chunks keep max_bytes inside the WAL's signed 32-bit range.
            for path, start, length in self._wal.read_spans(position, _HEADER_WALK_CHUNK):
                for last in _span_headers(path, start, length):
                    yield last
            if last is None:
                return
            position = last.base_offset + last.last_offset_delta + 1

    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None:
        """(base offset, max timestamp) of the first batch whose max timestamp >= ``ts_ms`` (ms); None if none."""
        return self._wal.offset_for_timestamp(ts_ms)

    # -- state -------------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        """Next offset to assign; everything below is written (fsync="always": fsynced)."""
        return self._wal.high_watermark

    @property
    def log_start_offset(self) -> int:
        """First offset still in the log."""
        return self._wal.log_start_offset

    @property
    def recovery_point(self) -> int:
        """Offset below which everything is known fsynced."""
        return self._wal.recovery_point

    @property
    def size_bytes(self) -> int:
        """Bytes of batches across all segments."""
        return self._wal.size_bytes

    @property
    def segment_count(self) -> int:
        """Number of segment files, the active one included."""
        return self._wal.segment_count

    @property
    def is_offline(self) -> bool:
        """True after a failed write or fsync; the log stays offline until reopened."""
        return self._wal.is_offline

    @property
    def directory(self) -> str:
        """The partition directory."""
        return self._wal.directory

    def stats(self) -> dict[str, int]:
        """WAL counters: queue_depth, appends, groups, fsyncs, fsync_total_us, writeback_starts, bytes_written, backpressure_rejections."""
        return dict(self._wal.stats())

    # -- maintenance -----------------------------------------------------------

    def reopen(self) -> dict[str, Any]:
        """Close the WAL and open the directory again through crash recovery; return the recovery report.

        For a log that went offline after a failed write or fsync: the old WAL is closed
        without a clean-shutdown marker (nothing is retried on its files), so opening
        scans from the checkpoint's recovery point, keeps every intact batch and cuts
        at the first torn one. The Log object stays the same, so every holder of it
        sees the reopened log. Meanwhile appends and reads fail with StorageError.
        Raises what opening raises (OSError while the disk still fails, StorageError
        when fsynced data is damaged); the log then stays closed and offline, and
        reopen may be called again.
        """
        directory = self._wal.directory
        try:
            self._wal.close()
        except StorageError:
            pass  # an offline WAL may fail its closing fsync: that is why it is being reopened
        wal = _impl.wal.WalLog(directory, **self._wal_settings)
        self._wal = wal
        self.recovery_report = dict(wal.recovery_report)
        _log_recovery(self.recovery_report)
        return self.recovery_report

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past the configured retention; return how many were deleted.

        ``now_ms`` (ms since the epoch) defaults to the wall clock.
        """
        if self.retention_ms is None and self.retention_bytes is None:
            return 0
        return self._wal.apply_retention(self.retention_ms, self.retention_bytes, now_ms)

    def delete_records(self, offset: int) -> int:
        """Move the log start up to ``offset`` (Kafka's DeleteRecords); return the new log start.

        Reads below it raise OffsetOutOfRangeError from now on, and the start survives
        a restart (it is in the checkpoint, written before this returns). Closed
        segments wholly below it are deleted; the one holding ``offset`` stays. An
        offset at or below the log start changes nothing; a negative one or one
        above ``high_watermark`` raises OffsetOutOfRangeError.
        """
        return self._wal.delete_records(offset)

    def replace_segments(self, cleaned_path: str | os.PathLike[str], base: int, end: int) -> bool:
        """Swap a cleaned file in for the closed segments with a base in [``base``, ``end``), crash-safely.

        The cleaner's step (docs/storage.md, "Swapping cleaned segments into a live
        log"): ``cleaned_path`` is ``<directory>/<base:020>.log.cleaned``; ``end`` is the
        base of the segment after the last one replaced, at most the active segment's.
        Returns False (the file deleted) when retention or DeleteRecords removed those
        segments meanwhile. Raises ValueError on bad arguments, CorruptRecordError for a
        malformed cleaned file, StorageError on I/O failure (the log goes offline).
        """
        return bool(self._wal.replace_segments(os.fspath(cleaned_path), base, end))

    @property
    def compacted_offset(self) -> int:
        """Offset below which compaction may have removed offsets (0: never compacted)."""
        return int(self._wal.compacted_offset)

    def close(self) -> None:
        """Drain queued appends, fsync, checkpoint and mark a clean shutdown; idempotent."""
        try:
            self._wal.close()
        finally:
            self._release_locks()

    def _release_locks(self) -> None:
        for held in reversed(self._locks):
            held.release()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<Log {self.directory!r} [{self.log_start_offset}, {self.high_watermark}) "
            f"fsync={self.fsync} profile={self.profile}>"
        )
