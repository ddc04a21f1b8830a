"""``WalLog.file_ranges``: what ``read`` returns as descriptors of its own over segment
files, found in one walk (both twins, the same answers)."""

from __future__ import annotations

import os
import struct

import pytest

from streamcore._reference import wal as reference_wal
from streamcore.errors import OffsetOutOfRangeError

from .batches import make_batch
from .conftest import native_wal_module
from .page_cache import evict

_OPTS = {"fsync": "never", "segment_bytes": 4000, "index_interval_bytes": 500}
# Batch i holds (i % 3) + 1 records of 60 bytes: about 12 batches per segment.
_BATCHES = 60


def _fill(cls, path: str) -> list[int]:
    """Appends the sample batches; returns each batch's base offset, and the end."""
    bases = []
    with cls(path, **_OPTS) as wal:
        for i in range(_BATCHES):
            bases.append(wal.append(make_batch(i % 3 + 1, value_size=60))[0])
        bases.append(wal.high_watermark)
    return bases


def _take(found):
    """(bytes the ranges cover, [(position, length)], records, end_offset); closes the fds."""
    ranges, records, end = found
    try:
        data = b"".join(os.pread(fd, length, pos) for fd, pos, length in ranges)
        return data, [(pos, length) for _, pos, length in ranges], records, end
    finally:
        for fd, _, _ in ranges:
            os.close(fd)


def _records_in(data: bytes) -> tuple[int, int]:
    """(records, offset after the last batch) of whole batches in ``data``."""
    pos, records, end = 0, 0, -1
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        last_delta = struct.unpack_from(">i", data, pos + 23)[0]
        records += struct.unpack_from(">i", data, pos + 57)[0]
        end = base + last_delta + 1
        pos += 12 + length
    return records, end


@pytest.mark.parametrize("max_bytes", [1, 700, 3000, 9000, 1 << 30])
def test_ranges_cover_exactly_what_read_returns(twin, tmp_path, max_bytes):
    path = str(tmp_path / "p")
    bases = _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        for offset in range(0, bases[-1], 7):
            data, spans, records, end = _take(wal.file_ranges(offset, max_bytes))
            assert data == wal.read(offset, max_bytes), offset
            assert (records, end) == _records_in(data)
            # One range per segment: only the first may start inside its file.
            assert all(pos == 0 for pos, _ in spans[1:]), spans


def test_stop_before_ends_before_the_first_batch_at_or_above_it(twin, tmp_path):
    path = str(tmp_path / "p")
    bases = _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        whole = wal.read(0, 1 << 30)
        for k in (1, 5, 17, 40):
            stop = bases[k]
            data, _, records, end = _take(wal.file_ranges(0, 1 << 30, stop))
            assert end == stop
            # The same bytes as the whole log up to that batch.
            assert data == whole[: len(data)] and _records_in(data) == (records, end)
            # A stop inside a batch keeps that batch (it starts below the stop).
            _, _, _, end_inside = _take(wal.file_ranges(0, 1 << 30, stop + 1))
            assert end_inside == bases[k + 1]
        # Nothing below the stop: nothing to send from files.
        assert wal.file_ranges(bases[3], 1 << 30, bases[3]) is None


def test_none_at_the_high_watermark_and_out_of_range_outside_the_log(twin, tmp_path):
    path = str(tmp_path / "p")
    bases = _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        assert wal.file_ranges(bases[-1], 1 << 20) is None
        with pytest.raises(OffsetOutOfRangeError):
            wal.file_ranges(bases[-1] + 1, 1 << 20)
        wal.delete_records(bases[20])
        with pytest.raises(OffsetOutOfRangeError):
            wal.file_ranges(bases[20] - 1, 1 << 20)


def test_the_descriptors_keep_deleted_segments_readable(twin, tmp_path):
    path = str(tmp_path / "p")
    bases = _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        expected = wal.read(0, 2500)
        found = wal.file_ranges(0, 2500)
        before = set(os.listdir(path))
        # The first segments go (DeleteRecords) while the descriptors are held.
        wal.delete_records(bases[30])
        assert set(os.listdir(path)) < before
        data, _, _, _ = _take(found)
        assert data == expected


