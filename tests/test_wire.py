"""Kafka wire primitives: the same tests against the reference and the Cython twin.

Every test takes the ``wire`` fixture, parametrized as ``py-wire``
(streamcore._reference.wire) and ``cy-wire`` (streamcore._cy_wire, skipped only
when the compiled module is not there).
"""

from __future__ import annotations

import array
import importlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamcore._impl
from streamcore.errors import ProtocolError

INT8 = (-(2**7), 2**7 - 1)
INT16 = (-(2**15), 2**15 - 1)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

PUBLIC_NAMES = {
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
}


def _load(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        pytest.skip(f"{name} is not built (tools/dev_build.sh cython)")


@pytest.fixture(
    scope="module", params=["streamcore._reference.wire", "streamcore._cy_wire"], ids=["py-wire", "cy-wire"]
)
def wire(request):
    return _load(request.param)


# ---------------------------------------------------------------- names


def test_both_implementations_expose_the_contract_names(wire):
    missing = PUBLIC_NAMES - set(dir(wire))
    assert not missing


def test_selected_implementation_exposes_the_contract_names():
    assert PUBLIC_NAMES <= set(dir(streamcore._impl.wire))


# ---------------------------------------------------------------- varints

VARINT_CASES = [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (-65, "8101"),
    (INT32[1], "feffffff0f"),
    (INT32[0], "ffffffff0f"),
]

VARLONG_CASES = [
    *VARINT_CASES,
    (INT32[1] + 1, "8080808010"),
    (INT64[1], "feffffffffffffffff01"),
    (INT64[0], "ffffffffffffffffff01"),
]

UVARINT_CASES = [
    (0, "00"),
    (1, "01"),
    (127, "7f"),
    (128, "8001"),
    (300, "ac02"),
    (2**31 - 1, "ffffffff07"),
    (2**32 - 1, "ffffffff0f"),
]


@pytest.mark.parametrize(("value", "hexed"), VARINT_CASES)
def test_varint_encodes_zigzag_and_decodes_back(wire, value, hexed):
    encoded = wire.encode_varint(value)
    assert encoded.hex() == hexed
    assert wire.size_of_varint(value) == len(encoded)
    assert wire.decode_varint(b"\xaa" + encoded + b"\xbb", 1) == (value, 1 + len(encoded))


@pytest.mark.parametrize(("value", "hexed"), VARLONG_CASES)
def test_varlong_encodes_zigzag_and_decodes_back(wire, value, hexed):
    encoded = wire.encode_varlong(value)
    assert encoded.hex() == hexed
    assert wire.size_of_varlong(value) == len(encoded)
    assert wire.decode_varlong(encoded) == (value, len(encoded))


@pytest.mark.parametrize(("value", "hexed"), UVARINT_CASES)
def test_uvarint_encodes_unsigned_and_decodes_back(wire, value, hexed):
    encoded = wire.encode_uvarint(value)
    assert encoded.hex() == hexed
    assert wire.decode_uvarint(bytearray(encoded)) == (value, len(encoded))


@pytest.mark.parametrize(
    ("func", "value"),
    [
        ("encode_varint", INT32[1] + 1),
        ("encode_varint", INT32[0] - 1),
        ("size_of_varint", INT32[1] + 1),
        ("encode_varlong", INT64[1] + 1),
        ("encode_varlong", INT64[0] - 1),
        ("size_of_varlong", 2**100),
        ("encode_uvarint", -1),
        ("encode_uvarint", 2**32),
    ],
)
def test_varint_encoders_reject_values_outside_their_range(wire, func, value):
    with pytest.raises(ValueError, match="out of range"):
        getattr(wire, func)(value)


@pytest.mark.parametrize("func", ["encode_varint", "encode_varlong", "encode_uvarint"])
def test_varint_encoders_reject_non_integers(wire, func):
    with pytest.raises(TypeError):
        getattr(wire, func)(1.5)


@pytest.mark.parametrize(
    ("func", "data", "message"),
    [
        ("decode_uvarint", "8080808080", "uvarint at byte 0 is longer than 5 bytes"),
        ("decode_varint", "ffffffff8f", "varint at byte 0 is longer than 5 bytes"),
        ("decode_uvarint", "ffffffff10", "uvarint at byte 0 overflows 32 bits"),
        ("decode_varint", "ffffffff1f", "varint at byte 0 overflows 32 bits"),
        ("decode_varlong", "ffffffffffffffffff81", "varlong at byte 0 is longer than 10 bytes"),
        ("decode_varlong", "ffffffffffffffffff02", "varlong at byte 0 overflows 64 bits"),
        ("decode_varint", "", "truncated varint at byte 0"),
        ("decode_uvarint", "ffff", "truncated uvarint at byte 0"),
    ],
)
def test_malformed_varints_raise_protocol_error_naming_the_byte(wire, func, data, message):
    with pytest.raises(ProtocolError, match=message):
        getattr(wire, func)(bytes.fromhex(data))


def test_varint_decoders_accept_non_minimal_encodings_like_kafka(wire):
    assert wire.decode_uvarint(b"\x80\x80\x00") == (0, 3)
    assert wire.decode_varint(b"\x81\x00") == (-1, 2)


@pytest.mark.parametrize("func", ["decode_varint", "decode_varlong", "decode_uvarint"])
def test_varint_decoders_reject_positions_outside_the_buffer(wire, func):
    with pytest.raises(ProtocolError, match="byte"):
        getattr(wire, func)(b"\x00\x00", -1)
    with pytest.raises(ProtocolError, match="byte"):
        getattr(wire, func)(b"\x00\x00", 2)
    with pytest.raises(ProtocolError, match="byte"):
        getattr(wire, func)(b"\x00\x00", 2**70)


# ---------------------------------------------------------------- Reader / Writer round trips

# (method, values to write, what reading gives back when different from the value)
ROUND_TRIPS = [
    ("int8", [0, 1, -1, *INT8]),
    ("int16", [0, 1, -1, *INT16]),
    ("int32", [0, 1, -1, *INT32]),
    ("int64", [0, 1, -1, *INT64]),
    ("uint16", [0, 1, 2**16 - 1]),
    ("uint32", [0, 1, 2**31 - 1, 2**32 - 1]),
    ("float64", [0.0, -1.5, 1e308, float("inf"), float("-inf")]),
    ("boolean", [True, False]),
    ("uuid", [bytes(16), bytes(range(16)), b"\xff" * 16]),
    ("uvarint", [v for v, _ in UVARINT_CASES]),
    ("varint", [v for v, _ in VARINT_CASES]),
    ("varlong", [v for v, _ in VARLONG_CASES]),
    ("string", [None, "", "a", "client-1", "ünïcødé ✓", "x" * 32767]),
    ("compact_string", [None, "", "a", "ünïcødé ✓", "y" * 300]),
    ("bytes_", [None, b"", b"\x00", bytes(range(256))]),
    ("compact_bytes", [None, b"", b"\x00", bytes(range(256))]),
    ("array_length", [None, 0, 1, INT32[1]]),
    ("compact_array_length", [None, 0, 1, 126, 127, 2**32 - 2]),
    ("tagged_fields", [None, {0: b""}, {0: b"a", 1: b"bc", 300: b"\x00" * 200}, {2**32 - 1: b"z"}]),
]


def _roundtrip_cases():
    for method, values in ROUND_TRIPS:
        for value in values:
            yield pytest.param(method, value, id=f"{method}-{str(value)[:20]}")


@pytest.mark.parametrize(("method", "value"), list(_roundtrip_cases()))
def test_writer_then_reader_round_trip(wire, method, value):
    w = wire.Writer()
    w.int8(0x5A)  # a leading byte, so positions are not all zero
    getattr(w, method)(value)
    w.int8(0x5B)
    data = w.getvalue()
    assert len(w) == len(data)
    r = wire.Reader(data)
    assert r.int8() == 0x5A
    got = getattr(r, method)()
    assert got == value
    assert type(got) is type(value)
    assert r.int8() == 0x5B
    assert r.remaining() == 0


@pytest.mark.parametrize(
    ("method", "value", "hexed"),
    [
        ("int16", -2, "fffe"),
        ("int32", 1, "00000001"),
        ("int64", -1, "ff" * 8),
        ("uint16", 0xABCD, "abcd"),
        ("float64", 1.0, "3ff0000000000000"),
        ("boolean", True, "01"),
        ("string", "ab", "00026162"),
        ("string", None, "ffff"),
        ("compact_string", "ab", "036162"),
        ("compact_string", None, "00"),
        ("bytes_", b"\x01", "0000000101"),
        ("bytes_", None, "ffffffff"),
        ("compact_bytes", b"\x01", "0201"),
        ("compact_bytes", None, "00"),
        ("array_length", None, "ffffffff"),
        ("array_length", 3, "00000003"),
        ("compact_array_length", None, "00"),
        ("compact_array_length", 3, "04"),
        ("tagged_fields", None, "00"),
        ("tagged_fields", {}, "00"),
        ("tagged_fields", {5: b"\x07", 1: b""}, "02010005 0107".replace(" ", "")),
    ],
)
def test_writer_produces_kafka_wire_bytes(wire, method, value, hexed):
    w = wire.Writer()
    getattr(w, method)(value)
    assert w.getvalue().hex() == hexed


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("int8", 128),
        ("int8", -129),
        ("int16", 2**15),
        ("int32", 2**31),
        ("int64", 2**63),
        ("int64", -(2**63) - 1),
        ("uint16", -1),
        ("uint32", 2**32),
        ("uvarint", -1),
        ("varint", 2**31),
        ("varlong", 2**64),
        ("array_length", -1),
        ("compact_array_length", 2**32 - 1),
    ],
)
def test_writer_rejects_out_of_range_integers_with_value_error(wire, method, value):
    w = wire.Writer()
    with pytest.raises(ValueError, match="out of range"):
        getattr(w, method)(value)
    assert len(w) == 0


