"""Storage faults heal and damage is never silent, at the log manager (docs/storage.md, "Faults").

The full disk is real: a tmpfs of 1 MiB mounted for the test (CI runs as root), filled
until a write fails with ENOSPC, then given room again by removing a filler file. The
health pass is called directly with an explicit clock, so no test waits on a timer.
Everything goes through ``storage.Log``, so both passes of the suite (native, and
``STREAMCORE_NO_EXTENSIONS=1``) run each test on their own WAL.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamcore.codec.batch_header import CRC_START, LOG_OVERHEAD, parse_header
from streamcore.errors import LogOfflineError, StorageError
from streamcore.storage import Log
from streamcore.storage.log_manager import LogManager, find_damage, find_missing_offsets

from .batches import make_batch

KEY = ("t", 0)
OTHER = ("t", 1)
SETTINGS = {"fsync": "always", "segment_bytes": 64 * 1024, "lock": False}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test, with a 256 KiB filler file to remove later."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)
    try:
        (mount / "filler").write_bytes(b"\xff" * (256 * 1024))
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _storage_lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "streamcore.storage" and r.levelno == level and text in r.getMessage()
    ]


def _fill_until_offline(log: Log) -> list[tuple[int, bytes]]:
    """Append distinct batches until the disk is full; returns (base offset, batch) of every acknowledged one."""
    acked: list[tuple[int, bytes]] = []
    for i in range(20_000):  # far more than 1 MiB holds
        batch = make_batch([i.to_bytes(4, "big") * 100])
        try:
            res = log.append(batch)
        except LogOfflineError:
            return acked
        acked.append((res.base_offset, batch))
    raise AssertionError("the disk never filled")


def _same_batch(stored: bytes, sent: bytes) -> bool:
    # The log sets baseOffset (bytes 0-7); everything else is stored as sent.
    return stored[8:] == sent[8:]


def _read_all(log: Log, acked: list[tuple[int, bytes]]) -> None:
    for offset, sent in acked:
        data = log.read(offset, 1)
        header = parse_header(data)
        assert header.base_offset == offset
        assert _same_batch(data[: header.batch_length + LOG_OVERHEAD], sent), offset


def test_a_full_disk_takes_the_log_offline_and_it_comes_back_once_space_is_freed(small_fs, caplog):
    manager = LogManager(small_fs, retry_backoff_ms=100, retry_backoff_max_ms=400)
    reopened: list[tuple] = []
    manager.add_reopen_listener(lambda key, log: reopened.append((key, log)))
    try:
        log = manager.open(KEY, **SETTINGS)
        caplog.set_level(logging.DEBUG, logger="streamcore.storage")
        acked = _fill_until_offline(log)
        assert len(acked) > 100
        assert log.is_offline

        assert manager.check_health(now=1000.0) == 0
        assert list(manager.offline_partitions()) == [KEY]
        assert manager.health_figures()["offline_partitions"] == 1
        # Still full: each try fails, nothing new is logged at ERROR, the wait doubles up to the cap.
        for now in (1000.1, 1000.3, 1000.7, 1001.5, 1002.0):
            assert manager.check_health(now=now) == 0
        waits = [m for m in _storage_lines(caplog, logging.DEBUG, "still offline")]
        assert [w.rsplit("next try in ", 1)[1] for w in waits] == ["0.2 s)", "0.4 s)", "0.4 s)", "0.4 s)"]
        with pytest.raises(StorageError):
            log.append(make_batch(1))
        assert manager.check_health(now=1002.5) == 0
        # Once per change of state: the WAL's ERROR with the cause, the manager's WARNING.
        assert len(_storage_lines(caplog, logging.ERROR, "")) == 1
        assert len(_storage_lines(caplog, logging.WARNING, "partition t-0 is offline")) == 1

        (small_fs / "filler").unlink()
        assert manager.check_health(now=1003.0) == 1
        assert manager.offline_partitions() == {}
        assert not log.is_offline
        assert reopened == [(KEY, log)]
        assert len(_storage_lines(caplog, logging.INFO, "is back online")) == 1
        assert manager.open(KEY) is log  # the same object: every holder sees the reopened log
        _read_all(log, acked)
        assert log.high_watermark >= acked[-1][0] + 1
        after = log.append(make_batch([b"after the fault"]))
        assert after.base_offset == log.high_watermark - 1
    finally:
        manager.close()
    # The reopened log closes cleanly and reopens with every acknowledged batch.
    with Log(small_fs / "t-0", lock=False) as again:
        _read_all(again, acked)


def test_the_health_thread_brings_the_partition_back_by_itself(small_fs):
    manager = LogManager(small_fs, retry_backoff_ms=50, retry_backoff_max_ms=200, health_interval_ms=20)
    try:
        log = manager.open(KEY, **SETTINGS)
        acked = _fill_until_offline(log)
        manager.start_healing()
        (small_fs / "filler").unlink()
        # Bounded wait: the goal is 10 s; with these settings it takes well under one.
        deadline = time.monotonic() + 10
        while manager.offline_partitions() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert manager.offline_partitions() == {}
        _read_all(log, acked)
    finally:
        manager.close()


def _two_partitions(data_dir: Path) -> None:
    for key in (KEY, OTHER):
        with Log(data_dir / f"{key[0]}-{key[1]}", lock=False, segment_bytes=1024) as log:
            for i in range(40):
                log.append(make_batch([bytes([i]) * 50]))


def _flip_first_batch(directory: Path) -> None:
    """Corrupt a byte in the first batch's records and drop the clean marker, so recovery meets it."""
    (directory / ".clean_shutdown").unlink(missing_ok=True)
    segment = sorted(directory.glob("*.log"))[-1]
    with open(segment, "r+b") as fh:
        fh.seek(70)
        byte = fh.read(1)
        fh.seek(70)
        fh.write(bytes([byte[0] ^ 0x40]))


