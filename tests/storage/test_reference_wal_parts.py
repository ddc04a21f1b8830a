"""Seams of the reference WAL package (``streamcore._reference.wal``) that the log-level tests cross only indirectly.

The package mirrors ``rust/core/src/wal/``; these tests pin what each part
promises on its own: the checkpoint's exact bytes through the shared atomic
writer, the config checks, the append framing check, the retention policy and
the read lookups at their edges.
"""

from __future__ import annotations

import os

import pytest

from streamcore._reference import _batch_header as bh
from streamcore._reference import wal as reference_wal
from streamcore._reference.wal import checkpoint, config, error, read, retention
from streamcore.errors import CorruptRecordError, OffsetOutOfRangeError, StorageError

from .batches import make_batch
from .conftest import native_wal_module


def test_package_public_face_is_the_log_its_pool_and_the_completion_queue():
    # The same public names as the native module (``_native.wal``).
    assert reference_wal.__all__ == ["CompletionQueue", "WalLog", "WalPool"]
    native = native_wal_module()
    if native is not None:
        assert sorted(native.__all__) == reference_wal.__all__


def test_checkpoint_bytes_are_three_exact_lines_and_no_temp_file_is_left(tmp_path):
    checkpoint.write_checkpoint(str(tmp_path), 7, 1234)
    assert (tmp_path / "checkpoint").read_bytes() == b"version 1\nlog_start_offset 7\nrecovery_point 1234\n"
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]
    assert checkpoint.read_checkpoint(str(tmp_path)) == (7, 1234)


def test_checkpoint_write_failure_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    checkpoint.write_checkpoint(str(tmp_path), 1, 2)

    def failing_replace(src, dst):
        raise OSError(28, "no space left")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        checkpoint.write_checkpoint(str(tmp_path), 5, 6)
    monkeypatch.undo()
    assert checkpoint.read_checkpoint(str(tmp_path)) == (1, 2)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint"]


def test_missing_checkpoint_reads_as_none_and_a_damaged_one_is_a_storage_error(tmp_path):
    assert checkpoint.read_checkpoint(str(tmp_path)) is None
    (tmp_path / "checkpoint").write_text("version 2\nlog_start_offset 0\nrecovery_point 0\n")
    with pytest.raises(StorageError, match="unreadable checkpoint"):
        checkpoint.read_checkpoint(str(tmp_path))


def test_wal_log_writes_its_checkpoint_through_the_shared_format(tmp_path):
    path = str(tmp_path / "p")
    with reference_wal.WalLog(path, fsync="never") as log:
        log.append(make_batch(3))
    assert (tmp_path / "p" / "checkpoint").read_text() == checkpoint.render_checkpoint(0, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fsync": "sometimes"}, "fsync must be one of"),
        ({"queue_depth": 0}, "queue_depth must be >= 1"),
        ({"index_interval_bytes": 0}, "index_interval_bytes must be >= 1"),
        ({"max_wait_ms": -1}, "max_wait_ms must be >= 0"),
        ({"segment_ms": 0}, "segment_ms must be >= 1 or None"),
    ],
)
def test_config_rejects_each_setting_out_of_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        config.WalConfig(**kwargs)


def test_config_normalises_to_ints():
    cfg = config.WalConfig(fsync="always", queue_depth=True, segment_ms=5.0)
    assert (cfg.queue_depth, cfg.segment_ms) == (1, 5)
    assert type(cfg.segment_ms) is int
    assert config.WalConfig(fsync_interval_ms=250).fsync_interval_s == 0.25


def test_append_framing_check_names_the_byte_of_each_fault():
    good = bytearray(make_batch(2))
    assert reference_wal.check_append_header(good) == 1
    with pytest.raises(CorruptRecordError, match="shorter than the 61-byte header"):
        reference_wal.check_append_header(good[: bh.HEADER_SIZE - 1])
    with pytest.raises(CorruptRecordError, match="batchLength field at byte 8"):
        reference_wal.check_append_header(good + b"\x00")
    bad_magic = bytearray(good)
    bad_magic[bh.MAGIC_AT] = 1
    with pytest.raises(CorruptRecordError, match="magic byte at byte 16 is 1"):
        reference_wal.check_append_header(bad_magic)
    negative = bytearray(good)
    negative[bh.LAST_OFFSET_DELTA_AT : bh.LAST_OFFSET_DELTA_AT + 4] = (-1).to_bytes(4, "big", signed=True)
    with pytest.raises(CorruptRecordError, match="lastOffsetDelta at byte 23 is negative"):
        reference_wal.check_append_header(negative)


class _Seg:
    def __init__(self, size: int, largest: int | None) -> None:
        self.size = size
        self._largest = largest

    def largest_timestamp(self) -> int | None:
        return self._largest


def test_retention_policy_counts_only_a_prefix_and_never_the_active_segment():
    segs = [_Seg(100, 10), _Seg(100, 50), _Seg(100, 20), _Seg(100, 5)]
    # by time: stops at the first segment young enough, even if later ones are older
    assert retention.count_victims(segs, 30, None, 60) == 1
    assert retention.count_victims(segs, 1, None, 10_000) == 3  # the active one stays
    # by size: the log without the oldest must still hold >= retention_bytes
    assert retention.count_victims(segs, None, 200, 0) == 2
    assert retention.count_victims(segs, None, 201, 0) == 1
    assert retention.count_victims(segs, None, None, 0) == 0


def test_read_lookup_bounds_and_the_high_watermark(tmp_path):
    with reference_wal.WalLog(str(tmp_path / "p"), fsync="never") as log:
        log.append(make_batch(2))
        log.append(make_batch(1))
        args = (log._segments, log._bases, log.log_start_offset, log.high_watermark, log.directory)
        assert read.find_spans(*args, 3, 1 << 20) == []
        with pytest.raises(OffsetOutOfRangeError, match="offset 4 is outside"):
            read.find_spans(*args, 4, 1 << 20)
        # max_bytes below one batch still returns that whole batch
        [(seg, pos, length)] = read.find_spans(*args, 1, 1)
        assert (pos, length) == (0, bh.batch_size(log.read(0, 1)))


def test_error_table_builds_the_classes_the_native_binding_maps_to():
    cause = OSError(5, "EIO")
    failure = error.offline("down", cause)
    assert isinstance(failure, error.LogOfflineError) and failure.__cause__ is cause
    pressure = error.backpressure("/d", 10, 7)
    assert isinstance(pressure, error.BackpressureError) and pressure.throttle_time_ms == 7
    assert isinstance(error.closed("/d"), StorageError)
