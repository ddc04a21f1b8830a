"""Record parser of the reference record-batch codec (rules 6-8 of ``record_batch``).

One walker serves decoding (Record objects), ``to_columns`` (offsets into the
records region) and ``validate_batch`` (checks only), so all three accept and
reject exactly the same inputs.
"""

from __future__ import annotations

from typing import Any

from streamcore._reference._batch_header import LOG_APPEND_TIME_FLAG, BatchHeader
from streamcore._reference.record_types import Record
from streamcore.errors import CorruptRecordError

__all__ = ["MODE_COLUMNS", "MODE_RECORDS", "MODE_VALIDATE", "walk"]

MODE_VALIDATE = 0
MODE_RECORDS = 1
MODE_COLUMNS = 2

_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1


def _wrap64(v: int) -> int:
    return ((v + (1 << 63)) & _U64) - (1 << 63)


def _where(pos: int, compressed: bool, s: int) -> str:
    if compressed:
        return f"byte {pos} of the decompressed records of the batch at byte {s}"
    return f"byte {pos}"


def _slow_varint(buf: bytes, pos: int, max_bytes: int, compressed: bool, s: int) -> tuple[int, int]:
    """Zigzag varint (max_bytes 5) or varlong (10) at ``pos``; IndexError past the end."""
    start = pos
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        if pos - start >= max_bytes:
            raise CorruptRecordError(
                f"varint longer than {max_bytes} bytes at {_where(start, compressed, s)}"
            )
        shift += 7
    if max_bytes == 5:
        if result > 0xFFFFFFFF:
            raise CorruptRecordError(f"varint out of int32 range at {_where(start, compressed, s)}")
    else:
        result &= _U64
    return (result >> 1) ^ -(result & 1), pos


