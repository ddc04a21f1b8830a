"""Property tests of the record batch codec: round trips, native == reference, and garbage.

How inputs are counted: each hypothesis example builds one small valid batch and
derives ``MUTATIONS_PER_EXAMPLE`` inputs from it with a ``random.Random`` seeded
by a hypothesis-drawn integer (so a failure replays and shrinks like any other
example). A mutation test runs ``ceil(STREAMCORE_FUZZ_EXAMPLES /
MUTATIONS_PER_EXAMPLE)`` examples, so it feeds at least STREAMCORE_FUZZ_EXAMPLES
mutated or garbage inputs to each of ``decode_batch``, ``validate_batch`` and
``decode_batches``; batching keeps hypothesis's per-example overhead from
dominating when CI asks for 100,000 inputs. The round-trip tests count examples
(one batch each), FUZZ_EXAMPLES / 20 capped at 2,000, since a valid batch explores far less.

Mutations flip, overwrite, insert, delete and truncate bytes, set header fields
to edge values, write over-long varints, mutate the records inside a compressed
batch and recompress them, or replace the batch with garbage; most then get
their batchLength and CRC32C fixed up so the deeper checks (record count,
varints, lengths, offset deltas, decompression) are reached, not just the CRC.
"""

from __future__ import annotations

import math
import os
import random
import struct

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcore import codec
from streamcore._reference import compression as ref_compression
from streamcore._reference import record_batch as reference
from streamcore.errors import CorruptRecordError

