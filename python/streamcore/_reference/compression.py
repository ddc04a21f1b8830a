"""Record-batch compression codecs for the reference twin, with a decompression cap.

Codec ids are Kafka's (attributes bits 0-2): 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.

What is written (readable by the Java client, librdkafka and kafka-python):

* gzip: one gzip member (zlib), level 6 unless given (0-9);
* snappy: xerial framing as Java writes it: ``\\x82SNAPPY\\x00``, big-endian i32
  version 1 and compatible-version 1, then each 32 KiB slice of the input as a
  big-endian i32 length followed by a raw snappy block;
* lz4: one LZ4 frame, independent 64 KiB blocks (Java refuses dependent blocks),
  block checksums, no content checksum, level 0 unless given;
* zstd: one standard zstd frame, level 3 unless given.

What is accepted when reading (native and reference must agree on every rule):

* the compressed region must not be empty;
* gzip: one or more concatenated gzip members, each complete and with a good
  CRC-32/ISIZE trailer; any other trailing byte is corrupt;
* snappy: if the region is at least 16 bytes long and starts with the 8-byte
  xerial magic, xerial blocks follow (version fields are ignored because some
  brokers write them little-endian); each block length must be 0 <= n <= bytes
  left, and each block a complete raw snappy block. Otherwise the whole region is
  one raw snappy block (what xerial's reader does with headerless input);
* lz4: one or more concatenated LZ4 frames (linked or independent blocks),
  header, block and content checksums verified when the frame declares them;
* zstd: one or more concatenated zstd frames.

Output larger than ``max_bytes`` raises CorruptRecordError, and no buffer larger
than ``max_bytes + 1`` bytes is ever allocated: gzip streams with zlib's
``max_length``; snappy checks each block's declared length before decompressing
it; lz4 and zstd decompress into a bounded buffer that grows geometrically up to
the cap (an early frame-content-size above the cap fails at once).
"""

from __future__ import annotations

import struct
import zlib

import cramjam

from streamcore.errors import CorruptRecordError

__all__ = [
    "CODEC_NAMES",
    "CODEC_IDS",
    "codec_id",
    "compress",
    "decompress",
]

CODEC_NAMES: tuple[str, ...] = ("none", "gzip", "snappy", "lz4", "zstd")
CODEC_IDS: dict[str, int] = {name: i for i, name in enumerate(CODEC_NAMES)}

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024
_BE_I32 = struct.Struct(">i")

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DEFAULT_LEVELS = {1: 6, 3: 0, 4: 3}
# First guess at the size of an lz4/zstd output that does not declare it, as a
# multiple of the compressed size; the buffer then grows 4x up to the cap.
_FIRST_GUESS_RATIO = 4
_FIRST_GUESS_MIN = 64 * 1024


def codec_id(compression: object) -> int:
    """Map ``"none"|"gzip"|"snappy"|"lz4"|"zstd"`` or ``0..4`` to Kafka's codec id."""
    if isinstance(compression, str):
        try:
            return CODEC_IDS[compression]
        except KeyError:
            raise ValueError(f"unknown compression {compression!r}: expected one of {CODEC_NAMES}") from None
    if isinstance(compression, int) and not isinstance(compression, bool):
        if 0 <= compression <= 4:
            return compression
        raise ValueError(f"unknown compression id {compression}: expected 0..4")
    raise TypeError(f"compression must be a str or int, not {type(compression).__name__}")


