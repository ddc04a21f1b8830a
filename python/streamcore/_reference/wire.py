"""Reference twin of the ``wire`` capability: Kafka wire primitives in pure Python.

The compiled twin is ``streamcore._cy_wire`` (cython/_cy_wire.pyx); both expose the
same names, return the same values and raise the same exception classes with the
same messages. Every decoding problem (truncated input, a varint longer than its
type allows, a negative length other than the null marker, an oversize frame,
bad UTF-8) raises ``streamcore.errors.ProtocolError`` naming what was being read
and at which byte offset of the input.

Encodings (all integers big-endian):

* ``varint`` / ``varlong``: zigzag-encoded signed 32/64-bit base-128 varints, as in
  record bodies (at most 5 / 10 bytes);
* ``uvarint``: unsigned 32-bit base-128 varint (at most 5 bytes), used by flexible
  protocol versions for lengths (``length + 1``, 0 meaning null) and tagged fields;
* ``string`` / ``bytes_`` / ``array_length``: int16 / int32 / int32 length, -1 = null;
* ``compact_*``: uvarint ``length + 1``, 0 = null;
* tagged fields (KIP-482): uvarint count, then per field uvarint tag, uvarint size
  and the raw data, with tags strictly increasing.

The decoder is strict where Kafka's Java reader is lenient: bits beyond 32 (or 64)
in the last byte of a varint are an error rather than silently dropped, so a
corrupt length can never alias a small valid one.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Mapping

from streamcore.errors import ProtocolError

__all__ = [
    "encode_varint",
    "encode_varlong",
    "encode_uvarint",
    "decode_varint",
    "decode_varlong",
    "decode_uvarint",
    "size_of_varint",
    "size_of_varlong",
    "Reader",
    "Writer",
    "FrameSplitter",
    "parse_request_header",
    "encode_response_header",
]

_I8 = struct.Struct(">b")
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_F64 = struct.Struct(">d")

_INT8 = (-(1 << 7), (1 << 7) - 1)
_INT16 = (-(1 << 15), (1 << 15) - 1)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT16 = (0, (1 << 16) - 1)
_UINT32 = (0, (1 << 32) - 1)
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1

# Varint limits: (most bytes, largest value allowed in the last byte). A 32-bit
# value uses 4 bits of the fifth byte, a 64-bit value 1 bit of the tenth.
_VARINT32 = (5, 0x0F)
_VARINT64 = (10, 0x01)

# An api_version no flexible_from table can reach: "never flexible".
_NEVER = 1 << 16


# ---------------------------------------------------------------- error texts
# The Cython twin builds exactly the same messages; tests compare them.


def _truncated(what: str, pos: int, need: int, have: int) -> ProtocolError:
    return ProtocolError(f"truncated {what} at byte {pos}: needs {need} bytes, {have} remain")


def _bad_length(what: str, length: int, pos: int) -> ProtocolError:
    return ProtocolError(f"invalid length {length} for {what} at byte {pos}")


def _check_int(n: object, bounds: tuple[int, int], what: str) -> int:
    value = operator.index(n)  # type: ignore[arg-type]
    lo, hi = bounds
    if value < lo or value > hi:
        raise ValueError(f"{what} value {value} out of range [{lo}, {hi}]")
    return value


def _as_view(buf: object) -> memoryview:
    """A flat unsigned-byte view of any C-contiguous buffer-protocol object."""
    mv = memoryview(buf)  # type: ignore[arg-type]
    if not mv.c_contiguous:
        raise TypeError("a C-contiguous bytes-like object is required")
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


# ---------------------------------------------------------------- varints


def _read_unsigned(
    buf: bytes | bytearray | memoryview, end: int, pos: int, what: str, limits: tuple[int, int]
) -> tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return (unsigned value, position after it)."""
    if pos < 0:
        raise ProtocolError(f"{what} position {pos} is before byte 0")
    if pos < end:
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
    maxlen, lastmax = limits
    start = pos
    value = 0
    shift = 0
    for i in range(maxlen):
        if pos >= end:
            raise ProtocolError(f"truncated {what} at byte {start}: input ends inside the varint")
        b = buf[pos]
        pos += 1
        if i == maxlen - 1:
            if b & 0x80:
                raise ProtocolError(f"{what} at byte {start} is longer than {maxlen} bytes")
            if b > lastmax:
                raise ProtocolError(
                    f"{what} at byte {start} overflows {7 * (maxlen - 1) + lastmax.bit_length()} bits"
                )
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return value, pos


