"""Crash recovery: torn tails, random bit flips, corruption below the recovery point, crashes mid-recovery."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

import streamcore
from streamcore.errors import StorageError
from streamcore.storage import Log

from .batches import (
    batch_max_timestamp,
    batch_of_size,
    batch_offsets,
    make_batch,
    same_but_offset,
    split_batches,
)
from .crash import read_checkpoint, segment_logs, set_crash_state

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BITFLIPS = int(os.environ.get("STREAMCORE_BITFLIPS", "1000"))


def _build(path: str, sizes: list[int], **kwargs) -> list[tuple[int, int, bytes]]:
    """Write batches of the given sizes; return (position in its segment, base offset, batch) per batch."""
    out = []
    with Log(path, fsync="never", **kwargs) as log:
        for i, size in enumerate(sizes):
            batch = batch_of_size(size, records=1 + i % 3, base_timestamp=1000 + i)
            res = log.append(batch)
            out.append((res.base_offset, res.last_offset, batch))
    return out


def _check_prefix(
    log: Log, batches: list[tuple[int, int, bytes]], keep: int, ignore_epoch: bool = False
) -> None:
    """The log holds exactly the first ``keep`` batches (partitionLeaderEpoch aside if asked)."""
    hw = batches[keep - 1][1] + 1 if keep else 0
    assert log.high_watermark == hw
    if keep:
        stored = split_batches(log.read(0, 1 << 30))
        assert len(stored) == keep
        for got, (base, _last, batch) in zip(stored, batches, strict=False):
            assert batch_offsets(got)[0] == base
            if ignore_epoch:
                assert got[8:12] + got[16:] == batch[8:12] + batch[16:]
            else:
                assert same_but_offset(got, batch)


def test_torn_tail_is_truncated_at_every_byte_of_the_last_batch(fast_dir):
    src = os.path.join(fast_dir, "src")
    batches = _build(src, [300, 250, 400, 180])
    seg = segment_logs(src)[0]
    end = os.path.getsize(seg)
    last_start = end - 180
    work = os.path.join(fast_dir, "work")
    for cut in range(last_start, end):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(src, work)
        with open(os.path.join(work, os.path.basename(seg)), "r+b") as f:
            f.truncate(cut)
        set_crash_state(work, recovery_point=batches[-1][0])
        with Log(work, fsync="never") as log:
            _check_prefix(log, batches, 3)
            assert os.path.getsize(os.path.join(work, os.path.basename(seg))) == last_start
            # The log goes on from where it now ends.
            assert log.append(make_batch(1)).base_offset == batches[2][1] + 1


def _expected_keep(layout: list[tuple[int, int]], flip_pos: int) -> int:
    """Batches kept when the byte at ``flip_pos`` is damaged: all before the batch holding it.

    partitionLeaderEpoch (batch bytes 12..15) is neither checked nor covered by
    the CRC, so damage there leaves the batch intact.
    """
    for i, (start, size) in enumerate(layout):
        if start <= flip_pos < start + size:
            return len(layout) if 12 <= flip_pos - start < 16 else i
    raise AssertionError(flip_pos)


def test_random_bit_flips_in_the_tail_end_the_log_at_the_last_intact_batch(fast_dir):
    rng = random.Random(20240501)
    src = os.path.join(fast_dir, "src")
    sizes = [rng.randrange(70, 600) for _ in range(24)]
    batches = _build(src, sizes, index_interval_bytes=512)
    layout = []
    pos = 0
    for size in sizes:
        layout.append((pos, size))
        pos += size
    seg_name = os.path.basename(segment_logs(src)[0])
    first_tail = 12  # batches 12.. lie at or above the recovery point
    recovery_point = batches[first_tail][0]
    tail_start = layout[first_tail][0]
    work = os.path.join(fast_dir, "work")
    for _ in range(BITFLIPS):
        flip = rng.randrange(tail_start, pos)
        bit = 1 << rng.randrange(8)
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(src, work)
        with open(os.path.join(work, seg_name), "r+b") as f:
            f.seek(flip)
            byte = f.read(1)[0]
            f.seek(flip)
            f.write(bytes([byte ^ bit]))
        set_crash_state(work, recovery_point=recovery_point)
        keep = _expected_keep(layout, flip)
        with Log(work, fsync="never", index_interval_bytes=512) as log:
            _check_prefix(log, batches, keep, ignore_epoch=True)


def test_corruption_below_the_recovery_point_is_a_storage_error_naming_file_and_position(tmp_path):
    path = str(tmp_path / "p")
    batches = _build(path, [500] * 8)
    seg = segment_logs(path)[0]
    with open(seg, "r+b") as f:
        f.seek(2 * 500 + 200)  # inside batch 2, covered by the CRC
        f.write(b"\xff")
    set_crash_state(path, recovery_point=batches[-1][1] + 1)
    with pytest.raises(StorageError) as info:
        Log(path, fsync="never")
    assert os.path.basename(seg) in str(info.value)
    assert "1000" in str(info.value)  # byte position of the damaged batch


def test_missing_data_below_the_recovery_point_is_a_storage_error(tmp_path):
    path = str(tmp_path / "p")
    batches = _build(path, [500] * 8)
    with open(segment_logs(path)[0], "r+b") as f:
        f.truncate(2000)
    set_crash_state(path, recovery_point=batches[-1][1] + 1)
    with pytest.raises(StorageError):
        Log(path, fsync="never")


def test_recovery_scans_from_the_segment_holding_the_recovery_point_and_drops_later_segments(tmp_path):
    path = str(tmp_path / "p")
    batches = _build(path, [1000] * 9, segment_bytes=2000)  # two batches per segment
    logs = segment_logs(path)
    assert len(logs) == 5
    with open(logs[2], "r+b") as f:  # batch 5 (second of the third segment) torn
        f.truncate(1500)
    set_crash_state(path, recovery_point=batches[4][0])
    with Log(path, fsync="never", segment_bytes=2000) as log:
        _check_prefix(log, batches, 5)
        assert log.segment_count == 3
    assert len(segment_logs(path)) == 3
    assert read_checkpoint(path)[1] == batches[4][1] + 1


def test_a_gap_between_segments_ends_the_log(tmp_path):
    path = str(tmp_path / "p")
    batches = _build(path, [1000] * 6, segment_bytes=2000)
    logs = segment_logs(path)
    for suffix in (".log", ".index", ".timeindex"):
        os.unlink(logs[1][: -len(".log")] + suffix)  # segment 2 vanishes: 4 no longer follows 0..1
    set_crash_state(path, recovery_point=0)
    with Log(path, fsync="never", segment_bytes=2000) as log:
        _check_prefix(log, batches, 2)


def test_garbage_or_truncated_index_files_are_rebuilt(tmp_path):
    path = str(tmp_path / "p")
    batches = _build(path, [700] * 12, segment_bytes=3000, index_interval_bytes=1000)
    logs = segment_logs(path)
    first_index = logs[0][: -len(".log")] + ".index"
    first_timeindex = logs[0][: -len(".log")] + ".timeindex"
    originals = {p: open(p, "rb").read() for p in (first_index, first_timeindex)}
    with open(first_index, "r+b") as f:
        f.truncate(5)
    with open(first_timeindex, "wb") as f:
        f.write(b"\x00" * 24)
    set_crash_state(path, recovery_point=batches[-1][1] + 1)
    with Log(path, fsync="never", segment_bytes=3000, index_interval_bytes=1000) as log:
        _check_prefix(log, batches, 12)
        first = next(b for b in batches if batch_max_timestamp(b[2]) >= 1007)
        assert log.offset_for_timestamp(1007) == (first[0], batch_max_timestamp(first[2]))
    for p, data in originals.items():
        assert open(p, "rb").read() == data


_SLOW_OPEN_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    from streamcore.storage import Log
    print("opening", flush=True)
    Log(sys.argv[1], fsync="never", segment_bytes=1 << 20).close()
    print("done", flush=True)
    """
)


def test_a_crash_during_recovery_is_followed_by_a_successful_recovery(tmp_path):
    path = str(tmp_path / "p")
    sizes = [16 * 1024] * 600  # ~9.4 MiB in 10 segments: recovery takes a little while
    batches = _build(path, sizes, segment_bytes=1 << 20)
    logs = segment_logs(path)
    with open(logs[-1], "r+b") as f:
        f.truncate(os.path.getsize(logs[-1]) - 100)
    set_crash_state(path, recovery_point=0)
    # The child imports the same streamcore as this process (installed build or source tree).
    python_dir = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
    rng = random.Random(7)
    for _ in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", _SLOW_OPEN_CHILD, path, python_dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "opening"
        time.sleep(rng.uniform(0.0, 0.05))
        child.kill()
        child.stdout.read()
        child.wait()
        # A finished recovery leaves a clean marker and a checkpoint: start over from a crash each time.
        set_crash_state(path, recovery_point=0)
    with Log(path, fsync="never", segment_bytes=1 << 20) as log:
        _check_prefix(log, batches, len(batches) - 1)