def walk(
    buf: bytes,
    pos: int,
    end: int,
    h: BatchHeader,
    mode: int,
    compressed: bool,
    s: int,
) -> Any:
    """Parse (and check) the records in ``buf[pos:end]`` of the batch with header ``h``.

    mode 0 checks only, 1 returns a list of Record, 2 returns the column lists.
    """
    count = h.record_count
    base = h.base_offset
    first_ts = h.first_timestamp
    last_delta = h.last_offset_delta
    fixed_ts = h.max_timestamp if h.attributes & LOG_APPEND_TIME_FLAG else None
    wrap_offsets = count > 0 and base + last_delta > _I64_MAX
    records: list[Any] = []
    append = records.append
    columns: list[list[int]] = [[], [], [], [], [], []]
    c_off, c_ts, c_koff, c_klen, c_voff, c_vlen = columns
    new = tuple.__new__
    slow = _slow_varint
    prev = -1
    i = 0
    start = start0 = pos
    try:
        while i < count:
            start = pos
            b = buf[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                length = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                length, pos = slow(buf, pos, 5, compressed, s)
            rend = pos + length
            if length < 0 or rend > end:
                raise CorruptRecordError(
                    f"record length {length} past end of batch at {_where(start, compressed, s)}"
                )
            pos += 1  # attributes: unused by magic 2
            b = buf[pos]
            if b < 0x80:
                tsd = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                tsd = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                tsd, pos = slow(buf, pos, 10, compressed, s)
            b = buf[pos]
            if b < 0x80:
                delta = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                delta = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                delta, pos = slow(buf, pos, 5, compressed, s)
            if delta <= prev or delta > last_delta:
                raise CorruptRecordError(
                    f"offset delta {delta} out of order (previous {prev}, lastOffsetDelta "
                    f"{last_delta}) in the record at {_where(start, compressed, s)}"
                )
            prev = delta
            b = buf[pos]
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                klen = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                klen, pos = slow(buf, pos, 5, compressed, s)
            kpos = pos
            if klen >= 0:
                pos += klen
                if pos > rend:
                    raise CorruptRecordError(
                        f"key length {klen} past end of record at {_where(kpos, compressed, s)}"
                    )
            elif klen != -1:
                raise CorruptRecordError(f"key length {klen} at {_where(kpos - 1, compressed, s)}")
            b = buf[pos]
            if b < 0x80:
                vlen = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                vlen = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                vlen, pos = slow(buf, pos, 5, compressed, s)
            vpos = pos
            if vlen >= 0:
                pos += vlen
                if pos > rend:
                    raise CorruptRecordError(
                        f"value length {vlen} past end of record at {_where(vpos, compressed, s)}"
                    )
            elif vlen != -1:
                raise CorruptRecordError(f"value length {vlen} at {_where(vpos - 1, compressed, s)}")
            b = buf[pos]
            if b < 0x80:
                hcount = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:  # two-byte varints (64..8191) are common too
                z = (b & 0x7F) | (buf[pos + 1] << 7)
                hcount = (z >> 1) ^ -(z & 1)
                pos += 2
            else:
                hcount, pos = slow(buf, pos, 5, compressed, s)
            headers: list[tuple[str, bytes | None]] = []
            if hcount:
                if hcount < 0:
                    raise CorruptRecordError(
                        f"negative header count {hcount} at {_where(pos - 1, compressed, s)}"
                    )
                pos = _headers(buf, pos, rend, hcount, headers, compressed, s)
            if pos != rend:
                raise CorruptRecordError(
                    f"record at {_where(start, compressed, s)} has length {length} but its fields "
                    f"use {pos - (rend - length)} bytes"
                )
            if mode:
                if fixed_ts is None:
                    ts = first_ts + tsd
                    if not _I64_MIN <= ts <= _I64_MAX:
                        ts = _wrap64(ts)
                else:
                    ts = fixed_ts
                off = base + delta
                if wrap_offsets:
                    off = _wrap64(off)
                if mode == 1:
                    append(
                        new(
                            Record,
                            (
                                off,
                                ts,
                                buf[kpos : kpos + klen] if klen >= 0 else None,
                                buf[vpos : vpos + vlen] if vlen >= 0 else None,
                                headers,
                            ),
                        )
                    )
                else:
                    # Column offsets are relative to the records region; null fields point at 0.
                    c_off.append(off)
                    c_ts.append(ts)
                    c_koff.append(kpos - start0 if klen >= 0 else 0)
                    c_klen.append(klen)
                    c_voff.append(vpos - start0 if vlen >= 0 else 0)
                    c_vlen.append(vlen)
            i += 1
    except IndexError:
        raise CorruptRecordError(
            f"record {i} at {_where(start, compressed, s)} runs past end of the records region"
        ) from None
    if pos != end:
        raise CorruptRecordError(
            f"{end - pos} bytes left after the {count} records the batch at byte {s} declares "
            f"(at {_where(pos, compressed, s)})"
        )
    if mode == 2:
        return columns
    return records


def _headers(
    buf: bytes,
    pos: int,
    rend: int,
    hcount: int,
    headers: list[tuple[str, bytes | None]],
    compressed: bool,
    s: int,
) -> int:
    for _ in range(hcount):
        if pos >= rend:
            raise CorruptRecordError(f"header runs past end of record at {_where(pos, compressed, s)}")
        at = pos
        hk, pos = _slow_varint(buf, pos, 5, compressed, s)
        if hk < 0 or pos + hk > rend:
            raise CorruptRecordError(f"header key length {hk} at {_where(at, compressed, s)}")
        try:
            key = buf[pos : pos + hk].decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptRecordError(f"header key is not UTF-8 at {_where(pos, compressed, s)}") from None
        pos += hk
        at = pos
        hv, pos = _slow_varint(buf, pos, 5, compressed, s)
        if hv >= 0:
            if pos + hv > rend:
                raise CorruptRecordError(f"header value length {hv} at {_where(at, compressed, s)}")
            headers.append((key, buf[pos : pos + hv]))
            pos += hv
        elif hv == -1:
            headers.append((key, None))
        else:
            raise CorruptRecordError(f"header value length {hv} at {_where(at, compressed, s)}")
    return pos
