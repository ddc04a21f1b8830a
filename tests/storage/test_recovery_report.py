"""What recovery did, said out loud: the report both WAL twins build, the WARNING the Log logs, and
the way out named by a refused open."""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from streamcore.errors import StorageError
from streamcore.storage import Log

from .batches import batch_of_size, split_batches
from .crash import set_crash_state

SIZE = 200  # bytes per batch in these logs


def _report(wal) -> dict:
    """The recovery report of a just-opened WalLog of either twin, without its directory."""
    report = dict(wal.recovery_report)
    report.pop("directory")
    return report


def _build(path: str, batches: int, **kwargs) -> None:
    """``batches`` batches of SIZE bytes with 2 records each (offsets 0 .. 2*batches), cleanly closed."""
    with Log(path, fsync="never", **kwargs) as log:
        for i in range(batches):
            log.append(batch_of_size(SIZE, records=2, base_timestamp=1000 + i))


@pytest.fixture
def torn_log(tmp_path) -> str:
    """Four batches; the last lost its final 30 bytes in a crash (no marker, recovery point 0)."""
    path = str(tmp_path / "torn")
    _build(path, 4)
    seg = os.path.join(path, f"{0:020d}.log")
    with open(seg, "r+b") as fh:
        fh.truncate(4 * SIZE - 30)
    set_crash_state(path, 0)
    return path


def test_a_torn_tail_is_reported_alike_by_both_twins(torn_log, twin, tmp_path):
    path = str(tmp_path / "copy")
    shutil.copytree(torn_log, path)
    wal = twin(path, fsync="never")
    try:
        assert wal.high_watermark == 6
        assert _report(wal) == {
            "clean": False,
            "scanned_segments": 1,
            "truncated_bytes": SIZE - 30,
            "segments_deleted": 0,
            "first_dropped_offset": 6,
            "old_end_offset": 8,
            "end_offset": 6,
            "cut_file": os.path.join(path, f"{0:020d}.log"),
            "cut_position": 3 * SIZE,
            "reason": f"batch of {SIZE} bytes runs past the end of the file",
            "swaps_completed": 0,
        }
    finally:
        wal.close()


def test_a_clean_open_reports_the_marker_and_nothing_dropped(tmp_path, twin):
    path = str(tmp_path / "clean")
    _build(path, 3)
    wal = twin(path, fsync="never")
    try:
        report = _report(wal)
    finally:
        wal.close()
    assert report["clean"] is True
    assert report["truncated_bytes"] == 0 and report["first_dropped_offset"] is None
    assert report["end_offset"] == report["old_end_offset"] == 6
    assert report["scanned_segments"] == 0 and report["cut_file"] is None


def test_a_missing_middle_segment_is_reported_with_every_later_segment_deleted(tmp_path, twin):
    path = str(tmp_path / "gap")
    # Two batches per segment: segments start at offsets 0, 4, 8, 12.
    _build(path, 8, segment_bytes=2 * SIZE)
    logs = sorted(n for n in os.listdir(path) if n.endswith(".log"))
    assert [int(n[:20]) for n in logs] == [0, 4, 8, 12]
    os.unlink(os.path.join(path, logs[1]))
    set_crash_state(path, 0)
    wal = twin(path, fsync="never", segment_bytes=2 * SIZE)
    try:
        assert wal.high_watermark == 4
        report = _report(wal)
    finally:
        wal.close()
    assert report["segments_deleted"] == 2
    assert report["truncated_bytes"] == 4 * SIZE
    assert report["first_dropped_offset"] == 4
    assert report["old_end_offset"] == 16
    assert report["cut_file"] == os.path.join(path, f"{8:020d}.log")
    assert report["cut_position"] == 0
    assert report["reason"] == "segment starts at offset 8 where 4 was expected"
    assert sorted(n for n in os.listdir(path) if n.endswith(".log")) == [logs[0]]


def test_the_log_warns_once_naming_directory_bytes_and_offsets(torn_log, caplog):
    with caplog.at_level(logging.INFO, logger="streamcore.storage"):
        log = Log(torn_log, fsync="never")
    try:
        records = [r for r in caplog.records if r.name == "streamcore.storage"]
        warnings = [r for r in records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in records]
        line = warnings[0].getMessage()
        assert torn_log in line
        assert f"dropped {SIZE - 30} bytes" in line
        assert "offsets 6 to 7" in line
        assert "now ends at offset 6" in line
        assert f"at byte {3 * SIZE}" in line
        assert log.recovery_report["first_dropped_offset"] == 6
    finally:
        log.close()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="streamcore.storage"):
        Log(torn_log, fsync="never").close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_recovery_that_drops_nothing_logs_no_warning(tmp_path, caplog):
    path = str(tmp_path / "intact")
    _build(path, 3)
    set_crash_state(path, 0)
    with caplog.at_level(logging.INFO, logger="streamcore.storage"):
        log = Log(path, fsync="never")
    log.close()
    levels = [r.levelno for r in caplog.records if r.name == "streamcore.storage"]
    assert logging.WARNING not in levels
    assert logging.INFO in levels  # the unclean shutdown is still mentioned
    assert log.recovery_report["truncated_bytes"] == 0


def test_damage_below_the_recovery_point_names_the_way_out(tmp_path, twin):
    path = str(tmp_path / "damaged")
    _build(path, 4)
    seg = os.path.join(path, f"{0:020d}.log")
    with open(seg, "r+b") as fh:
        fh.seek(SIZE + 100)  # inside the second batch's records: its CRC fails
        byte = fh.read(1)
        fh.seek(SIZE + 100)
        fh.write(bytes([byte[0] ^ 0x04]))
    set_crash_state(path, 8)
    with pytest.raises(StorageError) as info:
        twin(path, fsync="never")
    message = str(info.value)
    assert f"streamcore log recover --truncate {path}" in message
    assert seg in message and f"byte {SIZE}" in message and "offset 2" in message
    assert os.path.getsize(seg) == 4 * SIZE


def test_a_lowered_recovery_point_is_honoured_after_a_clean_stop(tmp_path, twin):
    path = str(tmp_path / "lowered")
    _build(path, 4)
    seg = os.path.join(path, f"{0:020d}.log")
    with open(seg, "rb") as fh:
        original = fh.read()
    with open(seg, "r+b") as fh:
        fh.seek(2 * SIZE + 100)
        fh.write(bytes([original[2 * SIZE + 100] ^ 0x01]))
    assert os.path.exists(os.path.join(path, ".clean_shutdown"))
    # Only the recovery point changes; the marker stays, as after a clean stop.
    with open(os.path.join(path, "checkpoint"), "w", encoding="utf-8") as fh:
        fh.write("version 1\nlog_start_offset 0\nrecovery_point 4\n")
    wal = twin(path, fsync="never")
    try:
        assert wal.high_watermark == 4
        report = _report(wal)
        assert report["clean"] is True
        assert report["first_dropped_offset"] == 4 and report["old_end_offset"] == 8
        assert report["truncated_bytes"] == 2 * SIZE
        assert report["reason"].startswith("CRC32C mismatch")
        kept = split_batches(wal.read(0, 1 << 20))
        assert [b[8:] for b in kept] == [original[i * SIZE + 8 : (i + 1) * SIZE] for i in range(2)]
    finally:
        wal.close()
    assert os.path.getsize(seg) == 2 * SIZE
