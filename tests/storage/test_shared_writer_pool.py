"""Many logs on bounded threads and descriptors; no WAL thread touches a finalizing interpreter.

Both twins: ``WalPool`` (writer threads, a notifier thread, a bounded LRU cache of
open segment files), ``WalLog(pool=...)``, the process default pool and its
shutdown at exit; ``LogManager`` runs every log of its directory on one pool.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from types import ModuleType

import pytest

from streamcore._reference import wal as reference_wal
from streamcore.errors import StorageError
from streamcore.storage import Log
from streamcore.storage.log_manager import LogManager

from .batches import make_batch
from .conftest import native_wal_module

PARTITIONS = 1000
#: Threads and descriptors the whole test process may add for 1,000 open logs: the
#: pool's few threads and its file cache (256 files), never one per log.
THREAD_BUDGET = 8
FD_BUDGET = 300


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(params=["reference", "native"])
def wal_module(request) -> ModuleType:
    """The ``wal`` capability of one twin (the reference one, then the native one when built)."""
    if request.param == "reference":
        return reference_wal
    mod = native_wal_module()
    if mod is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    return mod


def test_a_thousand_logs_cost_a_bounded_number_of_threads_and_descriptors(fast_dir: str) -> None:
    # tmpfs: what is counted here is threads and descriptors, and the 8,000 fsyncs of
    # opening and closing 1,000 logs would cost most of the test's time on a disk.
    root = Path(fast_dir)
    threads, fds = _threads(), _fds()
    logs = [Log(root / f"t{i // 10}-{i % 10}", lock=False) for i in range(PARTITIONS)]
    try:
        for i, log in enumerate(logs):
            assert log.append(make_batch([f"v{i}".encode()])).base_offset == 0
        for i, log in enumerate(logs):
            assert f"v{i}".encode() in log.read(0, 1 << 20)
        assert _threads() - threads <= THREAD_BUDGET, _threads() - threads
        assert _fds() - fds <= FD_BUDGET, _fds() - fds
    finally:
        for log in logs:
            log.close()
    # Closed logs hold nothing.
    assert _fds() - fds <= THREAD_BUDGET


def test_logs_share_the_pools_threads_and_its_bounded_file_cache(wal_module, tmp_path: Path) -> None:
    pool = wal_module.WalPool(writer_threads=1, max_open_files=8)
    try:
        # 200-byte segments hold two 71-byte batches: every log rolls twice.
        logs = [
            wal_module.WalLog(str(tmp_path / f"t-{i}"), fsync="never", segment_bytes=200, pool=pool)
            for i in range(40)
        ]
        assert pool.stats()["logs"] == 40
        batch = make_batch([b"0123456789"])
        for round_ in range(5):
            for log in logs:
                assert log.append(batch)[0] == round_
        for log in logs:
            assert log.segment_count == 3
            assert len(log.read(0, 1 << 20)) == 5 * len(batch)
        stats = pool.stats()
        assert stats["writer_threads"] == 1 and stats["max_open_files"] == 8
        assert stats["open_files"] <= 8, stats
        assert stats["files_evicted"] > 0 and stats["files_opened"] > 8, stats
        for log in logs:
            log.close()
        # A closed log leaves the pool and keeps no file open.
        assert pool.stats()["logs"] == 0
        assert pool.stats()["open_files"] == 0
    finally:
        pool.shutdown()


def test_callbacks_run_in_order_and_before_close_returns(wal_module, tmp_path: Path) -> None:
    pool = wal_module.WalPool(writer_threads=2, max_open_files=4)
    try:
        done: list[tuple[int, int]] = []
        caller = threading.get_ident()
        on_caller: list[bool] = []
        logs = [wal_module.WalLog(str(tmp_path / f"p-{i}"), fsync="always", pool=pool) for i in range(3)]
        for i, log in enumerate(logs):
            for _ in range(30):

                def callback(result, exc, i=i):
                    assert exc is None
                    on_caller.append(threading.get_ident() == caller)
                    done.append((i, result[0]))

                log.submit(make_batch([b"x"]), callback)
        for log in logs:
            log.close()
        # Every callback ran before close returned, each log's in offset order, none on the caller.
        for i in range(3):
            assert [off for j, off in done if j == i] == list(range(30))
        assert not any(on_caller)
    finally:
        pool.shutdown()


def test_pool_shutdown_closes_open_logs_cleanly_and_refuses_new_ones(wal_module, tmp_path: Path) -> None:
    pool = wal_module.WalPool(writer_threads=1, max_open_files=4)
    log = wal_module.WalLog(str(tmp_path / "a-0"), pool=pool)
    log.append(make_batch([b"x"]))
    pool.shutdown()
    assert (tmp_path / "a-0" / ".clean_shutdown").exists()
    assert pool.stats()["logs"] == 0
    with pytest.raises(StorageError):
        log.append(make_batch([b"y"]))
    with pytest.raises(StorageError, match="shut down"):
        wal_module.WalLog(str(tmp_path / "b-0"), pool=pool)
    log.close()
    pool.shutdown()  # idempotent
    with wal_module.WalLog(str(tmp_path / "a-0")) as again:
        assert again.recovery_report["clean"] and again.high_watermark == 1


@pytest.mark.parametrize("kwargs", [{"writer_threads": 0}, {"max_open_files": 0}])
def test_a_pool_needs_a_thread_and_a_file(wal_module, kwargs) -> None:
    with pytest.raises(ValueError, match=">= 1"):
        wal_module.WalPool(**kwargs)


def test_a_log_manager_runs_its_logs_on_one_pool_and_shuts_it_down(tmp_path: Path) -> None:
    threads = _threads()
    manager = LogManager(tmp_path, wal_max_open_files=16)
    try:
        logs = [manager.open(("t", i), fsync="never", lock=False) for i in range(60)]
        for i, log in enumerate(logs):
            assert log.append(make_batch([f"v{i}".encode()])).base_offset == 0
        stats = manager.pool.stats()
        assert stats["logs"] == 60 and stats["open_files"] <= 16, stats
        # The manager's pool (2 writers + notifier) and its health thread, not one per log.
        assert _threads() - threads <= THREAD_BUDGET
    finally:
        manager.close()
    assert manager.pool.stats()["logs"] == 0
    with pytest.raises(StorageError, match="shut down"):
        Log(tmp_path / "t-0", lock=False, pool=manager.pool)
    assert (tmp_path / "t-59" / ".clean_shutdown").exists()


def test_the_process_exits_cleanly_with_logs_open_and_callbacks_pending(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from batches import make_batch
        from streamcore import _impl
        logs = [_impl.wal.WalLog({str(tmp_path)!r} + f"/p-{{i}}", fsync="always") for i in range(50)]
        for log in logs:
            for _ in range(20):
                log.submit(make_batch([b"x"]), lambda result, exc: None)
        print("exiting", flush=True)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert "panicked" not in done.stderr and "not initialized" not in done.stderr, done.stderr
    assert "Fatal Python error" not in done.stderr, done.stderr
    # Every log was closed cleanly at exit: the clean-shutdown marker is there.
    assert all((tmp_path / f"p-{i}" / ".clean_shutdown").exists() for i in range(50))
