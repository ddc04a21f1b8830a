"""DeleteRecords at the storage layer: ``Log.delete_records`` moves the log start offset.

The first tests go through ``Log`` (the WAL ``_impl`` chose, so both twins across the two
passes); the last runs both WAL classes side by side on the same steps.
"""

from __future__ import annotations

import os

import pytest

from streamcore.errors import OffsetOutOfRangeError

from .batches import batch_of_size, batch_offsets, split_batches
from .crash import read_checkpoint, set_crash_state

_BATCH = 500  # bytes per batch; two per segment below


def _fill(log, n: int) -> None:
    for _ in range(n):
        log.append(batch_of_size(_BATCH, records=2))


def _segments(path) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.endswith(".log"))


def test_delete_records_inside_a_segment_refuses_reads_below_and_keeps_the_segment(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never", segment_bytes=2 * _BATCH)
    _fill(log, 6)  # offsets 0..11, segments [0-3] [4-7] [8-11]
    assert log.delete_records(5) == 5
    assert log.log_start_offset == 5
    with pytest.raises(OffsetOutOfRangeError):
        log.read(4, 10_000)
    # The batch holding offset 5 (offsets 4-5) is returned whole, as Kafka does.
    first = split_batches(log.read(5, 1))[0]
    assert batch_offsets(first) == (4, 5)
    # The first segment lies wholly below 5 and is gone; the one holding 5 stays.
    assert _segments(path) == [f"{4:020d}.log", f"{8:020d}.log"]
    assert read_checkpoint(str(path))[0] == 5


def test_delete_records_below_the_start_changes_nothing_and_beyond_the_end_is_refused(open_log, tmp_path):
    log = open_log(tmp_path / "p", fsync="never", segment_bytes=2 * _BATCH)
    _fill(log, 3)
    assert log.delete_records(3) == 3
    assert log.delete_records(1) == 3
    assert log.log_start_offset == 3
    with pytest.raises(OffsetOutOfRangeError, match="7"):
        log.delete_records(7)
    with pytest.raises(OffsetOutOfRangeError):
        log.delete_records(-1)
    assert log.log_start_offset == 3


def test_delete_records_to_the_high_watermark_empties_the_log_but_appends_continue(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never", segment_bytes=2 * _BATCH)
    _fill(log, 5)
    assert log.delete_records(log.high_watermark) == 10
    assert log.read(10, 1000) == b""
    # Only the active segment is left; new appends continue from the high watermark.
    assert len(_segments(path)) == 1
    assert log.append(batch_of_size(_BATCH, records=2)).base_offset == 10
    assert batch_offsets(split_batches(log.read(10, 1))[0]) == (10, 11)


@pytest.mark.parametrize("clean", [True, False], ids=["clean-close", "crash"])
def test_the_log_start_survives_a_restart(open_log, tmp_path, clean):
    path = tmp_path / "p"
    log = open_log(path, fsync="always", segment_bytes=2 * _BATCH)
    _fill(log, 6)
    log.delete_records(7)
    log.close()
    if not clean:
        # No clean-shutdown marker and an old recovery point: the reopen scans the
        # segments and must still take the log start from the checkpoint.
        set_crash_state(str(path), recovery_point=4)
    log = open_log(path, fsync="always", segment_bytes=2 * _BATCH)
    assert (log.log_start_offset, log.high_watermark) == (7, 12)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(6, 1000)
    assert log.read(7, 1000)


def test_both_twins_delete_the_same_segments_and_write_the_same_checkpoint(twin, tmp_path):
    path = str(tmp_path / "p")
    with twin(path, fsync="never", segment_bytes=2 * _BATCH) as wal:
        for _ in range(7):
            wal.append(batch_of_size(_BATCH, records=2))
        assert wal.delete_records(9) == 9
        assert wal.log_start_offset == 9
        with pytest.raises(OffsetOutOfRangeError):
            wal.read_spans(8, 100)
        with pytest.raises(OffsetOutOfRangeError):
            wal.delete_records(15)
    assert _segments(path) == [f"{8:020d}.log", f"{12:020d}.log"]
    assert read_checkpoint(path) == (9, 14)
    assert not [n for n in os.listdir(path) if n.endswith(".deleted")]
