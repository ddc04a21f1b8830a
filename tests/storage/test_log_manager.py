"""``LogManager``: a data directory's partition logs opened, retained, removed and closed together."""

from __future__ import annotations

import os
import time

import pytest

from streamcore.codec import encode_batch
from streamcore.storage.log_manager import LogManager


def _fill(log, batches: int) -> None:
    for _ in range(batches):
        log.append(encode_batch([b"x" * 400]))


def _settings(**extra):
    return {"fsync": "never", "segment_bytes": 1024, "lock": False, **extra}


def test_open_returns_the_same_log_per_partition_in_its_own_directory(tmp_path):
    manager = LogManager(tmp_path)
    try:
        log = manager.open(("t", 0), **_settings())
        assert manager.open(("t", 0), **_settings()) is log
        assert manager.get(("t", 1)) is None
        assert os.path.samefile(log.directory, tmp_path / "t-0")
        assert manager.items() == [(("t", 0), log)]
    finally:
        manager.close()


def test_the_retention_pass_skips_logs_opened_without_retention(tmp_path):
    manager = LogManager(tmp_path)
    try:
        kept = manager.open(("own", 0), retention=False, **_settings(retention_bytes=1))
        trimmed = manager.open(("t", 0), **_settings(retention_bytes=1))
        for log in (kept, trimmed):
            _fill(log, 8)
        assert manager.apply_retention() > 0
        assert kept.log_start_offset == 0
        assert trimmed.log_start_offset > 0
    finally:
        manager.close()


def test_set_retention_changes_the_limits_of_open_logs(tmp_path):
    manager = LogManager(tmp_path)
    try:
        log = manager.open(("t", 0), **_settings())
        _fill(log, 8)
        assert manager.apply_retention() == 0
        manager.set_retention([("t", 0), ("t", 1)], None, 1)
        assert manager.apply_retention() > 0
    finally:
        manager.close()


def test_the_retention_thread_runs_until_close(tmp_path):
    manager = LogManager(tmp_path)
    log = manager.open(("t", 0), **_settings(retention_bytes=1))
    _fill(log, 8)
    manager.start_retention(10)
    with pytest.raises(RuntimeError):
        manager.start_retention(10)
    deadline = time.monotonic() + 10
    while log.log_start_offset == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log.log_start_offset > 0
    manager.close()
    manager.close()  # idempotent
    with pytest.raises(RuntimeError):
        manager.open(("t", 1), **_settings())


def test_delete_closes_and_removes_partitions_and_a_restart_clears_interrupted_deletions(tmp_path):
    manager = LogManager(tmp_path)
    for p in range(2):
        _fill(manager.open(("t", p), **_settings()), 1)
    manager.open(("u", 0), **_settings())
    manager.delete([("t", 0), ("t", 1)], "abc")
    assert sorted(os.listdir(tmp_path)) == ["u-0"]
    assert [key for key, _ in manager.items()] == [("u", 0)]
    manager.close()
    # A crash after the rename, before the removal, leaves a "-delete" directory behind.
    (tmp_path / "v-0.abc-delete").mkdir()
    LogManager(tmp_path).close()
    assert sorted(os.listdir(tmp_path)) == ["u-0"]