def test_a_damaged_partition_is_kept_offline_and_the_others_open(tmp_path, caplog):
    _two_partitions(tmp_path)
    _flip_first_batch(tmp_path / "t-0")
    manager = LogManager(tmp_path)
    try:
        with caplog.at_level(logging.ERROR, logger="streamcore.storage"):
            with pytest.raises(LogOfflineError, match="streamcore log recover --truncate"):
                manager.open(KEY, lock=False)
            # Asked again: the same refusal, from memory, with no second scan or log line.
            with pytest.raises(LogOfflineError):
                manager.open(KEY, lock=False)
            other = manager.open(OTHER, lock=False)
            assert other.high_watermark == 40
            # Damage is not retried: it waits for an operator.
            assert manager.check_health(now=1e9) == 0
        assert list(manager.offline_partitions()) == [KEY]
        lines = _storage_lines(caplog, logging.ERROR, "its data is damaged")
        assert len(lines) == 1
        assert str(tmp_path / "t-0") in lines[0]
    finally:
        manager.close()


def test_on_damage_refuse_raises_the_damage(tmp_path):
    _two_partitions(tmp_path)
    _flip_first_batch(tmp_path / "t-0")
    manager = LogManager(tmp_path, on_damage="refuse")
    try:
        with pytest.raises(StorageError, match="streamcore log recover --truncate") as info:
            manager.open(KEY, lock=False)
        assert not isinstance(info.value, LogOfflineError)
        assert manager.offline_partitions() == {}
    finally:
        manager.close()


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.log"))


