"""Reference twin of the ``record_batch`` capability: Kafka record batch v2 in pure Python.

Layout and API are in the capability contract; the rules below are what the
native twin must match decision for decision (tests/test_record_batch*.py pin
them). Every malformed input raises CorruptRecordError naming a byte offset.

Framing of one batch starting at byte ``s`` with ``left`` bytes available:

1. ``left < 12``: truncated. Otherwise batchLength (i32 at ``s+8``) below 49
   (the header after the batchLength field) is corrupt, checked before
   2. ``s + 12 + batchLength`` past the end of the input: truncated.
   ``decode_batches`` stops cleanly at 1 or 2 (a trailing partial batch), but
   not at a too-small batchLength (Java's ``ByteBufferLogInputStream`` order).
3. ``decode_batch``/``validate_batch``: bytes after the batch are corrupt.
4. magic (byte ``s+16``) must be 2; then the CRC32C of bytes ``s+21 .. end``
   must equal the stored crc (skipped by ``verify_crc=False``); then the codec
   (attributes bits 0-2) must be 0..4; then recordsCount must be >= 0.
   Attribute bits 6-15 are ignored.
5. Compressed batches: the bytes after recordsCount are decompressed under the
   rules of :mod:`streamcore._reference.compression` with the size cap.
6. Records, exactly recordsCount of them, then no byte left over. Per record:
   length varint >= 0 and within the region; attributes byte (ignored);
   timestampDelta varlong; offsetDelta varint; key length varint (-1 null,
   < -1 corrupt), key; value likewise; header count varint >= 0; per header a
   key length >= 0, the key valid UTF-8, a value length (-1 null, < -1 corrupt),
   the value; the fields must use exactly ``length`` bytes.
   Varints are zigzag; a varint (i32) has at most 5 bytes and its unsigned form
   must fit 32 bits, a varlong at most 10 bytes (bits past 64 are dropped).
7. Offset deltas must increase strictly and lie in ``0 .. lastOffsetDelta``
   (compacted batches have gaps, so gaps are allowed when decoding).
   ``validate_batch`` (the produce path) also requires recordsCount >= 1 and
   lastOffsetDelta == recordsCount - 1, which together with rule 7 means the
   deltas are exactly 0, 1, ... n-1.
8. Record offset = baseOffset + offsetDelta and timestamp = firstTimestamp +
   timestampDelta, both wrapped to int64 as Java's long arithmetic does; in a
   log-append-time batch every record's timestamp is maxTimestamp.

Arguments: ``data`` is any C-contiguous buffer (a non-contiguous one raises
BufferError, as crc32c does); a negative ``max_decompressed_bytes`` raises
ValueError.

Encoding: offset deltas 0..n-1, baseTimestamp = first record's timestamp,
maxTimestamp = the largest, timestamp deltas wrapped to int64; compressed
batches are always written compressed (even when not smaller). Uncompressed
output equals kafka-python's DefaultRecordBatchBuilder apart from
partitionLeaderEpoch (-1 here by default, as the Java client writes; 0 there).
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

from crc32c import crc32c as _crc32c

from streamcore._reference._batch_header import (
    ATTRIBUTES_AT,
    BATCH_LENGTH_AT,
    CODEC_MASK,
    CRC_START,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_AT,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    MIN_BATCH_LENGTH,
    PREFIX,
    RECORDS_COUNT_AT,
    BatchHeader,
    batch_length,
    parse_header,
)
from streamcore._reference.compression import decompress
from streamcore._reference.record_encode import encode_batch
from streamcore._reference.record_types import BatchInfo, Record, RecordBatch
from streamcore._reference.record_walk import MODE_COLUMNS, MODE_RECORDS, MODE_VALIDATE, walk
from streamcore.errors import CorruptRecordError

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "BatchInfo",
    "Record",
    "RecordBatch",
    "check_batches",
    "decode_batch",
    "decode_batches",
    "encode_batch",
    "validate_batch",
]

#: Cap on the decompressed size of one batch's records region, in bytes.
DEFAULT_MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024


# ---------------------------------------------------------------- decoding


def _input_bytes(data: object) -> bytes:
    if type(data) is bytes:
        return data
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"data must be a bytes-like object, not {type(data).__name__}") from None
    with view:
        # Like crc32c (and a native borrow of the buffer): no gathering copy.
        if not view.c_contiguous:
            raise BufferError("data must be a C-contiguous buffer")
        return view.tobytes()


def _cap(max_decompressed_bytes: int) -> int:
    cap = operator.index(max_decompressed_bytes)
    if cap < 0:
        raise ValueError(f"max_decompressed_bytes must be >= 0, not {cap}")
    return cap


def _batch_end(buf: bytes, s: int, n: int) -> int:
    """End offset of the batch at ``s``; raises if it is short or truncated."""
    left = n - s
    if left < LOG_OVERHEAD:
        raise CorruptRecordError(
            f"truncated batch at byte {s}: {left} bytes left, a batch needs at least {HEADER_SIZE}"
        )
    length = batch_length(buf, s)
    if length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch length {length} at byte {s + BATCH_LENGTH_AT} is below the minimum {MIN_BATCH_LENGTH}"
        )
    end = s + LOG_OVERHEAD + length
    if end > n:
        raise CorruptRecordError(
            f"batchLength {length} at byte {s + BATCH_LENGTH_AT} runs past end of input "
            f"({left - LOG_OVERHEAD} bytes follow it)"
        )
    return end


def _check_header(buf: bytes, s: int, end: int, verify_crc: bool) -> BatchHeader:
    h = parse_header(buf, s)
    if h.magic != MAGIC:
        raise CorruptRecordError(f"magic {h.magic} at byte {s + MAGIC_AT}: only magic 2 is supported")
    if verify_crc:
        with memoryview(buf) as view:
            computed = _crc32c(view[s + CRC_START : end])
        if computed != h.crc:
            raise CorruptRecordError(
                f"bad CRC32C: stored 0x{h.crc:08x} computed 0x{computed:08x} (batch at byte {s})"
            )
    codec = h.attributes & CODEC_MASK
    if codec > 4:
        raise CorruptRecordError(
            f"unknown compression codec {codec} in attributes at byte {s + ATTRIBUTES_AT}"
        )
    if h.record_count < 0:
        raise CorruptRecordError(f"negative record count {h.record_count} at byte {s + RECORDS_COUNT_AT}")
    return h


def _records_region(buf: bytes, s: int, end: int, h: BatchHeader, cap: int) -> tuple[bytes, int, int]:
    """(buffer, start, end) of the uncompressed records of the batch at ``s``."""
    codec = h.attributes & CODEC_MASK
    if not codec:
        return buf, s + HEADER_SIZE, end
    with memoryview(buf) as view:
        region = decompress(codec, view[s + HEADER_SIZE : end], cap, s + HEADER_SIZE)
    return region, 0, len(region)


def _columns(buf: bytes, pos: int, end: int, h: BatchHeader, compressed: bool, s: int) -> dict[str, Any]:
    import numpy as np  # lazily: importing the codec must not pull numpy in

    cols = walk(buf, pos, end, h, MODE_COLUMNS, compressed, s)
    buffer = buf[pos:end] if pos or end != len(buf) else buf
    return {
        "offset": np.array(cols[0], dtype=np.int64),
        "timestamp_ms": np.array(cols[1], dtype=np.int64),
        "key_offset": np.array(cols[2], dtype=np.int64),
        "key_length": np.array(cols[3], dtype=np.int32),
        "value_offset": np.array(cols[4], dtype=np.int64),
        "value_length": np.array(cols[5], dtype=np.int32),
        "buffer": buffer,
    }


def _decode_at(buf: bytes, s: int, end: int, verify_crc: bool, cap: int) -> RecordBatch:
    h = _check_header(buf, s, end, verify_crc)
    rbuf, pos, rend = _records_region(buf, s, end, h, cap)
    compressed = rbuf is not buf
    records = walk(rbuf, pos, rend, h, MODE_RECORDS, compressed, s)
    return RecordBatch(h, records, partial(_columns, rbuf, pos, rend, h, compressed, s))


def decode_batch(
    data: object,
    *,
    verify_crc: bool = True,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> RecordBatch:
    """Decode exactly one record batch v2 from a buffer-protocol object.

    ``max_decompressed_bytes`` caps the decompressed records region (bytes).
    Raises CorruptRecordError (with the byte offset) on any malformed input,
    including bytes after the batch.
    """
    buf = _input_bytes(data)
    n = len(buf)
    end = _batch_end(buf, 0, n)
    if end != n:
        raise CorruptRecordError(f"{n - end} bytes after the batch that ends at byte {end}")
    return _decode_at(buf, 0, end, verify_crc, _cap(max_decompressed_bytes))


def decode_batches(
    data: object,
    *,
    verify_crc: bool = True,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> list[RecordBatch]:
    """Decode back-to-back record batches, ignoring a trailing partial batch.

    A fetch response may end inside a batch: fewer than 12 bytes left, or a
    batchLength running past the end, stop the scan without error. A complete
    batch that is malformed raises CorruptRecordError.
    """
    buf = _input_bytes(data)
    cap = _cap(max_decompressed_bytes)
    n = len(buf)
    out: list[RecordBatch] = []
    s = 0
    while n - s >= LOG_OVERHEAD:
        length = batch_length(buf, s)
        if length >= MIN_BATCH_LENGTH and s + LOG_OVERHEAD + length > n:
            break
        end = _batch_end(buf, s, n)
        out.append(_decode_at(buf, s, end, verify_crc, cap))
        s = end
    return out


def validate_batch(
    data: object,
    *,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> BatchInfo:
    """Check one complete produced batch without building records; return its header.

    Checks everything ``decode_batch`` checks (always with the CRC) plus what a
    broker needs on produce: at least one record, lastOffsetDelta equal to
    recordsCount - 1 and offset deltas exactly 0..n-1.
    """
    buf = _input_bytes(data)
    n = len(buf)
    end = _batch_end(buf, 0, n)
    if end != n:
        raise CorruptRecordError(f"{n - end} bytes after the batch that ends at byte {end}")
    h = _check_header(buf, 0, end, True)
    count = h.record_count
    if count == 0:
        raise CorruptRecordError(
            f"record count 0 at byte {RECORDS_COUNT_AT}: a produced batch needs at least one record"
        )
    if h.last_offset_delta != count - 1:
        raise CorruptRecordError(
            f"lastOffsetDelta {h.last_offset_delta} at byte {LAST_OFFSET_DELTA_AT} "
            f"does not match record count {count}"
        )
    rbuf, pos, rend = _records_region(buf, 0, end, h, _cap(max_decompressed_bytes))
    walk(rbuf, pos, rend, h, MODE_VALIDATE, rbuf is not buf, 0)
    return BatchInfo(
        h.base_offset,
        h.batch_length,
        h.partition_leader_epoch,
        h.crc,
        h.attributes,
        h.last_offset_delta,
        h.first_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.record_count,
    )


# ---------------------------------------------------------------- checking what a log read returned


def check_batches(data: Any, offset: int) -> tuple[int, int] | None:
    """Check back-to-back batches read from a log for ``offset``.

    Framing, magic v2, a CRC-32C that matches, and offsets that never go backwards
    (they may skip, as in a compacted log); the first batch must reach ``offset``.
    Returns None when every batch is sound, else (byte index of the first bad batch,
    the lowest offset that batch had to end at). A trailing piece shorter than a
    header counts as bad. Only sound-or-not: the caller says what is wrong.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    unpack = PREFIX.unpack_from
    pos = 0
    expected = offset
    while pos < size:
        if size - pos < HEADER_SIZE:
            return pos, expected
        base, length, _epoch, magic, crc, _attrs, last_delta, _bts, _mts = unpack(view, pos)
        end = pos + length + LOG_OVERHEAD
        if (
            magic != MAGIC
            or length < MIN_BATCH_LENGTH
            or last_delta < 0
            or end > size
            or base + last_delta < expected
            or _crc32c(view[pos + CRC_START : end]) != crc
        ):
            return pos, expected
        expected = base + last_delta + 1
        pos = end
    return None
