"""The log cleaner's core over segment files, for both twins (native and reference).

Each test writes ``<base:020d>.log`` segments with the codec, builds an offset map,
cleans into an output directory and reads the ``.cleaned`` files back with the
codec's decoder (which checks every CRC).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from streamcore._reference import cleaner as reference_cleaner
from streamcore._reference.cleaner.throttle import Throttle
from streamcore._reference.record_batch import decode_batches, encode_batch
from streamcore.errors import CorruptRecordError, StorageError

HORIZON_FLAG = 0x40


def native_cleaner() -> ModuleType:
    """``streamcore._native.cleaner``: the extension is built for both test passes."""
    from streamcore import _native  # type: ignore[attr-defined]

    return _native.cleaner


@pytest.fixture(params=["reference", "native"])
def twin(request) -> ModuleType:
    return reference_cleaner if request.param == "reference" else native_cleaner()


def batch(base: int, recs, *, ts: int = 1_000, **kw) -> bytes:
    """One batch at ``base`` of (key, value) pairs, all with timestamp ``ts``."""
    keys = [k for k, _ in recs]
    values = [v for _, v in recs]
    return encode_batch(values, keys, None, [ts] * len(recs), base_offset=base, **kw)


def segment(d: Path, base: int, batches) -> str:
    p = d / f"{base:020d}.log"
    p.write_bytes(b"".join(batches))
    return str(p)


def records(path: str) -> list[tuple[int, bytes | None, bytes | None]]:
    with open(path, "rb") as f:
        data = f.read()
    return [(r.offset, r.key, r.value) for b in decode_batches(data) for r in b.records]


def clean(twin, segs, out: Path, *, now_ms: int = 0, retention: int = 1_000, **kw):
    out.mkdir(exist_ok=True)
    m = twin.build_offset_map(segs, 0, 1 << 62, memory_bytes=1 << 16)
    return twin.clean_segments(segs, m, out_dir=out, now_ms=now_ms, delete_retention_ms=retention, **kw)


def test_only_the_latest_record_per_key_is_kept_at_its_own_offset(twin, tmp_path):
    s0 = segment(
        tmp_path, 0, [batch(0, [(b"a", b"1"), (b"b", b"1")]), batch(2, [(b"a", b"2"), (None, b"x")])]
    )
    s1 = segment(tmp_path, 4, [batch(4, [(b"c", b"1"), (b"a", b"3")])])
    r = clean(twin, [s0, s1], tmp_path / "out")
    assert [s.inputs for s in r.segments] == [[s0, s1]]
    assert r.segments[0].path == str(tmp_path / "out" / f"{0:020d}.log.cleaned")
    assert records(r.segments[0].path) == [(1, b"b", b"1"), (4, b"c", b"1"), (5, b"a", b"3")]
    assert (r.stats.superseded_removed, r.stats.keyless_removed, r.stats.records_kept) == (2, 1, 3)


def test_untouched_batches_are_copied_byte_for_byte(twin, tmp_path):
    b0, b1 = batch(0, [(b"a", b"1")]), batch(1, [(b"b", b"1")], compression="gzip")
    r = clean(twin, [segment(tmp_path, 0, [b0, b1])], tmp_path / "out")
    assert Path(r.segments[0].path).read_bytes() == b0 + b1


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_a_rewritten_batch_keeps_offsets_producer_fields_and_codec(twin, tmp_path, codec):
    b = batch(
        10,
        [(b"k", b"old"), (b"j", b"v"), (b"k", b"new")],
        compression=codec,
        producer_id=7,
        producer_epoch=3,
        base_sequence=40,
        partition_leader_epoch=5,
    )
    r = clean(twin, [segment(tmp_path, 10, [b])], tmp_path / "out")
    (out,) = decode_batches(Path(r.segments[0].path).read_bytes())
    assert (out.base_offset, out.last_offset, out.record_count) == (10, 12, 2)
    assert (out.producer_id, out.producer_epoch, out.base_sequence) == (7, 3, 40)
    assert out.partition_leader_epoch == 5
    assert out.compression == codec
    assert [(r.offset, r.key, r.value) for r in out.records] == [(11, b"j", b"v"), (12, b"k", b"new")]


def test_timestamps_are_kept_and_base_and_max_follow_the_kept_records(twin, tmp_path):
    recs = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2")]
    b = encode_batch([v for _, v in recs], [k for k, _ in recs], None, [500, 700, 600])
    r = clean(twin, [segment(tmp_path, 0, [b])], tmp_path / "out")
    (out,) = decode_batches(Path(r.segments[0].path).read_bytes())
    assert [x.timestamp_ms for x in out.records] == [700, 600]
    assert (out.first_timestamp, out.max_timestamp) == (700, 700)
    assert r.segments[0].max_timestamp == 700


def test_tombstones_get_a_delete_horizon_then_vanish_once_it_passes(twin, tmp_path):
    s = segment(tmp_path, 0, [batch(0, [(b"a", b"1"), (b"a", None), (b"b", b"2")])])
    r1 = clean(twin, [s], tmp_path / "o1", now_ms=5_000, retention=1_000)
    (b1,) = decode_batches(Path(r1.segments[0].path).read_bytes())
    assert b1.attributes & HORIZON_FLAG and b1.first_timestamp == 6_000
    assert [(x.offset, x.value) for x in b1.records] == [(1, None), (2, b"2")]
    assert [x.timestamp_ms for x in b1.records] == [1_000, 1_000]
    again = tmp_path / "again"
    again.mkdir()
    s2 = str(again / f"{0:020d}.log")
    os.replace(r1.segments[0].path, s2)
    r2 = clean(twin, [s2], tmp_path / "o2", now_ms=5_999)
    assert records(r2.segments[0].path) == [(1, b"a", None), (2, b"b", b"2")]
    assert Path(r2.segments[0].path).read_bytes() == Path(s2).read_bytes()
    r3 = clean(twin, [s2], tmp_path / "o3", now_ms=6_000)
    assert records(r3.segments[0].path) == [(2, b"b", b"2")]
    assert r3.stats.tombstones_removed == 1


def test_a_producers_last_batch_stays_as_an_empty_header(twin, tmp_path):
    p = {"producer_id": 9, "producer_epoch": 0}
    s = segment(
        tmp_path,
        0,
        [
            batch(0, [(b"a", b"1")], base_sequence=0, ts=1, **p),
            batch(1, [(b"a", b"2"), (b"a", b"3")], base_sequence=1, ts=2, **p),
            batch(3, [(b"a", b"4")], ts=3),
        ],
    )
    r = clean(twin, [s], tmp_path / "out")
    first, last = decode_batches(Path(r.segments[0].path).read_bytes())
    assert (first.base_offset, first.last_offset, first.record_count) == (1, 2, 0)
    assert (first.producer_id, first.base_sequence, first.first_timestamp, first.max_timestamp) == (
        9,
        1,
        -1,
        2,
    )
    assert [(x.offset, x.value) for x in last.records] == [(3, b"4")]
    assert r.stats.empty_batches_retained == 1


def test_given_producer_offsets_decide_which_batch_is_last(twin, tmp_path):
    s = segment(
        tmp_path,
        0,
        [
            batch(0, [(b"a", b"1")], producer_id=9, producer_epoch=0, base_sequence=0),
            batch(1, [(b"a", b"2")]),
        ],
    )
    r = clean(twin, [s], tmp_path / "out", producer_last_offsets={9: 77})
    assert r.stats.empty_batches_retained == 0 and r.segments[0].batches == 1


def test_control_and_transactional_batches_are_left_as_they_are(twin, tmp_path):
    t = batch(
        0, [(b"a", b"1"), (b"a", b"2")], producer_id=1, producer_epoch=0, base_sequence=0, transactional=True
    )
    c = batch(
        2, [(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")], producer_id=1, producer_epoch=0, control=True
    )
    r = clean(twin, [segment(tmp_path, 0, [t, c])], tmp_path / "out")
    assert Path(r.segments[0].path).read_bytes() == t + c


def test_a_full_map_stops_at_the_offset_it_reached(twin, tmp_path):
    recs = [(f"k{i}".encode(), b"v") for i in range(20)]
    s = segment(tmp_path, 0, [batch(0, recs[:10]), batch(10, recs[10:])])
    m = twin.build_offset_map([s], 0, 20, memory_bytes=5 * 24, load_factor=1.0)
    assert (m.full, len(m), m.latest_offset, m.max_entries) == (True, 5, 4, 5)
    assert (m.get(b"k4"), m.get(b"k5")) == (4, -1)
    # Records past the offset reached are kept whatever their key.
    r = twin.clean_segments([s], m, out_dir=tmp_path, now_ms=0)
    assert len(records(r.segments[0].path)) == 20


def test_the_map_covers_the_dirty_range_only(twin, tmp_path):
    s0 = segment(tmp_path, 0, [batch(0, [(b"a", b"0"), (b"b", b"0")])])
    s1 = segment(tmp_path, 2, [batch(2, [(b"a", b"2"), (b"b", b"3")]), batch(4, [(b"a", b"4")])])
    m = twin.build_offset_map([s0, s1], 2, 4)
    assert (m.get(b"a"), m.get(b"b"), m.latest_offset, m.full) == (2, 3, 3, False)
    r = twin.clean_segments([s0, s1], m, out_dir=tmp_path, now_ms=0)
    assert records(r.segments[0].path) == [(2, b"a", b"2"), (3, b"b", b"3"), (4, b"a", b"4")]


def test_small_segments_merge_while_under_segment_bytes(twin, tmp_path):
    segs = [segment(tmp_path, 10 * i, [batch(10 * i, [(b"k%d" % i, b"x" * 50)])]) for i in range(5)]
    size = os.path.getsize(segs[0])
    r = clean(twin, segs, tmp_path / "out", segment_bytes=2 * size)
    assert [s.base_offset for s in r.segments] == [0, 20, 40]
    assert [len(s.inputs) for s in r.segments] == [2, 2, 1]
    assert [s.records for s in r.segments] == [2, 2, 1]


def test_outputs_take_the_last_inputs_modification_time(twin, tmp_path):
    s0 = segment(tmp_path, 0, [batch(0, [(b"a", b"1")])])
    s1 = segment(tmp_path, 1, [batch(1, [(b"b", b"1")])])
    os.utime(s0, ns=(1_600_000_000_000_000_000,) * 2)
    os.utime(s1, ns=(1_700_000_000_123_000_000,) * 2)
    r = clean(twin, [s0, s1], tmp_path / "out")
    assert r.segments[0].last_modified_ms == 1_700_000_000_123
    assert os.stat(r.segments[0].path).st_mtime_ns == 1_700_000_000_123_000_000


def test_bad_input_is_refused_clearly(twin, tmp_path):
    s = segment(tmp_path, 0, [batch(0, [(b"a", b"1")])])
    with pytest.raises(ValueError, match="not a segment file"):
        twin.build_offset_map([str(tmp_path / "x.log")], 0, 1)
    with pytest.raises(ValueError, match="increasing base offset"):
        twin.build_offset_map([s, s], 0, 1)
    with pytest.raises(ValueError, match="start_offset"):
        twin.build_offset_map([s], 5, 1)
    with pytest.raises(ValueError, match="load_factor"):
        twin.build_offset_map([s], 0, 1, load_factor=1.5)
    with pytest.raises(ValueError, match="holds no entry"):
        twin.build_offset_map([s], 0, 1, memory_bytes=10)
    with pytest.raises(TypeError, match="sequence of paths"):
        twin.build_offset_map(s, 0, 1)
    m = twin.build_offset_map([s], 0, 1)
    with pytest.raises(ValueError, match="delete_retention_ms"):
        twin.clean_segments([s], m, out_dir=tmp_path, now_ms=0, delete_retention_ms=-1)
    with pytest.raises(ValueError, match="io_max_bytes_per_second"):
        twin.clean_segments([s], m, out_dir=tmp_path, now_ms=0, io_max_bytes_per_second=0)
    with pytest.raises(TypeError, match="OffsetMap"):
        twin.clean_segments([s], {}, out_dir=tmp_path, now_ms=0)
    with pytest.raises(StorageError):
        twin.clean_segments([s], m, out_dir=tmp_path / "missing", now_ms=0)


def test_a_corrupt_batch_is_refused_not_laundered_with_a_new_crc(twin, tmp_path):
    b = bytearray(batch(0, [(b"a", b"1"), (b"a", b"2")]))
    b[-1] ^= 0xFF
    s = segment(tmp_path, 0, [bytes(b)])
    with pytest.raises(CorruptRecordError, match="CRC"):
        twin.build_offset_map([s], 0, 2)
    torn = segment(tmp_path / "", 5, [batch(5, [(b"a", b"1")])[:-3]])
    with pytest.raises(CorruptRecordError, match="cannot frame"):
        twin.build_offset_map([torn], 0, 10)


def test_key_hash_is_blake2b_128_in_both_twins():
    import hashlib

    for key in (b"", b"abc", bytes(range(256)) * 3):
        want = hashlib.blake2b(key, digest_size=16).digest()
        assert reference_cleaner.key_hash(key) == want
        assert native_cleaner().key_hash(key) == want


def test_an_io_limit_gives_the_same_output(twin, tmp_path):
    s = segment(tmp_path, 0, [batch(i, [(b"k%d" % (i % 3), b"v")]) for i in range(30)])
    m = twin.build_offset_map([s], 0, 30, io_max_bytes_per_second=1e9)
    r = twin.clean_segments([s], m, out_dir=tmp_path, now_ms=0, io_max_bytes_per_second=1e9)
    assert records(r.segments[0].path) == [(27, b"k0", b"v"), (28, b"k1", b"v"), (29, b"k2", b"v")]


def test_the_throttle_sleeps_off_an_interval_that_ran_too_fast():
    now = [0]
    slept: list[int] = []

    def sleep(ms: int) -> None:
        slept.append(ms)
        now[0] += ms * 1_000_000

    t = Throttle(1_000_000.0, now_ns=lambda: now[0], sleep_ms=sleep)
    t.account(600_000)  # inside the first 300 ms: not checked
    assert slept == []
    now[0] = 400_000_000
    t.account(400_000)  # 1 MB in 400 ms at 1 MB/s: 600 ms more
    assert slept == [600] and t.slept_ms == 600
    now[0] += 1_000_000_000
    t.account(100_000)  # slower than the limit: no sleep
    assert slept == [600]
