"""LogCleaner over live Logs: when a log is cleaned, what a pass keeps, and that it survives reopening.

Runs on whichever WAL and cleaner ``streamcore._impl`` selected (CI runs the suite
native and with STREAMCORE_NO_EXTENSIONS=1).
"""

from __future__ import annotations

import os
import random
import time

import pytest

from streamcore.codec import decode_batches, encode_batch
from streamcore.storage import Log
from streamcore.storage.cleaner import (
    CHECKPOINT_NAME,
    CompactionSettings,
    LogCleaner,
    read_first_dirty_offset,
)
from streamcore.storage.log_manager import LogManager, find_missing_offsets

# Small segments so that a few hundred records make several closed segments.
_SEGMENT_BYTES = 4096
_NOW = 1_800_000_000_000


def _open(path: str, **kw) -> Log:
    return Log(path, fsync="never", segment_bytes=_SEGMENT_BYTES, index_interval_bytes=256, **kw)


def _append(log: Log, key: bytes, value: bytes | None, ts: int = _NOW - 10_000) -> int:
    return log.append(encode_batch([value], keys=[key], timestamps_ms=[ts])).base_offset


def _all_records(log: Log) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    offset = log.log_start_offset
    while offset < log.high_watermark:
        data = log.read(offset, 1 << 20)
        batches = decode_batches(data)
        assert batches, f"no batch at {offset} below the high watermark {log.high_watermark}"
        for batch in batches:
            out.extend((r.offset, r.key, r.value) for r in batch.records)
        offset = batches[-1].last_offset + 1
    return out


def _expected_latest(written: list[tuple[int, bytes, bytes | None]]) -> dict[bytes, tuple[int, bytes | None]]:
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    for offset, key, value in written:
        latest[key] = (offset, value)
    return latest


def _workload(log: Log, n: int, keys: int, seed: int = 7) -> list[tuple[int, bytes, bytes | None]]:
    rng = random.Random(seed)
    written = []
    for i in range(n):
        key = f"k{rng.randrange(keys)}".encode()
        value = f"v{i}".encode() * 8
        written.append((_append(log, key, value), key, value))
    return written


def _cleaner(log: Log, settings: CompactionSettings | None = None, **kw) -> LogCleaner:
    chosen = settings or CompactionSettings(segment_bytes=_SEGMENT_BYTES)
    return LogCleaner(lambda: [("t", log)], lambda _key: chosen, clock=lambda: _NOW, **kw)