def test_writer_rejects_a_string_too_long_for_int16_length(wire):
    with pytest.raises(ValueError):
        wire.Writer().string("x" * 32768)


def test_writer_rejects_uuid_of_wrong_length(wire):
    with pytest.raises(ValueError):
        wire.Writer().uuid(b"\x00" * 15)


def test_writer_rejects_non_str_strings(wire):
    with pytest.raises(TypeError):
        wire.Writer().string(b"bytes")
    with pytest.raises(TypeError):
        wire.Writer().compact_string(5)


def test_writer_accepts_any_bytes_like(wire):
    w = wire.Writer()
    w.raw(memoryview(b"xab")[1:])
    w.bytes_(bytearray(b"cd"))
    w.compact_bytes(array.array("B", b"ef"))
    w.tagged_fields({3: memoryview(b"gh")})
    assert w.getvalue() == b"ab" + b"\x00\x00\x00\x02cd" + b"\x03ef" + b"\x01\x03\x02gh"


def test_getvalue_framed_prefixes_the_int32_length(wire):
    w = wire.Writer()
    assert w.getvalue_framed() == b"\x00\x00\x00\x00"
    w.raw(b"x" * 1000)
    w.int32(7)
    framed = w.getvalue_framed()
    assert framed[:4] == (1004).to_bytes(4, "big")
    assert framed[4:] == w.getvalue()
    w.int8(1)  # writing after getvalue_framed keeps appending
    assert w.getvalue()[-1:] == b"\x01"
    assert len(w) == 1005


