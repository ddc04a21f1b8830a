"""The offset map: key digest -> latest offset of that key in the dirty range, with
the fixed capacity of Kafka's SkimpyOffsetMap, and the pass that fills it.

The native twin keeps a table of ``memory_bytes // 24`` slots (16-byte digest and
8-byte offset); this twin keeps a dict but counts the same slots and fills up at
the same ``int(slots * load_factor)`` entries, so both stop at the same record.
The filling pass stops at the first keyed record it cannot add once full (even one
whose key is already there, as Kafka does).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from streamcore._reference._batch_header import CONTROL_FLAG, TRANSACTIONAL_FLAG
from streamcore._reference.cleaner.input import read_batches, segment_files
from streamcore._reference.cleaner.key_hash import HASH_BYTES, key_hash
from streamcore._reference.cleaner.throttle import Throttle
from streamcore._reference.cleaner.txn import TxnTracker
from streamcore._reference.record_batch import DEFAULT_MAX_DECOMPRESSED_BYTES, decode_batch
from streamcore.errors import CorruptRecordError

__all__ = ["DEFAULT_LOAD_FACTOR", "DEFAULT_MEMORY_BYTES", "ENTRY_BYTES", "OffsetMap", "build_offset_map"]


#: Bytes of one slot: the digest and an offset.
ENTRY_BYTES = HASH_BYTES + 8
#: Kafka's ``log.cleaner.io.buffer.load.factor`` default.
DEFAULT_LOAD_FACTOR = 0.9
#: Kafka's ``log.cleaner.dedupe.buffer.size`` default (bytes).
DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024
_I64_MAX = (1 << 63) - 1


class OffsetMap:
    """Key digest -> latest offset, with room for ``int(memory_bytes // 24 * load_factor)`` keys."""

    def __init__(
        self, memory_bytes: int = DEFAULT_MEMORY_BYTES, load_factor: float = DEFAULT_LOAD_FACTOR
    ) -> None:
        if not 0.0 < load_factor <= 1.0:
            raise ValueError(f"load_factor must be in (0, 1], not {load_factor}")
        if memory_bytes < 0:
            raise ValueError(f"memory_bytes must be >= 0, not {memory_bytes}")
        self._slots = memory_bytes // ENTRY_BYTES
        self._max_entries = int(self._slots * float(load_factor))
        if self._max_entries < 1:
            raise ValueError(
                f"memory_bytes {memory_bytes} holds no entry at load factor {load_factor} "
                f"({ENTRY_BYTES} bytes per slot)"
            )
        self._map: dict[bytes, int] = {}
        self._latest = -1
        self._full = False
        self._bytes_read = 0
        self._records_read = 0

    @property
    def slots(self) -> int:
        """Slots in the table (``memory_bytes // 24``)."""
        return self._slots

    @property
    def max_entries(self) -> int:
        """Entries at which the map counts as full."""
        return self._max_entries

    @property
    def latest_offset(self) -> int:
        """The last offset the map covers (-1 before anything was mapped)."""
        return self._latest

    @property
    def full(self) -> bool:
        """Whether the filling pass stopped early because the map filled up."""
        return self._full

    @property
    def bytes_read(self) -> int:
        """Bytes of batches the filling pass read."""
        return self._bytes_read

    @property
    def records_read(self) -> int:
        """Records of data batches the filling pass read."""
        return self._records_read

    def __len__(self) -> int:
        return len(self._map)

    def get(self, key: bytes) -> int:
        """The latest offset recorded for ``key``, or -1."""
        return self._map.get(key_hash(bytes(key)), -1)

    def _get_hash(self, digest: bytes) -> int:
        return self._map.get(digest, -1)

    def __repr__(self) -> str:
        return (
            f"OffsetMap(entries={len(self._map)}, max_entries={self._max_entries}, "
            f"latest_offset={self._latest}, full={self._full})"
        )


def build_offset_map(
    segment_paths: Sequence[str | os.PathLike[str]],
    start_offset: int,
    end_offset: int,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    load_factor: float = DEFAULT_LOAD_FACTOR,
    io_max_bytes_per_second: float | None = None,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
    aborted_transactions: Iterable[tuple[int, int, int]] | None = None,
) -> OffsetMap:
    """Map every keyed record at offsets ``start_offset <= o < end_offset`` to its key's latest offset.

    ``segment_paths`` are ``<base:020d>.log`` files in offset order; reading is limited
    to ``io_max_bytes_per_second`` (bytes/s, None: unlimited).
    ``aborted_transactions`` are the partition's aborted transactions (producer id,
    first offset, offset of the ABORT marker): their records are not mapped, while
    committed transactional records are; control batches never are. None leaves
    every control and transactional batch unmapped (their outcome is unknown).
    After each whole segment the map covers up
    to the next segment's base (or the last batch of the last segment), capped at
    ``end_offset - 1``. When the map fills, the pass stops: ``full`` is set and
    ``latest_offset`` is the last offset mapped, the end of what a cleaning pass may
    clean. Raises CorruptRecordError on a bad batch, StorageError on I/O errors.
    """
    if start_offset < 0 or end_offset < start_offset:
        raise ValueError(f"need 0 <= start_offset <= end_offset, not {start_offset} and {end_offset}")
    if io_max_bytes_per_second is not None and not io_max_bytes_per_second > 0:
        raise ValueError(f"io_max_bytes_per_second must be > 0, not {io_max_bytes_per_second}")
    m = OffsetMap(memory_bytes, load_factor)
    segments = segment_files(segment_paths)
    throttle = Throttle(io_max_bytes_per_second)
    txn = None if aborted_transactions is None else TxnTracker(_aborted_list(aborted_transactions))
    mapping = m._map
    max_entries = m._max_entries
    for i, seg in enumerate(segments):
        next_base = segments[i + 1].base_offset if i + 1 < len(segments) else None
        if next_base is not None and next_base <= start_offset:
            continue
        if seg.base_offset >= end_offset:
            break
        segment_end = seg.base_offset
        for at, raw in read_batches(seg.path):
            try:
                batch = decode_batch(raw, max_decompressed_bytes=max_decompressed_bytes)
            except CorruptRecordError as exc:
                raise CorruptRecordError(f"cleaner: {seg.path} batch at byte {at}: {exc}") from None
            m._bytes_read += len(raw)
            throttle.account(len(raw))
            if batch.base_offset >= end_offset:
                break
            last = batch.last_offset
            segment_end = last + 1
            if last < start_offset:
                continue
            attrs = batch.attributes
            if txn is None:
                mapped = not attrs & (CONTROL_FLAG | TRANSACTIONAL_FLAG)
            elif attrs & CONTROL_FLAG:
                mapped = False
            elif txn.is_aborted(attrs, batch.producer_id, last):
                m._records_read += len(batch.records)
                mapped = False
            else:
                mapped = True
            if mapped:
                for r in batch.records:
                    m._records_read += 1
                    off = r.offset
                    if off < start_offset or off >= end_offset or r.key is None:
                        continue
                    if len(mapping) >= max_entries:
                        m._full = True
                        return m
                    mapping[key_hash(r.key)] = off
                    m._latest = off
            m._latest = max(m._latest, min(last, end_offset - 1))
        # Offsets between batches (gaps left by earlier cleaning) count as covered.
        covered = min(next_base if next_base is not None else segment_end, end_offset) - 1
        m._latest = max(m._latest, covered)
    return m


def _aborted_list(aborted: Iterable[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Check and copy (producer id, first offset, marker offset) triples."""
    if isinstance(aborted, (str, bytes)):
        raise TypeError("aborted_transactions must be a sequence of (producer_id, first, last) tuples")
    out = []
    for t in aborted:
        pid, first, last = t
        out.append((int(pid), int(first), int(last)))
    return out
