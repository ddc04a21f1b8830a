"""Many logs on bounded threads and descriptors; no WAL thread touches a finalizing interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from streamcore.storage import Log

from .batches import make_batch

PARTITIONS = 1000
#: Threads and descriptors the whole test process may add for 1,000 open logs: the
#: pool's few threads and its file cache (256 files), never one per log.
THREAD_BUDGET = 8
FD_BUDGET = 300


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_thousand_logs_cost_a_bounded_number_of_threads_and_descriptors(tmp_path: Path) -> None:
    threads, fds = _threads(), _fds()
    logs = [Log(tmp_path / f"t{i // 10}-{i % 10}", lock=False) for i in range(PARTITIONS)]
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
