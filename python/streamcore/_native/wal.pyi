"""``_native.wal``: the group-committed write-ahead log of one partition."""

from collections.abc import Callable
from os import PathLike
from typing import final

from typing_extensions import Buffer

__all__ = ["WalLog"]

#: (base_offset, last_offset, log_append_time_ms)
_AppendResult = tuple[int, int, int]

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
        max_group_batches: int = 15000,
        max_wait_ms: int = 10,
        segment_bytes: int = ...,
        segment_ms: int | None = None,
        index_interval_bytes: int = 4096,
    ) -> WalLog: ...
    def append(self, batch: Buffer) -> _AppendResult: ...
    def submit(
        self, batch: Buffer, callback: Callable[[_AppendResult | None, BaseException | None], object]
    ) -> None: ...
    def flush(self) -> None: ...
    def read(self, offset: int, max_bytes: int) -> bytes: ...
    def read_spans(self, offset: int, max_bytes: int) -> list[tuple[str, int, int]]:
        """(segment file path, position, length) runs covering what ``read`` returns."""
    def offset_for_timestamp(self, ts_ms: int) -> tuple[int, int] | None: ...
    def apply_retention(
        self, retention_ms: int | None, retention_bytes: int | None, now_ms: int | None = None
    ) -> int: ...
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
