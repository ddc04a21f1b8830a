"""``_native.record_batch``: Kafka record batch v2 encode, decode and validate.

``BatchInfo`` is the reference twin's own class
(``streamcore._reference.record_types``); ``Record`` and ``RecordBatch`` are native.
A ``Record`` behaves as the reference twin's named tuple (fields by name and index,
unpacking, comparison with tuples, ``_fields``/``_asdict``/``_replace``) without
being a ``tuple``. Malformed data raises ``streamcore.errors.CorruptRecordError``
naming a byte offset.
"""

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, SupportsIndex, final, overload

from typing_extensions import Buffer

from streamcore._reference.record_types import BatchInfo as BatchInfo

__all__ = [
    "Record",
    "BatchInfo",
    "RecordBatch",
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "encode_batch",
    "decode_batch",
    "decode_batches",
    "validate_batch",
    "check_batches",
]

#: Default cap on the decompressed size of one batch's records (bytes).
DEFAULT_MAX_DECOMPRESSED_BYTES: int

@final
class Record:
    """One decoded record; its fields become Python objects when read."""

    _fields: ClassVar[tuple[str, ...]]
    def __new__(
        cls,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes | None]],
    ) -> Record: ...
    @property
    def offset(self) -> int:
        """Absolute offset (base_offset + offsetDelta, wrapped to int64)."""
    @property
    def timestamp_ms(self) -> int:
        """Milliseconds since the epoch; for log-append-time batches the batch's max_timestamp."""
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        """(key, value) pairs in wire order; keys are str, values bytes or None."""
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: SupportsIndex, /) -> Any: ...
    @overload
    def __getitem__(self, index: slice, /) -> tuple[Any, ...]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __eq__(self, other: object, /) -> bool: ...
    def __ne__(self, other: object, /) -> bool: ...
    def __lt__(self, other: object, /) -> bool: ...
    def __le__(self, other: object, /) -> bool: ...
    def __gt__(self, other: object, /) -> bool: ...
    def __ge__(self, other: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __add__(self, other: tuple[Any, ...] | Record, /) -> tuple[Any, ...]: ...
    def __radd__(self, other: tuple[Any, ...] | Record, /) -> tuple[Any, ...]: ...
    def _asdict(self) -> dict[str, Any]: ...
    def _replace(self, **changes: Any) -> Record: ...
    def __reduce__(self) -> tuple[type[Record], tuple[Any, ...]]: ...
    def __getnewargs__(self) -> tuple[Any, ...]: ...

@final
class RecordBatch:
    """One decoded batch: header fields, and its records built on first use
    (all at once by ``records``, one at a time by iteration)."""

    @property
    def base_offset(self) -> int: ...
    @property
    def last_offset(self) -> int:
        """base_offset + lastOffsetDelta (wrapped to int64)."""
    @property
    def batch_length(self) -> int:
        """batchLength field: bytes after it (total size - 12)."""
    @property
    def partition_leader_epoch(self) -> int: ...
    @property
    def magic(self) -> int: ...
    @property
    def crc(self) -> int: ...
    @property
    def attributes(self) -> int: ...
    @property
    def compression(self) -> str:
        """Codec name: none, gzip, snappy, lz4 or zstd."""
    @property
    def timestamp_type(self) -> int:
        """0 = create time, 1 = log append time."""
    @property
    def is_transactional(self) -> bool: ...
    @property
    def is_control(self) -> bool: ...
    @property
    def first_timestamp(self) -> int:
        """Milliseconds since the epoch."""
    @property
    def max_timestamp(self) -> int:
        """Milliseconds since the epoch."""
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...
    @property
    def record_count(self) -> int: ...
    @property
    def records(self) -> list[Record]:
        """Every record, built on first access; later accesses return the same list."""
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Record]:
        """The records in order. Until ``records`` has been read, each one is built as
        the iterator reaches it and kept by nobody but the caller (equal to, not the same
        object as, the matching item of ``records``); afterwards, the items of ``records``."""
    def records_as(
        self, cls: type[tuple[Any, ...]], prefix: tuple[Any, ...], start: int = 0, stop: int | None = None
    ) -> list[Any]:
        """Records ``records[start:stop]`` as instances of the tuple class ``cls`` holding
        ``prefix``'s items then the five fields (the consumer's records, in one step)."""
    def to_columns(self) -> dict[str, Any]:
        """numpy columns (offset, timestamp_ms, key/value offsets and lengths) and buffer."""

def encode_batch(
    values: Sequence[Buffer | None],
    keys: Sequence[Buffer | None] | None = None,
    headers: Sequence[Sequence[tuple[str, Buffer | None]] | None] | None = None,
    timestamps_ms: Sequence[int] | None = None,
    *,
    compression: str | int | None = None,
    base_offset: int = 0,
    producer_id: int = ...,
    producer_epoch: int = ...,
    base_sequence: int = ...,
    transactional: bool | None = None,
    control: bool | None = None,
    log_append_time: bool | None = None,
    partition_leader_epoch: int = ...,
    compression_level: int | None = None,
) -> bytes:
    """Encode records into one batch (timestamps in ms; default now for all)."""

def decode_batch(
    data: Buffer, *, verify_crc: bool | None = None, max_decompressed_bytes: int = ...
) -> RecordBatch:
    """Decode exactly one batch; bytes after it are an error."""

def decode_batches(
    data: Buffer, *, verify_crc: bool | None = None, max_decompressed_bytes: int = ...
) -> list[RecordBatch]:
    """Decode back-to-back batches, ignoring a trailing partial batch."""

def validate_batch(data: Buffer, *, max_decompressed_bytes: int = ...) -> BatchInfo:
    """The broker's produce-time check; returns the header fields."""

def check_batches(data: Buffer, offset: int) -> tuple[int, int] | None:
    """None when the batches read for ``offset`` are sound (framing, magic, CRC-32C, offsets
    never going back); else (byte index, lowest offset it had to end at) of the first bad one."""
