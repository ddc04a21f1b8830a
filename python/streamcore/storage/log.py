"""``Log``: one partition's durable log, a thin typed layer over the active WAL implementation.

The WAL (``streamcore._impl.wal.WalLog``, native or reference) does the work:
segments, indexes, the group-commit writer thread, recovery. This layer adds
profiles, configured retention, typed results and an asyncio entry point that
never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, NamedTuple

from streamcore import _impl
from streamcore.errors import ConfigError
from streamcore.storage.dir_lock import DirLock
from streamcore.storage.profiles import WalProfile, resolve_profile

__all__ = ["AppendResult", "Log"]


class AppendResult(NamedTuple):
    """Where an appended batch landed."""

    #: Offset assigned to the batch's first record.
    base_offset: int
    #: Offset of the batch's last record (base_offset + lastOffsetDelta).
    last_offset: int
    #: Wall time at which the writer wrote the batch (ms since the epoch).
    log_append_time_ms: int


def _settle(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(AppendResult(*result))


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
        queue_depth, max_group_batches, max_wait_ms: override the profile's values.
        index_interval_bytes: bytes of log between sparse index entries.
        lock: take ``directory/.lock`` exclusively (and a shared lock on the parent's
            ``.lock`` if the parent is a broker's data directory) for as long as the log
            is open, so that no second process opens the same log. The broker passes
            False: its lock on the whole data directory covers every log in it.

    Raises DataDirLockedError when another process has the log or its data directory open.
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
        index_interval_bytes: int = 4096,
        lock: bool = True,
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
                index_interval_bytes=index_interval_bytes,
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
        index_interval_bytes: int,
    ) -> None:
        self.profile: WalProfile = resolve_profile(
            profile, queue_depth=queue_depth, max_group_batches=max_group_batches, max_wait_ms=max_wait_ms
        )
        self.retention_ms = _optional_ms("retention_ms", retention_ms)
        self.retention_bytes = _optional_ms("retention_bytes", retention_bytes)
        self._wal = _impl.wal.WalLog(
            os.fspath(directory),
            fsync=fsync,
            fsync_interval_ms=fsync_interval_ms,
            queue_depth=self.profile.queue_depth,
            max_group_batches=self.profile.max_group_batches,
            max_wait_ms=self.profile.max_wait_ms,
            segment_bytes=segment_bytes,
            segment_ms=_optional_ms("segment_ms", segment_ms),
            index_interval_bytes=index_interval_bytes,
        )
        self.fsync = fsync

    # -- writing ---------------------------------------------------------------

    def append(self, batch: bytes | bytearray | memoryview) -> AppendResult:
        """Append one v2 record batch; blocks until durable per the fsync policy.

        The batch's baseOffset is assigned here (the caller's buffer is copied,
        not modified). Raises CorruptRecordError (bad header), BackpressureError
        (queue full; see ``throttle_time_ms``), LogOfflineError (after a storage failure).
        """
        return AppendResult(*self._wal.append(batch))

    async def append_async(self, batch: bytes | bytearray | memoryview) -> AppendResult:
        """``append`` for asyncio: waits without blocking the event loop.

        BackpressureError and CorruptRecordError are raised at once, before any await.
        """
        loop = asyncio.get_running_loop()
        fut = loop.create_future()

        def done(result: Any, exc: BaseException | None) -> None:
            try:
                loop.call_soon_threadsafe(_settle, fut, result, exc)
            except RuntimeError:
                pass  # the loop was closed while the append was queued: nobody is waiting

        self._wal.submit(batch, done)
        return await fut

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
        """WAL counters: queue_depth, appends, groups, fsyncs, fsync_total_us, bytes_written, backpressure_rejections."""
        return dict(self._wal.stats())

    # -- maintenance -----------------------------------------------------------

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete closed segments past the configured retention; return how many were deleted.

        ``now_ms`` (ms since the epoch) defaults to the wall clock.
        """
        if self.retention_ms is None and self.retention_bytes is None:
            return 0
        return self._wal.apply_retention(self.retention_ms, self.retention_bytes, now_ms)

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