FUZZ_INPUTS = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
MUTATIONS_PER_EXAMPLE = 50
MUTATION_EXAMPLES = max(1, math.ceil(FUZZ_INPUTS / MUTATIONS_PER_EXAMPLE))
ROUND_TRIP_EXAMPLES = max(1, min(FUZZ_INPUTS // 20, 2000))

FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": False,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
}


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


# ------------------------------------------------------------------ strategies

optional_bytes = st.none() | st.binary(max_size=48)
header_lists = st.none() | st.lists(
    st.tuples(st.text(max_size=6), st.none() | st.binary(max_size=6)), max_size=3
)


@st.composite
def batch_args(draw, max_records: int = 8):
    n = draw(st.integers(1, max_records))
    values = draw(st.lists(optional_bytes, min_size=n, max_size=n))
    keys = draw(st.none() | st.lists(optional_bytes, min_size=n, max_size=n))
    headers = draw(st.none() | st.lists(header_lists, min_size=n, max_size=n))
    first = draw(st.integers(0, 1 << 50))
    stamps = draw(st.lists(st.integers(first - 10**6, first + 10**9), min_size=n, max_size=n))
    kwargs = {
        "compression": draw(st.sampled_from(codec.COMPRESSION_TYPES)),
        "base_offset": draw(st.integers(0, 1 << 62)),
        "producer_id": draw(st.integers(-1, 1 << 62)),
        "producer_epoch": draw(st.integers(-1, 32767)),
        "base_sequence": draw(st.integers(-1, (1 << 31) - 1 - n)),
        "transactional": draw(st.booleans()),
        "control": draw(st.booleans()),
        "log_append_time": draw(st.booleans()),
        "partition_leader_epoch": draw(st.integers(-1, (1 << 31) - 1)),
    }
    return (values, keys, headers, stamps), kwargs


def header_tuple(b) -> tuple:
    return (
        b.base_offset, b.batch_length, b.partition_leader_epoch, b.crc, b.attributes,
        b.last_offset - b.base_offset, b.first_timestamp, b.max_timestamp, b.producer_id,
        b.producer_epoch, b.base_sequence, b.record_count,
    )  # fmt: skip


def batch_view(b) -> tuple:
    fields = (b.magic, b.compression, b.timestamp_type, b.is_transactional, b.is_control, b.last_offset)
    records = [(r.offset, r.timestamp_ms, r.key, r.value, list(r.headers)) for r in b]
    return header_tuple(b), fields, records


def columns_view(b) -> tuple:
    cols = b.to_columns()
    names = ("offset", "timestamp_ms", "key_offset", "key_length", "value_offset", "value_length")
    return bytes(cols["buffer"]), tuple((str(cols[k].dtype), cols[k].tolist()) for k in names)


def outcome(fn, data):
    """What ``fn(data)`` did: "corrupt", or a comparable view of its result."""
    try:
        result = fn(data)
    except CorruptRecordError as exc:
        assert "byte" in str(exc), str(exc)
        return "corrupt"
    if isinstance(result, list):
        return [(batch_view(b), columns_view(b)) for b in result]
    if hasattr(result, "records"):
        return batch_view(result), columns_view(result)
    return tuple(result)


def expected_records(args, kwargs) -> list[tuple]:
    values, keys, headers, stamps = args
    n = len(values)
    keys = keys or [None] * n
    headers = [h or [] for h in (headers or [None] * n)]
    stamps = [max(stamps)] * n if kwargs["log_append_time"] else stamps
    return [(kwargs["base_offset"] + i, stamps[i], keys[i], values[i], headers[i]) for i in range(n)]


# ------------------------------------------------------------------ valid batches


@settings(max_examples=ROUND_TRIP_EXAMPLES, **FUZZ_SETTINGS)
@given(batch_args())
def test_random_valid_batches_round_trip(spec):
    args, kwargs = spec
    data = codec.encode_batch(*args, **kwargs)
    b = codec.decode_batch(data)
    assert [(r.offset, r.timestamp_ms, r.key, r.value, list(r.headers)) for r in b] == expected_records(
        args, kwargs
    )
    assert b.compression == kwargs["compression"]
    assert b.is_transactional == kwargs["transactional"]
    assert b.is_control == kwargs["control"]
    assert b.timestamp_type == int(kwargs["log_append_time"])
    assert tuple(codec.validate_batch(data)) == header_tuple(b)


@settings(max_examples=ROUND_TRIP_EXAMPLES, **FUZZ_SETTINGS)
@given(spec=batch_args())
def test_native_and_reference_agree_on_random_valid_batches(spec):
    native = _native_record_batch()
    args, kwargs = spec
    from_ref = reference.encode_batch(*args, **kwargs)
    from_nat = native.encode_batch(*args, **kwargs)
    if kwargs["compression"] == "none":
        assert from_ref == from_nat
    for data in (from_ref, from_nat):
        for name in ("decode_batch", "validate_batch", "decode_batches"):
            assert outcome(getattr(reference, name), data) == outcome(getattr(native, name), data), name


# ------------------------------------------------------------------ mutations

_HEADER_FIELDS = [(8, ">i"), (16, ">b"), (21, ">h"), (23, ">i"), (57, ">i"), (27, ">q")]
_EDGE_INTS = [-(1 << 31), -3, -2, -1, 0, 1, 2, 3, 4, 5, 7, 8, 48, 49, 50, 127, 128, (1 << 31) - 1]
_VARINT_JUNK = [
    b"\xff" * 10 + b"\x01",
    b"\x80" * 5 + b"\x00",
    b"\xff\xff\xff\xff\x7f",
    b"\x03",
    b"\x01",
    b"\x7f",
]


def _fix_up(data: bytearray, rng: random.Random) -> None:
    if len(data) >= 12 and rng.random() < 0.7:
        struct.pack_into(">i", data, 8, len(data) - 12)
    if len(data) >= 21 and rng.random() < 0.8:
        struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))


def _rebuild(base: bytes, region: bytes, codec_id: int) -> bytearray:
    """``base``'s header around ``region`` (the uncompressed records), recompressed."""
    body = ref_compression.compress(codec_id, region) if codec_id else region
    return bytearray(base[:61]) + body