def compress(codec: int, data: bytes | bytearray | memoryview, level: int | None = None) -> bytes:
    """Compress ``data`` (the records region) with Kafka codec id ``codec`` (1..4)."""
    if level is None:
        level = _DEFAULT_LEVELS.get(codec, 0)  # snappy has no level; unknown ids fail below
    elif not isinstance(level, int) or isinstance(level, bool):
        raise TypeError(f"compression_level must be an int, not {type(level).__name__}")
    if codec == 1:
        if not 0 <= level <= 9:
            raise ValueError(f"gzip compression_level {level} out of range 0..9")
        # zlib with wbits=31 writes the gzip container (mtime 0, no file name), so
        # the output depends only on the input and the level.
        c = zlib.compressobj(level, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if codec == 2:
        return _xerial_snappy(data)
    if codec == 3:
        lz4 = cramjam.lz4.Compressor(level=level, content_checksum=False, block_linked=False)
        lz4.compress(data if type(data) is bytes else bytes(data))  # it refuses memoryviews
        return bytes(lz4.finish())
    if codec == 4:
        return bytes(cramjam.zstd.compress(data, level=level))
    raise ValueError(f"unknown compression id {codec}")


def _xerial_snappy(data: bytes | bytearray | memoryview) -> bytes:
    view = memoryview(data)
    parts = [_XERIAL_HEADER]
    append = parts.append
    pack = _BE_I32.pack
    raw = cramjam.snappy.compress_raw
    for i in range(0, len(view), _XERIAL_BLOCK):
        block = bytes(raw(view[i : i + _XERIAL_BLOCK]))
        append(pack(len(block)))
        append(block)
    return b"".join(parts)


def decompress(codec: int, data: bytes | memoryview, max_bytes: int, at: int) -> bytes:
    """Decompress a records region of codec ``codec`` to at most ``max_bytes`` bytes.

    ``at`` is the byte offset of the region in the caller's input, for messages.
    Raises CorruptRecordError on any malformed input or on output over the cap.
    """
    if len(data) == 0:
        raise CorruptRecordError(f"empty {CODEC_NAMES[codec]} records region at byte {at}")
    if codec == 1:
        return _gunzip(data, max_bytes, at)
    if codec == 2:
        return _unsnappy(data, max_bytes, at)
    if codec == 3:
        return _bounded_into(cramjam.lz4.decompress_into, "lz4", data, max_bytes, at, None)
    if codec == 4:
        return _bounded_into(
            cramjam.zstd.decompress_into, "zstd", data, max_bytes, at, _zstd_content_size(data)
        )
    raise CorruptRecordError(f"unknown compression codec {codec} at byte {at}")


def _over_cap(name: str, max_bytes: int, at: int) -> CorruptRecordError:
    return CorruptRecordError(
        f"{name} records region at byte {at} decompresses to more than max_decompressed_bytes={max_bytes}"
    )


def _gunzip(data: bytes | memoryview, max_bytes: int, at: int) -> bytes:
    out: list[bytes] = []
    produced = 0
    rest: bytes | memoryview = data
    while True:
        d = zlib.decompressobj(31)
        try:
            # max_length bounds the allocation: one byte over the cap is enough to know.
            chunk = d.decompress(rest, max_bytes - produced + 1)
        except zlib.error as exc:
            raise CorruptRecordError(f"bad gzip data in records region at byte {at}: {exc}") from None
        produced += len(chunk)
        if produced > max_bytes or d.unconsumed_tail:
            raise _over_cap("gzip", max_bytes, at)
        if not d.eof:
            raise CorruptRecordError(f"truncated gzip data in records region at byte {at}")
        out.append(chunk)
        if not d.unused_data:
            break
        rest = d.unused_data
    return out[0] if len(out) == 1 else b"".join(out)


def _unsnappy(data: bytes | memoryview, max_bytes: int, at: int) -> bytes:
    view = memoryview(data)
    n = len(view)
    if n < 16 or view[:8] != _XERIAL_MAGIC:
        return _snappy_block(view, max_bytes, at)
    out: list[bytes] = []
    produced = 0
    pos = 16
    unpack_from = _BE_I32.unpack_from
    while pos < n:
        if n - pos < 4:
            raise CorruptRecordError(
                f"snappy xerial block length truncated at byte {at + pos} of records region"
            )
        (size,) = unpack_from(view, pos)
        pos += 4
        if size < 0 or size > n - pos:
            raise CorruptRecordError(
                f"snappy xerial block length {size} at byte {at + pos - 4} runs past end"
            )
        block = _snappy_block(view[pos : pos + size], max_bytes - produced, at + pos)
        produced += len(block)
        out.append(block)
        pos += size
    return b"".join(out)


def _snappy_block(block: memoryview, max_bytes: int, at: int) -> bytes:
    try:
        # The raw block starts with its uncompressed length: check it before allocating.
        size = cramjam.snappy.decompress_raw_len(block)
    except Exception as exc:  # cramjam raises its own error types
        raise CorruptRecordError(f"bad snappy block at byte {at}: {exc}") from None
    if size > max_bytes:
        raise _over_cap("snappy", max_bytes, at)
    try:
        out = bytes(cramjam.snappy.decompress_raw(block))
    except Exception as exc:
        raise CorruptRecordError(f"bad snappy block at byte {at}: {exc}") from None
    if len(out) != size:
        raise CorruptRecordError(f"snappy block at byte {at} decompressed to a wrong length")
    return out


def _zstd_content_size(data: bytes | memoryview) -> int | None:
    """Frame_Content_Size of the first zstd frame, or None when not declared."""
    if len(data) < 6 or bytes(data[:4]) != _ZSTD_MAGIC:
        return None
    desc = data[4]
    fcs_flag = desc >> 6
    single_segment = (desc >> 5) & 1
    size = (0, 2, 4, 8)[fcs_flag] or single_segment
    if size == 0:
        return None
    start = 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[desc & 3]
    if len(data) < start + size:
        return None
    value = int.from_bytes(bytes(data[start : start + size]), "little")
    return value + 256 if size == 2 else value


def _bounded_into(
    decompress_into: object,
    name: str,
    data: bytes | memoryview,
    max_bytes: int,
    at: int,
    hint: int | None,
) -> bytes:
    limit = max_bytes + 1
    if hint is not None and hint > max_bytes:
        raise _over_cap(name, max_bytes, at)
    size = hint + 1 if hint is not None else max(_FIRST_GUESS_MIN, _FIRST_GUESS_RATIO * len(data))
    size = min(size, limit)
    while True:
        buf = bytearray(size)
        try:
            n = decompress_into(data, buf)  # type: ignore[operator]
        except Exception as exc:  # cramjam.DecompressionError and friends
            # cramjam reports a full output buffer as an I/O "failed to write whole
            # buffer": retry bigger until the cap, anything else is bad input.
            if "failed to write whole buffer" not in str(exc):
                raise CorruptRecordError(f"bad {name} data in records region at byte {at}: {exc}") from None
            if size >= limit:
                raise _over_cap(name, max_bytes, at) from None
            size = min(size * 4, limit)
            continue
        if n > max_bytes:
            raise _over_cap(name, max_bytes, at)
        del buf[n:]
        return bytes(buf)
