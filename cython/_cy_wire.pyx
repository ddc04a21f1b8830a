# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Kafka wire primitives, compiled: the native twin of ``streamcore._reference.wire``.

Same names, same results, same exception classes and messages as the reference
(see its module docstring for the encodings). Everything reads through a raw
``const unsigned char *`` taken from the buffer protocol, so bounds checks are
all explicit: every read first checks the remaining length and raises
``streamcore.errors.ProtocolError`` naming what was read and at which byte.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport (
    INT8_MAX,
    INT8_MIN,
    INT16_MAX,
    INT16_MIN,
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    UINT16_MAX,
    UINT32_MAX,
    int8_t,
    int16_t,
    int32_t,
    int64_t,
    uint16_t,
    uint32_t,
    uint64_t,
)
from libc.string cimport memcpy, memmove

from operator import index as _index

from streamcore.errors import ProtocolError

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL

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

# An api_version no flexible_from table can reach: "never flexible".
cdef object _NEVER = 1 << 16

# Writers keep the first 4 bytes of their buffer free so getvalue_framed can fill
# in the size and return the frame with one copy.
cdef enum:
    HEAD = 4


# ---------------------------------------------------------------- helpers


cdef inline uint32_t _be32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline uint64_t _be64(const unsigned char *p) noexcept nogil:
    return (<uint64_t>_be32(p) << 32) | <uint64_t>_be32(p + 4)