def mutate(rng: random.Random, base: bytes, plain_region: bytes, codec_id: int) -> bytes:
    data = bytearray(base)
    op = rng.randrange(11)
    if op == 0:
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif op == 1:
        del data[rng.randrange(len(data)) :]
    elif op == 2:
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.randbytes(rng.randrange(1, 9))
    elif op == 3:
        at = rng.randrange(len(data))
        del data[at : at + rng.randrange(1, 9)]
    elif op == 4:
        at, fmt = rng.choice(_HEADER_FIELDS)
        value = rng.choice(_EDGE_INTS)
        lim = 1 << (struct.calcsize(fmt) * 8 - 1)
        struct.pack_into(fmt, data, at, max(-lim, min(lim - 1, value)))
    elif op == 5:
        at = rng.randrange(61, len(data) + 1)
        junk = rng.choice(_VARINT_JUNK)
        data[at : at + len(junk)] = junk
    elif op == 6:
        return rng.randbytes(rng.randrange(0, 130))
    elif op in (7, 8):
        region = bytearray(plain_region)
        if op == 7 and region:
            for _ in range(rng.randrange(1, 3)):
                region[rng.randrange(len(region))] = rng.randrange(256)
        else:
            at = rng.randrange(len(region) + 1)
            junk = rng.choice(_VARINT_JUNK)
            region[at : at + rng.randrange(0, 3)] = junk
        data = _rebuild(base, bytes(region), codec_id)
        struct.pack_into(">i", data, 8, len(data) - 12)
        struct.pack_into(">I", data, 17, crc32c.crc32c(bytes(data[21:])))
        return bytes(data)
    elif op == 9:
        # several batches, the last one possibly cut short: no fix-up
        return bytes(data) * rng.randrange(1, 3) + bytes(data[: rng.randrange(len(data))])
    else:
        at = rng.randrange(len(data))
        data[at] = rng.randrange(256)
    _fix_up(data, rng)
    return bytes(data)


@st.composite
def mutation_seeds(draw):
    values = draw(st.lists(optional_bytes.map(lambda v: v if v is None else v[:12]), min_size=1, max_size=4))
    n = len(values)
    keys = draw(st.none() | st.lists(st.none() | st.binary(max_size=6), min_size=n, max_size=n))
    headers = draw(st.none() | st.lists(header_lists, min_size=n, max_size=n))
    compression = draw(st.sampled_from(codec.COMPRESSION_TYPES))
    flags = draw(st.sampled_from([{}, {"log_append_time": True}, {"transactional": True, "producer_id": 5}]))
    base = reference.encode_batch(
        values, keys, headers, list(range(100, 100 + n)), compression=compression, **flags
    )
    plain = reference.encode_batch(values, keys, headers, list(range(100, 100 + n)), **flags)
    return base, plain[61:], codec.COMPRESSION_TYPES.index(compression), draw(st.integers(0, 1 << 64))


def _inputs(seed_spec) -> list[bytes]:
    base, plain_region, codec_id, seed = seed_spec
    rng = random.Random(seed)
    return [mutate(rng, base, plain_region, codec_id) for _ in range(MUTATIONS_PER_EXAMPLE)]


@settings(max_examples=MUTATION_EXAMPLES, **FUZZ_SETTINGS)
@given(mutation_seeds())
def test_mutated_inputs_raise_only_corrupt_record_error(seed_spec):
    for data in _inputs(seed_spec):
        for fn in (codec.decode_batch, codec.validate_batch, codec.decode_batches):
            outcome(fn, data)  # anything but success or CorruptRecordError fails the test


@settings(max_examples=MUTATION_EXAMPLES, **FUZZ_SETTINGS)
@given(mutation_seeds())
def test_native_and_reference_agree_on_mutated_inputs(seed_spec):
    native = _native_record_batch()
    for data in _inputs(seed_spec):
        for name in ("decode_batch", "validate_batch", "decode_batches"):
            ref = outcome(getattr(reference, name), data)
            nat = outcome(getattr(native, name), data)
            assert ref == nat, (name, data.hex())
