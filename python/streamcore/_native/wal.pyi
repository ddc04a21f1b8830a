"""``_native.wal``: the group-committed write-ahead log of one partition."""

from collections.abc import Callable
from os import PathLike
from typing import Any, final

from typing_extensions import Buffer

__all__ = ["CompletionQueue", "WalLog", "WalPool"]

#: (base_offset, last_offset, log_append_time_ms)
_AppendResult = tuple[int, int, int]

@final
class CompletionQueue:
    """Where ``WalLog.submit_to`` delivers outcomes; a pipe (``fileno``) wakes its reader."""

    def __new__(cls) -> CompletionQueue: ...
    def fileno(self) -> int: ...
    def drain(self) -> list[tuple[Any, _AppendResult | None, BaseException | None]]: ...

@final
class WalPool:
    """Writer threads, a notifier thread and a bounded cache of open segment files shared by logs."""

    def __new__(cls, *, writer_threads: int = 2, max_open_files: int = 256) -> WalPool: ...
    def shutdown(self) -> None: ...
    def stats(self) -> dict[str, int]: ...

def _shutdown_all_pools() -> None: ...

@final
class WalLog:
    """Segment files of v2 batches with sparse indexes, a writer thread and an fsync policy.

    ``fsync`` is "always", "interval" or "never"; times are in ms, sizes in bytes.
    """

    def __new__(
        cls,
        directory: str | PathLike[str],
        *,
        fsync: str = "interval",
        fsync_interval_ms: int = 1000,
        queue_depth: int = 10000,
        memory_budget_bytes: int = ...,
        max_group_batches: int = 15000,
        max_wait_ms: int = 10,
        segment_bytes: int = ...,
        segment_ms: int | None = None,
        index_interval_bytes: int = 4096,
        pool: WalPool | None = None,
    ) -> WalLog: ...
    def append(self, batch: Buffer) -> _AppendResult: ...
    def submit(
        self, batch: Buffer, callback: Callable[[_AppendResult | None, BaseException | None], object]
    ) -> None: ...
    def submit_to(
        self, batch: Buffer, queue: CompletionQueue, token: object, *, lend: bool = False
    ) -> None: ...
    def flush(self) -> None: ...
    def read(self, offset: int, max_bytes: int) -> bytes: ...
    def read_spans(self, offset: int, max_bytes: int) -> list[tuple[str, int, int]]:
        """(segment file path, position, length) runs covering what ``read`` returns."""
    def file_ranges(
        self, offset: int, max_bytes: int, stop_before: int | None = None, nowait: bool = False
    ) -> tuple[list[tuple[int, int, int]], int, int] | None:
        """``read``'s batches as ([(fd, position, length)], records, end_offset); fds are the caller's."""
    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None: ...
    def apply_retention(
        self, retention_ms: int | None, retention_bytes: int | None, now_ms: int | None = None
    ) -> int: ...
    def delete_records(self, offset: int) -> int: ...
    def replace_segments(self, cleaned_path: str | PathLike[str], base: int, end: int) -> bool:
        """Swap ``<directory>/<base:020>.log.cleaned`` in for the closed segments with a base in [base, end).

        Crash-safe; appends and reads go on meanwhile. ``base`` must be a segment's base
        offset and ``end`` a later one's, at most the active segment's. Returns False (the
        file deleted) when those segments are no longer the log's or the log is closed.
        Raises ValueError on bad arguments (the file is left alone), CorruptRecordError
        when the cleaned file is malformed (it is deleted), StorageError on an I/O failure
        (the log goes offline) and LogOfflineError when it already is. Contract:
        docs/storage.md, "Swapping cleaned segments into a live log".
        """
    @property
    def compacted_offset(self) -> int:
        """Offset below which compaction may have removed offsets (0: never compacted)."""
    @property
    def recovery_report(self) -> dict[str, Any]:
        """What opening did to the directory (keys as the reference twin's, ``swaps_completed`` included)."""
    @property
    def high_watermark(self) -> int: ...
    @property
    def log_start_offset(self) -> int: ...
    @property
    def recovery_point(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def segment_count(self) -> int: ...
    @property
    def is_offline(self) -> bool: ...
    @property
    def directory(self) -> str: ...
    def stats(self) -> dict[str, int]: ...
    def buffer_pool_stats(self) -> dict[str, int]: ...
    def close(self) -> None: ...
    def __enter__(self) -> WalLog: ...
    def __exit__(self, _exc_type: object, _exc: object, _tb: object) -> bool: ...