def _write_unsigned(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _unsigned_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


_ONE_BYTE: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(0x80))


def encode_varint(n: int) -> bytes:
    """Zigzag varint of a signed 32-bit integer (1-5 bytes); ValueError outside int32."""
    # Plain ints in range take an inlined path (this is the record-encoding hot path);
    # anything else goes through the general checks and their errors.
    value = n if type(n) is int and -0x80000000 <= n <= 0x7FFFFFFF else _check_int(n, _INT32, "varint")
    v = ((value << 1) ^ (value >> 31)) & _MASK32
    if v < 0x80:
        return _ONE_BYTE[v]
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def encode_varlong(n: int) -> bytes:
    """Zigzag varint of a signed 64-bit integer (1-10 bytes); ValueError outside int64."""
    value = _check_int(n, _INT64, "varlong")
    out = bytearray()
    _write_unsigned(out, ((value << 1) ^ (value >> 63)) & _MASK64)
    return bytes(out)


def encode_uvarint(n: int) -> bytes:
    """Unsigned varint of an integer in [0, 2**32 - 1] (1-5 bytes); ValueError outside."""
    value = _check_int(n, _UINT32, "uvarint")
    out = bytearray()
    _write_unsigned(out, value)
    return bytes(out)


def _buffer(buf: object) -> bytes | bytearray | memoryview:
    # bytes and bytearray index to int directly; anything else goes through a view.
    if type(buf) is bytes or type(buf) is bytearray:
        return buf
    return _as_view(buf)


def decode_varint(buf: object, pos: int = 0) -> tuple[int, int]:
    """Decode a zigzag varint (signed 32-bit) at byte ``pos``; return (value, new position)."""
    if type(buf) is bytes and type(pos) is int and pos >= 0:
        # Inlined well-formed case; anything unusual (truncation, overlong, overflow)
        # falls through to the general decoder, which raises the precise error.
        try:
            b = buf[pos]
            if b < 0x80:
                return (b >> 1) ^ -(b & 1), pos + 1
            raw = b & 0x7F
            i = pos + 1
            shift = 7
            while shift < 35:
                b = buf[i]
                i += 1
                raw |= (b & 0x7F) << shift
                if b < 0x80:
                    if raw <= 0xFFFFFFFF:
                        return (raw >> 1) ^ -(raw & 1), i
                    break
                shift += 7
        except IndexError:
            pass
    data = _buffer(buf)
    raw, end = _read_unsigned(data, len(data), operator.index(pos), "varint", _VARINT32)
    return (raw >> 1) ^ -(raw & 1), end


def decode_varlong(buf: object, pos: int = 0) -> tuple[int, int]:
    """Decode a zigzag varlong (signed 64-bit) at byte ``pos``; return (value, new position)."""
    data = _buffer(buf)
    raw, end = _read_unsigned(data, len(data), operator.index(pos), "varlong", _VARINT64)
    return (raw >> 1) ^ -(raw & 1), end


def decode_uvarint(buf: object, pos: int = 0) -> tuple[int, int]:
    """Decode an unsigned 32-bit varint at byte ``pos``; return (value, new position)."""
    data = _buffer(buf)
    return _read_unsigned(data, len(data), operator.index(pos), "uvarint", _VARINT32)


def size_of_varint(n: int) -> int:
    """Encoded size in bytes of ``encode_varint(n)``; ValueError outside int32."""
    value = _check_int(n, _INT32, "varint")
    return _unsigned_size(((value << 1) ^ (value >> 31)) & _MASK32)


def size_of_varlong(n: int) -> int:
    """Encoded size in bytes of ``encode_varlong(n)``; ValueError outside int64."""
    value = _check_int(n, _INT64, "varlong")
    return _unsigned_size(((value << 1) ^ (value >> 63)) & _MASK64)


# ---------------------------------------------------------------- Reader