def test_writer_grows_past_many_reallocations(wire):
    w = wire.Writer()
    for i in range(20000):
        w.int32(i)
    data = w.getvalue()
    r = wire.Reader(data)
    assert [r.int32() for _ in range(20000)] == list(range(20000))


# ---------------------------------------------------------------- truncation

TRUNCATION_CASES = [
    ("int8", 1),
    ("int16", 1),
    ("int32", 1),
    ("int64", 1),
    ("uint16", 1),
    ("uint32", 1),
    ("float64", 1.0),
    ("boolean", True),
    ("uuid", bytes(range(16))),
    ("uvarint", 2**32 - 1),
    ("varint", INT32[0]),
    ("varlong", INT64[0]),
    ("string", "hello"),
    ("compact_string", "hello"),
    ("bytes_", b"hello"),
    ("compact_bytes", b"hello"),
    ("array_length", 5),
    ("compact_array_length", 300),
    ("tagged_fields", {1: b"ab", 200: b"cde"}),
]


@pytest.mark.parametrize(("method", "value"), TRUNCATION_CASES)
def test_truncation_at_every_byte_raises_protocol_error_naming_the_byte(wire, method, value):
    w = wire.Writer()
    getattr(w, method)(value)
    data = w.getvalue()
    for cut in range(len(data)):
        r = wire.Reader(data[:cut])
        with pytest.raises(ProtocolError, match="byte"):
            getattr(r, method)()


