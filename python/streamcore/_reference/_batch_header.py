"""The record batch v2 header: the one place in Python that knows its 61 bytes.

Layout (big-endian), with the byte each field starts at::

     0 baseOffset            i64     35 maxTimestamp     i64
     8 batchLength           i32     43 producerId       i64
    12 partitionLeaderEpoch  i32     51 producerEpoch    i16
    16 magic                 i8      53 baseSequence     i32
    17 crc (CRC32C)          u32     57 recordsCount     i32
    21 attributes            i16     61 (records follow)
    23 lastOffsetDelta       i32
    27 baseTimestamp         i64

batchLength counts the bytes after itself, so a batch is ``batchLength + 12``
bytes long. The CRC covers attributes through the end of the batch, which is
why a broker may patch baseOffset (and partitionLeaderEpoch) without
recomputing it.

The codec (encode, decode, validate), the WAL (append framing, header walks,
recovery scan) and anything else that reads or writes a header use these
names; nothing else spells the layout out. Standard library only.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "ATTRIBUTES_AT",
    "BASE_OFFSET_AT",
    "BASE_SEQUENCE_AT",
    "BASE_TIMESTAMP_AT",
    "BATCH_LENGTH_AT",
    "CODEC_MASK",
    "CONTROL_FLAG",
    "CRC_AT",
    "CRC_START",
    "HEADER",
    "HEADER_SIZE",
    "LAST_OFFSET_DELTA_AT",
    "LOG_APPEND_TIME_FLAG",
    "LOG_OVERHEAD",
    "MAGIC",
    "MAGIC_AT",
    "MAX_TIMESTAMP_AT",
    "MIN_BATCH_LENGTH",
    "PARTITION_LEADER_EPOCH_AT",
    "PREFIX",
    "PREFIX_SIZE",
    "PRODUCER_EPOCH_AT",
    "PRODUCER_ID_AT",
    "RECORDS_COUNT_AT",
    "TRANSACTIONAL_FLAG",
    "BatchHeader",
    "batch_length",
    "batch_size",
    "max_timestamp",
    "pack_header",
    "parse_header",
    "patch_base_offset",
]

# Byte offsets of the fields inside a batch.
BASE_OFFSET_AT = 0
BATCH_LENGTH_AT = 8
PARTITION_LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
ATTRIBUTES_AT = 21
LAST_OFFSET_DELTA_AT = 23
BASE_TIMESTAMP_AT = 27
MAX_TIMESTAMP_AT = 35
PRODUCER_ID_AT = 43
PRODUCER_EPOCH_AT = 51
BASE_SEQUENCE_AT = 53
RECORDS_COUNT_AT = 57
#: Size of the header, up to and including recordsCount (bytes).
HEADER_SIZE = 61

#: baseOffset + batchLength: the bytes batchLength does not count.
LOG_OVERHEAD = 12
#: Smallest batchLength that can frame a header (bytes).
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
#: First byte the CRC covers.
CRC_START = ATTRIBUTES_AT
#: The only magic (format version) a v2 batch carries.
MAGIC = 2

# Attribute bits.
#: Bits 0-2: compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
CODEC_MASK = 0x07
#: Bit 3: timestamps are log-append time (every record's is maxTimestamp).
LOG_APPEND_TIME_FLAG = 0x08
#: Bit 4: the batch belongs to a transaction.
TRANSACTIONAL_FLAG = 0x10
#: Bit 5: a control batch (transaction markers).
CONTROL_FLAG = 0x20

#: The whole header, in field order (13 fields).
HEADER = struct.Struct(">qiibIhiqqqhii")
#: The header up to and including maxTimestamp: all a log walk needs (9 fields).
PREFIX = struct.Struct(">qiibIhiqq")
#: Bytes of :data:`PREFIX`.
PREFIX_SIZE = MAX_TIMESTAMP_AT + 8

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")

# A layout edit that forgets one of the derived numbers fails at import, not on disk.
assert HEADER.size == HEADER_SIZE and PREFIX.size == PREFIX_SIZE


class BatchHeader(NamedTuple):
    """Every header field, in wire order (what :func:`parse_header` returns)."""

    base_offset: int
    #: bytes after the batchLength field (total size - 12)
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    #: baseTimestamp: the first record's timestamp (ms)
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int


_new = tuple.__new__
_unpack_header = HEADER.unpack_from


def parse_header(buf: bytes | bytearray | memoryview, at: int = 0) -> BatchHeader:
    """The header of the batch starting at byte ``at`` (needs :data:`HEADER_SIZE` bytes from there).

    No field is checked: framing, magic and CRC are the caller's rules.
    """
    # tuple.__new__ skips _make's length check: unpack_from always yields 13 fields.
    return _new(BatchHeader, _unpack_header(buf, at))


def pack_header(header: BatchHeader | tuple[int, ...]) -> bytes:
    """The 61 header bytes of ``header`` (13 fields in wire order)."""
    return HEADER.pack(*header)


def batch_length(buf: bytes | bytearray | memoryview, at: int = 0) -> int:
    """The batchLength field of the batch starting at ``at`` (needs 12 bytes from there)."""
    return _I32.unpack_from(buf, at + BATCH_LENGTH_AT)[0]


def batch_size(buf: bytes | bytearray | memoryview, at: int = 0) -> int:
    """Whole size (bytes) of the batch starting at ``at``, from its first 12 bytes.

    Unchecked: a batchLength below :data:`MIN_BATCH_LENGTH` gives a size that
    cannot hold a header; callers that read untrusted bytes check it first.
    """
    return _I32.unpack_from(buf, at + BATCH_LENGTH_AT)[0] + LOG_OVERHEAD


def patch_base_offset(buf: bytearray | memoryview, base_offset: int, at: int = 0) -> None:
    """Overwrite baseOffset in place; the CRC stays valid (it does not cover the field)."""
    _I64.pack_into(buf, at + BASE_OFFSET_AT, base_offset)


def max_timestamp(buf: bytes | bytearray | memoryview, at: int = 0) -> int:
    """The maxTimestamp field (ms) of the batch starting at ``at``."""
    return _I64.unpack_from(buf, at + MAX_TIMESTAMP_AT)[0]
