"""WAL profiles keep their promises: max_wait_ms bounds lingering for a group, and a memory budget bounds the queue.

Both WAL twins run every test through the ``twin`` fixture. Where a test needs a
known queue, the reference writer is stalled inside its fsync; the native
writer's same cases are in rust/core/src/wal/writer.rs (``linger_tests``), stalled
at its test gate.
"""

from __future__ import annotations

import threading
import time

import pytest

from streamcore.errors import BackpressureError, ConfigError
from streamcore.storage import PROFILES, resolve_profile

from .batches import make_batch

MiB = 1 << 20
#: A wait no test may sit out: a wrongly lingering writer shows as a join timeout.
HOUR_MS = 3_600_000
PATIENCE_S = 60.0


@pytest.mark.parametrize(
    "name, expected",
    [
        ("low", (2_500, 5_000, 20, 25 * MiB)),
        ("medium", (10_000, 15_000, 10, 100 * MiB)),
        ("high", (50_000, 50_000, 100, 500 * MiB)),
        ("ultra", (100_000, 100_000, 100, 1024 * MiB)),
    ],
)
def test_each_profile_has_the_tuning_guides_memory_budget(name, expected):
    assert tuple(PROFILES[name]) == expected
    assert resolve_profile(name).memory_budget_bytes == expected[3]


def test_the_memory_budget_is_a_knob_like_the_others():
    assert resolve_profile("low", memory_budget_bytes=4096).memory_budget_bytes == 4096
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="memory_budget_bytes"):
            resolve_profile("low", memory_budget_bytes=bad)


def test_wal_takes_a_memory_budget_and_defaults_to_the_medium_profiles(twin, tmp_path):
    from streamcore._reference.wal.config import DEFAULT_MEMORY_BUDGET_BYTES

    assert DEFAULT_MEMORY_BUDGET_BYTES == PROFILES["medium"].memory_budget_bytes
    with twin(str(tmp_path / "p"), memory_budget_bytes=PROFILES["low"].memory_budget_bytes) as wal:
        assert wal.append(make_batch(1))[0] == 0
    with pytest.raises(ValueError, match="memory_budget_bytes"):
        twin(str(tmp_path / "q"), memory_budget_bytes=0)


# -- lingering ---------------------------------------------------------------


def _run_bounded(target, *args) -> None:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    t.join(PATIENCE_S)
    assert not t.is_alive(), "an append was held for company that never came"


@pytest.mark.parametrize("fsync", ["always", "interval"])
def test_a_lone_synchronous_appender_never_waits(twin, tmp_path, fsync):
    with twin(str(tmp_path / "p"), fsync=fsync, max_wait_ms=HOUR_MS) as wal:

        def appender() -> None:
            for _ in range(10):
                wal.append(make_batch(1))

        _run_bounded(appender)
        assert (wal.stats()["appends"], wal.stats()["groups"]) == (10, 10)


@pytest.mark.parametrize("fsync", ["interval", "never"])
def test_without_an_fsync_per_group_the_writer_never_lingers(twin, tmp_path, fsync):
    # A burst of appends leaves the writer expecting that many again (its company);
    # under fsync=always the lone append after it would wait up to max_wait_ms (an
    # hour here) for them. Without an fsync to save, it is written at once.
    with twin(str(tmp_path / "p"), fsync=fsync, max_wait_ms=HOUR_MS) as wal:
        answered = threading.Semaphore(0)
        for _ in range(50):
            wal.submit(make_batch(1), lambda r, e: answered.release())
        for _ in range(50):
            assert answered.acquire(timeout=PATIENCE_S)

        def lone() -> None:
            for _ in range(3):
                wal.append(make_batch(1))

        _run_bounded(lone)
        assert wal.stats()["appends"] == 53


def test_concurrent_appenders_share_groups_and_all_finish_within_the_wait(twin, tmp_path):
    threads_n, each = 4, 25
    with twin(str(tmp_path / "p"), fsync="always", max_wait_ms=1000) as wal:

        def appender() -> None:
            for _ in range(each):
                wal.append(make_batch(1))

        threads = [threading.Thread(target=appender, daemon=True) for _ in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PATIENCE_S)
        assert not any(t.is_alive() for t in threads)
        stats = wal.stats()
        assert stats["appends"] == threads_n * each
        # Appenders that come back while their companions are queued join them.
        assert stats["groups"] < stats["appends"]
        assert stats["fsyncs"] == stats["groups"]


def test_a_queued_flush_never_waits(twin, tmp_path):
    with twin(str(tmp_path / "p"), fsync="always", max_wait_ms=HOUR_MS) as wal:
        results: list = []
        for _ in range(20):
            wal.submit(make_batch(1), lambda r, e: results.append((r, e)))
        _run_bounded(wal.flush)
        assert wal.recovery_point == wal.high_watermark == 20


