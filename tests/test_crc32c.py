"""CRC-32C capability: known vectors, incremental use, buffer types, and native == reference.

Every test runs against the implementation ``streamcore._impl`` selected
(``selected``), the reference twin, and the native module when it is built.
"""

from __future__ import annotations

import random

import crc32c as crc32c_pkg
import numpy as np
import pytest

import streamcore
from streamcore import _impl
from streamcore._reference import crc32c as reference_crc32c


def _native_crc32c():
    try:
        from streamcore import _native
    except ImportError as exc:
        pytest.skip(f"streamcore._native is not built: {exc}")
    return _native.crc32c


@pytest.fixture(params=["selected", "reference", "native"])
def crc(request):
    """The crc32c function of one implementation."""
    if request.param == "selected":
        return _impl.crc32c.crc32c
    if request.param == "reference":
        return reference_crc32c.crc32c
    return _native_crc32c().crc32c


RFC3720_VECTORS = [
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"123456789", 0xE3069283),
]


@pytest.mark.parametrize("data,expected", RFC3720_VECTORS, ids=["zeros", "ones", "incr", "decr", "check"])
def test_crc32c_matches_rfc3720_and_check_vectors(crc, data, expected):
    assert crc(data) == expected


def test_crc32c_of_empty_input_is_zero(crc):
    assert crc(b"") == 0
    assert crc(bytearray()) == 0
    assert crc(memoryview(b"")) == 0


def test_crc32c_of_empty_input_keeps_the_running_value(crc):
    assert crc(b"", 0x12345678) == 0x12345678


def test_top_level_crc32c_is_the_selected_implementation():
    assert streamcore.crc32c is _impl.crc32c.crc32c
    assert streamcore.crc32c(b"123456789") == 0xE3069283


def test_crc32c_incremental_value_equals_one_shot(crc):
    rng = random.Random(7)
    data = rng.randbytes(10_000)
    for cut in (0, 1, 7, 8, 63, 64, 4095, 4096, 4097, 9999, 10_000):
        assert crc(data[cut:], crc(data[:cut])) == crc(data), cut
    # many small pieces, including empty ones
    value = 0
    pos = 0
    while pos < len(data):
        step = rng.randrange(0, 300)
        value = crc(data[pos : pos + step], value)
        pos += step
    assert value == crc(data)


def test_crc32c_equals_the_crc32c_package_on_random_buffers(crc):
    rng = random.Random(11)
    for size in list(range(0, 70)) + [255, 256, 1000, 4095, 4096, 4097, 65_536, 100_003, 1 << 20]:
        data = rng.randbytes(size)
        start = rng.randrange(0, 1 << 32)
        assert crc(data) == crc32c_pkg.crc32c(data), size
        assert crc(data, start) == crc32c_pkg.crc32c(data, start), size


def test_crc32c_accepts_bytearray_memoryview_and_numpy(crc):
    data = random.Random(3).randbytes(5000)
    expected = crc32c_pkg.crc32c(data)
    assert crc(bytearray(data)) == expected
    assert crc(memoryview(data)) == expected
    assert crc(np.frombuffer(data, dtype=np.uint8)) == expected
    # a multi-byte numpy dtype is checksummed as its raw bytes
    ints = np.arange(1000, dtype=np.int32)
    assert crc(ints) == crc32c_pkg.crc32c(ints.tobytes())
    grid = np.arange(60, dtype=np.uint16).reshape(6, 10)
    assert crc(grid) == crc32c_pkg.crc32c(grid.tobytes())


@pytest.mark.parametrize("offset", range(1, 16))
def test_crc32c_of_unaligned_memoryview_slices(crc, offset):
    data = random.Random(offset).randbytes(9000)
    view = memoryview(data)
    for length in (0, 1, 15, 16, 17, 100, 4096, 8000):
        piece = view[offset : offset + length]
        assert crc(piece) == crc32c_pkg.crc32c(data[offset : offset + length]), length


def test_crc32c_of_non_contiguous_memoryview_raises_buffer_error(crc):
    with pytest.raises(BufferError):
        crc(memoryview(b"abcdefgh")[::2])


def test_crc32c_of_non_contiguous_numpy_array_raises_value_error(crc):
    with pytest.raises(ValueError):
        crc(np.arange(16, dtype=np.uint8)[::2])


@pytest.mark.parametrize("bad", ["text", None, 5, 1.5], ids=["str", "none", "int", "float"])
def test_crc32c_of_a_non_buffer_raises_type_error(crc, bad):
    with pytest.raises(TypeError):
        crc(bad)


def test_native_and_reference_crc32c_agree_on_random_inputs():
    native = _native_crc32c().crc32c
    rng = random.Random(99)
    for _ in range(300):
        data = rng.randbytes(rng.randrange(0, 20_000))
        value = rng.randrange(0, 1 << 32)
        assert native(data, value) == reference_crc32c.crc32c(data, value)
