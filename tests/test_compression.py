"""Record-batch compression: framings written, framings accepted, and the decompression cap.

The accepted/rejected framings are the rules listed in
``streamcore._reference.compression``; both implementations must follow them.
"""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import cramjam
import crc32c
import lz4.frame
import pytest
import zstandard

from streamcore import codec
from streamcore.errors import CorruptRecordError

HEADER = struct.Struct(">qiibIhiqqqhii")
CODEC_ID = {name: i for i, name in enumerate(codec.COMPRESSION_TYPES)}
COMPRESSED = codec.COMPRESSION_TYPES[1:]
MiB = 1 << 20


def _native_record_batch():
    try:
        from streamcore import _native
    except ImportError as exc:
        pytest.skip(f"streamcore._native is not built: {exc}")
    if not hasattr(_native, "record_batch"):
        pytest.fail("streamcore._native is built but has no record_batch submodule")
    return _native.record_batch


@pytest.fixture(params=["selected", "reference", "native"])
def impl(request):
    """A record_batch implementation: the selected one, the reference, the native."""
    if request.param == "selected":
        return codec
    if request.param == "reference":
        from streamcore._reference import record_batch

        return record_batch
    return _native_record_batch()


def plain_batch(n: int = 50, size: int = 200) -> bytes:
    values = [(b"%05d-" % i) * (size // 6) for i in range(n)]
    return codec.encode_batch(values, [b"k%d" % i for i in range(n)], None, [1000 + i for i in range(n)])


def with_region(plain: bytes, region: bytes, compression: str) -> bytes:
    """``plain``'s header (count, timestamps...) around another records region."""
    h = list(HEADER.unpack_from(plain))
    h[1] = 49 + len(region)
    h[5] = (h[5] & ~7) | CODEC_ID[compression]
    out = bytearray(HEADER.pack(*h)) + region
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


def region_of(plain: bytes) -> bytes:
    return plain[61:]


def values_of(batch) -> list:
    return [(r.offset, r.key, r.value) for r in batch]


XERIAL_MAGIC = b"\x82SNAPPY\x00"


def xerial(data: bytes, block: int = 32 * 1024, version_fmt: str = ">ii") -> bytes:
    out = XERIAL_MAGIC + struct.pack(version_fmt, 1, 1)
    for i in range(0, len(data), block):
        raw = bytes(cramjam.snappy.compress_raw(data[i : i + block]))
        out += struct.pack(">i", len(raw)) + raw
    return out


def gzip_member(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


# ------------------------------------------------------------------ what we write


@pytest.mark.parametrize("compression", COMPRESSED)
@pytest.mark.parametrize("size", [1, 100, 40_000, 300_000])
def test_compressed_round_trip(impl, compression, size):
    values = [bytes([i % 251]) * size for i in range(4)] + [None]
    data = impl.encode_batch(
        values, [None, b"a", b"", b"b", b"c"], None, [1, 2, 3, 4, 5], compression=compression
    )
    b = impl.decode_batch(data)
    assert b.compression == compression
    assert [r.value for r in b] == values
    assert tuple(impl.validate_batch(data))[-1] == 5


def test_gzip_output_is_a_gzip_member(impl):
    data = impl.encode_batch([b"x" * 1000], timestamps_ms=[1], compression="gzip")
    region = data[61:]
    assert region[:3] == b"\x1f\x8b\x08"
    plain = impl.encode_batch([b"x" * 1000], timestamps_ms=[1])
    assert zlib.decompress(region, 31) == plain[61:]


def test_snappy_output_uses_java_xerial_framing_with_32k_blocks(impl):
    values = [bytes(range(256)) * 400]  # 100 KiB: four xerial blocks
    data = impl.encode_batch(values, timestamps_ms=[1], compression="snappy")
    region = data[61:]
    assert region[:16] == XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    pos, out = 16, b""
    while pos < len(region):
        (size,) = struct.unpack_from(">i", region, pos)
        block = bytes(cramjam.snappy.decompress_raw(region[pos + 4 : pos + 4 + size]))
        assert len(block) <= 32 * 1024
        out += block
        pos += 4 + size
    assert out == impl.encode_batch(values, timestamps_ms=[1])[61:]


def test_lz4_output_is_a_frame_with_independent_blocks(impl):
    data = impl.encode_batch([b"abc" * 50_000], timestamps_ms=[1], compression="lz4")
    region = data[61:]
    assert region[:4] == b"\x04\x22\x4d\x18"
    info = lz4.frame.get_frame_info(region)
    assert info["block_linked"] is False  # the Java client refuses dependent blocks
    assert lz4.frame.decompress(region) == impl.encode_batch([b"abc" * 50_000], timestamps_ms=[1])[61:]


def test_zstd_output_is_a_zstd_frame(impl):
    data = impl.encode_batch([b"abc" * 1000], timestamps_ms=[1], compression="zstd")
    region = data[61:]
    assert region[:4] == b"\x28\xb5\x2f\xfd"
    plain = impl.encode_batch([b"abc" * 1000], timestamps_ms=[1])
    assert zstandard.ZstdDecompressor().decompressobj().decompress(region) == plain[61:]


@pytest.mark.parametrize(
    "compression,level", [("gzip", 1), ("gzip", 9), ("zstd", 1), ("zstd", 19), ("lz4", 9)]
)
def test_compression_level_is_honoured_and_decodes(impl, compression, level):
    values = [bytes(range(256)) * 100]
    data = impl.encode_batch(values, timestamps_ms=[1], compression=compression, compression_level=level)
    assert [r.value for r in impl.decode_batch(data)] == values


# ------------------------------------------------------------------ what we accept


def test_gzip_concatenated_members_are_accepted(impl):
    plain = plain_batch()
    region = region_of(plain)
    data = with_region(plain, gzip_member(region[:100]) + gzip_member(region[100:]), "gzip")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda g: g + b"\x00",
        lambda g: g + b"garbage",
        lambda g: g[:-1],
        lambda g: g[:-8] + struct.pack("<I", zlib.crc32(b"wrong")) + g[-4:],
        lambda g: g[:-4] + struct.pack("<I", 12345),
        lambda g: g[10:],
    ],
    ids=["trailing-zero", "trailing-garbage", "truncated", "bad-crc32", "bad-isize", "no-header"],
)
def test_gzip_malformed_members_are_rejected(impl, mangle):
    plain = plain_batch()
    data = with_region(plain, mangle(gzip_member(region_of(plain))), "gzip")
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)