class _StalledSync:
    """Holds the reference writer inside its first fsync until released."""

    def __init__(self, wal) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self._sync = wal._writer.sync
        self._first = True
        wal._writer.sync = self

    def __call__(self, fd: int) -> None:
        if self._first:
            self._first = False
            self.entered.set()
            assert self.release.wait(PATIENCE_S)
        self._sync(fd)


def _three_outstanding(wal) -> tuple[list, list[float]]:
    """A is being fsynced while B and C queue; returns the completion list and B's queue time."""
    from streamcore._reference import wal as reference_wal

    assert isinstance(wal, reference_wal.WalLog)
    stall = _StalledSync(wal)
    done: list = []
    wal.submit(make_batch(1), lambda r, e: done.append(("A", r, e)))
    assert stall.entered.wait(PATIENCE_S)
    queued_at = [time.monotonic()]
    wal.submit(make_batch(1), lambda r, e: done.append(("B", r, e)))
    wal.submit(make_batch(1), lambda r, e: done.append(("C", r, e)))
    stall.release.set()
    return done, queued_at


def _wait_for(pred) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_reference_group_waits_for_the_last_rounds_appenders_and_goes_when_they_arrive(tmp_path):
    from streamcore._reference.wal import WalLog

    with WalLog(str(tmp_path / "p"), fsync="always", max_wait_ms=HOUR_MS) as wal:
        done, _ = _three_outstanding(wal)
        _wait_for(lambda: len(done) >= 1)
        # Three were outstanding when A completed: B and C wait for a third. The pause
        # cannot make this pass wrongly, only give a broken rule time to show.
        time.sleep(0.05)
        assert [d[0] for d in done] == ["A"] and wal.stats()["groups"] == 1
        wal.submit(make_batch(1), lambda r, e: done.append(("D", r, e)))
        _wait_for(lambda: len(done) == 4)
        assert [d[0] for d in done] == ["A", "B", "C", "D"]
        assert (wal.stats()["appends"], wal.stats()["groups"]) == (4, 2)


def test_reference_wait_ends_max_wait_ms_after_the_oldest_queued_append(tmp_path):
    from streamcore._reference.wal import WalLog

    max_wait_ms = 200
    with WalLog(str(tmp_path / "p"), fsync="always", max_wait_ms=max_wait_ms) as wal:
        done, queued_at = _three_outstanding(wal)
        _wait_for(lambda: len(done) == 3)
        # B and C went together and not before the deadline (a lower bound: scheduling
        # delays cannot break it); that they went at all, with no D, is the upper bound.
        assert time.monotonic() - queued_at[0] >= max_wait_ms / 1000.0
        assert (wal.stats()["appends"], wal.stats()["groups"]) == (3, 2)


# -- memory budget -----------------------------------------------------------


def test_an_empty_queue_takes_a_batch_larger_than_the_budget(twin, tmp_path):
    big = make_batch([b"x" * 5000])
    with twin(str(tmp_path / "p"), fsync="never", memory_budget_bytes=1000) as wal:
        assert wal.append(big)[0] == 0
        assert wal.append(big)[0] == 1
        assert wal.stats()["backpressure_rejections"] == 0


def test_queued_bytes_past_the_budget_get_backpressure_with_a_throttle_time(twin, tmp_path):
    batch = make_batch([b"y" * 1000])
    budget = 3 * len(batch)
    with twin(str(tmp_path / "p"), fsync="always", memory_budget_bytes=budget, queue_depth=100_000) as wal:
        refused: list[BackpressureError] = []
        accepted = 0
        deadline = time.monotonic() + PATIENCE_S
        # Submitting far faster than fsync=always can drain: the budget, not the
        # 100,000-append depth, must stop the queue.
        for _ in range(100_000):
            try:
                wal.submit(batch, lambda r, e: None)
                accepted += 1
            except BackpressureError as exc:
                refused.append(exc)
                break
            if time.monotonic() > deadline:
                break
        assert refused, "the memory budget never refused an append"
        exc = refused[0]
        assert exc.retriable and exc.throttle_time_ms >= 1
        assert f"memory budget of {budget} bytes" in str(exc)
        assert wal.stats()["backpressure_rejections"] == 1
        wal.flush()
        assert wal.high_watermark == accepted


def test_reference_budget_counts_bytes_queued_and_being_written(tmp_path):
    from streamcore._reference.wal import WalLog

    batch = make_batch([b"z" * 500])
    with WalLog(str(tmp_path / "p"), fsync="always", memory_budget_bytes=2 * len(batch)) as wal:
        stall = _StalledSync(wal)
        wal.submit(batch, lambda r, e: None)  # taken by the writer, stalled in its fsync
        assert stall.entered.wait(PATIENCE_S)
        wal.submit(batch, lambda r, e: None)  # queued: the budget is now full
        with pytest.raises(BackpressureError, match="memory budget"):
            wal.submit(batch, lambda r, e: None)
        stall.release.set()
        wal.flush()
        assert wal.high_watermark == 2
        assert wal._writer.pending_bytes == 0
        wal.submit(batch, lambda r, e: None)  # room again once written
        wal.flush()
        assert wal.high_watermark == 3
