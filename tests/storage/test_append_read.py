"""Append/read round trips through streamcore.storage.Log (the active WAL implementation)."""

from __future__ import annotations

import os
import struct

import pytest

from streamcore.errors import CorruptRecordError, OffsetOutOfRangeError, StorageError

from .batches import batch_of_size, batch_offsets, make_batch, same_but_offset, split_batches


def test_append_assigns_contiguous_offsets_and_read_returns_the_same_batches(open_log):
    log = open_log(fsync="never")
    originals = [make_batch(n) for n in (1, 3, 7, 2, 5)]
    results = [log.append(b) for b in originals]
    expected_base = 0
    for batch, res in zip(originals, results, strict=True):
        records = struct.unpack_from(">i", batch, 57)[0]
        assert res.base_offset == expected_base
        assert res.last_offset == expected_base + records - 1
        expected_base = res.last_offset + 1
    assert log.high_watermark == expected_base
    stored = split_batches(log.read(0, 1 << 20))
    assert len(stored) == len(originals)
    for got, original, res in zip(stored, originals, results, strict=True):
        assert batch_offsets(got) == (res.base_offset, res.last_offset)
        assert same_but_offset(got, original)


def test_append_result_is_a_named_tuple_with_the_log_append_time(open_log):
    log = open_log(fsync="never")
    res = log.append(make_batch(2))
    assert res == (res.base_offset, res.last_offset, res.log_append_time_ms)
    assert res.log_append_time_ms > 1_600_000_000_000


def test_append_copies_the_callers_buffer_and_leaves_it_untouched(open_log):
    log = open_log(fsync="never")
    log.append(make_batch(1))
    buf = bytearray(make_batch(2))
    before = bytes(buf)
    res = log.append(buf)
    buf[30:40] = b"x" * 10  # reusing the buffer must not change what was stored
    assert bytes(buf[:30]) == before[:30]
    stored = log.read(res.base_offset, 1)
    assert same_but_offset(stored, before)
    assert batch_offsets(stored)[0] == 1


def test_append_accepts_memoryview_and_bytearray(open_log):
    log = open_log(fsync="never")
    a = log.append(memoryview(make_batch(1)))
    b = log.append(bytearray(make_batch(1)))
    assert (a.base_offset, b.base_offset) == (0, 1)


@pytest.mark.parametrize(
    "mutate, what",
    [
        (lambda b: b[:40], "shorter than the header"),
        (lambda b: b + b"\x00", "length field too small"),
        (lambda b: b[:16] + b"\x01" + b[17:], "magic 1"),
    ],
)
def test_append_rejects_a_batch_with_a_bad_header(open_log, mutate, what):
    log = open_log(fsync="never")
    with pytest.raises(CorruptRecordError):
        log.append(mutate(make_batch(2)))
    assert log.high_watermark == 0, what


def test_read_returns_one_whole_batch_even_when_it_is_larger_than_max_bytes(open_log):
    log = open_log(fsync="never")
    big = batch_of_size(5000)
    log.append(big)
    log.append(make_batch(1))
    got = log.read(0, 100)
    assert len(got) == 5000
    assert same_but_offset(got, big)
    assert log.read(0, 0) == got


def test_read_adds_batches_while_the_total_stays_within_max_bytes(open_log):
    log = open_log(fsync="never")
    for _ in range(10):
        log.append(batch_of_size(1000))
    assert len(log.read(0, 2999)) == 2000
    assert len(log.read(0, 3000)) == 3000
    assert len(log.read(0, 1 << 20)) == 10_000


def test_read_from_the_middle_of_a_batch_starts_at_that_batch(open_log):
    log = open_log(fsync="never")
    log.append(make_batch(5))  # offsets 0..4
    log.append(make_batch(5))  # offsets 5..9
    for offset, base in ((3, 0), (4, 0), (5, 5), (7, 5), (9, 5)):
        assert batch_offsets(log.read(offset, 1))[0] == base


def test_read_at_the_high_watermark_is_empty_and_beyond_it_is_out_of_range(open_log):
    log = open_log(fsync="never")
    assert log.read(0, 100) == b""
    log.append(make_batch(3))
    assert log.read(3, 100) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 100)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(-1, 100)
    with pytest.raises(LookupError):  # OffsetOutOfRangeError is a LookupError
        log.read(100, 100)


def test_read_spans_cover_exactly_the_bytes_read_returns(open_log):
    log = open_log(fsync="never", segment_bytes=4000)
    for i in range(20):
        log.append(batch_of_size(900 + i))
    for offset in (0, 3, 7, 19):
        for max_bytes in (1, 2000, 5000, 1 << 20):
            data = log.read(offset, max_bytes)
            spans = log.read_spans(offset, max_bytes)
            joined = b""
            for path, pos, length in spans:
                with open(path, "rb") as f:
                    f.seek(pos)
                    joined += f.read(length)
            assert joined == data


def test_read_continues_into_the_next_segment(open_log):
    log = open_log(fsync="never", segment_bytes=2500)
    for _ in range(6):
        log.append(batch_of_size(1000))
    assert log.segment_count == 3
    data = log.read(1, 4000)
    assert [batch_offsets(b)[0] for b in split_batches(data)] == [1, 2, 3, 4]
    assert [(pos, n) for _path, pos, n in log.read_spans(1, 4000)] == [(1000, 1000), (0, 2000), (0, 1000)]


def test_appends_survive_close_and_reopen(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never")
    originals = [make_batch(i + 1) for i in range(5)]
    for b in originals:
        log.append(b)
    hw = log.high_watermark
    log.close()
    log = open_log(path, fsync="never")
    assert log.high_watermark == hw
    assert [
        same_but_offset(s, o) for s, o in zip(split_batches(log.read(0, 1 << 20)), originals, strict=True)
    ] == [True] * 5
    assert log.append(make_batch(1)).base_offset == hw


def test_closed_log_refuses_appends_and_close_is_idempotent(open_log):
    log = open_log(fsync="never")
    log.append(make_batch(1))
    log.close()
    log.close()
    with pytest.raises(StorageError):
        log.append(make_batch(1))


def test_context_manager_closes_with_a_clean_shutdown_marker(tmp_path):
    from streamcore.storage import Log

    with Log(tmp_path / "p", fsync="never") as log:
        log.append(make_batch(1))
    assert os.path.exists(tmp_path / "p" / ".clean_shutdown")


def test_unknown_fsync_policy_is_a_value_error(tmp_path):
    from streamcore.storage import Log

    with pytest.raises(ValueError):
        Log(tmp_path / "p", fsync="sometimes")


def test_size_and_segment_count_track_appends(open_log):
    log = open_log(fsync="never", segment_bytes=3000)
    assert (log.size_bytes, log.segment_count) == (0, 1)
    for _ in range(4):
        log.append(batch_of_size(1000))
    assert log.size_bytes == 4000
    assert log.segment_count == 2