cdef inline void _put_be16(unsigned char *p, uint16_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>v


cdef inline void _put_be32(unsigned char *p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline void _put_be64(unsigned char *p, uint64_t v) noexcept nogil:
    _put_be32(p, <uint32_t>(v >> 32))
    _put_be32(p + 4, <uint32_t>v)


cdef inline Py_ssize_t _put_unsigned(unsigned char *p, uint64_t v) noexcept nogil:
    """Write a base-128 varint at ``p`` (room for 10 bytes); return its size."""
    cdef Py_ssize_t n = 0
    while v >= 0x80:
        p[n] = <unsigned char>((v & 0x7F) | 0x80)
        v >>= 7
        n += 1
    p[n] = <unsigned char>v
    return n + 1


cdef inline int _unsigned_size(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint64_t _zigzag32(int64_t v) noexcept nogil:
    return <uint32_t>((<uint32_t>v << 1) ^ <uint32_t>(<int32_t>v >> 31))


cdef inline uint64_t _zigzag64(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)


cdef inline int64_t _unzigzag(uint64_t raw) noexcept nogil:
    return <int64_t>(raw >> 1) ^ -<int64_t>(raw & 1)


cdef int64_t _check_int(object n, int64_t lo, int64_t hi, str what) except? -1:
    """``n`` as a C integer in [lo, hi]; ValueError outside, TypeError for a non-integer."""
    cdef int64_t v
    if not isinstance(n, int):
        # Cython's own conversion would truncate a float; the reference uses __index__.
        n = _index(n)
    try:
        v = n
    except OverflowError:
        raise ValueError(f"{what} value {n} out of range [{lo}, {hi}]") from None
    if v < lo or v > hi:
        raise ValueError(f"{what} value {v} out of range [{lo}, {hi}]")
    return v


cdef int _get_buffer(object obj, Py_buffer *view) except -1:
    """A contiguous byte buffer of ``obj``; TypeError like the reference for anything else."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except BufferError:
        raise TypeError("a C-contiguous bytes-like object is required") from None
    return 0


cdef object _as_view(object buf):
    """A flat unsigned-byte memoryview of ``buf`` (for Reader.view)."""
    mv = memoryview(buf)
    if not mv.c_contiguous:
        raise TypeError("a C-contiguous bytes-like object is required")
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


cdef int _read_unsigned(
    const unsigned char *buf, Py_ssize_t end, Py_ssize_t *pos, uint64_t *out,
    str what, int maxlen, unsigned int lastmax, int bits,
) except -1:
    """Decode a base-128 varint at ``pos[0]`` into ``out[0]`` and advance ``pos[0]``."""
    cdef Py_ssize_t p = pos[0]
    cdef Py_ssize_t start = p
    cdef uint64_t value = 0
    cdef unsigned int shift = 0
    cdef unsigned char b
    cdef int i
    if p < 0:
        raise ProtocolError(f"{what} position {p} is before byte 0")
    if p < end:
        b = buf[p]
        if b < 0x80:
            out[0] = b
            pos[0] = p + 1
            return 0
    for i in range(maxlen):
        if p >= end:
            raise ProtocolError(f"truncated {what} at byte {start}: input ends inside the varint")
        b = buf[p]
        p += 1
        if i == maxlen - 1:
            if b & 0x80:
                raise ProtocolError(f"{what} at byte {start} is longer than {maxlen} bytes")
            if b > lastmax:
                raise ProtocolError(f"{what} at byte {start} overflows {bits} bits")
        value |= (<uint64_t>(b & 0x7F)) << shift
        if not (b & 0x80):
            break
        shift += 7
    out[0] = value
    pos[0] = p
    return 0


cdef inline int _read32(const unsigned char *buf, Py_ssize_t end, Py_ssize_t *pos, uint64_t *out, str what) except -1:
    return _read_unsigned(buf, end, pos, out, what, 5, 0x0F, 32)


cdef inline int _read64(const unsigned char *buf, Py_ssize_t end, Py_ssize_t *pos, uint64_t *out, str what) except -1:
    return _read_unsigned(buf, end, pos, out, what, 10, 0x01, 64)


# ---------------------------------------------------------------- varints


def encode_varint(n):
    """Zigzag varint of a signed 32-bit integer (1-5 bytes); ValueError outside int32."""
    cdef unsigned char tmp[10]
    cdef int64_t v = _check_int(n, INT32_MIN, INT32_MAX, "varint")
    return PyBytes_FromStringAndSize(<char *>tmp, _put_unsigned(tmp, _zigzag32(v)))


def encode_varlong(n):
    """Zigzag varint of a signed 64-bit integer (1-10 bytes); ValueError outside int64."""
    cdef unsigned char tmp[10]
    cdef int64_t v = _check_int(n, INT64_MIN, INT64_MAX, "varlong")
    return PyBytes_FromStringAndSize(<char *>tmp, _put_unsigned(tmp, _zigzag64(v)))


def encode_uvarint(n):
    """Unsigned varint of an integer in [0, 2**32 - 1] (1-5 bytes); ValueError outside."""
    cdef unsigned char tmp[10]
    cdef int64_t v = _check_int(n, 0, UINT32_MAX, "uvarint")
    return PyBytes_FromStringAndSize(<char *>tmp, _put_unsigned(tmp, <uint64_t>v))


cdef Py_ssize_t _start(object pos, Py_ssize_t end, str what) except? -1:
    """A decode position as Py_ssize_t; one too large for C fails like the reference."""
    try:
        return pos
    except OverflowError:
        pos = _index(pos)
        if pos < 0:
            raise ProtocolError(f"{what} position {pos} is before byte 0") from None
        raise ProtocolError(f"truncated {what} at byte {pos}: input ends inside the varint") from None


cdef object _decode(object buf, object pos, str what, int kind):
    # kind: 0 uvarint, 1 zigzag varint, 2 zigzag varlong
    cdef Py_buffer view
    cdef uint64_t raw
    cdef Py_ssize_t p
    _get_buffer(buf, &view)
    try:
        p = _start(pos, view.len, what)
        if kind == 2:
            _read64(<const unsigned char *>view.buf, view.len, &p, &raw, what)
            return _unzigzag(raw), p
        _read32(<const unsigned char *>view.buf, view.len, &p, &raw, what)
        if kind == 1:
            return _unzigzag(raw), p
        return raw, p
    finally:
        PyBuffer_Release(&view)


def decode_varint(buf, pos=0):
    """Decode a zigzag varint (signed 32-bit) at byte ``pos``; return (value, new position)."""
    return _decode(buf, pos, "varint", 1)


def decode_varlong(buf, pos=0):
    """Decode a zigzag varlong (signed 64-bit) at byte ``pos``; return (value, new position)."""
    return _decode(buf, pos, "varlong", 2)


def decode_uvarint(buf, pos=0):
    """Decode an unsigned 32-bit varint at byte ``pos``; return (value, new position)."""
    return _decode(buf, pos, "uvarint", 0)


def size_of_varint(n):
    """Encoded size in bytes of ``encode_varint(n)``; ValueError outside int32."""
    return _unsigned_size(_zigzag32(_check_int(n, INT32_MIN, INT32_MAX, "varint")))


def size_of_varlong(n):
    """Encoded size in bytes of ``encode_varlong(n)``; ValueError outside int64."""
    return _unsigned_size(_zigzag64(_check_int(n, INT64_MIN, INT64_MAX, "varlong")))


# ---------------------------------------------------------------- Reader


cdef class Reader:
    """Sequential decoder over a bytes-like object, starting at byte ``pos``.

    Holds a buffer export of ``buf`` (no copy; a bytearray cannot be resized
    while a Reader holds it). ``pos`` is the offset of the next byte to read and
    may be set to any value in ``[0, len(buf)]``.
    """

    cdef Py_buffer _view
    cdef bint _held
    cdef const unsigned char *_p
    cdef Py_ssize_t _len
    cdef Py_ssize_t _pos
    cdef object _obj
    cdef object _mv

    def __cinit__(self, buf, pos=0):
        _get_buffer(buf, &self._view)
        self._held = True
        self._p = <const unsigned char *>self._view.buf
        self._len = self._view.len
        self._obj = buf
        self._pos = 0
        if pos is not 0:  # the default (the cached small int 0) needs no check
            self._seek(pos)

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._view)

    @property
    def pos(self):
        """Offset in bytes of the next byte to read."""
        return self._pos

    @pos.setter
    def pos(self, value):
        self._seek(value)

    cdef int _seek(self, object value) except -1:
        value = _index(value)
        if value < 0 or value > self._len:
            raise ProtocolError(f"position {value} is outside the buffer of {self._len} bytes")
        self._pos = value
        return 0

    def remaining(self):
        """Bytes left after ``pos``."""
        return self._len - self._pos

    cdef inline Py_ssize_t _take(self, Py_ssize_t n, str what) except -1:
        """Advance over ``n`` bytes and return where they start."""
        cdef Py_ssize_t p = self._pos
        if n > self._len - p:
            raise ProtocolError(f"truncated {what} at byte {p}: needs {n} bytes, {self._len - p} remain")
        self._pos = p + n
        return p

    cdef Py_ssize_t _take_n(self, object n, str what) except -1:
        cdef Py_ssize_t k
        try:
            k = n
        except OverflowError:
            n = _index(n)
            if n < 0:
                raise ProtocolError(f"invalid length {n} for {what} at byte {self._pos}") from None
            raise ProtocolError(
                f"truncated {what} at byte {self._pos}: needs {n} bytes, {self._len - self._pos} remain"
            ) from None
        if k < 0:
            raise ProtocolError(f"invalid length {k} for {what} at byte {self._pos}")
        return self._take(k, what)

    cdef inline int16_t _int16(self, str what) except? -1:
        cdef Py_ssize_t p = self._take(2, what)
        return <int16_t>((<uint16_t>self._p[p] << 8) | self._p[p + 1])

    cdef inline int32_t _int32(self, str what) except? -1:
        return <int32_t>_be32(self._p + self._take(4, what))

    cdef inline uint64_t _u32var(self, str what) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t v
        _read32(self._p, self._len, &self._pos, &v, what)
        return v

    def int8(self):
        """Signed 8-bit integer."""
        return <int8_t>self._p[self._take(1, "int8")]

    def int16(self):
        """Signed big-endian 16-bit integer."""
        return self._int16("int16")

    def int32(self):
        """Signed big-endian 32-bit integer."""
        return self._int32("int32")

    def int64(self):
        """Signed big-endian 64-bit integer."""
        return <int64_t>_be64(self._p + self._take(8, "int64"))

    def uint16(self):
        """Unsigned big-endian 16-bit integer."""
        cdef Py_ssize_t p = self._take(2, "uint16")
        return (<uint16_t>self._p[p] << 8) | self._p[p + 1]

    def uint32(self):
        """Unsigned big-endian 32-bit integer."""
        return _be32(self._p + self._take(4, "uint32"))

    def float64(self):
        """Big-endian IEEE 754 double."""
        cdef uint64_t bits = _be64(self._p + self._take(8, "float64"))
        cdef double d
        memcpy(&d, &bits, 8)
        return d

    def boolean(self):
        """One byte; any non-zero value is True (as Kafka reads it)."""
        return self._p[self._take(1, "boolean")] != 0

    def uuid(self):
        """A UUID as its 16 raw bytes."""
        return PyBytes_FromStringAndSize(<const char *>self._p + self._take(16, "uuid"), 16)

    def uvarint(self):
        """Unsigned 32-bit varint."""
        return self._u32var("uvarint")

    def varint(self):
        """Zigzag signed 32-bit varint."""
        return _unzigzag(self._u32var("varint"))

    def varlong(self):
        """Zigzag signed 64-bit varint."""
        cdef uint64_t v
        _read64(self._p, self._len, &self._pos, &v, "varlong")
        return _unzigzag(v)

    cdef object _text(self, Py_ssize_t n, str what):
        cdef Py_ssize_t p = self._take(n, what)
        try:
            return PyUnicode_DecodeUTF8(<const char *>self._p + p, n, NULL)
        except UnicodeDecodeError:
            raise ProtocolError(f"invalid utf-8 in {what} at byte {p}") from None

    cdef object _string(self):
        cdef Py_ssize_t p = self._pos
        cdef int16_t n = self._int16("string length")
        if n < 0:
            if n == -1:
                return None
            raise ProtocolError(f"invalid length {n} for string at byte {p}")
        return self._text(n, "string")

    def string(self):
        """Nullable string: int16 length (-1 = None) then UTF-8 bytes."""
        return self._string()

    def compact_string(self):
        """Nullable compact string: uvarint length + 1 (0 = None) then UTF-8 bytes."""
        cdef uint64_t n = self._u32var("compact_string length")
        if n == 0:
            return None
        return self._text(<Py_ssize_t>(n - 1), "compact_string")

    def bytes_(self):
        """Nullable bytes: int32 length (-1 = None) then the data (copied)."""
        cdef Py_ssize_t p = self._pos
        cdef int32_t n = self._int32("bytes length")
        if n < 0:
            if n == -1:
                return None
            raise ProtocolError(f"invalid length {n} for bytes at byte {p}")
        p = self._take(n, "bytes")
        return PyBytes_FromStringAndSize(<const char *>self._p + p, n)

    def compact_bytes(self):
        """Nullable compact bytes: uvarint length + 1 (0 = None) then the data (copied)."""
        cdef uint64_t n = self._u32var("compact_bytes length")
        cdef Py_ssize_t p
        if n == 0:
            return None
        p = self._take(<Py_ssize_t>(n - 1), "compact_bytes")
        return PyBytes_FromStringAndSize(<const char *>self._p + p, <Py_ssize_t>(n - 1))

    def array_length(self):
        """Array element count: int32, -1 = None (a null array)."""
        cdef Py_ssize_t p = self._pos
        cdef int32_t n = self._int32("array length")
        if n < 0:
            if n == -1:
                return None
            raise ProtocolError(f"invalid length {n} for array at byte {p}")
        return n

    def compact_array_length(self):
        """Compact array element count: uvarint count + 1, 0 = None (a null array)."""
        cdef uint64_t n = self._u32var("compact_array length")
        if n == 0:
            return None
        return n - 1

    cdef object _tagged_fields(self):
        cdef uint64_t count = self._u32var("tagged field count")
        cdef uint64_t i, tag, size
        cdef int64_t previous = -1
        cdef Py_ssize_t at, q
        if count == 0:
            return None
        fields = {}
        for i in range(count):
            at = self._pos
            tag = self._u32var("tag")
            if <int64_t>tag <= previous:
                raise ProtocolError(
                    f"tagged field {tag} at byte {at} does not follow tag {previous}: "
                    "tags must be strictly increasing"
                )
            size = self._u32var("tagged field size")
            q = self._take(<Py_ssize_t>size, "tagged field")
            fields[tag] = PyBytes_FromStringAndSize(<const char *>self._p + q, <Py_ssize_t>size)
            previous = <int64_t>tag
        return fields

    def tagged_fields(self):
        """A tagged-field section (KIP-482): ``{tag: raw data}``, or None when it is empty.

        Every field is returned raw, known or not, so the caller decodes the tags
        it understands and skips the rest. Tags must be strictly increasing.
        """
        return self._tagged_fields()

    def raw(self, n):
        """The next ``n`` bytes, copied."""
        cdef Py_ssize_t p = self._take_n(n, "raw")
        return PyBytes_FromStringAndSize(<const char *>self._p + p, self._pos - p)

    def view(self, n):
        """The next ``n`` bytes as a zero-copy memoryview of the underlying buffer."""
        cdef Py_ssize_t p = self._take_n(n, "view")
        if self._mv is None:
            self._mv = _as_view(self._obj)
        return self._mv[p:self._pos]

    def skip(self, n):
        """Advance over ``n`` bytes."""
        self._take_n(n, "skip")


# ---------------------------------------------------------------- Writer


cdef class Writer:
    """Growable encoder; ``getvalue()`` returns what was written.

    Integer methods raise ValueError for a value outside the type's range and
    TypeError for a non-integer.
    """

    cdef unsigned char *_buf
    cdef Py_ssize_t _len  # bytes used, including the HEAD reserved bytes
    cdef Py_ssize_t _cap

    def __cinit__(self):
        self._cap = 256
        self._buf = <unsigned char *>PyMem_Malloc(self._cap)
        if self._buf == NULL:
            raise MemoryError()
        self._len = HEAD

    def __dealloc__(self):
        PyMem_Free(self._buf)

    cdef inline unsigned char *_room(self, Py_ssize_t n) except NULL:
        """Make room for ``n`` more bytes; return where they go (``_len`` not advanced)."""
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t cap
        cdef unsigned char *grown
        if need > self._cap:
            cap = self._cap * 2
            if cap < need:
                cap = need
            grown = <unsigned char *>PyMem_Realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = cap
        return self._buf + self._len

    cdef inline int _put_bytes(self, const void *data, Py_ssize_t n) except -1:
        memcpy(self._room(n), data, n)
        self._len += n
        return 0

    cdef inline int _put_uvar(self, uint64_t v) except -1:
        self._len += _put_unsigned(self._room(10), v)
        return 0

    cdef inline int _put32(self, uint32_t v) except -1:
        _put_be32(self._room(4), v)
        self._len += 4
        return 0

    cdef int _put_buffer(self, object data) except -1:
        cdef Py_buffer view
        _get_buffer(data, &view)
        try:
            self._put_bytes(view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        return 0

    def __len__(self):
        """Bytes written so far (without any frame prefix)."""
        return self._len - HEAD

    def getvalue(self):
        """Everything written, as bytes."""
        return PyBytes_FromStringAndSize(<char *>self._buf + HEAD, self._len - HEAD)

    def getvalue_framed(self):
        """Everything written, prefixed with its length as a big-endian int32 (a Kafka frame)."""
        cdef Py_ssize_t n = self._len - HEAD
        if n > INT32_MAX:
            raise ValueError(f"frame of {n} bytes does not fit an int32 size")
        _put_be32(self._buf, <uint32_t>n)
        return PyBytes_FromStringAndSize(<char *>self._buf, self._len)

    def int8(self, n):
        """Signed 8-bit integer."""
        cdef int64_t v = _check_int(n, INT8_MIN, INT8_MAX, "int8")
        self._room(1)[0] = <unsigned char>v
        self._len += 1

    def int16(self, n):
        """Signed big-endian 16-bit integer."""
        cdef int64_t v = _check_int(n, INT16_MIN, INT16_MAX, "int16")
        _put_be16(self._room(2), <uint16_t>v)
        self._len += 2

    def int32(self, n):
        """Signed big-endian 32-bit integer."""
        self._put32(<uint32_t>_check_int(n, INT32_MIN, INT32_MAX, "int32"))

    def int64(self, n):
        """Signed big-endian 64-bit integer."""
        cdef int64_t v = _check_int(n, INT64_MIN, INT64_MAX, "int64")
        _put_be64(self._room(8), <uint64_t>v)
        self._len += 8

    def uint16(self, n):
        """Unsigned big-endian 16-bit integer."""
        cdef int64_t v = _check_int(n, 0, UINT16_MAX, "uint16")
        _put_be16(self._room(2), <uint16_t>v)
        self._len += 2

    def uint32(self, n):
        """Unsigned big-endian 32-bit integer."""
        self._put32(<uint32_t>_check_int(n, 0, UINT32_MAX, "uint32"))

    def float64(self, x):
        """Big-endian IEEE 754 double."""
        cdef double d
        cdef uint64_t bits
        if isinstance(x, (str, bytes, bytearray)):
            raise TypeError(f"float64 needs a number, not {type(x).__name__}")
        d = float(x)
        memcpy(&bits, &d, 8)
        _put_be64(self._room(8), bits)
        self._len += 8

    def boolean(self, v):
        """One byte: 1 if ``v`` is true, else 0."""
        self._room(1)[0] = 1 if v else 0
        self._len += 1

    def uuid(self, u):
        """A UUID given as 16 raw bytes (any bytes-like)."""
        cdef Py_buffer view
        _get_buffer(u, &view)
        try:
            if view.len != 16:
                raise ValueError(f"uuid must be 16 bytes, got {view.len}")
            self._put_bytes(view.buf, 16)
        finally:
            PyBuffer_Release(&view)

    def uvarint(self, n):
        """Unsigned 32-bit varint."""
        self._put_uvar(<uint64_t>_check_int(n, 0, UINT32_MAX, "uvarint"))

    def varint(self, n):
        """Zigzag signed 32-bit varint."""
        self._put_uvar(_zigzag32(_check_int(n, INT32_MIN, INT32_MAX, "varint")))

    def varlong(self, n):
        """Zigzag signed 64-bit varint."""
        self._put_uvar(_zigzag64(_check_int(n, INT64_MIN, INT64_MAX, "varlong")))

    cdef int _string(self, object s) except -1:
        cdef Py_ssize_t n
        cdef const char *data
        if s is None:
            _put_be16(self._room(2), 0xFFFF)
            self._len += 2
            return 0
        data = _utf8(s, &n, "string")
        if n > INT16_MAX:
            raise ValueError(f"string of {n} UTF-8 bytes is longer than {INT16_MAX}")
        _put_be16(self._room(2 + n), <uint16_t>n)
        self._len += 2
        self._put_bytes(data, n)
        return 0

    def string(self, s):
        """Nullable string: int16 length (-1 for None) then UTF-8."""
        self._string(s)

    def compact_string(self, s):
        """Nullable compact string: uvarint length + 1 (0 for None) then UTF-8."""
        cdef Py_ssize_t n
        cdef const char *data
        if s is None:
            self._put_uvar(0)
            return
        data = _utf8(s, &n, "compact_string")
        self._put_uvar(<uint64_t>_check_int(n + 1, 0, UINT32_MAX, "compact_string length + 1"))
        self._put_bytes(data, n)

    def bytes_(self, b):
        """Nullable bytes (any bytes-like): int32 length (-1 for None) then the data."""
        cdef Py_buffer view
        if b is None:
            self._put32(0xFFFFFFFF)
            return
        _get_buffer(b, &view)
        try:
            self._put32(<uint32_t>_check_int(view.len, INT32_MIN, INT32_MAX, "bytes length"))
            self._put_bytes(view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def compact_bytes(self, b):
        """Nullable compact bytes: uvarint length + 1 (0 for None) then the data."""
        cdef Py_buffer view
        if b is None:
            self._put_uvar(0)
            return
        _get_buffer(b, &view)
        try:
            self._put_uvar(<uint64_t>_check_int(view.len + 1, 0, UINT32_MAX, "compact_bytes length + 1"))
            self._put_bytes(view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def array_length(self, n):
        """Array element count as int32 (-1 for None, a null array)."""
        if n is None:
            self._put32(0xFFFFFFFF)
            return
        self._put32(<uint32_t>_check_int(n, 0, INT32_MAX, "array length"))

    def compact_array_length(self, n):
        """Compact array element count: uvarint count + 1 (0 for None)."""
        if n is None:
            self._put_uvar(0)
            return
        self._put_uvar(<uint64_t>_check_int(n, 0, UINT32_MAX - 1, "compact_array length") + 1)

    cdef int _tagged_fields(self, object fields) except -1:
        cdef Py_buffer view
        cdef int64_t tag
        if not fields:
            self._put_uvar(0)
            return 0
        tags = sorted([_check_int(t, 0, UINT32_MAX, "tag") for t in fields])
        self._put_uvar(<uint64_t>_check_int(len(tags), 0, UINT32_MAX, "tagged field count"))
        for t in tags:
            tag = t
            _get_buffer(fields[t], &view)
            try:
                self._put_uvar(<uint64_t>tag)
                self._put_uvar(<uint64_t>_check_int(view.len, 0, UINT32_MAX, "tagged field size"))
                self._put_bytes(view.buf, view.len)
            finally:
                PyBuffer_Release(&view)
        return 0

    def tagged_fields(self, fields):
        """A tagged-field section; tags are written in increasing order. None or {} = empty."""
        self._tagged_fields(fields)

    def raw(self, data):
        """Append the bytes of any bytes-like object unchanged."""
        self._put_buffer(data)


cdef const char *_utf8(object s, Py_ssize_t *n, str what) except NULL:
    # The UTF-8 form is cached inside the str object: no temporary bytes object.
    if not isinstance(s, str):
        raise TypeError(f"{what} must be str or None, not {type(s).__name__}")
    return PyUnicode_AsUTF8AndSize(s, n)


# ---------------------------------------------------------------- framing

# A splitter's buffer above this size is freed when it empties, so idle
# connections do not each hold on to the largest frame they ever saw.
cdef enum:
    KEEP_CAPACITY = 65536


cdef class FrameSplitter:
    """Cuts a TCP byte stream into Kafka frames (big-endian int32 size, then payload).

    ``feed`` accepts chunks of any size and returns the payloads completed by that
    chunk (without the size prefix), keeping any partial frame for the next call.
    A size below 0 or above ``max_frame_size`` bytes raises ProtocolError; the
    splitter then refuses further input because the stream cannot be resynchronised
    (the connection must be closed).
    """

    cdef unsigned char *_buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef int64_t _max
    cdef int64_t _consumed  # stream offset of _buf[0], for error messages
    cdef object _failed

    def __cinit__(self, max_frame_size):
        self._max = _check_int(max_frame_size, 0, INT32_MAX, "max_frame_size")
        self._buf = NULL
        self._len = 0
        self._cap = 0
        self._consumed = 0
        self._failed = None

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def buffered(self):
        """Bytes held for a frame not yet complete."""
        return self._len

    cdef int _keep(self, const unsigned char *data, Py_ssize_t n) except -1:
        """Append ``n`` bytes to the pending buffer."""
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t cap
        cdef unsigned char *grown
        if n == 0:
            return 0
        if need > self._cap:
            cap = self._cap * 2
            if cap < need:
                cap = need
            if cap < 256:
                cap = 256
            grown = <unsigned char *>PyMem_Realloc(self._buf, cap)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = cap
        memcpy(self._buf + self._len, data, n)
        self._len = need
        return 0

    def feed(self, data):
        """Add ``data`` (any bytes-like) to the stream; return the frames it completed."""
        cdef Py_buffer view
        cdef const unsigned char *src
        cdef Py_ssize_t end, off = 0
        cdef int32_t size
        cdef bint in_place
        if self._failed is not None:
            raise ProtocolError(f"frame splitter is unusable after an earlier error: {self._failed}")
        _get_buffer(data, &view)
        frames = []
        try:
            in_place = self._len == 0
            if in_place:
                # Nothing pending: parse the chunk where it is and keep only its tail.
                src = <const unsigned char *>view.buf
                end = view.len
            else:
                self._keep(<const unsigned char *>view.buf, view.len)
                src = self._buf
                end = self._len
            while end - off >= 4:
                size = <int32_t>_be32(src + off)
                if size < 0 or size > self._max:
                    reason = "is negative" if size < 0 else f"exceeds max_frame_size {self._max}"
                    self._failed = f"frame size {size} at stream byte {self._consumed + off} {reason}"
                    self._len = 0
                    raise ProtocolError(self._failed)
                if end - off - 4 < size:
                    break
                frames.append(PyBytes_FromStringAndSize(<const char *>src + off + 4, size))
                off += 4 + size
            self._consumed += off
            if in_place:
                self._keep(src + off, end - off)
            elif off:
                memmove(self._buf, self._buf + off, self._len - off)
                self._len -= off
            if self._len == 0 and self._cap > KEEP_CAPACITY:
                PyMem_Free(self._buf)
                self._buf = NULL
                self._cap = 0
        finally:
            PyBuffer_Release(&view)
        return frames


# ---------------------------------------------------------------- headers


def parse_request_header(frame, flexible_from):
    """Decode a request header; return (api_key, api_version, correlation_id, client_id, body_offset).

    Header v1: api_key int16, api_version int16, correlation_id int32, client_id
    nullable string (int16 length). Header v2, used when ``api_version >=
    flexible_from.get(api_key)``, adds a tagged-field section after client_id,
    which is skipped (client_id stays a non-compact string). ``body_offset`` is
    the byte offset in ``frame`` where the request body starts.
    """
    cdef Reader r = Reader(frame)
    cdef int16_t api_key = r._int16("int16")
    cdef int16_t api_version = r._int16("int16")
    cdef int32_t correlation_id = r._int32("int32")
    client_id = r._string()
    if api_version >= flexible_from.get(api_key, _NEVER):
        r._tagged_fields()
    return api_key, api_version, correlation_id, client_id, r._pos


def encode_response_header(correlation_id, flexible):
    """Response header v0 (correlation_id int32) or, if ``flexible``, v1 (+ empty tagged fields)."""
    cdef unsigned char tmp[5]
    _put_be32(tmp, <uint32_t>_check_int(correlation_id, INT32_MIN, INT32_MAX, "correlation_id"))
    tmp[4] = 0
    return PyBytes_FromStringAndSize(<char *>tmp, 5 if flexible else 4)