def test_nowait_answers_from_the_page_cache_and_refuses_to_wait_for_the_disk(twin, tmp_path):
    if getattr(os, "RWF_NOWAIT", None) is None:
        pytest.fail("this platform's os module has no RWF_NOWAIT (Linux 4.14+ needed)")
    path = str(tmp_path / "p")
    bases = _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        hot = _take(wal.file_ranges(0, 1 << 20))
        assert _take(wal.file_ranges(0, 1 << 20, nowait=True)) == hot
        # Written back and dropped from the page cache: a nowait walk must not read
        # them from the disk. (Tried a few times: the machine may read a page back
        # between the eviction and the walk.)
        refused = 0
        for _ in range(5):
            for name in os.listdir(path):
                if name.endswith(".log"):
                    evict(os.path.join(path, name))
            try:
                _take(wal.file_ranges(bases[30], 1 << 20, nowait=True))
            except BlockingIOError:
                refused += 1
                break
        assert refused == 1
        # Without nowait the same call reads them (and brings them back).
        assert _take(wal.file_ranges(0, 1 << 20)) == hot


def test_both_twins_give_the_same_ranges(tmp_path):
    native = native_wal_module()
    if native is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    path = str(tmp_path / "p")
    bases = _fill(native.WalLog, path)
    answers = []
    for cls in (reference_wal.WalLog, native.WalLog):
        with cls(path, **_OPTS) as wal:
            answers.append(
                [
                    _take(wal.file_ranges(o, m, s))
                    for o in (0, 13, 50)
                    for m in (1, 4000)
                    for s in (None, bases[30])
                ]
            )
    assert answers[0] == answers[1]


def test_a_segment_file_cut_short_under_the_log_gives_none(twin, tmp_path):
    # The fetch path then copies, and the copying read reports the damage.
    path = str(tmp_path / "p")
    _fill(twin, path)
    with twin(path, **_OPTS) as wal:
        first = sorted(n for n in os.listdir(path) if n.endswith(".log"))[0]
        assert wal.file_ranges(0, 1 << 20) is not None
        os.truncate(os.path.join(path, first), 1000)
        assert wal.file_ranges(0, 1 << 20) is None


def test_a_batch_with_another_magic_stops_the_ranges_but_not_the_copying_read(twin, tmp_path):
    # Sendfile passes on nothing it cannot frame; the copying read goes on, and its
    # checks report the batch (both twins read the same bytes).
    path = str(tmp_path / "p")
    one = make_batch(1, value_size=100)
    with twin(path, fsync="never", segment_bytes=1 << 20) as wal:
        for _ in range(10):
            wal.append(one)
        whole = wal.read(0, 1 << 20)
        segment = os.path.join(path, sorted(n for n in os.listdir(path) if n.endswith(".log"))[0])
        fd = os.open(segment, os.O_WRONLY)
        try:
            os.pwrite(fd, b"\x01", 3 * len(one) + 16)  # batch 3's magic byte
        finally:
            os.close(fd)
        assert len(wal.read(0, 1 << 20)) == len(whole)
        assert len(wal.read(5, 1 << 20)) == len(whole) - 5 * len(one)
        assert wal.file_ranges(0, 1 << 20) is None
        # A cut by max_bytes before that batch never reaches it.
        data, _, records, end = _take(wal.file_ranges(0, 3 * len(one)))
        assert (len(data), records, end) == (3 * len(one), 3, 3)


def test_a_nowait_walk_served_in_part_by_the_page_cache_raises_instead_of_ending(tmp_path, monkeypatch):
    # The reference twin reads through os.preadv (the native one calls preadv2 itself
    # and reads on after a partial answer the same way). A read that gets a cached
    # first part and then meets an uncached one must not pass for the end of the
    # segment: offsets would go missing from the answer.
    import errno

    from streamcore._reference.wal import segment as ref_segment

    path = str(tmp_path / "p")
    _fill(reference_wal.WalLog, path)
    real = os.preadv
    # Say the cache ends 10 bytes into the header of the first segment's fourth batch.
    first = os.path.join(path, sorted(n for n in os.listdir(path) if n.endswith(".log"))[0])
    with open(first, "rb") as f:
        head = f.read()
    at = 0
    for _ in range(3):
        at += 12 + struct.unpack_from(">i", head, at + 8)[0]
    cached = at + 10

    def first_page_only(fd: int, buffers: list, pos: int, flags: int = 0) -> int:
        if not flags:
            return real(fd, buffers, pos)
        if pos >= cached:
            raise BlockingIOError(errno.EAGAIN, "not in the page cache")
        want = min(sum(len(b) for b in buffers), cached - pos)
        data = os.pread(fd, want, pos)
        buffers[0][: len(data)] = data
        return len(data)

    with reference_wal.WalLog(path, **_OPTS) as wal:
        monkeypatch.setattr(ref_segment.os, "preadv", first_page_only)
        with pytest.raises(BlockingIOError):
            wal.file_ranges(0, 1 << 20, nowait=True)
        # Without nowait the same call answers all of it.
        data, _, _, _ = _take(wal.file_ranges(0, 1 << 20))
        assert data == wal.read(0, 1 << 20)