@pytest.mark.parametrize(
    ("method", "data", "message"),
    [
        ("string", "fffe", "invalid length -2 for string at byte 0"),
        ("bytes_", "fffffffe", "invalid length -2 for bytes at byte 0"),
        ("array_length", "80000000", "invalid length -2147483648 for array at byte 0"),
        ("string", "0002ff61", "invalid utf-8 in string at byte 2"),
        ("compact_string", "03c328", "invalid utf-8 in compact_string at byte 1"),
        ("compact_bytes", "0561", "truncated compact_bytes at byte 1: needs 4 bytes, 1 remain"),
        ("int32", "000000", "truncated int32 at byte 0: needs 4 bytes, 3 remain"),
    ],
)
def test_malformed_fields_raise_protocol_error_with_what_and_where(wire, method, data, message):
    with pytest.raises(ProtocolError, match=message):
        getattr(wire.Reader(bytes.fromhex(data)), method)()


def test_reader_boolean_treats_any_non_zero_byte_as_true(wire):
    r = wire.Reader(b"\x00\x02\xff")
    assert [r.boolean(), r.boolean(), r.boolean()] == [False, True, True]


# ---------------------------------------------------------------- tagged fields


def test_tagged_fields_empty_section_reads_as_none_and_consumes_one_byte(wire):
    r = wire.Reader(b"\x00\x07")
    assert r.tagged_fields() is None
    assert r.pos == 1


def test_tagged_fields_keep_unknown_tags_raw_for_the_caller_to_skip(wire):
    w = wire.Writer()
    inner = wire.Writer()
    inner.compact_string("rack-1")
    w.tagged_fields({0: inner.getvalue(), 9999: b"\xde\xad"})
    w.int32(42)
    r = wire.Reader(w.getvalue())
    fields = r.tagged_fields()
    assert fields == {0: b"\x07rack-1", 9999: b"\xde\xad"}
    assert wire.Reader(fields[0]).compact_string() == "rack-1"
    assert r.int32() == 42


def test_tagged_fields_writer_orders_tags_increasingly(wire):
    w = wire.Writer()
    w.tagged_fields({7: b"c", 2: b"b", 0: b"a"})
    assert w.getvalue() == bytes([3, 0, 1]) + b"a" + bytes([2, 1]) + b"b" + bytes([7, 1]) + b"c"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("02 05 00 05 00", "tagged field 5 at byte 3 does not follow tag 5"),
        ("02 05 00 04 00", "tagged field 4 at byte 3 does not follow tag 5"),
    ],
)
def test_tagged_fields_reject_tags_that_are_not_strictly_increasing(wire, data, message):
    with pytest.raises(ProtocolError, match=message):
        wire.Reader(bytes.fromhex(data.replace(" ", ""))).tagged_fields()