class Reader:
    """Sequential decoder over a bytes-like object, starting at byte ``pos``.

    Keeps a view of ``buf`` (no copy of the whole buffer; a bytearray cannot be
    resized while a Reader holds it). ``pos`` is the offset of the next byte to
    read and may be set to any value in ``[0, len(buf)]``.
    """

    __slots__ = ("_mv", "_len", "_pos")

    def __init__(self, buf: object, pos: int = 0) -> None:
        self._mv = _as_view(buf)
        self._len = len(self._mv)
        self._pos = 0
        self.pos = pos

    @property
    def pos(self) -> int:
        """Offset in bytes of the next byte to read."""
        return self._pos

    @pos.setter
    def pos(self, value: int) -> None:
        value = operator.index(value)
        if value < 0 or value > self._len:
            raise ProtocolError(f"position {value} is outside the buffer of {self._len} bytes")
        self._pos = value

    def remaining(self) -> int:
        """Bytes left after ``pos``."""
        return self._len - self._pos

    def _take(self, n: int, what: str) -> int:
        """Advance over ``n`` bytes and return where they start."""
        p = self._pos
        if n > self._len - p:
            raise _truncated(what, p, n, self._len - p)
        self._pos = p + n
        return p

    def int8(self) -> int:
        """Signed 8-bit integer."""
        return _I8.unpack_from(self._mv, self._take(1, "int8"))[0]

    def int16(self) -> int:
        """Signed big-endian 16-bit integer."""
        return _I16.unpack_from(self._mv, self._take(2, "int16"))[0]

    def int32(self) -> int:
        """Signed big-endian 32-bit integer."""
        return _I32.unpack_from(self._mv, self._take(4, "int32"))[0]

    def int64(self) -> int:
        """Signed big-endian 64-bit integer."""
        return _I64.unpack_from(self._mv, self._take(8, "int64"))[0]

    def uint16(self) -> int:
        """Unsigned big-endian 16-bit integer."""
        return _U16.unpack_from(self._mv, self._take(2, "uint16"))[0]

    def uint32(self) -> int:
        """Unsigned big-endian 32-bit integer."""
        return _U32.unpack_from(self._mv, self._take(4, "uint32"))[0]

    def float64(self) -> float:
        """Big-endian IEEE 754 double."""
        return _F64.unpack_from(self._mv, self._take(8, "float64"))[0]

    def boolean(self) -> bool:
        """One byte; any non-zero value is True (as Kafka reads it)."""
        return self._mv[self._take(1, "boolean")] != 0

    def uuid(self) -> bytes:
        """A UUID as its 16 raw bytes."""
        p = self._take(16, "uuid")
        return self._mv[p : p + 16].tobytes()

    def uvarint(self) -> int:
        """Unsigned 32-bit varint."""
        value, self._pos = _read_unsigned(self._mv, self._len, self._pos, "uvarint", _VARINT32)
        return value

    def varint(self) -> int:
        """Zigzag signed 32-bit varint."""
        raw, self._pos = _read_unsigned(self._mv, self._len, self._pos, "varint", _VARINT32)
        return (raw >> 1) ^ -(raw & 1)

    def varlong(self) -> int:
        """Zigzag signed 64-bit varint."""
        raw, self._pos = _read_unsigned(self._mv, self._len, self._pos, "varlong", _VARINT64)
        return (raw >> 1) ^ -(raw & 1)

    def _text(self, n: int, what: str) -> str:
        p = self._take(n, what)
        try:
            return str(self._mv[p : p + n], "utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"invalid utf-8 in {what} at byte {p}") from None

    def string(self) -> str | None:
        """Nullable string: int16 length (-1 = None) then UTF-8 bytes."""
        p = self._take(2, "string length")
        n = _I16.unpack_from(self._mv, p)[0]
        if n < 0:
            if n == -1:
                return None
            raise _bad_length("string", n, p)
        return self._text(n, "string")

    def compact_string(self) -> str | None:
        """Nullable compact string: uvarint length + 1 (0 = None) then UTF-8 bytes."""
        n, self._pos = _read_unsigned(self._mv, self._len, self._pos, "compact_string length", _VARINT32)
        if n == 0:
            return None
        return self._text(n - 1, "compact_string")

    def bytes_(self) -> bytes | None:
        """Nullable bytes: int32 length (-1 = None) then the data (copied)."""
        p = self._take(4, "bytes length")
        n = _I32.unpack_from(self._mv, p)[0]
        if n < 0:
            if n == -1:
                return None
            raise _bad_length("bytes", n, p)
        q = self._take(n, "bytes")
        return self._mv[q : q + n].tobytes()

    def compact_bytes(self) -> bytes | None:
        """Nullable compact bytes: uvarint length + 1 (0 = None) then the data (copied)."""
        n, self._pos = _read_unsigned(self._mv, self._len, self._pos, "compact_bytes length", _VARINT32)
        if n == 0:
            return None
        q = self._take(n - 1, "compact_bytes")
        return self._mv[q : q + n - 1].tobytes()

    def array_length(self) -> int | None:
        """Array element count: int32, -1 = None (a null array)."""
        p = self._take(4, "array length")
        n = _I32.unpack_from(self._mv, p)[0]
        if n < 0:
            if n == -1:
                return None
            raise _bad_length("array", n, p)
        return n

    def compact_array_length(self) -> int | None:
        """Compact array element count: uvarint count + 1, 0 = None (a null array)."""
        n, self._pos = _read_unsigned(self._mv, self._len, self._pos, "compact_array length", _VARINT32)
        if n == 0:
            return None
        return n - 1

    def tagged_fields(self) -> dict[int, bytes] | None:
        """A tagged-field section (KIP-482): ``{tag: raw data}``, or None when it is empty.

        Every field is returned raw, known or not, so the caller decodes the tags
        it understands and skips the rest. Tags must be strictly increasing.
        """
        mv, end = self._mv, self._len
        count, p = _read_unsigned(mv, end, self._pos, "tagged field count", _VARINT32)
        self._pos = p
        if count == 0:
            return None
        fields: dict[int, bytes] = {}
        previous = -1
        for _ in range(count):
            at = self._pos
            tag, p = _read_unsigned(mv, end, at, "tag", _VARINT32)
            self._pos = p
            if tag <= previous:
                raise ProtocolError(
                    f"tagged field {tag} at byte {at} does not follow tag {previous}: tags must be strictly increasing"
                )
            size, p = _read_unsigned(mv, end, p, "tagged field size", _VARINT32)
            self._pos = p
            q = self._take(size, "tagged field")
            fields[tag] = mv[q : q + size].tobytes()
            previous = tag
        return fields

    def raw(self, n: int) -> bytes:
        """The next ``n`` bytes, copied."""
        p = self._take_n(n, "raw")
        return self._mv[p : p + n].tobytes()

    def view(self, n: int) -> memoryview:
        """The next ``n`` bytes as a zero-copy memoryview of the underlying buffer."""
        p = self._take_n(n, "view")
        return self._mv[p : p + n]

    def skip(self, n: int) -> None:
        """Advance over ``n`` bytes."""
        self._take_n(n, "skip")

    def _take_n(self, n: int, what: str) -> int:
        n = operator.index(n)
        if n < 0:
            raise _bad_length(what, n, self._pos)
        return self._take(n, what)


# ---------------------------------------------------------------- Writer


class Writer:
    """Growable encoder; ``getvalue()`` returns what was written.

    Integer methods raise ValueError for a value outside the type's range and
    TypeError for a non-integer.
    """

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        """Bytes written so far (without any frame prefix)."""
        return len(self._buf)

    def getvalue(self) -> bytes:
        """Everything written, as bytes."""
        return bytes(self._buf)

    def getvalue_framed(self) -> bytes:
        """Everything written, prefixed with its length as a big-endian int32 (a Kafka frame)."""
        n = len(self._buf)
        if n > _INT32[1]:
            raise ValueError(f"frame of {n} bytes does not fit an int32 size")
        return _I32.pack(n) + self._buf

    def int8(self, n: int) -> None:
        """Signed 8-bit integer."""
        self._buf += _I8.pack(_check_int(n, _INT8, "int8"))

    def int16(self, n: int) -> None:
        """Signed big-endian 16-bit integer."""
        self._buf += _I16.pack(_check_int(n, _INT16, "int16"))

    def int32(self, n: int) -> None:
        """Signed big-endian 32-bit integer."""
        self._buf += _I32.pack(_check_int(n, _INT32, "int32"))

    def int64(self, n: int) -> None:
        """Signed big-endian 64-bit integer."""
        self._buf += _I64.pack(_check_int(n, _INT64, "int64"))

    def uint16(self, n: int) -> None:
        """Unsigned big-endian 16-bit integer."""
        self._buf += _U16.pack(_check_int(n, _UINT16, "uint16"))

    def uint32(self, n: int) -> None:
        """Unsigned big-endian 32-bit integer."""
        self._buf += _U32.pack(_check_int(n, _UINT32, "uint32"))

    def float64(self, x: float) -> None:
        """Big-endian IEEE 754 double."""
        if isinstance(x, (str, bytes, bytearray)):
            raise TypeError(f"float64 needs a number, not {type(x).__name__}")
        self._buf += _F64.pack(float(x))

    def boolean(self, v: object) -> None:
        """One byte: 1 if ``v`` is true, else 0."""
        self._buf.append(1 if v else 0)

    def uuid(self, u: object) -> None:
        """A UUID given as 16 raw bytes (any bytes-like)."""
        mv = _as_view(u)
        if len(mv) != 16:
            raise ValueError(f"uuid must be 16 bytes, got {len(mv)}")
        self._buf += mv

    def uvarint(self, n: int) -> None:
        """Unsigned 32-bit varint."""
        _write_unsigned(self._buf, _check_int(n, _UINT32, "uvarint"))

    def varint(self, n: int) -> None:
        """Zigzag signed 32-bit varint."""
        value = _check_int(n, _INT32, "varint")
        _write_unsigned(self._buf, ((value << 1) ^ (value >> 31)) & _MASK32)

    def varlong(self, n: int) -> None:
        """Zigzag signed 64-bit varint."""
        value = _check_int(n, _INT64, "varlong")
        _write_unsigned(self._buf, ((value << 1) ^ (value >> 63)) & _MASK64)

    def string(self, s: str | None) -> None:
        """Nullable string: int16 length (-1 for None) then UTF-8."""
        if s is None:
            self._buf += b"\xff\xff"
            return
        data = _utf8(s, "string")
        if len(data) > _INT16[1]:
            raise ValueError(f"string of {len(data)} UTF-8 bytes is longer than {_INT16[1]}")
        self._buf += _I16.pack(len(data))
        self._buf += data

    def compact_string(self, s: str | None) -> None:
        """Nullable compact string: uvarint length + 1 (0 for None) then UTF-8."""
        if s is None:
            self._buf.append(0)
            return
        data = _utf8(s, "compact_string")
        _write_unsigned(self._buf, _check_int(len(data) + 1, _UINT32, "compact_string length + 1"))
        self._buf += data

    def bytes_(self, b: object) -> None:
        """Nullable bytes (any bytes-like): int32 length (-1 for None) then the data."""
        if b is None:
            self._buf += b"\xff\xff\xff\xff"
            return
        mv = _as_view(b)
        self._buf += _I32.pack(_check_int(len(mv), _INT32, "bytes length"))
        self._buf += mv

    def compact_bytes(self, b: object) -> None:
        """Nullable compact bytes: uvarint length + 1 (0 for None) then the data."""
        if b is None:
            self._buf.append(0)
            return
        mv = _as_view(b)
        _write_unsigned(self._buf, _check_int(len(mv) + 1, _UINT32, "compact_bytes length + 1"))
        self._buf += mv

    def array_length(self, n: int | None) -> None:
        """Array element count as int32 (-1 for None, a null array)."""
        if n is None:
            self._buf += b"\xff\xff\xff\xff"
            return
        self._buf += _I32.pack(_check_int(n, (0, _INT32[1]), "array length"))

    def compact_array_length(self, n: int | None) -> None:
        """Compact array element count: uvarint count + 1 (0 for None)."""
        if n is None:
            self._buf.append(0)
            return
        _write_unsigned(self._buf, _check_int(n, (0, _UINT32[1] - 1), "compact_array length") + 1)

    def tagged_fields(self, fields: Mapping[int, object] | None) -> None:
        """A tagged-field section; tags are written in increasing order. None or {} = empty."""
        if not fields:
            self._buf.append(0)
            return
        tags = sorted(_check_int(t, _UINT32, "tag") for t in fields)
        _write_unsigned(self._buf, _check_int(len(tags), _UINT32, "tagged field count"))
        for tag in tags:
            mv = _as_view(fields[tag])
            _write_unsigned(self._buf, tag)
            _write_unsigned(self._buf, _check_int(len(mv), _UINT32, "tagged field size"))
            self._buf += mv

    def raw(self, data: object) -> None:
        """Append the bytes of any bytes-like object unchanged."""
        self._buf += _as_view(data)


def _utf8(s: object, what: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str or None, not {type(s).__name__}")
    return s.encode("utf-8")


# ---------------------------------------------------------------- framing


class FrameSplitter:
    """Cuts a TCP byte stream into Kafka frames (big-endian int32 size, then payload).

    ``feed`` accepts chunks of any size and returns the payloads completed by that
    chunk (without the size prefix), keeping any partial frame for the next call.
    A size below 0 or above ``max_frame_size`` bytes raises ProtocolError; the
    splitter then refuses further input because the stream cannot be resynchronised
    (the connection must be closed).
    """

    __slots__ = ("_max", "_buf", "_consumed", "_failed")

    def __init__(self, max_frame_size: int) -> None:
        self._max = _check_int(max_frame_size, (0, _INT32[1]), "max_frame_size")
        self._buf = bytearray()
        self._consumed = 0  # stream offset of self._buf[0], for error messages
        self._failed: str | None = None

    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed(self, data: object) -> list[bytes]:
        """Add ``data`` (any bytes-like) to the stream; return the frames it completed."""
        if self._failed is not None:
            raise ProtocolError(f"frame splitter is unusable after an earlier error: {self._failed}")
        mv = _as_view(data)
        if self._buf:
            self._buf += mv
            # A view, so that slicing a payload copies once; released before del below.
            src = memoryview(self._buf)
        else:
            # Nothing pending: parse the chunk in place and keep only its tail.
            src = mv
        frames: list[bytes] = []
        end = len(src)
        off = 0
        limit = self._max
        try:
            while end - off >= 4:
                size = _I32.unpack_from(src, off)[0]
                if size < 0 or size > limit:
                    at = self._consumed + off
                    reason = "is negative" if size < 0 else f"exceeds max_frame_size {limit}"
                    self._failed = f"frame size {size} at stream byte {at} {reason}"
                    self._buf = bytearray()
                    raise ProtocolError(self._failed)
                if end - off - 4 < size:
                    break
                frames.append(src[off + 4 : off + 4 + size].tobytes())
                off += 4 + size
        finally:
            if src is not mv:
                src.release()
        self._consumed += off
        if src is mv:
            self._buf += mv[off:]
        else:
            del self._buf[:off]
        return frames


# ---------------------------------------------------------------- headers


def parse_request_header(
    frame: object, flexible_from: Mapping[int, int]
) -> tuple[int, int, int, str | None, int]:
    """Decode a request header; return (api_key, api_version, correlation_id, client_id, body_offset).

    Header v1: api_key int16, api_version int16, correlation_id int32, client_id
    nullable string (int16 length). Header v2, used when ``api_version >=
    flexible_from.get(api_key)``, adds a tagged-field section after client_id,
    which is skipped (client_id stays a non-compact string). ``body_offset`` is
    the byte offset in ``frame`` where the request body starts.
    """
    r = Reader(frame)
    api_key = r.int16()
    api_version = r.int16()
    correlation_id = r.int32()
    client_id = r.string()
    if api_version >= flexible_from.get(api_key, _NEVER):
        r.tagged_fields()
    return api_key, api_version, correlation_id, client_id, r.pos


def encode_response_header(correlation_id: int, flexible: bool) -> bytes:
    """Response header v0 (correlation_id int32) or, if ``flexible``, v1 (+ empty tagged fields)."""
    head = _I32.pack(_check_int(correlation_id, _INT32, "correlation_id"))
    return head + b"\x00" if flexible else head
