"""``_native.cleaner``: log compaction over segment files (twin: ``streamcore._reference.cleaner``)."""

import os
from collections.abc import Mapping, Sequence
from typing import final

from streamcore._reference.cleaner.result import CleanedSegment as CleanedSegment
from streamcore._reference.cleaner.result import CleanResult as CleanResult
from streamcore._reference.cleaner.result import CleanStats as CleanStats

DEFAULT_MEMORY_BYTES: int
DEFAULT_LOAD_FACTOR: float
DEFAULT_DELETE_RETENTION_MS: int
__all__ = [
    "OffsetMap",
    "build_offset_map",
    "clean_segments",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_LOAD_FACTOR",
    "DEFAULT_DELETE_RETENTION_MS",
    "CLEANED_SUFFIX",
    "CleanResult",
    "CleanStats",
    "CleanedSegment",
    "key_hash",
]

CLEANED_SUFFIX: str

@final
class OffsetMap:
    """Key digest -> latest offset, with room for ``int(memory_bytes // 24 * load_factor)`` keys."""

    def __new__(cls, memory_bytes: int = ..., load_factor: float = ...) -> OffsetMap: ...
    @property
    def slots(self) -> int:
        """Slots in the table (``memory_bytes // 24``)."""
    @property
    def max_entries(self) -> int:
        """Entries at which the map counts as full."""
    @property
    def latest_offset(self) -> int:
        """The last offset the map covers (-1 before anything was mapped)."""
    @property
    def full(self) -> bool:
        """Whether the filling pass stopped early because the map filled up."""
    @property
    def bytes_read(self) -> int:
        """Bytes of batches the filling pass read."""
    @property
    def records_read(self) -> int:
        """Records of data batches the filling pass read."""
    def __len__(self) -> int: ...
    def get(self, key: bytes) -> int:
        """The latest offset recorded for ``key``, or -1."""

def build_offset_map(
    segment_paths: Sequence[str | os.PathLike[str]],
    start_offset: int,
    end_offset: int,
    *,
    memory_bytes: int = ...,
    load_factor: float = ...,
    io_max_bytes_per_second: float | None = None,
    max_decompressed_bytes: int = ...,
    aborted_transactions: Sequence[tuple[int, int, int]] | None = None,
) -> OffsetMap:
    """Map each keyed record at ``start_offset <= o < end_offset`` to its key's latest offset."""

def clean_segments(
    segment_paths: Sequence[str | os.PathLike[str]],
    offset_map: OffsetMap,
    *,
    out_dir: str | os.PathLike[str],
    now_ms: int,
    delete_retention_ms: int = ...,
    segment_bytes: int = ...,
    producer_last_offsets: Mapping[int, int] | None = None,
    io_max_bytes_per_second: float | None = None,
    max_decompressed_bytes: int = ...,
    aborted_transactions: Sequence[tuple[int, int, int]] | None = None,
) -> CleanResult:
    """Clean segments with ``offset_map`` into ``<out_dir>/<base:020d>.log.cleaned`` files."""

def key_hash(key: bytes) -> bytes:
    """The 16-byte digest (BLAKE2b) the offset map stores for a record key."""
