"""Behaviour of the native (Rust) crc32c and record_batch that the reference twin has no
counterpart for: the portable CRC path, CPU feature reporting, and how decoded records
are materialised.

Skipped when ``streamcore._native`` is not built (the pure-Python CI run).
"""

from __future__ import annotations

import random

import crc32c as crc32c_pkg
import pytest

from streamcore._reference import record_batch as reference_rb

native = pytest.importorskip("streamcore._native", reason="streamcore._native is not built")

KNOWN_FEATURES = {"sse4.2", "pclmulqdq", "avx2", "avx512f", "avx512vl", "vpclmulqdq", "crc", "pmull", "sha3"}


def test_software_crc_path_matches_the_crc32c_package():
    rng = random.Random(5)
    for size in [*range(0, 40), 63, 64, 65, 4095, 4096, 4097, 100_003]:
        data = rng.randbytes(size)
        start = rng.randrange(0, 1 << 32)
        assert native.crc32c._software_crc32c(data, start) == crc32c_pkg.crc32c(data, start), size


def test_software_and_accelerated_paths_agree_on_unaligned_slices():
    data = memoryview(random.Random(8).randbytes(20_000))
    for offset in range(0, 9):
        piece = data[offset : offset + 12_345]
        assert native.crc32c._software_crc32c(piece) == native.crc32c.crc32c(piece)


def test_implementation_detail_and_cpu_features_describe_this_machine():
    detail = native.crc32c.implementation_detail()
    features = native.crc32c.cpu_features()
    assert isinstance(detail, str) and detail
    assert isinstance(features, list) and set(features) <= KNOWN_FEATURES
    if "sse4.2" in features and "pclmulqdq" in features:
        assert "crc-fast" in detail
    else:
        assert "software" in detail


def _batch(n: int = 5, **kwargs: object) -> bytes:
    return native.record_batch.encode_batch(
        [b"v%d" % i for i in range(n)], timestamps_ms=[1000 + i for i in range(n)], **kwargs
    )


def test_records_are_native_records_equal_to_the_reference_named_tuples():
    data = _batch(headers=[[("h", b"x")], None, [], [("k", None)], None])
    nat = native.record_batch.decode_batch(data).records
    ref = reference_rb.decode_batch(data).records
    assert all(type(r) is native.record_batch.Record for r in nat)
    assert nat == ref and ref == nat
    assert list(native.record_batch.decode_batch(data)) == ref
    assert nat[0]._fields == ("offset", "timestamp_ms", "key", "value", "headers")


def test_records_list_is_built_once_per_batch():
    batch = native.record_batch.decode_batch(_batch())
    assert batch.records is batch.records
    assert list(batch) == batch.records
    assert len(batch) == 5


def test_each_record_gets_its_own_headers_list():
    records = native.record_batch.decode_batch(_batch()).records
    records[0].headers.append(("mutated", None))
    assert records[1].headers == []


def test_validate_returns_a_named_batch_info():
    info = native.record_batch.validate_batch(_batch(3))
    assert info.record_count == 3 and info.last_offset_delta == 2
    assert tuple(info) == tuple(reference_rb.validate_batch(_batch(3)))


def test_decoding_a_bytearray_is_not_affected_by_later_changes_to_it():
    buf = bytearray(_batch())
    batch = native.record_batch.decode_batch(buf)
    buf[:] = bytes(len(buf))
    assert [r.value for r in batch.records] == [b"v%d" % i for i in range(5)]


def test_the_encoders_private_copy_of_a_list_is_out_of_other_threads_reach():
    # encode_batch reads a list of bytes from a copy of it, with the GIL released for a
    # large batch. Were the copy tracked by the garbage collector, another thread could
    # find it (gc.get_objects, gc.get_referrers) and empty it under the codec's feet.
    import gc
    import threading
    import time

    count, size = 16, 4 << 20  # 64 MiB: long enough with the GIL released to look around
    values = [bytes([65 + i]) * size for i in range(count)]
    stop = threading.Event()
    seen: list[int] = []

    def look_around() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            for obj in gc.get_objects():
                if type(obj) is list and obj is not values and len(obj) == count and obj[0] is values[0]:
                    seen.append(len(obj))
            time.sleep(0)

    looker = threading.Thread(target=look_around)
    looker.start()
    try:
        for _ in range(3):
            out = native.record_batch.encode_batch(values, timestamps_ms=[1] * count)
    finally:
        stop.set()
        looker.join()
    assert seen == []
    assert reference_rb.decode_batch(out).records[-1].value == values[-1]
