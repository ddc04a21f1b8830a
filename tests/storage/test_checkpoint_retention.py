"""Checkpoint atomicity, the clean-shutdown marker, retention by time and bytes, RetentionScheduler."""

from __future__ import annotations

import os

import pytest

from streamcore.errors import OffsetOutOfRangeError, StorageError
from streamcore.storage import RetentionScheduler

from .batches import batch_of_size, batch_offsets, make_batch
from .crash import read_checkpoint, set_crash_state


def _fill(log, n: int, size: int = 1000, ts0: int = 1_000_000) -> None:
    for i in range(n):
        log.append(batch_of_size(size, base_timestamp=ts0 + i * 1000))


def test_stray_checkpoint_tmp_is_ignored_and_removed(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never")
    log.append(make_batch(3))
    log.close()
    # A crash between writing checkpoint.tmp and renaming it: the half-written file must not count.
    (path / "checkpoint.tmp").write_text("version 1\nlog_start_offset 99\nrecov")
    log = open_log(path, fsync="never")
    assert (log.log_start_offset, log.high_watermark) == (0, 3)
    assert not (path / "checkpoint.tmp").exists()


def test_clean_shutdown_marker_is_removed_at_open_and_written_at_close(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never")
    log.append(make_batch(1))
    assert not (path / ".clean_shutdown").exists()
    log.close()
    assert (path / ".clean_shutdown").exists()
    log = open_log(path, fsync="never")
    assert not (path / ".clean_shutdown").exists()


def _flip_byte(path: str, pos: int) -> None:
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x40]))


def test_clean_shutdown_skips_the_scan(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never")
    _fill(log, 10)
    log.close()
    # Damage the CRC-covered body of batch 3: a scan would notice, the clean fast path does not.
    _flip_byte(str(path / f"{0:020d}.log"), 3 * 1000 + 100)
    log = open_log(path, fsync="never")
    assert log.high_watermark == 10
    log.close()
    # The same damage without the marker is found: it lies below the recovery point.
    set_crash_state(str(path), recovery_point=10)
    with pytest.raises(StorageError):
        open_log(path, fsync="never")


def test_clean_marker_with_a_torn_last_segment_scans_anyway(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never")
    _fill(log, 5)
    log.close()
    with open(path / f"{0:020d}.log", "r+b") as f:
        f.truncate(4500)  # half of the last batch
    with open(path / "checkpoint", "w") as f:
        f.write("version 1\nlog_start_offset 0\nrecovery_point 4\n")
    log = open_log(path, fsync="never")
    assert log.high_watermark == 4
    assert os.path.getsize(path / f"{0:020d}.log") == 4000


def test_retention_by_time_deletes_only_closed_segments_older_than_retention(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never", segment_bytes=2000, retention_ms=10_000)
    _fill(log, 9)  # segments [0,1] [2,3] [4,5] [6,7] [8]; batch i max ts = 1_000_000 + 1000 i
    assert log.segment_count == 5
    # now - 10 s = 1_003_500: segments whose newest timestamp is older go ([0,1], [2,3]).
    assert log.apply_retention(now_ms=1_013_500) == 2
    assert log.log_start_offset == 4
    assert log.segment_count == 3
    assert batch_offsets(log.read(4, 1))[0] == 4
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 1)
    assert not any(n.startswith(f"{0:020d}") or n.startswith(f"{2:020d}") for n in os.listdir(path))
    assert read_checkpoint(str(path))[0] == 4
    # Far in the future every closed segment goes, the active one never.
    assert log.apply_retention(now_ms=10**13) == 2
    assert (log.segment_count, log.log_start_offset, log.high_watermark) == (1, 8, 9)


def test_retention_by_bytes_keeps_at_least_retention_bytes(open_log):
    log = open_log(fsync="never", segment_bytes=2000, retention_bytes=4500)
    _fill(log, 9)  # 9000 bytes in segments of 2000, 2000, 2000, 2000, 1000
    # Deleting while total - segment >= 4500: 9000 -> 7000 -> 5000; the next would leave 3000.
    assert log.apply_retention() == 2
    assert log.size_bytes == 5000
    assert log.log_start_offset == 4
    assert log.apply_retention() == 0


def test_retention_without_settings_deletes_nothing(open_log):
    log = open_log(fsync="never", segment_bytes=2000)
    _fill(log, 6)
    assert log.apply_retention(now_ms=10**13) == 0
    assert log.log_start_offset == 0


def test_log_start_offset_survives_reopen_after_retention(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never", segment_bytes=2000, retention_bytes=1)
    _fill(log, 6)
    assert log.apply_retention() == 2
    log.close()
    log = open_log(path, fsync="never", segment_bytes=2000)
    assert (log.log_start_offset, log.high_watermark) == (4, 6)


def test_crash_mid_deletion_leftover_deleted_files_are_removed_at_open(open_log, tmp_path):
    path = tmp_path / "p"
    log = open_log(path, fsync="never", segment_bytes=2000)
    _fill(log, 6)
    log.close()
    # A crash after renaming segment 0 to .deleted but before the checkpoint update.
    for suffix in (".log", ".index", ".timeindex"):
        name = f"{0:020d}{suffix}"
        os.replace(path / name, path / (name + ".deleted"))
    set_crash_state(str(path), recovery_point=6, log_start_offset=0)
    log = open_log(path, fsync="never", segment_bytes=2000)
    assert (log.log_start_offset, log.high_watermark) == (2, 6)
    assert not [n for n in os.listdir(path) if n.endswith(".deleted")]


def test_retention_scheduler_runs_retention_on_every_log(open_log, tmp_path):
    logs = [
        open_log(tmp_path / f"p{i}", fsync="never", segment_bytes=2000, retention_bytes=1) for i in range(3)
    ]
    for log in logs:
        _fill(log, 6)
    scheduler = RetentionScheduler(lambda: logs, interval_ms=60_000)
    assert scheduler.run_once() == 6
    assert [log.log_start_offset for log in logs] == [4, 4, 4]
    with scheduler:
        pass  # starts and stops its thread cleanly
    assert scheduler.deleted_segments == 6