def _drop_segment(segment: Path) -> None:
    for suffix in (".log", ".index", ".timeindex"):
        segment.with_suffix(suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("which", ["middle", "first", "last"])
def test_a_missing_segment_is_found_at_open_after_a_clean_stop(tmp_path, which):
    _two_partitions(tmp_path)
    directory = tmp_path / "t-0"
    segments = _segments(directory)
    assert len(segments) >= 3
    victim = {"middle": segments[1], "first": segments[0], "last": segments[-1]}[which]
    _drop_segment(victim)
    found = find_missing_offsets(directory)
    assert found is not None and "missing" in found
    manager = LogManager(tmp_path)
    try:
        with pytest.raises(LogOfflineError, match="are missing"):
            manager.open(KEY, lock=False)
        assert manager.open(OTHER, lock=False).high_watermark == 40
    finally:
        manager.close()


def test_a_tail_cut_at_a_batch_boundary_below_the_recovery_point_is_found(tmp_path):
    _two_partitions(tmp_path)
    directory = tmp_path / "t-0"
    last = _segments(directory)[-1]
    first = parse_header(last.read_bytes())
    os.truncate(last, first.batch_length + LOG_OVERHEAD)
    assert "recovery point" in (find_missing_offsets(directory) or "")


def test_sound_directories_and_interrupted_retention_are_not_damage(tmp_path):
    _two_partitions(tmp_path)
    assert find_missing_offsets(tmp_path / "t-0") is None
    # Retention renames the oldest segment to *.deleted before it moves the log start:
    # a crash in between leaves a gap below the first segment that is not damage.
    first = _segments(tmp_path / "t-1")[0]
    first.rename(first.with_name(first.name + ".deleted"))
    assert find_missing_offsets(tmp_path / "t-1") is None


def _batches(count: int) -> bytes:
    out = bytearray()
    for i in range(count):
        b = bytearray(make_batch([bytes([i]) * 20, bytes([i]) * 20]))
        b[0:8] = (2 * i).to_bytes(8, "big")
        out += b
    return bytes(out)


def test_find_damage_accepts_sound_batches_and_a_compacted_gap():
    data = _batches(3)
    assert find_damage(data, 0) is None
    assert find_damage(data, 1) is None  # the first batch holds offsets 0 and 1
    second = parse_header(data).batch_length + LOG_OVERHEAD
    gap = bytearray(data)
    gap[second : second + 8] = (5).to_bytes(8, "big")  # offsets 2-4 compacted away
    assert find_damage(bytes(gap[: 2 * second]), 0) is None


def test_find_damage_names_the_first_bad_batch():
    data = _batches(3)
    size = parse_header(data).batch_length + LOG_OVERHEAD
    flipped = bytearray(data)
    flipped[size + CRC_START + 30] ^= 1
    index, first, last, reason, missing = find_damage(bytes(flipped), 0)
    assert (index, first, last, missing) == (size, 2, 3, False)
    assert "CRC32C" in reason

    index, first, _, reason, missing = find_damage(data[: 2 * size + 20], 0)
    assert (index, first, missing) == (2 * size, 4, True)

    zeroed = bytearray(data)
    zeroed[size : 2 * size] = bytes(size)
    index, first, _, reason, missing = find_damage(bytes(zeroed), 0)
    assert (index, first, missing) == (size, 2, True)
    assert "zeroed" in reason

    backwards = bytearray(data)
    backwards[size : size + 8] = (0).to_bytes(8, "big")
    assert find_damage(bytes(backwards), 0)[3].startswith("batch ends at offset 1")

    # A read that starts past the wanted offset skipped data the log should have held.
    assert find_damage(data[size:], 0) is None  # offsets may skip forward (compaction)
    assert find_damage(data, 4)[3].startswith("batch ends at offset 1")


def test_check_read_names_file_position_and_offsets_once(tmp_path, caplog):
    manager = LogManager(tmp_path)
    try:
        log = manager.open(KEY, lock=False)
        sizes = [len(make_batch([bytes([i]) * 30])) for i in range(3)]
        for i in range(3):
            log.append(make_batch([bytes([i]) * 30]))
        log.flush()
        [(path, _, _)] = log.read_spans(0, 1 << 20)
        # Damage appears under the running log (a bad disk block, a stray write).
        fd = os.open(path, os.O_RDWR)
        try:
            os.pwrite(fd, b"\x00\x01", sizes[0] + 70)
        finally:
            os.close(fd)
        with caplog.at_level(logging.DEBUG, logger="streamcore.storage"):
            for _ in range(2):
                data = log.read(0, 1 << 20)
                damage = manager.check_read(KEY, log, 0, 1 << 20, data)
                assert damage is not None
                assert (damage.file, damage.position) == (path, sizes[0])
                assert (damage.first_offset, damage.last_offset, damage.missing) == (1, 1, False)
            assert manager.check_read(KEY, log, 0, 1 << 20, log.read(0, 1)) is None
        errors = _storage_lines(caplog, logging.ERROR, "a read met corrupt data")
        assert len(errors) == 1
        assert f"{path} at byte {sizes[0]}" in errors[0] and "offsets 1 to 1" in errors[0]
        assert manager.health_figures()["damaged_reads"] == 2
    finally:
        manager.close()