def test_tagged_fields_writer_rejects_negative_tags(wire):
    with pytest.raises(ValueError):
        wire.Writer().tagged_fields({-1: b""})


# ---------------------------------------------------------------- raw / view / skip / pos


def test_reader_view_is_zero_copy(wire):
    buf = bytearray(b"abcdef")
    r = wire.Reader(buf, 1)
    v = r.view(3)
    assert isinstance(v, memoryview)
    assert bytes(v) == b"bcd"
    buf[2] = ord("X")
    assert bytes(v) == b"bXd"
    assert r.pos == 4


def test_reader_raw_copies_and_skip_advances(wire):
    r = wire.Reader(b"abcdef")
    r.skip(2)
    assert r.raw(3) == b"cde"
    assert r.remaining() == 1
    assert r.raw(0) == b""
    with pytest.raises(ProtocolError, match="truncated skip at byte 5: needs 2 bytes, 1 remain"):
        r.skip(2)
    with pytest.raises(ProtocolError, match="invalid length -1 for raw at byte 5"):
        r.raw(-1)


def test_reader_pos_is_settable_within_the_buffer(wire):
    r = wire.Reader(b"\x00\x01\x02\x03", 2)
    assert r.pos == 2
    assert r.int8() == 2
    r.pos = 0
    assert r.int16() == 1
    r.pos = 4
    assert r.remaining() == 0
    for bad in (-1, 5):
        with pytest.raises(ProtocolError, match="outside the buffer of 4 bytes"):
            r.pos = bad
    with pytest.raises(ProtocolError):
        wire.Reader(b"", 1)


def test_reader_takes_any_contiguous_bytes_like(wire):
    ints = array.array("i", [1])
    r = wire.Reader(ints)
    assert r.remaining() == ints.itemsize
    assert wire.Reader(memoryview(b"xx\x00\x05")[2:]).int16() == 5
    with pytest.raises(TypeError):
        wire.Reader("text")
    with pytest.raises(TypeError):
        wire.Reader(memoryview(b"abcd")[::2])


# ---------------------------------------------------------------- FrameSplitter


def _frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def test_frame_splitter_returns_complete_frames_and_keeps_partial_data(wire):
    s = wire.FrameSplitter(1000)
    stream = _frame(b"one") + _frame(b"") + _frame(b"three!")
    assert s.feed(stream[:2]) == []
    assert s.buffered() == 2
    assert s.feed(stream[2:9]) == [b"one"]
    assert s.buffered() == 2
    assert s.feed(stream[9:15]) == [b""]
    assert s.buffered() == 4
    assert s.feed(stream[15:]) == [b"three!"]
    assert s.buffered() == 0
    assert s.feed(b"") == []


def test_frame_splitter_accepts_a_frame_of_exactly_max_size(wire):
    s = wire.FrameSplitter(5)
    assert s.feed(_frame(b"12345")) == [b"12345"]


@pytest.mark.parametrize(
    ("head", "message"),
    [
        ((6).to_bytes(4, "big"), "frame size 6 at stream byte 9 exceeds max_frame_size 5"),
        ((-1).to_bytes(4, "big", signed=True), "frame size -1 at stream byte 9 is negative"),
    ],
)
def test_frame_splitter_rejects_bad_sizes_and_is_then_unusable(wire, head, message):
    s = wire.FrameSplitter(5)
    assert s.feed(_frame(b"12345")) == [b"12345"]
    with pytest.raises(ProtocolError, match=message):
        s.feed(head)
    with pytest.raises(ProtocolError, match="unusable"):
        s.feed(_frame(b"ok"))


