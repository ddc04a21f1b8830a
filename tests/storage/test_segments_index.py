"""Segment rolls, the sparse offset/time indexes on disk, and offset_for_timestamp."""

from __future__ import annotations

import os
import struct
import time

from .batches import batch_of_size, make_batch


def _entries(path: str, fmt: str) -> list[tuple[int, ...]]:
    with open(path, "rb") as f:
        data = f.read()
    return list(struct.iter_unpack(fmt, data))


def _names(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_segment_rolls_before_an_append_that_would_exceed_segment_bytes(open_log, tmp_path):
    log = open_log(fsync="never", segment_bytes=2500)
    for _ in range(5):
        log.append(batch_of_size(1000))
    logs = [n for n in _names(tmp_path / "p0") if n.endswith(".log")]
    assert logs == [f"{b:020d}.log" for b in (0, 2, 4)]
    sizes = [os.path.getsize(tmp_path / "p0" / n) for n in logs]
    assert sizes == [2000, 2000, 1000]


def test_a_batch_larger_than_segment_bytes_goes_alone_into_an_empty_segment(open_log, tmp_path):
    log = open_log(fsync="never", segment_bytes=1000)
    log.append(batch_of_size(3000))
    log.append(batch_of_size(3000))
    assert log.segment_count == 2
    assert len(log.read(1, 1)) == 3000


def test_segment_rolls_by_age_after_segment_ms(open_log):
    log = open_log(fsync="never", segment_ms=20)
    log.append(make_batch(1))
    log.append(make_batch(1))
    assert log.segment_count == 1
    time.sleep(0.05)  # older than segment_ms: the next append starts a new segment
    res = log.append(make_batch(1))
    assert log.segment_count == 2
    assert res.base_offset == 2
    assert os.path.exists(os.path.join(log.directory, f"{2:020d}.log"))


def test_every_segment_has_index_files_named_by_base_offset(open_log, tmp_path):
    log = open_log(fsync="never", segment_bytes=2500)
    for _ in range(4):
        log.append(batch_of_size(1000))
    log.close()
    names = _names(tmp_path / "p0")
    for base in (0, 2):
        for suffix in (".log", ".index", ".timeindex"):
            assert f"{base:020d}{suffix}" in names


def test_offset_index_has_an_entry_every_index_interval_bytes(open_log, tmp_path):
    log = open_log(fsync="never", index_interval_bytes=4096)
    for _ in range(20):
        log.append(batch_of_size(1000))  # each batch is one offset
    log.close()
    entries = _entries(str(tmp_path / "p0" / f"{0:020d}.index"), ">II")
    # An entry for the first batch, then for the first batch starting >= 4096 bytes after the last entry.
    assert entries == [(0, 0), (5, 5000), (10, 10000), (15, 15000)]


def test_offset_index_entry_positions_point_at_batch_starts(open_log, tmp_path):
    log = open_log(fsync="never", index_interval_bytes=100)
    sizes = [200, 90, 90, 300, 80, 80, 80, 500]
    for s in sizes:
        log.append(batch_of_size(s, records=2))
    log.close()
    starts = {}
    pos = 0
    for i, s in enumerate(sizes):
        starts[2 * i] = pos
        pos += s
    entries = _entries(str(tmp_path / "p0" / f"{0:020d}.index"), ">II")
    assert entries[0] == (0, 0)
    for rel, position in entries:
        assert starts[rel] == position


def test_time_index_records_a_rising_max_timestamp_every_interval(open_log, tmp_path):
    log = open_log(fsync="never", index_interval_bytes=2000)
    timestamps = [100, 50, 300, 400, 200, 500, 600, 700]
    for ts in timestamps:
        log.append(batch_of_size(1000, base_timestamp=ts))
    log.close()
    entries = _entries(str(tmp_path / "p0" / f"{0:020d}.timeindex"), ">qI")
    # batch 0 always; batch 2 (pos 2000 raises the max to 300, 2000 bytes after the entry at 0);
    # batch 3 raises to 400 only 1000 bytes later: no entry; batch 4 does not raise the max;
    # batch 5 (pos 5000, 500); batch 6 is 1000 bytes later: no entry; batch 7 (pos 7000, 700).
    assert entries == [(100, 0), (300, 2), (500, 5), (700, 7)]


def test_indexes_after_reopen_match_indexes_of_a_log_written_in_one_go(open_log, tmp_path):
    sizes = [700, 1500, 300, 2200, 900, 400, 1300]
    one = open_log(tmp_path / "one", fsync="never", index_interval_bytes=1024)
    for i, s in enumerate(sizes):
        one.append(batch_of_size(s, base_timestamp=1000 + i))
    one.close()
    two = open_log(tmp_path / "two", fsync="never", index_interval_bytes=1024)
    for i, s in enumerate(sizes):
        two.append(batch_of_size(s, base_timestamp=1000 + i))
        if i in (1, 4):
            two.close()
            two = open_log(tmp_path / "two", fsync="never", index_interval_bytes=1024)
    two.close()
    for suffix in (".log", ".index", ".timeindex"):
        name = f"{0:020d}{suffix}"
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), suffix


def test_offset_for_timestamp_finds_the_first_batch_at_or_after_the_time(open_log):
    log = open_log(fsync="never", segment_bytes=2500, index_interval_bytes=1000)
    for i in range(10):
        log.append(batch_of_size(1000, base_timestamp=1000 + 100 * i))  # batch i: max ts 1000+100i
    assert log.segment_count == 5
    assert log.offset_for_timestamp(0) == (0, 1000)
    assert log.offset_for_timestamp(1000) == (0, 1000)
    assert log.offset_for_timestamp(1001) == (1, 1100)
    assert log.offset_for_timestamp(1450) == (5, 1500)
    assert log.offset_for_timestamp(1900) == (9, 1900)
    assert log.offset_for_timestamp(1901) is None


def test_offset_for_timestamp_uses_max_timestamp_not_arrival_order(open_log):
    log = open_log(fsync="never", index_interval_bytes=1)
    for ts in (500, 100, 900, 300):
        log.append(make_batch(1, base_timestamp=ts))
    assert log.offset_for_timestamp(200) == (0, 500)
    assert log.offset_for_timestamp(600) == (2, 900)
    assert log.offset_for_timestamp(901) is None


def test_offset_for_timestamp_survives_reopen(open_log, tmp_path):
    log = open_log(tmp_path / "p", fsync="never", segment_bytes=2500)
    for i in range(6):
        log.append(batch_of_size(1000, base_timestamp=5000 + i))
    log.close()
    log = open_log(tmp_path / "p", fsync="never", segment_bytes=2500)
    assert log.offset_for_timestamp(5003) == (3, 5003)
    assert log.offset_for_timestamp(5006) is None
