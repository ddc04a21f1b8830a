"""Result types of the reference record-batch codec: Record, RecordBatch, BatchInfo."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from streamcore._reference._batch_header import (
    CODEC_MASK,
    CONTROL_FLAG,
    LOG_APPEND_TIME_FLAG,
    TRANSACTIONAL_FLAG,
)

__all__ = ["BatchInfo", "Record", "RecordBatch"]

_CODEC_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")


class Record(NamedTuple):
    """One decoded record.

    A named tuple so that the decoder can build it with one ``tuple.__new__`` call
    (the reference decoder's hot path); compare records by these five fields.
    """

    #: absolute offset (base_offset + offsetDelta, wrapped to int64)
    offset: int
    #: milliseconds since the epoch; for log-append-time batches the batch's max_timestamp
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    #: (key, value) pairs in wire order; keys are str, values bytes or None
    headers: list[tuple[str, bytes | None]]


class BatchInfo(NamedTuple):
    """Header fields of a batch that passed ``validate_batch`` (wire order)."""

    base_offset: int
    #: batchLength field: bytes after the batchLength field (total size - 12)
    batch_length: int
    partition_leader_epoch: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int


class RecordBatch:
    """A decoded record batch v2: header fields plus its records.

    ``records`` is a list of :class:`Record`; ``to_columns()`` gives the same data
    as numpy arrays indexing one bytes buffer (the uncompressed records region).

    Iterating yields records equal to those of ``records``, in order. This twin builds
    every record while decoding, so they are the very items of ``records``; the native
    twin builds each one as its iterator reaches it until ``records`` has been read
    (cheaper for a loop that reads each record once), so code must not rely on
    iteration and ``records`` handing out the same objects.
    """

    __slots__ = (
        "base_offset",
        "batch_length",
        "partition_leader_epoch",
        "magic",
        "crc",
        "attributes",
        "_last_offset_delta",
        "first_timestamp",
        "max_timestamp",
        "producer_id",
        "producer_epoch",
        "base_sequence",
        "record_count",
        "records",
        "_columns",
    )

    def __init__(
        self,
        header: tuple[int, ...],
        records: list[Record],
        columns: Callable[[], dict[str, Any]],
    ) -> None:
        (
            self.base_offset,
            self.batch_length,
            self.partition_leader_epoch,
            self.magic,
            self.crc,
            self.attributes,
            self._last_offset_delta,
            self.first_timestamp,
            self.max_timestamp,
            self.producer_id,
            self.producer_epoch,
            self.base_sequence,
            self.record_count,
        ) = header
        self.records = records
        self._columns = columns

    @property
    def last_offset(self) -> int:
        """base_offset + lastOffsetDelta (wrapped to int64 like Java's long arithmetic)."""
        v = self.base_offset + self._last_offset_delta
        return ((v + (1 << 63)) & 0xFFFFFFFFFFFFFFFF) - (1 << 63)

    @property
    def compression(self) -> str:
        """Codec name from attributes bits 0-2: none, gzip, snappy, lz4 or zstd."""
        return _CODEC_NAMES[self.attributes & CODEC_MASK]

    @property
    def timestamp_type(self) -> int:
        """0 = create time, 1 = log append time (attributes bit 3)."""
        return 1 if self.attributes & LOG_APPEND_TIME_FLAG else 0

    @property
    def is_transactional(self) -> bool:
        """Attributes bit 4."""
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        """Attributes bit 5 (transaction markers)."""
        return bool(self.attributes & CONTROL_FLAG)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def records_as(
        self, cls: type[tuple[Any, ...]], prefix: tuple[Any, ...], start: int = 0, stop: int | None = None
    ) -> list[Any]:
        """Records ``start`` up to ``stop`` (indexes, as in ``records[start:stop]``;
        ``stop`` None for all) as instances of ``cls`` (``tuple`` or a tuple subclass
        whose instances are plain tuples, such as a named tuple) holding the items of
        ``prefix`` and then the record's five fields: what the consumer turns records
        into, made in one step.

        TypeError if ``cls`` is not a tuple class; ValueError if it has ``_fields`` and
        not ``len(prefix) + 5`` of them; OverflowError for a negative index.
        """
        if start < 0 or (stop is not None and stop < 0):
            raise OverflowError("records_as: start and stop must be >= 0")
        if not (isinstance(cls, type) and issubclass(cls, tuple)):
            raise TypeError("records_as: cls must be tuple or a tuple subclass")
        fields = getattr(cls, "_fields", None)
        width = len(prefix) + 5
        if fields is not None and len(fields) != width:
            raise ValueError(f"records_as: cls has {len(fields)} fields, prefix and a record make {width}")
        new = tuple.__new__
        return [new(cls, prefix + r) for r in self.records[start:stop]]

    def to_columns(self) -> dict[str, Any]:
        """Columns of the batch: numpy arrays that index one uncompressed buffer.

        Keys: ``offset`` (int64), ``timestamp_ms`` (int64), ``key_offset`` and
        ``value_offset`` (int64 byte offsets into ``buffer``, 0 when null),
        ``key_length`` and ``value_length`` (int32 byte lengths, -1 when null),
        ``buffer`` (bytes: the records region after decompression).
        """
        return self._columns()

    def __repr__(self) -> str:
        return (
            f"RecordBatch(base_offset={self.base_offset}, last_offset={self.last_offset}, "
            f"record_count={self.record_count}, compression={self.compression!r}, "
            f"timestamp_type={self.timestamp_type}, producer_id={self.producer_id}, "
            f"batch_length={self.batch_length})"
        )
