"""Record batch v2 codec: encode, decode, decode_batches, validate, and malformed input.

Tests use ``streamcore.codec`` (the implementation ``streamcore._impl`` selected);
the ``both`` fixture also runs the reference twin and the native module directly
against each other on the same inputs.
"""

from __future__ import annotations

import gc
import operator
import struct
import sys
import time
import weakref

import numpy as np
import pytest

from streamcore import codec
from streamcore._reference import record_batch as reference
from streamcore.errors import CorruptRecordError

HEADER = struct.Struct(">qiibIhiqqqhii")


def _native_record_batch():
    try:
        from streamcore import _native
    except ImportError as exc:
        pytest.skip(f"streamcore._native is not built: {exc}")
    if getattr(_native, "__file__", None) is None:
        # Without the extension, the directory of its type stubs imports as an empty namespace package.
        pytest.skip("streamcore._native is not built (only its type stubs are present)")
    if not hasattr(_native, "record_batch"):
        pytest.fail("streamcore._native is built but has no record_batch submodule")
    return _native.record_batch


@pytest.fixture
def both():
    """(reference module, native module) of the record_batch capability."""
    return reference, _native_record_batch()


# ------------------------------------------------------------ raw batch helpers
# Written independently of both implementations so malformed batches can be built.


def zz(v: int) -> bytes:
    """Zigzag varint."""
    z = (v << 1) ^ (v >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def raw_record(
    offset_delta: int,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: list[tuple[bytes, bytes | None]] = (),
    ts_delta: int = 0,
    *,
    length_adjust: int = 0,
    body: bytes | None = None,
) -> bytes:
    """One record; header keys are raw bytes so invalid UTF-8 can be written."""
    if body is None:
        body = b"\x00" + zz(ts_delta) + zz(offset_delta)
        body += zz(-1) if key is None else zz(len(key)) + key
        body += zz(-1) if value is None else zz(len(value)) + value
        body += zz(len(headers))
        for hk, hv in headers:
            body += zz(len(hk)) + hk
            body += zz(-1) if hv is None else zz(len(hv)) + hv
    return zz(len(body) + length_adjust) + body


def raw_batch(
    region: bytes,
    count: int,
    *,
    last_offset_delta: int | None = None,
    attributes: int = 0,
    base_offset: int = 0,
    first_ts: int = 1000,
    max_ts: int = 2000,
    magic: int = 2,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    ple: int = -1,
    fix_crc: bool = True,
) -> bytes:
    """A batch around an (already compressed, if attributes say so) records region."""
    lod = count - 1 if last_offset_delta is None else last_offset_delta
    out = bytearray(
        HEADER.pack(
            base_offset,
            49 + len(region),
            ple,
            magic,
            0,
            attributes,
            lod,
            first_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
    )
    out += region
    if fix_crc:
        fix_batch_crc(out)
    return bytes(out)


def fix_batch_crc(batch: bytearray, start: int = 0) -> None:
    import crc32c

    (length,) = struct.unpack_from(">i", batch, start + 8)
    end = start + 12 + length
    struct.pack_into(">I", batch, start + 17, crc32c.crc32c(bytes(batch[start + 21 : end])))


def records_region(n: int) -> bytes:
    return b"".join(raw_record(i, key=b"key%d" % i, value=b"value%d" % i) for i in range(n))


def sample_batch(n: int = 5, **kwargs) -> bytes:
    return codec.encode_batch(
        [b"value%d" % i for i in range(n)],
        [b"key%d" % i for i in range(n)],
        [[("h", b"%d" % i)] for i in range(n)],
        [1000 + i for i in range(n)],
        **kwargs,
    )


def header_tuple(b) -> tuple:
    return (
        b.base_offset, b.batch_length, b.partition_leader_epoch, b.crc, b.attributes,
        b.last_offset - b.base_offset, b.first_timestamp, b.max_timestamp, b.producer_id,
        b.producer_epoch, b.base_sequence, b.record_count,
    )  # fmt: skip


def record_tuples(batch) -> list[tuple]:
    return [(r.offset, r.timestamp_ms, r.key, r.value, list(r.headers)) for r in batch]


# ------------------------------------------------------------------ encoding


def test_codec_facade_exports_the_contract_names():
    for name in (
        "encode_batch", "decode_batch", "decode_batches", "validate_batch", "RecordBatch", "Record",
        "DEFAULT_MAX_DECOMPRESSED_BYTES", "COMPRESSION_TYPES",
    ):  # fmt: skip
        assert name in codec.__all__
        assert getattr(codec, name) is not None
    assert codec.COMPRESSION_TYPES == ("none", "gzip", "snappy", "lz4", "zstd")
    assert codec.DEFAULT_MAX_DECOMPRESSED_BYTES == 64 * 1024 * 1024


def test_encode_writes_the_v2_header_fields():
    data = codec.encode_batch(
        [b"a", b"bb", None],
        [None, b"k", b"kk"],
        None,
        [5000, 4000, 7000],
        base_offset=42,
        producer_id=123456789012,
        producer_epoch=7,
        base_sequence=99,
        transactional=True,
        partition_leader_epoch=3,
    )
    h = HEADER.unpack_from(data)
    assert h[0] == 42  # baseOffset
    assert h[1] == len(data) - 12  # batchLength
    assert h[2] == 3
    assert h[3] == 2  # magic
    assert h[5] == 0x10  # transactional, create time, no compression
    assert h[6] == 2  # lastOffsetDelta
    assert h[7] == 5000  # first record's timestamp, not the smallest
    assert h[8] == 7000
    assert h[9:] == (123456789012, 7, 99, 3)


def test_encode_default_partition_leader_epoch_and_producer_fields_are_minus_one():
    h = HEADER.unpack_from(codec.encode_batch([b"x"], timestamps_ms=[1]))
    assert h[2] == -1
    assert h[9:12] == (-1, -1, -1)


@pytest.mark.parametrize(
    "flags,bits",
    [
        ({"control": True}, 0x20),
        ({"log_append_time": True}, 0x08),
        ({"transactional": True, "control": True}, 0x30),
        ({"compression": "zstd", "log_append_time": True}, 0x0C),
    ],
)
def test_encode_sets_attribute_bits(flags, bits):
    data = codec.encode_batch([b"x"], timestamps_ms=[1], **flags)
    assert HEADER.unpack_from(data)[5] == bits


def test_encode_without_timestamps_uses_the_current_time_for_every_record():
    before = int(time.time() * 1000)
    batch = codec.decode_batch(codec.encode_batch([b"a", b"b", b"c"]))
    after = int(time.time() * 1000)
    stamps = {r.timestamp_ms for r in batch}
    assert len(stamps) == 1
    assert before <= stamps.pop() <= after + 1


def test_encode_empty_batch_raises_value_error():
    with pytest.raises(ValueError):
        codec.encode_batch([])


@pytest.mark.parametrize("field", ["keys", "headers", "timestamps_ms"])
def test_encode_mismatched_lengths_raise_value_error(field):
    with pytest.raises(ValueError):
        codec.encode_batch([b"a", b"b"], **{field: [None] if field != "timestamps_ms" else [1]})


def test_encode_reports_mismatched_lengths_before_the_types_of_items():
    with pytest.raises(ValueError, match="keys has 2 entries"):
        codec.encode_batch([1], keys=[b"a", b"b"])
    with pytest.raises(ValueError, match="keys has 1 entries"):
        codec.encode_batch([b"a", b"b"], keys=[5])


@pytest.mark.parametrize("bad", ["text", 5, 1.5], ids=["str", "int", "float"])
def test_encode_non_bytes_value_or_key_raises_type_error(bad):
    with pytest.raises(TypeError):
        codec.encode_batch([bad])
    with pytest.raises(TypeError):
        codec.encode_batch([b"v"], keys=[bad])


def test_encode_non_str_header_key_raises_type_error():
    with pytest.raises(TypeError):
        codec.encode_batch([b"v"], headers=[[(b"bytes-key", b"v")]])


def test_encode_unknown_compression_raises_value_error():
    with pytest.raises(ValueError):
        codec.encode_batch([b"v"], compression="brotli")
    with pytest.raises(ValueError):
        codec.encode_batch([b"v"], compression=5)


@pytest.mark.parametrize("cid,name", list(enumerate(("none", "gzip", "snappy", "lz4", "zstd"))))
def test_encode_accepts_codec_ids_as_well_as_names(cid, name):
    by_id = codec.encode_batch([b"v" * 100], timestamps_ms=[1], compression=cid)
    by_name = codec.encode_batch([b"v" * 100], timestamps_ms=[1], compression=name)
    assert by_id == by_name
    assert HEADER.unpack_from(by_id)[5] & 7 == cid


def test_encode_accepts_bytearray_and_memoryview_records():
    plain = codec.encode_batch([b"value"], [b"key"], [[("h", b"hv")]], [1])
    other = codec.encode_batch([bytearray(b"value")], [memoryview(b"key")], [[("h", bytearray(b"hv"))]], [1])
    assert plain == other


class _Bytes(bytes):
    """A bytes subclass: bytes-like, but not the exact type the fast column path reads."""


def test_encode_takes_a_list_of_any_mix_of_bytes_like_items_and_nulls():
    # The native encoder reads a list of exact bytes and None straight from the
    # objects, and goes the general way as soon as one item is anything else: every
    # mix must give the batch that plain bytes give, keys as well as values.
    n = 3000  # above the size at which the encoder releases the GIL
    kinds = [bytes, _Bytes, bytearray, memoryview]
    values = [None if i % 7 == 3 else b"v%05d" % i * (i % 5) for i in range(n)]
    keys = [None if i % 11 == 2 else b"k%d" % i for i in range(n)]
    expected = codec.encode_batch(values, keys, timestamps_ms=[5] * n)
    for vk, kk in [(bytes, bytes), (_Bytes, bytes), (bytes, bytearray), (memoryview, _Bytes)]:
        vs = [v if v is None else vk(v) for v in values]
        ks = [k if k is None else kk(k) for k in keys]
        assert codec.encode_batch(vs, ks, timestamps_ms=[5] * n) == expected, (vk, kk)
    # One odd item at the very end of a list of bytes, or at the start.
    for kind in kinds:
        tail = values[:-1] + [kind(b"last")]
        head = [kind(b"first")] + values[1:]
        assert codec.decode_batch(codec.encode_batch(tail, keys)).records[-1].value == b"last"
        assert codec.decode_batch(codec.encode_batch(head, keys)).records[0].value == b"first"
    # Tuples and other sequences give the same batch as lists.
    assert codec.encode_batch(tuple(values), tuple(keys), timestamps_ms=[5] * n) == expected


def test_encode_does_not_change_or_keep_the_callers_lists():
    values = [b"a" * 10, None, b"c"]
    keys = [b"k1", b"k2", None]
    before = (list(values), list(keys))
    out = codec.encode_batch(values, keys, timestamps_ms=[1, 2, 3])
    assert (values, keys) == before
    values[0] = b"changed"
    assert [r.value for r in codec.decode_batch(out).records] == [b"a" * 10, None, b"c"]


def test_encode_leaves_no_reference_to_its_items_behind():
    value = bytes(range(200))
    key = bytes(range(7))
    counts = (sys.getrefcount(value), sys.getrefcount(key))
    for _ in range(3):
        codec.encode_batch([value] * 500, [key] * 500)
        codec.encode_batch([value, memoryview(value)], [key, None])
    assert (sys.getrefcount(value), sys.getrefcount(key)) == counts


def test_encode_output_is_bytes():
    assert type(sample_batch()) is bytes


# ------------------------------------------------------------------ decoding


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_decode_returns_header_fields_and_records(compression):
    values = [b"v0", None, b"v2" * 50, b""]
    keys = [None, b"k1", b"", b"k3"]
    headers = [None, [("a", b"1"), ("b", None)], [], [("\u00e9t\u00e9", b"x")]]
    stamps = [1_700_000_000_000, 1_700_000_000_500, 1_699_999_999_000, 1_700_000_000_100]
    data = codec.encode_batch(
        values, keys, headers, stamps, compression=compression, base_offset=1000,
        producer_id=77, producer_epoch=2, base_sequence=10, transactional=True,
    )  # fmt: skip
    b = codec.decode_batch(data)
    assert b.base_offset == 1000
    assert b.last_offset == 1003
    assert b.batch_length == len(data) - 12
    assert b.partition_leader_epoch == -1
    assert b.magic == 2
    assert b.crc == HEADER.unpack_from(data)[4]
    assert b.compression == compression
    assert b.attributes == codec.COMPRESSION_TYPES.index(compression) | 0x10
    assert b.timestamp_type == 0
    assert b.is_transactional is True
    assert b.is_control is False
    assert b.first_timestamp == stamps[0]
    assert b.max_timestamp == max(stamps)
    assert (b.producer_id, b.producer_epoch, b.base_sequence) == (77, 2, 10)
    assert b.record_count == 4
    assert len(b) == 4
    assert len(b.records) == 4
    assert record_tuples(b) == [
        (1000, stamps[0], None, b"v0", []),
        (1001, stamps[1], b"k1", None, [("a", b"1"), ("b", None)]),
        (1002, stamps[2], b"", b"v2" * 50, []),
        (1003, stamps[3], b"k3", b"", [("\u00e9t\u00e9", b"x")]),
    ]
    assert [r.offset for r in iter(b)] == [1000, 1001, 1002, 1003]
    r = b.records[1]
    assert type(r.offset) is int and type(r.timestamp_ms) is int
    assert type(r.key) is bytes and r.value is None
    assert isinstance(r.headers, list) and r.headers[0] == ("a", b"1")
    assert "1001" in repr(r)


def test_decode_log_append_time_batch_gives_every_record_the_max_timestamp():
    data = codec.encode_batch([b"a", b"b"], timestamps_ms=[10, 20], log_append_time=True)
    b = codec.decode_batch(data)
    assert b.timestamp_type == 1
    assert [r.timestamp_ms for r in b] == [20, 20]
    assert list(b.to_columns()["timestamp_ms"]) == [20, 20]


def test_decode_control_batch_flags():
    b = codec.decode_batch(codec.encode_batch([b"\x00\x00\x00\x01"], [b"\x00\x00\x00\x00"], control=True))
    assert b.is_control is True
    assert b.records[0].key == b"\x00\x00\x00\x00"


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview, lambda d: np.frombuffer(d, np.uint8)])
def test_decode_accepts_any_buffer(wrap):
    data = sample_batch()
    assert record_tuples(codec.decode_batch(wrap(data))) == record_tuples(codec.decode_batch(data))
    assert len(codec.decode_batches(wrap(data + data))) == 2
    assert tuple(codec.validate_batch(wrap(data))) == header_tuple(codec.decode_batch(data))


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_to_columns_indexes_the_uncompressed_records(compression):
    values = [b"alpha", None, b"", b"x" * 300]
    keys = [b"k0", b"k1", None, b""]
    data = codec.encode_batch(values, keys, None, [5, 6, 7, 8], compression=compression, base_offset=90)
    cols = codec.decode_batch(data).to_columns()
    assert set(cols) == {
        "offset", "timestamp_ms", "key_offset", "key_length", "value_offset", "value_length", "buffer",
    }  # fmt: skip
    dtypes = {"offset": np.int64, "timestamp_ms": np.int64, "key_offset": np.int64,
              "key_length": np.int32, "value_offset": np.int64, "value_length": np.int32}  # fmt: skip
    for name, dtype in dtypes.items():
        assert isinstance(cols[name], np.ndarray) and cols[name].dtype == dtype, name
        assert cols[name].shape == (4,), name
    buf = bytes(cols["buffer"])
    if compression == "none":
        assert buf == data[61:]
    assert list(cols["offset"]) == [90, 91, 92, 93]
    assert list(cols["timestamp_ms"]) == [5, 6, 7, 8]
    assert list(cols["key_length"]) == [2, 2, -1, 0]
    assert list(cols["value_length"]) == [5, -1, 0, 300]
    assert cols["key_offset"][2] == 0 and cols["value_offset"][1] == 0
    for i in range(4):
        ko, kl = int(cols["key_offset"][i]), int(cols["key_length"][i])
        vo, vl = int(cols["value_offset"][i]), int(cols["value_length"][i])
        assert (buf[ko : ko + kl] if kl >= 0 else None) == keys[i]
        assert (buf[vo : vo + vl] if vl >= 0 else None) == values[i]


