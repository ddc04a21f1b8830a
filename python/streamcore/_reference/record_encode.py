"""Encoder of the reference record-batch codec (see ``record_batch`` for the rules)."""

from __future__ import annotations

import operator
import struct
import time
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from crc32c import crc32c as _crc32c

from streamcore._reference._batch_header import (
    CONTROL_FLAG,
    CRC_AT,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_APPEND_TIME_FLAG,
    LOG_OVERHEAD,
    MAGIC,
    TRANSACTIONAL_FLAG,
)
from streamcore._reference.compression import codec_id, compress

__all__ = ["encode_batch"]

_U32 = struct.Struct(">I")
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1


def _wrap64(v: int) -> int:
    return ((v + (1 << 63)) & _U64) - (1 << 63)


def _varint(v: int) -> bytes:
    """Zigzag varint of an int64 ``v``."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


# Lengths and offset deltas are nearly always small: table lookups beat encoding.
_SMALL = 8192
_VARINT = [_varint(i) for i in range(_SMALL)]
# attributes byte + zero timestampDelta + offsetDelta i, the common record prefix
_PREFIX0 = [b"\x00\x00" + _VARINT[i] for i in range(_SMALL)]
_NULL = b"\x01"  # varint -1


def _as_bytes(v: object, what: str) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v) if type(v) is not memoryview else v.tobytes()
    raise TypeError(f"{what} must be bytes, bytearray, memoryview or None, not {type(v).__name__}")


def _int_field(name: str, v: object, bits: int) -> int:
    i = operator.index(v)  # type: ignore[arg-type]
    lim = 1 << (bits - 1)
    if not -lim <= i < lim:
        raise OverflowError(f"{name}={i} does not fit a signed {bits}-bit field")
    return i


def _encode_headers(hs: object) -> bytes:
    if not hs:
        return b"\x00"
    if not isinstance(hs, (list, tuple)):
        raise TypeError(f"record headers must be a list of (str, bytes|None) tuples, not {type(hs).__name__}")
    out = bytearray(_varint(len(hs)))
    for h in hs:
        hk, hv = h
        if type(hk) is not str:
            raise TypeError(f"header key must be str, not {type(hk).__name__}")
        kb = hk.encode("utf-8")
        out += _varint(len(kb))
        out += kb
        if hv is None:
            out += _NULL
        else:
            if type(hv) is not bytes:
                hv = _as_bytes(hv, "header value")
            out += _varint(len(hv))
            out += hv
    return bytes(out)


def encode_batch(
    values: Sequence[Any],
    keys: Sequence[Any] | None = None,
    headers: Sequence[Any] | None = None,
    timestamps_ms: Sequence[int] | None = None,
    *,
    compression: str | int = "none",
    base_offset: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    control: bool = False,
    log_append_time: bool = False,
    partition_leader_epoch: int = -1,
    compression_level: int | None = None,
) -> bytes:
    """Encode records into one record batch v2 and return its bytes.

    ``values``: bytes-like or None per record; ``keys``/``headers``/``timestamps_ms``:
    None or one entry per record (headers: None or a list of ``(str, bytes|None)``;
    timestamps in milliseconds since the epoch, default the current time for all).
    ``compression``: "none", "gzip", "snappy", "lz4", "zstd" or 0..4.
    Raises ValueError for an empty batch or mismatched lengths, TypeError for
    ill-typed records, OverflowError for header fields out of their width.
    """
    codec = codec_id(compression)
    n = len(values)
    if n == 0:
        raise ValueError("a record batch needs at least one record")
    for name, seq in (("keys", keys), ("headers", headers), ("timestamps_ms", timestamps_ms)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{name} has {len(seq)} entries but values has {n}")
    header_fields = (
        _int_field("base_offset", base_offset, 64),
        _int_field("partition_leader_epoch", partition_leader_epoch, 32),
        _int_field("producer_id", producer_id, 64),
        _int_field("producer_epoch", producer_epoch, 16),
        _int_field("base_sequence", base_sequence, 32),
    )

    if timestamps_ms is None:
        first_ts = max_ts = int(time.time() * 1000)
        deltas: Any = repeat(0, n)
    else:
        ts = [t if type(t) is int else operator.index(t) for t in timestamps_ms]
        for t in ts:
            if not _I64_MIN <= t <= _I64_MAX:
                raise OverflowError(f"timestamp {t} does not fit int64")
        first_ts = ts[0]
        max_ts = max(ts)
        deltas = [t - first_ts for t in ts]

    # Collect the pieces of every record and join once: one list.extend per record
    # is cheaper than growing a bytearray piece by piece.
    parts: list[bytes] = []
    add = parts.extend
    VARINT = _VARINT
    SMALL = _SMALL
    PREFIX0 = _PREFIX0
    varint = _varint
    encode_headers = _encode_headers
    key_iter = keys if keys is not None else repeat(None, n)
    header_iter = headers if headers is not None else repeat(None, n)

    for i, value, key, hs, tsd in zip(range(n), values, key_iter, header_iter, deltas, strict=True):
        if value is None:
            vpart = _NULL
            value = b""
        else:
            if type(value) is not bytes:
                value = _as_bytes(value, "value")
            lv = len(value)
            vpart = VARINT[lv] if lv < SMALL else varint(lv)
        if key is None:
            kpart = _NULL
            key = b""
        else:
            if type(key) is not bytes:
                key = _as_bytes(key, "key")
            lk = len(key)
            kpart = VARINT[lk] if lk < SMALL else varint(lk)
        if i < SMALL:
            if tsd == 0:
                prefix = PREFIX0[i]
            elif 0 < tsd < SMALL:
                prefix = b"\x00" + VARINT[tsd] + VARINT[i]
            else:
                prefix = b"\x00" + varint(_wrap64(tsd)) + VARINT[i]
        else:
            prefix = b"\x00" + varint(_wrap64(tsd)) + varint(i)
        hpart = b"\x00" if hs is None else encode_headers(hs)
        size = len(prefix) + len(kpart) + len(key) + len(vpart) + len(value) + len(hpart)
        add((VARINT[size] if size < SMALL else varint(size), prefix, kpart, key, vpart, value, hpart))

    region = b"".join(parts)
    attributes = codec
    if log_append_time:
        attributes |= LOG_APPEND_TIME_FLAG
    if transactional:
        attributes |= TRANSACTIONAL_FLAG
    if control:
        attributes |= CONTROL_FLAG
    if codec:
        region = compress(codec, region, compression_level)
    base, ple, pid, epoch, base_seq = header_fields
    header = bytearray(
        HEADER.pack(
            base,
            HEADER_SIZE - LOG_OVERHEAD + len(region),
            ple,
            MAGIC,
            0,  # crc, filled in below
            attributes,
            n - 1,
            first_ts,
            max_ts,
            pid,
            epoch,
            base_seq,
            n,
        )
    )
    # The CRC covers attributes .. end: the header's tail, then the records.
    _U32.pack_into(header, CRC_AT, _crc32c(region, _crc32c(memoryview(header)[CRC_START:])))
    return b"".join((header, region))
