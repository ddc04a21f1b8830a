"""Minimal valid Kafka v2 record batches for the storage tests (struct + streamcore.crc32c).

The storage layer only needs well-framed batches with a correct CRC; records
are uncompressed, keyless, with a value and no headers.
"""

from __future__ import annotations

import struct

from streamcore import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")  # 61 bytes


def _varint(value: int) -> bytes:
    zz = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        b = zz & 0x7F
        zz >>= 7
        if zz:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _record(offset_delta: int, ts_delta: int, value: bytes, key: bytes | None = None) -> bytes:
    key_part = _varint(-1) if key is None else _varint(len(key)) + key
    body = b"\x00" + _varint(ts_delta) + _varint(offset_delta) + key_part
    body += _varint(len(value)) + value + _varint(0)
    return _varint(len(body)) + body


def make_batch(
    values: list[bytes] | int = 1,
    *,
    base_timestamp: int = 1_700_000_000_000,
    timestamp_step: int = 1,
    value_size: int = 10,
    base_offset: int = 0,
    first_key: bytes | None = None,
) -> bytes:
    """A v2 batch with the given record values (or that many ``value_size``-byte values).

    Record i has timestamp base_timestamp + i * timestamp_step; maxTimestamp is the last one.
    """
    if isinstance(values, int):
        values = [bytes([i % 251]) * value_size for i in range(values)]
    records = b"".join(
        _record(i, i * timestamp_step, v, first_key if i == 0 else None) for i, v in enumerate(values)
    )
    n = len(values)
    max_ts = base_timestamp + (n - 1) * timestamp_step
    length = _HEADER.size - 12 + len(records)
    header = bytearray(
        _HEADER.pack(base_offset, length, 0, 2, 0, 0, n - 1, base_timestamp, max_ts, -1, -1, -1, n)
    )
    body = bytes(header[21:]) + records
    struct.pack_into(">I", header, 17, crc32c(body))
    return bytes(header) + records


def batch_of_size(total: int, *, records: int = 1, base_timestamp: int = 1_700_000_000_000) -> bytes:
    """A batch of exactly ``total`` bytes (>= ~80) with ``records`` records."""
    overhead = len(make_batch([b""] * records, base_timestamp=base_timestamp))
    extra = total - overhead
    if extra < 0:
        raise ValueError(f"a {records}-record batch needs at least {overhead} bytes")
    # Pad the last value; a varint length growing by a byte can skip a size, and a
    # one-byte key on the first record then shifts the total by one.
    for key in (None, b"k"):
        values = [b""] * records
        pad = extra
        for _ in range(8):
            values[-1] = b"v" * max(0, pad)
            got = len(make_batch(values, base_timestamp=base_timestamp, first_key=key))
            if got == total:
                return make_batch(values, base_timestamp=base_timestamp, first_key=key)
            pad -= got - total
    raise ValueError(f"cannot build a batch of exactly {total} bytes")


def split_batches(data: bytes) -> list[bytes]:
    """Split concatenated batches (as returned by read) into single batches."""
    out = []
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">i", data, pos + 8)
        out.append(data[pos : pos + 12 + length])
        pos += 12 + length
    return out


def batch_offsets(batch: bytes) -> tuple[int, int]:
    """(base offset, last offset) of a stored batch."""
    base = struct.unpack_from(">q", batch, 0)[0]
    last_delta = struct.unpack_from(">i", batch, 23)[0]
    return base, base + last_delta


def batch_max_timestamp(batch: bytes) -> int:
    """maxTimestamp field of a batch."""
    return struct.unpack_from(">q", batch, 35)[0]


def same_but_offset(stored: bytes, original: bytes) -> bool:
    """True when ``stored`` equals ``original`` except for the baseOffset field."""
    return stored[8:] == original[8:]