def test_to_columns_of_a_batch_inside_decode_batches_is_relative_to_its_own_records():
    first, second = sample_batch(3), sample_batch(2, base_offset=3)
    b = codec.decode_batches(first + second)[1]
    cols = b.to_columns()
    buf = bytes(cols["buffer"])
    assert buf == second[61:]
    assert buf[cols["value_offset"][1] : cols["value_offset"][1] + cols["value_length"][1]] == b"value1"


def test_decode_batch_rejects_bytes_after_the_batch():
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batch(sample_batch() + b"\x00")


def test_decode_with_verify_crc_false_accepts_a_bad_crc():
    data = bytearray(sample_batch())
    data[17] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC"):
        codec.decode_batch(bytes(data))
    b = codec.decode_batch(bytes(data), verify_crc=False)
    assert len(b) == 5


def test_decode_accepts_compacted_batch_with_offset_gaps_but_validate_rejects_it():
    region = b"".join(raw_record(d) for d in (0, 3, 7))
    data = raw_batch(region, 3, last_offset_delta=9, base_offset=100)
    b = codec.decode_batch(data)
    assert [r.offset for r in b] == [100, 103, 107]
    assert b.last_offset == 109
    assert list(b.to_columns()["offset"]) == [100, 103, 107]
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.validate_batch(data)