def _gzip_copying_from_before_the_start() -> bytes:
    """A gzip member whose deflate data copies bytes from before the start of the output.

    zlib (Python's, and Java's Inflater) rejects it ("invalid distance too far
    back"); a decoder that reads its zero-filled window instead would produce a
    valid one-record region, 0c 00 00 00 01 01 00, with a matching CRC-32.
    """
    bits: list[int] = []

    def huffman(code: int, width: int) -> None:  # Huffman codes are written MSB first
        bits.extend((code >> (width - 1 - i)) & 1 for i in range(width))

    bits.extend([1, 1, 0])  # BFINAL=1, BTYPE=01 (fixed Huffman), LSB first
    huffman(0x30 + 0x0C, 8)  # literal 0x0c (record length 6)
    huffman(0b0000001, 7)  # length code 257: copy 3 bytes ...
    huffman(0b00011, 5)  # ... from 4 bytes back, i.e. before the first byte
    for literal in (1, 1, 0):
        huffman(0x30 + literal, 8)
    huffman(0, 7)  # end of block
    bits.extend([0] * (-len(bits) % 8))
    deflate = bytes(sum(b << i for i, b in enumerate(bits[j : j + 8])) for j in range(0, len(bits), 8))
    out = b"\x0c\x00\x00\x00\x01\x01\x00"
    return (
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + deflate + struct.pack("<II", zlib.crc32(out), len(out))
    )


def test_gzip_copy_from_before_the_start_of_output_is_rejected(impl):
    member = _gzip_copying_from_before_the_start()
    with pytest.raises(zlib.error):
        zlib.decompress(member, 31)
    data = with_region(plain_batch(1), member, "gzip")
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.validate_batch(data)


def test_snappy_raw_block_without_xerial_header_is_accepted(impl):
    plain = plain_batch()
    data = with_region(plain, bytes(cramjam.snappy.compress_raw(region_of(plain))), "snappy")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


def test_snappy_xerial_with_little_endian_version_fields_is_accepted(impl):
    plain = plain_batch()
    data = with_region(plain, xerial(region_of(plain), version_fmt="<ii"), "snappy")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