def test_a_pass_keeps_the_latest_record_of_every_key_at_its_offset(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        written = _workload(log, 400, keys=20)
        hw, start, before = log.high_watermark, log.log_start_offset, log.size_bytes
        report = _cleaner(log).clean_log(log, CompactionSettings(segment_bytes=_SEGMENT_BYTES), _NOW)
        assert report is not None and report.completed and report.segments_replaced >= 2
        records = _all_records(log)
        offsets = [o for o, _, _ in records]
        assert offsets == sorted(set(offsets)), "offsets must stay unique and increasing"
        assert log.high_watermark == hw and log.log_start_offset == start
        assert log.size_bytes < before
        latest = _expected_latest(written)
        by_key = {}
        for offset, key, value in records:
            by_key.setdefault(key, []).append((offset, value))
        # The active segment is not cleaned, so a key may still appear twice there;
        # below the cleaned end each key appears once, at its latest offset there.
        for key, (offset, value) in latest.items():
            assert by_key[key][-1] == (offset, value)
        for offset, key, _value in records:
            if offset < report.end_offset:
                later = [o for o, k, _ in written if k == key and o < report.end_offset]
                assert offset == max(later)
        assert read_first_dirty_offset(log.directory) == report.end_offset
        assert log.compacted_offset >= report.end_offset


def test_the_cleaned_log_reopens_the_same_after_clean_and_unclean_shutdown(tmp_path):
    path = str(tmp_path / "p")
    with _open(path) as log:
        _workload(log, 300, keys=15)
        assert _cleaner(log).clean_log(log, CompactionSettings(segment_bytes=_SEGMENT_BYTES), _NOW)
        records = _all_records(log)
        hw = log.high_watermark
    assert find_missing_offsets(path) is None
    with _open(path) as log:
        assert _all_records(log) == records and log.high_watermark == hw
        assert log.recovery_report["truncated_bytes"] == 0
    # As after a crash: no clean-shutdown marker, no checkpoint, no indexes.
    for name in os.listdir(path):
        if name.endswith((".index", ".timeindex")) or name in ("checkpoint", ".clean_shutdown"):
            os.unlink(os.path.join(path, name))
    with _open(path) as log:
        assert _all_records(log) == records and log.high_watermark == hw
        assert log.recovery_report["truncated_bytes"] == 0
        assert not log.recovery_report["clean"]


def test_run_once_waits_for_the_dirty_ratio(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        # Mostly distinct keys: the clean part stays large after the first pass.
        _workload(log, 300, keys=1_000_000)
        strict = CompactionSettings(segment_bytes=_SEGMENT_BYTES, min_cleanable_dirty_ratio=0.5)
        cleaner = _cleaner(log, strict)
        first = cleaner.run_once()
        assert len(first) == 1 and first[0].dirty_ratio == 1.0
        # Only a little new dirty data against a compacted clean part: below the ratio.
        for i in range(40):
            _append(log, f"k{i % 10}".encode(), b"new" * 20)
        assert cleaner.run_once() == []
        assert 0 < cleaner.stats.max_dirty_ratio < 0.5
        eager = _cleaner(
            log, CompactionSettings(segment_bytes=_SEGMENT_BYTES, min_cleanable_dirty_ratio=0.01)
        )
        assert len(eager.run_once()) == 1


def test_max_compaction_lag_forces_a_pass_below_the_ratio(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        _workload(log, 300, keys=10)
        settings = CompactionSettings(segment_bytes=_SEGMENT_BYTES, min_cleanable_dirty_ratio=1.0)
        lagging = CompactionSettings(
            segment_bytes=_SEGMENT_BYTES, min_cleanable_dirty_ratio=1.0, max_compaction_lag_ms=1000
        )
        for i in range(60):
            _append(log, f"k{i % 10}".encode(), b"x" * 100, ts=_NOW - 60_000)
        cleaner = _cleaner(log, lagging)
        cleaner.run_once()  # the first pass cleans the whole fresh log (ratio 1.0)
        for i in range(60):
            _append(log, f"k{i % 10}".encode(), b"y" * 100, ts=_NOW - 60_000)
        ratio_only = _cleaner(log, settings)
        assert ratio_only.run_once() == []
        reports = cleaner.run_once()
        assert len(reports) == 1 and reports[0].dirty_ratio < 1.0


def test_records_newer_than_min_compaction_lag_are_not_touched(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        old = [(_append(log, f"k{i % 5}".encode(), b"old" * 30, ts=_NOW - 3_600_000), i) for i in range(150)]
        recent = [(_append(log, f"k{i % 5}".encode(), b"new" * 30, ts=_NOW - 1_000), i) for i in range(150)]
        settings = CompactionSettings(segment_bytes=_SEGMENT_BYTES, min_compaction_lag_ms=60_000)
        report = _cleaner(log, settings).clean_log(log, settings, _NOW)
        assert report is not None
        offsets = {o for o, _, _ in _all_records(log)}
        # Every recent record is still there, duplicates included.
        assert all(o in offsets for o, _ in recent)
        assert report.end_offset <= recent[0][0]
        assert len([o for o, _ in old if o in offsets]) < len(old)


def test_tombstones_are_removed_after_delete_retention(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        for i in range(100):
            _append(log, f"k{i % 10}".encode(), b"v" * 50)
        tomb = _append(log, b"k3", None)
        for i in range(100):
            _append(log, f"z{i % 10}".encode(), b"w" * 50)
        settings = CompactionSettings(segment_bytes=_SEGMENT_BYTES, delete_retention_ms=5_000)
        cleaner = _cleaner(log, settings)
        cleaner.clean_log(log, settings, _NOW)
        records = _all_records(log)
        assert (tomb, b"k3", None) in records
        assert not any(k == b"k3" and v is not None for _, k, v in records)
        # The next pass after the horizon drops the tombstone itself.
        for i in range(100):
            _append(log, f"z{i % 10}".encode(), b"u" * 50)
        cleaner.clean_log(log, settings, _NOW + 10_000)
        assert not any(k == b"k3" for _, k, _ in _all_records(log))


def test_a_pass_beaten_by_delete_records_is_abandoned_and_leaves_no_files(tmp_path):
    with _open(str(tmp_path / "p")) as log:
        _workload(log, 300, keys=10)
        cleaner = _cleaner(log)
        original = log.replace_segments

        def racing(path, base, end):
            # Retention/DeleteRecords gets there between the cleaning and the swap.
            log.delete_records(end)
            return original(path, base, end)

        log.replace_segments = racing  # type: ignore[method-assign]
        report = cleaner.clean_log(log, CompactionSettings(segment_bytes=_SEGMENT_BYTES), _NOW)
        assert report is not None and not report.completed
        assert cleaner.stats.passes_abandoned == 1
        assert not [n for n in os.listdir(log.directory) if n.endswith((".cleaned", ".swap"))]
        assert not os.path.exists(os.path.join(log.directory, CHECKPOINT_NAME))


def test_the_log_managers_cleaner_thread_compacts_only_compacted_logs(tmp_path):
    manager = LogManager(tmp_path / "data")
    try:
        compacted = manager.open(("c", 0), fsync="never", segment_bytes=_SEGMENT_BYTES, lock=False)
        plain = manager.open(("d", 0), fsync="never", segment_bytes=_SEGMENT_BYTES, lock=False)
        _workload(compacted, 300, keys=10)
        _workload(plain, 300, keys=10)
        plain_size = plain.size_bytes
        settings = CompactionSettings(segment_bytes=_SEGMENT_BYTES)
        cleaner = manager.start_cleaner(lambda key: settings if key[0] == "c" else None, backoff_ms=20)
        deadline = time.monotonic() + 30
        while cleaner.stats.passes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cleaner.stats.passes >= 1 and cleaner.stats.segments_replaced >= 2
        assert plain.size_bytes == plain_size
        assert read_first_dirty_offset(plain.directory) is None
    finally:
        manager.close()
    assert manager.cleaner is None


@pytest.mark.parametrize(
    "bad", [{"io_max_bytes_per_second": 0}, {"dedupe_buffer_bytes": 10}, {"backoff_ms": 0}]
)
def test_bad_cleaner_settings_are_refused(bad):
    with pytest.raises(ValueError):
        LogCleaner(lambda: [], lambda _k: None, **bad)