def test_decode_accepts_an_empty_batch_but_validate_rejects_it():
    data = raw_batch(b"", 0, last_offset_delta=4, base_offset=10)
    b = codec.decode_batch(data)
    assert len(b) == 0 and b.record_count == 0 and b.last_offset == 14
    assert list(b.to_columns()["offset"]) == []
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.validate_batch(data)


def test_decode_wraps_offsets_and_timestamps_to_int64():
    top = (1 << 63) - 1
    region = raw_record(0, ts_delta=5) + raw_record(1, ts_delta=0)
    data = raw_batch(region, 2, base_offset=top, first_ts=top - 2)
    b = codec.decode_batch(data)
    assert [r.offset for r in b] == [top, -(1 << 63)]
    assert [r.timestamp_ms for r in b] == [-(1 << 63) + 2, top - 2]
    assert b.last_offset == -(1 << 63)
    cols = b.to_columns()
    assert list(cols["offset"]) == [top, -(1 << 63)]
    assert list(cols["timestamp_ms"]) == [-(1 << 63) + 2, top - 2]


# ------------------------------------------------------------ decode_batches


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_decode_batches_returns_every_whole_batch(count):
    batches = [
        sample_batch(i + 1, base_offset=10 * i, compression=("none", "gzip")[i % 2]) for i in range(count)
    ]
    decoded = codec.decode_batches(b"".join(batches))
    assert [b.base_offset for b in decoded] == [10 * i for i in range(count)]
    assert [len(b) for b in decoded] == [i + 1 for i in range(count)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_decode_batches_ignores_a_trailing_partial_batch_cut_at_every_byte(count):
    batches = [sample_batch(2, base_offset=2 * i) for i in range(count)]
    data = b"".join(batches)
    whole = b"".join(batches[:-1])
    for cut in range(len(whole), len(data)):
        decoded = codec.decode_batches(data[:cut])
        assert [b.base_offset for b in decoded] == [2 * i for i in range(count - 1)], cut
    assert len(codec.decode_batches(data)) == count


def test_decode_batches_of_nothing_is_empty():
    assert codec.decode_batches(b"") == []


def test_decode_batches_raises_on_a_malformed_complete_batch():
    bad = bytearray(sample_batch())
    bad[-1] ^= 0x01  # CRC now wrong
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batches(sample_batch() + bytes(bad) + sample_batch())


def test_decode_batches_raises_on_a_too_small_batch_length_even_at_the_tail():
    tail = struct.pack(">qi", 0, 10)  # 12 bytes, batchLength below the 49-byte header
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batches(sample_batch() + tail)


# ------------------------------------------------------------------ validate


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_validate_returns_the_header_fields_decode_sees(compression):
    data = sample_batch(7, compression=compression, base_offset=5, producer_id=9, producer_epoch=1,
                        base_sequence=4, partition_leader_epoch=12)  # fmt: skip
    info = codec.validate_batch(data)
    assert isinstance(info, tuple) and len(info) == 12
    assert tuple(info) == header_tuple(codec.decode_batch(data))


# ------------------------------------------------------------------ malformed


def _with(data: bytes, at: int, raw: bytes, fix_crc: bool = True) -> bytes:
    out = bytearray(data)
    out[at : at + len(raw)] = raw
    if fix_crc:
        fix_batch_crc(out)
    return bytes(out)


GOOD = raw_batch(records_region(3), 3)
MALFORMED = {
    "bad crc in records": _with(GOOD, len(GOOD) - 1, b"\xee", fix_crc=False),
    "bad stored crc": _with(GOOD, 17, b"\x00\x00\x00\x00", fix_crc=False),
    "magic 1": _with(GOOD, 16, b"\x01"),
    "magic 0": _with(GOOD, 16, b"\x00"),
    "magic 3": _with(GOOD, 16, b"\x03"),
    "batch length below header": GOOD[:8] + struct.pack(">i", 48) + GOOD[12:],
    "negative batch length": GOOD[:8] + struct.pack(">i", -5) + GOOD[12:],
    "negative record count": raw_batch(records_region(3), -3, last_offset_delta=2),
    "record count too high": raw_batch(records_region(3), 4, last_offset_delta=2),
    "record count too low": raw_batch(records_region(3), 2, last_offset_delta=1),
    "unknown codec 5": raw_batch(records_region(3), 3, attributes=5),
    "unknown codec 7": raw_batch(records_region(3), 3, attributes=7),
    "record length past end": raw_batch(raw_record(0, length_adjust=40), 1),
    "record length negative": raw_batch(zz(-2) + raw_record(0)[1:], 1),
    "record length short": raw_batch(raw_record(0, length_adjust=-1) + b"\x00", 1),
    "record length long": raw_batch(raw_record(0, length_adjust=1) + b"\x00", 1),
    "record length varint 10 continuation bytes": raw_batch(b"\xff" * 10 + b"\x01", 1),
    "timestamp varlong 11 bytes": raw_batch(
        raw_record(0, body=b"\x00" + b"\xff" * 10 + b"\x01" + b"\x00\x01\x01\x00"), 1
    ),
    "offset delta varint 6 bytes": raw_batch(raw_record(0, body=b"\x00\x00" + b"\x80" * 5 + b"\x00"), 1),
    "offset delta varint past int32": raw_batch(
        raw_record(0, body=b"\x00\x00\xff\xff\xff\xff\x7f\x01\x01\x00"), 1
    ),
    "varint runs past end": raw_batch(b"\x80", 1),
    "offset delta repeated": raw_batch(raw_record(0) + raw_record(0), 2),
    "offset delta decreasing": raw_batch(raw_record(1) + raw_record(0), 2),
    "offset delta past last offset delta": raw_batch(raw_record(0) + raw_record(2), 2, last_offset_delta=1),
    "negative offset delta": raw_batch(raw_record(-1), 1, last_offset_delta=0),
    "key length below -1": raw_batch(raw_record(0, body=b"\x00\x00\x00" + zz(-2) + b"\x01\x00"), 1),
    "key length past record": raw_batch(raw_record(0, body=b"\x00\x00\x00" + zz(9) + b"ab\x01\x00"), 1),
    "value length below -1": raw_batch(raw_record(0, body=b"\x00\x00\x00\x01" + zz(-3) + b"\x00"), 1),
    "value length past record": raw_batch(raw_record(0, body=b"\x00\x00\x00\x01" + zz(50) + b"\x00"), 1),
    "negative header count": raw_batch(raw_record(0, body=b"\x00\x00\x00\x01\x01" + zz(-1)), 1),
    "header count past record": raw_batch(
        raw_record(0, body=b"\x00\x00\x00\x01\x01" + zz(3) + b"\x02h\x01"), 1
    ),
    "negative header key length": raw_batch(
        raw_record(0, body=b"\x00\x00\x00\x01\x01\x02" + zz(-1) + b"\x01"), 1
    ),
    "header key not utf8": raw_batch(raw_record(0, headers=[(b"\xff\xfe", b"v")]), 1),
    "header value length below -1": raw_batch(
        raw_record(0, body=b"\x00\x00\x00\x01\x01\x02\x02h" + zz(-2)), 1
    ),
    "header value past record": raw_batch(raw_record(0, body=b"\x00\x00\x00\x01\x01\x02\x02h" + zz(30)), 1),
    "empty record": raw_batch(zz(0), 1),
    "bytes after records": raw_batch(records_region(3) + b"\x00", 3),
    "gzip garbage": raw_batch(b"\x1f\x8b\x08\x00garbage-garbage", 3, attributes=1),
    "snappy garbage": raw_batch(b"\xff\xff\xff\xff\x0fgarbage", 3, attributes=2),
    "lz4 garbage": raw_batch(b"\x04\x22\x4d\x18garbage-garbage", 3, attributes=3),
    "zstd garbage": raw_batch(b"\x28\xb5\x2f\xfdgarbage-garbage", 3, attributes=4),
    "empty compressed region": raw_batch(b"", 1, attributes=1),
}


def test_the_good_raw_batch_is_valid():
    assert len(codec.decode_batch(GOOD)) == 3
    codec.validate_batch(GOOD)


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_batch_raises_corrupt_record_error_naming_a_byte(name):
    data = MALFORMED[name]
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batch(data)
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.validate_batch(data)
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batches(data)
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batches(GOOD + data)


def test_corrupt_record_error_is_a_value_error():
    with pytest.raises(ValueError):
        codec.decode_batch(MALFORMED["magic 1"])


def test_magic_error_names_the_magic_and_its_byte():
    with pytest.raises(CorruptRecordError, match="magic 1 at byte 16"):
        codec.decode_batch(MALFORMED["magic 1"])


def test_truncated_batch_raises_at_every_length():
    for data in (GOOD, sample_batch(3, compression="gzip")):
        for cut in range(len(data)):
            with pytest.raises(CorruptRecordError, match="byte"):
                codec.decode_batch(data[:cut])
            with pytest.raises(CorruptRecordError, match="byte"):
                codec.validate_batch(data[:cut])
            assert codec.decode_batches(data[:cut]) == []


def test_batch_length_past_end_raises_for_one_batch_but_ends_decode_batches():
    data = GOOD[:8] + struct.pack(">i", len(GOOD) - 12 + 1) + GOOD[12:]
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.decode_batch(data)
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.validate_batch(data)
    assert len(codec.decode_batches(GOOD + data)) == 1


def test_validate_rejects_last_offset_delta_that_does_not_match_the_count():
    data = raw_batch(records_region(3), 3, last_offset_delta=3)
    codec.decode_batch(data)  # decoding allows a trailing gap (compaction)
    with pytest.raises(CorruptRecordError, match="byte"):
        codec.validate_batch(data)


def test_decode_rejects_a_bad_crc_that_validate_also_rejects():
    bad = MALFORMED["bad stored crc"]
    with pytest.raises(CorruptRecordError, match="CRC"):
        codec.validate_batch(bad)
    assert len(codec.decode_batch(bad, verify_crc=False)) == 3


def test_non_contiguous_buffer_raises_buffer_error():
    data = sample_batch()
    strided = memoryview(bytes(b for b in data for _ in range(2)))[::2]
    assert strided.tobytes() == data
    for fn in (codec.decode_batch, codec.decode_batches, codec.validate_batch):
        with pytest.raises(BufferError):
            fn(strided)


def test_bad_argument_types_raise_type_error():
    with pytest.raises(TypeError):
        codec.decode_batch("not bytes")
    with pytest.raises(TypeError):
        codec.validate_batch(12345)


# ------------------------------------------------------------ native vs reference


def _outcome(fn, data, **kwargs):
    try:
        result = fn(data, **kwargs)
    except CorruptRecordError:
        return "corrupt"
    if isinstance(result, list):
        return [(header_tuple(b), record_tuples(b)) for b in result]
    if hasattr(result, "records"):
        return header_tuple(result), record_tuples(result)
    return tuple(result)


@pytest.mark.parametrize("name", list(MALFORMED))
def test_native_and_reference_both_reject_each_malformed_batch(both, name):
    for impl in both:
        for fn in (impl.decode_batch, impl.validate_batch):
            assert _outcome(fn, MALFORMED[name]) == "corrupt", (impl.__name__, fn.__name__)


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_native_and_reference_decode_each_others_batches_identically(both, compression):
    ref, nat = both
    args = (
        [b"v%d" % i * i for i in range(20)] + [None],
        [None if i % 3 == 0 else b"k%d" % i for i in range(21)],
        [[(f"h{j}", None if j % 2 else b"x") for j in range(i % 3)] for i in range(21)],
        [10_000 + (i * 37) % 11 for i in range(21)],
    )
    kwargs = {"compression": compression, "base_offset": 5, "producer_id": 3, "producer_epoch": 0,
              "base_sequence": 0, "transactional": True}  # fmt: skip
    from_ref = ref.encode_batch(*args, **kwargs)
    from_nat = nat.encode_batch(*args, **kwargs)
    if compression == "none":
        assert from_ref == from_nat
    for data in (from_ref, from_nat):
        assert _outcome(ref.decode_batch, data) == _outcome(nat.decode_batch, data)
        assert _outcome(ref.validate_batch, data) == _outcome(nat.validate_batch, data)
        assert _outcome(ref.decode_batches, data * 2) == _outcome(nat.decode_batches, data * 2)
        rc, nc = ref.decode_batch(data).to_columns(), nat.decode_batch(data).to_columns()
        assert bytes(rc["buffer"]) == bytes(nc["buffer"])
        for key in ("offset", "timestamp_ms", "key_offset", "key_length", "value_offset", "value_length"):
            assert rc[key].dtype == nc[key].dtype and np.array_equal(rc[key], nc[key]), key


def test_native_and_reference_share_the_default_cap(both):
    ref, nat = both
    assert ref.DEFAULT_MAX_DECOMPRESSED_BYTES == nat.DEFAULT_MAX_DECOMPRESSED_BYTES == 64 * 1024 * 1024


# ------------------------------------------------------------------ result types


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_both_twins_validate_into_the_one_batch_info_class_with_equal_fields(both, compression):
    from streamcore._reference.record_types import BatchInfo

    data = sample_batch(5, compression=compression, base_offset=3, producer_id=8, producer_epoch=2,
                        base_sequence=6, partition_leader_epoch=4)  # fmt: skip
    ref_info, nat_info = (impl.validate_batch(data) for impl in both)
    assert type(ref_info) is BatchInfo and type(nat_info) is BatchInfo
    for impl in both:
        assert impl.BatchInfo is BatchInfo
    assert nat_info._asdict() == ref_info._asdict()
    # Callers read fields by name: the produce path's sequence check, for one.
    assert (nat_info.producer_id, nat_info.base_sequence, nat_info.record_count) == (8, 6, 5)
    assert nat_info.last_offset_delta == nat_info.record_count - 1


def test_each_twin_decodes_into_its_own_record_class_with_one_behaviour(both):
    """The reference twin's Record is a named tuple; the native one a class whose
    fields are built when read. Everything a caller does with a record answers the
    same on both."""
    import pickle

    data = codec.encode_batch([b"v", None], [b"k", None], [[("h", None)], None], [1234, 1235])
    ref_rec, nat_rec = (impl.decode_batch(data).records[0] for impl in both)
    ref_it, nat_it = (list(impl.decode_batch(data))[1] for impl in both)
    assert type(ref_rec) is both[0].Record and type(nat_rec) is both[1].Record
    fields = (0, 1234, b"k", b"v", [("h", None)])
    for ref, nat, want in ((ref_rec, nat_rec, fields), (ref_it, nat_it, (1, 1235, None, None, []))):
        for r in (ref, nat):
            assert r == want and want == r and r == ref and r == nat and not r != ref
            assert r != want[:4] and r != list(want) and r != 5
            assert (r.offset, r.timestamp_ms, r.key, r.value, r.headers) == want
            assert tuple(r) == want and list(r) == list(want) and len(r) == 5
            assert [r[i] for i in range(-5, 5)] == list(want + want)
            assert r[1:4] == want[1:4] and r[::-1] == want[::-1]
            offset, ts, key, value, headers = r
            assert (offset, ts, key, value, headers) == want
            assert ("topic", 3) + r == ("topic", 3) + want and r + ("x",) == want + ("x",)
            assert r._fields == ("offset", "timestamp_ms", "key", "value", "headers")
            assert r._asdict() == dict(zip(r._fields, want, strict=True))
            assert r._replace(value=b"w") == want[:3] + (b"w",) + want[4:]
            assert r < want[:1] + (9999,) and not r > want
            assert pickle.loads(pickle.dumps(r)) == want
            with pytest.raises(IndexError):
                r[5]
            with pytest.raises(TypeError):
                r["offset"]
            with pytest.raises(TypeError):
                hash(r)  # the headers list is unhashable, as in any tuple holding one
            with pytest.raises(ValueError):
                r._replace(nope=1)
            # The headers list is the record's own: a change stays with it.
            r.headers.append(("added", b""))
            assert r.headers[-1] == ("added", b"")
            assert r.headers is r.headers
            del r.headers[-1]
        assert repr(nat) == repr(ref)
    # Built by hand, as the named tuple can be.
    made = both[1].Record(0, 1234, b"k", b"v", [("h", None)])
    assert made == nat_rec and repr(made) == repr(ref_rec)
    by_name = both[1].Record(offset=1, timestamp_ms=2, key=None, value=None, headers=())
    assert by_name == (1, 2, None, None, ())
    assert hash(both[1].Record(1, 2, None, None, ())) == hash((1, 2, None, None, ()))


class _Marker:
    """Something a weak reference can watch, to see that a cycle was collected."""


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_cycles_through_records_and_batches_are_collected_on_both_twins(both, compression):
    """A record (or its batch) put into a record's headers list, directly or through
    another object, forms a cycle that only the garbage collector can free: it must
    see through both twins' records and batches."""
    data, _ = _iteration_batch(compression)
    for impl in both:
        made = []

        def cycles(impl=impl):
            batch = impl.decode_batch(data)
            it = iter(batch)
            # A record made by iteration (a view of its batch, natively) in its own headers.
            first = next(it)
            first.headers.append(("self", first))
            # Through another object: record -> headers -> marker -> record.
            second = next(it)
            marker = _Marker()
            marker.record = second
            second.headers.append(("m", marker))
            # The batch itself, reached from a record of its `records` list.
            listed = impl.decode_batch(data)
            listed_marker = _Marker()
            listed_marker.batch = listed
            listed.records[0].headers.append(("batch", listed_marker))
            # A record built by hand, holding a list that holds it.
            held: list = []
            by_hand = type(first)(0, 0, None, None, held)
            held.append(by_hand)
            kept = _Marker()
            by_hand.headers.append(("k", kept))
            return [marker, listed_marker, kept]

        gc.collect()
        gc.disable()  # nothing collects before the check below
        try:
            made = [weakref.ref(m) for m in cycles()]
            assert all(r() is not None for r in made), impl.__name__  # only cycles keep them
            gc.collect()
            assert [r() for r in made] == [None] * len(made), impl.__name__
        finally:
            gc.enable()
    # Natively, records of every origin are tracked by the collector.
    native = both[1]
    batch = native.decode_batch(data)
    for _ in range(3):  # also once the allocator hands out freed records again
        records = list(batch)
        assert all(gc.is_tracked(r) for r in records)
        del records
    assert gc.is_tracked(batch) and gc.is_tracked(native.Record(0, 0, None, None, []))


def _iteration_batch(compression: str) -> tuple[bytes, list[bytes | None]]:
    values = [b"v%d" % i * (i % 4) for i in range(9)] + [None]
    data = codec.encode_batch(
        values,
        [None if i % 3 == 0 else b"k%d" % i for i in range(10)],
        [[(f"h{j}", None if j else b"x") for j in range(i % 3)] for i in range(10)],
        [500 + i // 4 for i in range(10)],  # runs of equal timestamps
        compression=compression,
        base_offset=40,
    )
    return data, values


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_iterating_a_batch_gives_the_records_in_order_on_both_twins(both, compression):
    data, values = _iteration_batch(compression)
    for impl in both:
        batch = impl.decode_batch(data)
        it = iter(batch)
        assert operator.length_hint(it) == 10
        first = next(it)
        assert operator.length_hint(it) == 9
        rest = list(it)
        assert operator.length_hint(it) == 0
        assert list(it) == []
        with pytest.raises(StopIteration):
            next(it)
        seen = [first, *rest]
        assert all(type(r) is impl.Record for r in seen), impl.__name__
        assert seen == batch.records
        assert [r.value for r in seen] == values
        assert [r.offset for r in seen] == list(range(40, 50))
        assert [r.timestamp_ms for r in seen] == [500 + i // 4 for i in range(10)]
        assert seen[2].headers == [("h0", b"x"), ("h1", None)]
        # A second pass starts again from the first record.
        assert [r.offset for r in batch] == list(range(40, 50))


def test_iterating_after_reading_records_yields_those_very_records(both):
    data, _ = _iteration_batch("none")
    for impl in both:
        batch = impl.decode_batch(data)
        records = batch.records
        assert all(a is b for a, b in zip(batch, records, strict=True)), impl.__name__


def test_an_iterator_keeps_its_batch_alive(both):
    data, values = _iteration_batch("lz4")
    for impl in both:
        it = iter(impl.decode_batches(data * 2)[1])
        gc.collect()
        assert [r.value for r in it] == values, impl.__name__


def test_native_iteration_builds_each_record_on_demand(both):
    _, nat = both
    data, _ = _iteration_batch("none")
    batch = nat.decode_batch(data)
    record = next(iter(batch))
    # Only this frame holds the record (plus getrefcount's argument): neither the batch
    # nor the iterator keeps what it handed out, so a loop frees each record in turn.
    assert sys.getrefcount(record) == 2
    # Records built by iteration are equal to, but not, those of ``records``.
    assert record == batch.records[0] and record is not batch.records[0]
    # A record made by iteration reads the batch when a field is read (keeping the
    # batch alive); those of ``records`` hold their fields.
    second = batch.records[1]
    assert record.value == record.value and second.value is second.value
    # Each record built on demand gets its own headers list too.
    fresh = nat.decode_batch(data)
    a, b = next(iter(fresh)), next(iter(fresh))
    a.headers.append(("mutated", None))
    assert b.headers == [] and fresh.records[0].headers == []


# ------------------------------------------------------------ check_batches (what a log read returned)


def _run(batches: list[bytes]) -> bytes:
    return b"".join(batches)


def test_check_batches_gives_the_same_answer_on_both_twins(both):
    ref, nat = both
    one = reference.encode_batch([b"a", b"b"], timestamps_ms=[1, 2], base_offset=0)
    two = reference.encode_batch([b"c"], timestamps_ms=[3], base_offset=2, compression="gzip")
    skip = reference.encode_batch([b"d"], timestamps_ms=[4], base_offset=9)
    flipped = bytearray(two)
    flipped[-1] ^= 1
    backwards = reference.encode_batch([b"e"], timestamps_ms=[5], base_offset=1)
    old_magic = bytearray(one)
    old_magic[16] = 1
    cases = [
        (_run([one, two, skip]), 0, None),  # sound, with a compacted gap before 9
        (_run([one, two]), 1, None),  # the first batch holds the wanted offset 1
        (b"", 0, None),
        (_run([one, bytes(flipped)]), 0, (len(one), 2)),  # CRC
        (_run([one, backwards]), 0, (len(one), 2)),  # offsets going back
        (_run([one, two])[: len(one) + 30], 0, (len(one), 2)),  # a torn header
        (_run([one, two])[:-1], 0, (len(one), 2)),  # a batch cut short
        (bytes(old_magic), 0, (0, 0)),
        (one, 5, (0, 5)),  # the read starts below the wanted offset
    ]
    for data, offset, want in cases:
        for impl in (ref, nat):
            for wrap in (bytes, bytearray, memoryview):
                assert impl.check_batches(wrap(data), offset) == want, (impl.__name__, offset, want)


# ------------------------------------------------------------ records_as (the consumer's records)


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_records_as_makes_the_same_tuples_on_both_twins(both, compression):
    from streamcore.client.types import ConsumerRecord as Row

    data, _ = _iteration_batch(compression)
    answers = []
    for impl in both:
        batch = impl.decode_batch(data)
        rows = batch.records_as(Row, ("t", 2))
        assert all(type(r) is Row for r in rows), impl.__name__
        assert rows == [("t", 2, *r) for r in batch.records]
        assert rows[3].offset == 43 and rows[3].topic == "t"
        plain = batch.records_as(tuple, ())
        assert all(type(r) is tuple for r in plain) and plain == [tuple(r) for r in batch.records]
        assert batch.records_as(tuple, (), 2, 5) == plain[2:5]
        assert batch.records_as(tuple, (), 8) == plain[8:]
        assert batch.records_as(tuple, (), 7, 100) == plain[7:]
        assert batch.records_as(tuple, (), 6, 3) == [] and batch.records_as(tuple, (), 50) == []
        assert rows[2].headers == [("h0", b"x"), ("h1", None)]
        with pytest.raises(TypeError):
            batch.records_as(list, ())
        with pytest.raises(ValueError):
            batch.records_as(Row, ("t",))
        with pytest.raises(OverflowError):
            batch.records_as(tuple, (), -1)
        answers.append(rows)
    assert answers[0] == answers[1]
