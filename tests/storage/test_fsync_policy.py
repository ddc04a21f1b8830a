"""fsync policies: always (group commit), interval, never; flush; the recovery point and checkpoint."""

from __future__ import annotations

import os
import threading

from .batches import make_batch
from .crash import read_checkpoint


def test_fsync_always_returns_only_after_an_fsync_covering_the_append(open_log):
    log = open_log(fsync="always")
    for i in range(5):
        res = log.append(make_batch(2))
        stats = log.stats()
        # The recovery point covers the append the moment append returns.
        assert log.recovery_point >= res.last_offset + 1
        assert stats["fsyncs"] >= i + 1
        assert stats["fsyncs"] >= stats["groups"]
    assert log.high_watermark == 10


def test_fsync_always_groups_concurrent_appends_into_fewer_fsyncs_than_appends(open_log):
    log = open_log(fsync="always")
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        for _ in range(25):
            log.append(make_batch(1))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = log.stats()
    assert stats["appends"] == 200
    assert stats["fsyncs"] <= stats["groups"] + 1
    # One fsync per group, never one per append: 8 appenders always find company.
    assert stats["groups"] < stats["appends"]


def test_fsync_never_does_not_fsync_before_close(open_log):
    log = open_log(fsync="never")
    for _ in range(20):
        log.append(make_batch(1))
    assert log.stats()["fsyncs"] == 0
    assert log.high_watermark == 20
    assert log.recovery_point == 0


def test_fsync_interval_fsyncs_in_the_background(open_log):
    log = open_log(fsync="interval", fsync_interval_ms=10)
    log.append(make_batch(1))
    done = threading.Event()
    # Bounded wait for the writer's periodic fsync (the writer wakes by itself, no append needed).
    for _ in range(500):
        if log.recovery_point == 1:
            done.set()
            break
        threading.Event().wait(0.01)
    assert done.is_set()
    assert log.stats()["fsyncs"] >= 1


def test_flush_fsyncs_and_advances_the_recovery_point_under_fsync_never(open_log):
    log = open_log(fsync="never")
    for _ in range(3):
        log.append(make_batch(1))
    log.flush()
    assert log.recovery_point == 3
    assert log.stats()["fsyncs"] == 1


def test_close_writes_the_checkpoint_with_the_final_recovery_point(open_log, tmp_path):
    log = open_log(fsync="never")
    for _ in range(7):
        log.append(make_batch(2))
    log.close()
    assert read_checkpoint(str(tmp_path / "p0")) == (0, 14)
    with open(tmp_path / "p0" / "checkpoint", encoding="utf-8") as f:
        assert f.read().splitlines() == ["version 1", "log_start_offset 0", "recovery_point 14"]
    assert not os.path.exists(tmp_path / "p0" / "checkpoint.tmp")


def test_fsync_interval_starts_writeback_every_4_mib_and_the_other_policies_never(open_log, tmp_path):
    # 1 MiB values: writeback of the active segment starts once 4 MiB have gathered
    # since the last start (the interval fsync then finds little left to write).
    batch = make_batch(1, value_size=1 << 20)
    for fsync in ("interval", "always", "never"):
        log = open_log(tmp_path / fsync, fsync=fsync, fsync_interval_ms=60_000)
        for _ in range(10):
            log.append(batch)
        starts = log.stats()["writeback_starts"]
        if fsync == "interval":
            # After batches 4 and 8 (each a little over 1 MiB with its headers).
            assert starts == 2, starts
        else:
            assert starts == 0, (fsync, starts)
        # A hint only: every record reads back whole.
        assert log.high_watermark == 10
        assert len(log.read(9, 1 << 21)) == len(batch)


def test_writeback_counts_from_the_size_at_open_and_from_zero_after_a_roll(open_log, tmp_path):
    batch = make_batch(1, value_size=1 << 20)
    path = tmp_path / "p"
    log = open_log(path, fsync="interval", fsync_interval_ms=60_000)
    for _ in range(3):
        log.append(batch)
    log.close()
    # Reopened: the 3 MiB already on disk do not count toward the next start.
    log = open_log(path, fsync="interval", fsync_interval_ms=60_000, segment_bytes=8 * len(batch))
    for _ in range(3):
        log.append(batch)
    assert log.stats()["writeback_starts"] == 0
    log.append(batch)  # 4 MiB written since the open
    assert log.stats()["writeback_starts"] == 1
    log.append(batch)  # the segment now holds 8 batches: full
    # The next batches start a new segment, counted from its start.
    for _ in range(3):
        log.append(batch)
    assert log.segment_count == 2
    assert log.stats()["writeback_starts"] == 1
    log.append(batch)  # the new segment's 4th batch
    assert log.stats()["writeback_starts"] == 2
