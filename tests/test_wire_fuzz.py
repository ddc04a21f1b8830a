"""Property tests of the wire primitives: garbage never escapes as anything but
ProtocolError, and the Cython twin agrees with the reference byte for byte,
value for value and message for message.

Example budget: STREAMCORE_FUZZ_EXAMPLES (CI sets a large one; 2000 by default).
"""

from __future__ import annotations

import importlib
import math
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamcore._reference.wire as REF
from streamcore.errors import ProtocolError

FUZZ_EXAMPLES = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
# Each garbage example checks the drawn buffer plus GARBAGE_BATCH - 1 seeded variants
# of it: hypothesis' per-example overhead would otherwise make a 100,000-buffer CI
# budget take far too long. The examples still cover >= FUZZ_EXAMPLES buffers.
GARBAGE_BATCH = 25
GARBAGE = settings(
    max_examples=max(math.ceil(FUZZ_EXAMPLES / GARBAGE_BATCH), min(FUZZ_EXAMPLES, 300)),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Agreement on random well-formed input: a fixed share of the budget is plenty.
AGREEMENT = settings(
    max_examples=min(FUZZ_EXAMPLES, 1000),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CY_NAME = "streamcore._cy_wire"


def _cython_or_none():
    try:
        return importlib.import_module(CY_NAME)
    except ModuleNotFoundError as exc:
        if exc.name != CY_NAME:
            raise
        return None


CY = _cython_or_none()
needs_cython = pytest.mark.skipif(CY is None, reason=f"{CY_NAME} is not built (tools/dev_build.sh cython)")


@pytest.fixture(scope="module", params=["py", "cy"], ids=["py-wire", "cy-wire"])
def wire(request):
    if request.param == "py":
        return REF
    if CY is None:
        pytest.skip(f"{CY_NAME} is not built (tools/dev_build.sh cython)")
    return CY


READER_METHODS = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint16",
    "uint32",
    "float64",
    "boolean",
    "uuid",
    "uvarint",
    "varint",
    "varlong",
    "string",
    "compact_string",
    "bytes_",
    "compact_bytes",
    "array_length",
    "compact_array_length",
    "tagged_fields",
]
SIZED_METHODS = ["raw", "view", "skip"]

# Byte patterns that steer garbage towards interesting paths: null markers, negative
# and huge lengths, varint continuation bytes, a lone UTF-8 lead byte.
PIECES = [
    b"\xff\xff",
    b"\x00\x00",
    b"\x00\x01",
    b"\x00\x00\x00\x02",
    b"\x7f\xff\xff\xff",
    b"\xff\xff\xff\xfe",
    b"\x80",
    b"\xff",
    b"\x0f",
    b"\x10",
    b"\x01",
    b"\x02",
    b"\xc3",
]
garbage = st.one_of(
    st.binary(max_size=96),
    st.lists(st.one_of(st.binary(max_size=6), st.sampled_from(PIECES)), max_size=24).map(b"".join),
)
sizes = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**63, 2**80, -(2**70)]))
flexible_tables = st.dictionaries(st.integers(-(2**15), 2**15 - 1), st.integers(-3, 20), max_size=4)
program = st.lists(
    st.one_of(st.sampled_from(READER_METHODS), st.tuples(st.sampled_from(SIZED_METHODS), sizes))
)


def _variants(data: bytes, seed: int):
    """``data`` and GARBAGE_BATCH - 1 seeded mutations of it (cut, flipped, spliced, fresh)."""
    rng = random.Random(seed)
    yield data
    for _ in range(GARBAGE_BATCH - 1):
        kind = rng.randrange(4)
        if kind == 0 and data:
            yield data[: rng.randrange(len(data))]
        elif kind == 1 and data:
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            yield bytes(mutated)
        elif kind == 2:
            at = rng.randint(0, len(data))
            yield data[:at] + rng.choice(PIECES) + data[at:]
        else:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(48)))


def _normal(value):
    """Make a result comparable: views by content, floats by bit-faithful hex (NaN too)."""
    if isinstance(value, memoryview):
        return ("view", value.tobytes())
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, tuple):
        return tuple(_normal(v) for v in value)
    return value


def _outcome(call):
    """("ok", result) or ("ProtocolError", message); any other exception fails the test."""
    try:
        return ("ok", _normal(call()))
    except ProtocolError as exc:
        return ("ProtocolError", str(exc))


def _call(reader, op):
    if isinstance(op, tuple):
        name, n = op
        return getattr(reader, name)(n)
    return getattr(reader, op)()


def _decode_everything(wire, data: bytes, pos: int, ops, flexible_from) -> list:
    """Feed ``data`` to every decoding entry point; return every outcome in order."""
    out = []
    start = min(pos, len(data))
    for name in READER_METHODS:
        r = wire.Reader(data, start)
        out.append((name, _outcome(lambda r=r, name=name: getattr(r, name)()), r.pos))
    for name in SIZED_METHODS:
        r = wire.Reader(data, start)
        out.append((name, _outcome(lambda r=r, name=name: getattr(r, name)(pos)), r.pos))
    r = wire.Reader(data)
    for op in ops:
        result = _outcome(lambda op=op: _call(r, op))
        out.append((op, result, r.pos, r.remaining()))
        if result[0] != "ok":
            break
    out.append(("header", _outcome(lambda: wire.parse_request_header(data, flexible_from))))
    for func in ("decode_varint", "decode_varlong", "decode_uvarint"):
        out.append((func, _outcome(lambda func=func: getattr(wire, func)(data, pos - 3))))
    out.append(("pos", _outcome(lambda: wire.Reader(data, pos - 3).pos)))
    return out