def test_snappy_xerial_with_other_block_sizes_is_accepted(impl):
    plain = plain_batch(200)
    data = with_region(plain, xerial(region_of(plain), block=1000), "snappy")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda x: x[:16] + struct.pack(">i", -1) + x[20:],
        lambda x: x[:16] + struct.pack(">i", len(x)) + x[20:],
        lambda x: x + b"\x00\x00",
        lambda x: x[:-1],
        lambda x: x[:20] + b"\xff" * 8 + x[28:],
    ],
    ids=["negative-block-length", "block-length-past-end", "partial-length", "truncated-block", "bad-block"],
)
def test_snappy_malformed_xerial_is_rejected(impl, mangle):
    plain = plain_batch()
    data = with_region(plain, mangle(xerial(region_of(plain))), "snappy")
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)


def test_snappy_xerial_header_without_blocks_is_an_empty_region(impl):
    plain = codec.decode_batch(plain_batch(1))
    empty = bytearray(
        HEADER.pack(0, 49 + 16, -1, 2, 0, 2, 0, 1, 1, -1, -1, -1, 0) + XERIAL_MAGIC + struct.pack(">ii", 1, 1)
    )
    struct.pack_into(">I", empty, 17, crc32c.crc32c(bytes(empty[21:])))
    assert len(impl.decode_batch(bytes(empty))) == 0
    assert plain.record_count == 1


@pytest.mark.parametrize(
    "frame_args",
    [
        {"block_linked": True},
        {"content_checksum": True},
        {"store_size": True},
        {"block_size": lz4.frame.BLOCKSIZE_MAX4MB},
        {"block_checksum": False},
    ],
    ids=["linked-blocks", "content-checksum", "content-size", "4mb-blocks", "no-block-checksum"],
)
def test_lz4_frame_variants_are_accepted(impl, frame_args):
    plain = plain_batch(300)
    data = with_region(plain, lz4.frame.compress(region_of(plain), **frame_args), "lz4")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


def test_lz4_concatenated_frames_are_accepted(impl):
    plain = plain_batch()
    region = region_of(plain)
    data = with_region(plain, lz4.frame.compress(region[:500]) + lz4.frame.compress(region[500:]), "lz4")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f + b"\x01\x02\x03",
        lambda f: f[:-1],
        lambda f: f[:-4] + bytes(4),  # content checksum wrong
        lambda f: f[:6] + bytes([f[6] ^ 0xFF]) + f[7:],  # header checksum wrong
    ],
    ids=["trailing-garbage", "truncated", "bad-content-checksum", "bad-header-checksum"],
)
def test_lz4_malformed_frames_are_rejected(impl, mangle):
    plain = plain_batch()
    frame = lz4.frame.compress(region_of(plain), content_checksum=True)
    data = with_region(plain, mangle(frame), "lz4")
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)


@pytest.mark.parametrize("content_size", [True, False], ids=["with-content-size", "streamed"])
def test_zstd_frames_with_and_without_content_size_are_accepted(impl, content_size):
    plain = plain_batch(300)
    region = zstandard.ZstdCompressor(write_content_size=content_size).compress(region_of(plain))
    data = with_region(plain, region, "zstd")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


def test_zstd_concatenated_frames_are_accepted(impl):
    plain = plain_batch()
    region = region_of(plain)
    z = zstandard.ZstdCompressor()
    data = with_region(plain, z.compress(region[:300]) + z.compress(region[300:]), "zstd")
    assert values_of(impl.decode_batch(data)) == values_of(impl.decode_batch(plain))


@pytest.mark.parametrize(
    "mangle", [lambda f: f + b"\x01\x02\x03", lambda f: f[:-1]], ids=["trailing-garbage", "truncated"]
)
def test_zstd_malformed_frames_are_rejected(impl, mangle):
    plain = plain_batch()
    data = with_region(plain, mangle(zstandard.ZstdCompressor().compress(region_of(plain))), "zstd")
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)


@pytest.mark.parametrize("compression", COMPRESSED)
def test_empty_compressed_region_is_rejected(impl, compression):
    data = with_region(plain_batch(1), b"", compression)
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data)


# ------------------------------------------------------------------ the cap