def test_frame_splitter_rejects_an_oversize_size_split_across_chunks(wire):
    s = wire.FrameSplitter(100)
    s.feed(b"\x00\x00")
    with pytest.raises(ProtocolError, match="frame size 256 at stream byte 0"):
        s.feed(b"\x01\x00")


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
@settings(max_examples=200, deadline=None)
def test_frame_splitter_yields_the_same_frames_however_the_stream_is_chunked(wire, payloads, cuts):
    stream = b"".join(_frame(p) for p in payloads)
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    s = wire.FrameSplitter(300)
    got: list[bytes] = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        got += s.feed(memoryview(stream)[a:b])
    assert got == payloads
    assert s.buffered() == 0


def test_frame_splitter_rejects_a_negative_max_frame_size(wire):
    with pytest.raises(ValueError):
        wire.FrameSplitter(-1)


# ---------------------------------------------------------------- request / response headers

FLEXIBLE_FROM = {0: 9, 1: 12, 3: 9, 18: 3}

# ApiVersions v3 as librdkafka 2.x sends it: header v2 (client_id as an int16
# string, then an empty tagged-field section), body with compact
# client_software_name / client_software_version and an empty tagged section.
LIBRDKAFKA_API_VERSIONS_V3 = bytes.fromhex(
    "0012"  # api_key 18 ApiVersions
    "0003"  # api_version 3
    "00000001"  # correlation_id 1
    "0007" + b"rdkafka".hex() + "00"  # client_id, tagged fields
    "0b" + b"librdkafka".hex() + "06" + b"2.0.2".hex() + "00"  # body
)


def test_parse_request_header_v2_of_librdkafka_api_versions_v3(wire):
    header = wire.parse_request_header(LIBRDKAFKA_API_VERSIONS_V3, FLEXIBLE_FROM)
    assert header == (18, 3, 1, "rdkafka", 18)
    body = wire.Reader(LIBRDKAFKA_API_VERSIONS_V3, header[4])
    assert body.compact_string() == "librdkafka"
    assert body.compact_string() == "2.0.2"
    assert body.tagged_fields() is None
    assert body.remaining() == 0


def test_parse_request_header_v2_skips_header_tagged_fields(wire):
    w = wire.Writer()
    w.int16(3)
    w.int16(12)
    w.int32(-5)
    w.string(None)
    w.tagged_fields({0: b"xyz", 4: b""})
    w.int8(99)
    frame = w.getvalue()
    assert wire.parse_request_header(frame, FLEXIBLE_FROM) == (3, 12, -5, None, len(frame) - 1)


def test_parse_request_header_v1_has_no_tagged_fields(wire):
    # Metadata v1 (not flexible): the byte after client_id is already the body.
    frame = bytes.fromhex("0003 0001 0000002a 0003 616263 ffffffff".replace(" ", ""))
    assert wire.parse_request_header(frame, FLEXIBLE_FROM) == (3, 1, 42, "abc", 13)
    # An api_key absent from the table is never flexible.
    assert wire.parse_request_header(bytes.fromhex("03e7 7fff 00000000 ffff"), FLEXIBLE_FROM) == (
        999,
        32767,
        0,
        None,
        10,
    )


def test_parse_request_header_accepts_api_versions_v0_without_a_body(wire):
    frame = bytes.fromhex("0012 0000 00000007 0000".replace(" ", ""))
    assert wire.parse_request_header(frame, FLEXIBLE_FROM) == (18, 0, 7, "", 10)


def test_parse_request_header_truncated_anywhere_raises_protocol_error(wire):
    for cut in range(len(LIBRDKAFKA_API_VERSIONS_V3[:18])):
        with pytest.raises(ProtocolError, match="byte"):
            wire.parse_request_header(LIBRDKAFKA_API_VERSIONS_V3[:cut], FLEXIBLE_FROM)


def test_encode_response_header_v0_and_v1(wire):
    assert wire.encode_response_header(7, False) == b"\x00\x00\x00\x07"
    assert wire.encode_response_header(-1, True) == b"\xff\xff\xff\xff\x00"
    with pytest.raises(ValueError):
        wire.encode_response_header(2**31, False)