@given(
    data=garbage,
    seed=st.integers(0, 2**32),
    pos=st.integers(0, 100),
    ops=program,
    flexible_from=flexible_tables,
)
@GARBAGE
def test_garbage_raises_only_protocol_error(wire, data, seed, pos, ops, flexible_from):
    for buf in _variants(data, seed):
        for entry in _decode_everything(wire, buf, pos, ops, flexible_from):
            result = entry[1]
            if result[0] == "ProtocolError":
                assert "byte" in result[1], (buf, entry)


@needs_cython
@given(
    data=garbage,
    seed=st.integers(0, 2**32),
    pos=st.integers(0, 100),
    ops=program,
    flexible_from=flexible_tables,
)
@GARBAGE
def test_garbage_gives_identical_results_and_errors_in_both(data, seed, pos, ops, flexible_from):
    for buf in _variants(data, seed):
        assert _decode_everything(CY, buf, pos, ops, flexible_from) == _decode_everything(
            REF, buf, pos, ops, flexible_from
        ), buf


# ---------------------------------------------------------------- writing


def _ints(lo: int, hi: int):
    # Mostly in range, sometimes just outside or far outside.
    return st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, lo - 1, hi + 1]), st.integers())


WRITE_VALUES = {
    "int8": _ints(-(2**7), 2**7 - 1),
    "int16": _ints(-(2**15), 2**15 - 1),
    "int32": _ints(-(2**31), 2**31 - 1),
    "int64": _ints(-(2**63), 2**63 - 1),
    "uint16": _ints(0, 2**16 - 1),
    "uint32": _ints(0, 2**32 - 1),
    "uvarint": _ints(0, 2**32 - 1),
    "varint": _ints(-(2**31), 2**31 - 1),
    "varlong": _ints(-(2**63), 2**63 - 1),
    "float64": st.floats(),
    "boolean": st.booleans(),
    "uuid": st.binary(min_size=15, max_size=17),
    "string": st.none() | st.text(max_size=40),
    "compact_string": st.none() | st.text(max_size=40),
    "bytes_": st.none() | st.binary(max_size=40),
    "compact_bytes": st.none() | st.binary(max_size=40),
    "array_length": st.none() | _ints(0, 2**31 - 1),
    "compact_array_length": st.none() | _ints(0, 2**32 - 2),
    "tagged_fields": st.none()
    | st.dictionaries(
        st.one_of(st.integers(0, 300), st.integers(-2, 2**33)), st.binary(max_size=12), max_size=5
    ),
    "raw": st.binary(max_size=20),
}
write_ops = st.lists(
    st.one_of(*(st.tuples(st.just(name), values) for name, values in WRITE_VALUES.items())), max_size=20
)


def _write_program(wire, ops):
    w = wire.Writer()
    results = []
    for name, value in ops:
        try:
            getattr(w, name)(value)
            results.append((name, "ok", len(w)))
        except (ValueError, TypeError) as exc:
            results.append((name, type(exc).__name__, str(exc), len(w)))
    return w, results


@given(ops=write_ops)
@AGREEMENT
def test_whatever_is_written_reads_back_the_same(wire, ops):
    w, results = _write_program(wire, ops)
    r = wire.Reader(w.getvalue())
    for (name, value), result in zip(ops, results, strict=True):
        if result[1] != "ok":
            continue
        got = r.raw(len(value)) if name == "raw" else getattr(r, name)()
        if name == "float64":
            assert got.hex() == float(value).hex()
        elif name == "tagged_fields":
            assert got == (value or None)
        else:
            assert got == value
    assert r.remaining() == 0


@needs_cython
@given(ops=write_ops)
@AGREEMENT
def test_writers_produce_identical_bytes_and_errors(ops):
    w_cy, results_cy = _write_program(CY, ops)
    w_ref, results_ref = _write_program(REF, ops)
    assert results_cy == results_ref
    assert w_cy.getvalue() == w_ref.getvalue()
    assert w_cy.getvalue_framed() == w_ref.getvalue_framed()


def _encode_outcome(func, n):
    try:
        return ("ok", func(n))
    except ValueError as exc:
        return ("ValueError", str(exc))


@needs_cython
@given(n=st.one_of(st.integers(-(2**64), 2**64), st.integers()))
@AGREEMENT
def test_varint_encoders_agree(n):
    for name in ("encode_varint", "encode_varlong", "encode_uvarint", "size_of_varint", "size_of_varlong"):
        assert _encode_outcome(getattr(CY, name), n) == _encode_outcome(getattr(REF, name), n), name
    flexible = n % 2 == 0
    assert _encode_outcome(lambda v: CY.encode_response_header(v, flexible), n) == _encode_outcome(
        lambda v: REF.encode_response_header(v, flexible), n
    )


# ---------------------------------------------------------------- framing


def _split(wire, stream: bytes, cuts, max_frame_size: int):
    s = wire.FrameSplitter(max_frame_size)
    bounds = sorted({c for c in cuts if c < len(stream)} | {0, len(stream)})
    out = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        out.append((_outcome(lambda a=a, b=b: s.feed(stream[a:b])), s.buffered()))
    return out


@needs_cython
@given(
    stream=st.one_of(
        garbage,
        st.lists(st.binary(max_size=40), max_size=8).map(
            lambda ps: b"".join(len(p).to_bytes(4, "big") + p for p in ps)
        ),
    ),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    max_frame_size=st.integers(0, 64),
)
@AGREEMENT
def test_frame_splitters_agree_on_any_stream(stream, cuts, max_frame_size):
    assert _split(CY, stream, cuts, max_frame_size) == _split(REF, stream, cuts, max_frame_size)