@pytest.mark.parametrize("compression", COMPRESSED)
def test_cap_is_inclusive_of_the_exact_decompressed_size(impl, compression):
    plain = plain_batch(100)
    size = len(region_of(plain))
    data = impl.encode_batch(
        [r.value for r in codec.decode_batch(plain)],
        [r.key for r in codec.decode_batch(plain)],
        None,
        [1000 + i for i in range(100)],
        compression=compression,
    )
    assert len(impl.decode_batch(data, max_decompressed_bytes=size)) == 100
    impl.validate_batch(data, max_decompressed_bytes=size)
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batch(data, max_decompressed_bytes=size - 1)
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.validate_batch(data, max_decompressed_bytes=size - 1)
    with pytest.raises(CorruptRecordError, match="byte"):
        impl.decode_batches(data, max_decompressed_bytes=size - 1)


def test_cap_does_not_apply_to_uncompressed_batches(impl):
    plain = plain_batch(100)
    assert len(impl.decode_batch(plain, max_decompressed_bytes=10)) == 100


def _gzip_bomb(total: int) -> bytes:
    """A valid gzip member of ``total`` zero bytes, built without compressing them all.

    After a full flush deflate starts afresh, so one compressed MiB of zeros can be
    repeated; the trailer carries the real CRC-32 and length.
    """
    chunk = bytes(MiB)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(total // MiB):
        crc = zlib.crc32(chunk, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + piece * (total // MiB) + c.flush() + struct.pack("<II", crc, total & 0xFFFFFFFF)


def _snappy_bomb() -> bytes:
    # 64 MiB of zeros as xerial blocks (snappy's ratio caps out near 21:1, so a
    # 1 GiB bomb would be 50 MB); plus _SNAPPY_RAW_BOMB below declares 1 GiB.
    block = bytes(cramjam.snappy.compress_raw(bytes(32 * 1024)))
    return XERIAL_MAGIC + struct.pack(">ii", 1, 1) + (struct.pack(">i", len(block)) + block) * 2048


def _lz4_bomb() -> bytes:
    c = cramjam.lz4.Compressor(level=None, content_checksum=False, block_linked=False)
    zeros = bytes(MiB)
    for _ in range(1024):
        c.compress(zeros)
    return bytes(c.finish())


def _zstd_bomb(content_size: bool) -> bytes:
    z = zstandard.ZstdCompressor(level=3, write_content_size=content_size)
    if content_size:
        return z.compress(bytes(1 << 30))
    co = z.compressobj()
    zeros = bytes(MiB)
    return b"".join(co.compress(zeros) for _ in range(1024)) + co.flush()


# 1 GiB of zeros in every codec but snappy (see _snappy_bomb), built once per session.
BOMBS = {
    "gzip": lambda: _gzip_bomb(1 << 30),
    "snappy-xerial-64MiB": _snappy_bomb,
    "snappy-raw-declares-1GiB": lambda: b"\x80\x80\x80\x80\x04" + b"\x00" * 100,
    "lz4": _lz4_bomb,
    "zstd-with-content-size": lambda: _zstd_bomb(True),
    "zstd-streamed": lambda: _zstd_bomb(False),
}
_bomb_cache: dict[str, bytes] = {}


def bomb_batch(name: str) -> bytes:
    if name not in _bomb_cache:
        compression = name.split("-")[0]
        _bomb_cache[name] = with_region(plain_batch(1), BOMBS[name](), compression)
    return _bomb_cache[name]


def test_gzip_bomb_helper_builds_a_valid_stream():
    member = _gzip_bomb(4 * MiB)
    assert zlib.decompress(member, 31) == bytes(4 * MiB)


@pytest.mark.parametrize("name", list(BOMBS))
def test_compression_bomb_raises_without_allocating_past_the_cap(impl, name):
    data = bomb_batch(name)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptRecordError, match="byte"):
            impl.decode_batch(data, max_decompressed_bytes=MiB)
        with pytest.raises(CorruptRecordError, match="byte"):
            impl.validate_batch(data, max_decompressed_bytes=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Python-level allocations (the reference's buffers) stay near the cap.
    assert peak < 4 * MiB


@pytest.mark.parametrize("name", ["gzip", "lz4", "zstd-streamed"])
def test_compression_bomb_raises_under_the_default_cap(impl, name):
    with pytest.raises(CorruptRecordError, match="max_decompressed_bytes|byte"):
        impl.decode_batch(bomb_batch(name))
