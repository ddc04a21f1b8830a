"""A failed write or fsync takes the log offline: waiting and later appends fail with LogOfflineError.

The reference twin has a test-only hook (``_fail_next_io``). Both twins are
also driven into a real failure in a child process whose file size limit
(RLIMIT_FSIZE) makes a segment write fail with EFBIG.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading

import pytest

import streamcore
from streamcore._reference.wal import WalLog as ReferenceWalLog
from streamcore.errors import LogOfflineError, StorageError

from .batches import make_batch
from .conftest import native_wal_module

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))


@pytest.mark.parametrize("op, fsync", [("fsync", "always"), ("write", "never"), ("write", "always")])
def test_injected_io_failure_fails_waiting_and_later_appends(tmp_path, caplog, op, fsync):
    log = ReferenceWalLog(str(tmp_path / "p"), fsync=fsync)
    try:
        log.append(make_batch(1))
        log._fail_next_io = op
        outcomes: list[BaseException | tuple] = []
        lock = threading.Lock()

        def worker() -> None:
            try:
                res = log.append(make_batch(1))
            except BaseException as exc:
                res = exc
            with lock:
                outcomes.append(res)

        with caplog.at_level(logging.ERROR, logger="streamcore.storage"):
            threads = [threading.Thread(target=worker) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(outcomes) == 8
        assert all(isinstance(o, LogOfflineError) for o in outcomes), outcomes
        assert log.is_offline
        assert "injected" in str(outcomes[0]) or "injected" in repr(outcomes[0].__cause__)
        with pytest.raises(LogOfflineError):
            log.append(make_batch(1))
        with pytest.raises(LogOfflineError):
            log.flush()
        offline_lines = [r for r in caplog.records if r.name == "streamcore.storage"]
        assert len(offline_lines) == 1
        assert log.high_watermark == 1
    finally:
        log.close()
    # The log is offline until reopened; reopening recovers a usable log.
    with ReferenceWalLog(str(tmp_path / "p"), fsync=fsync) as again:
        assert not again.is_offline
        hw = again.high_watermark
        assert hw >= 1
        assert again.append(make_batch(1))[0] == hw


def test_injected_failure_reaches_submit_callbacks(tmp_path):
    log = ReferenceWalLog(str(tmp_path / "p"), fsync="always")
    try:
        log._fail_next_io = "fsync"
        got: list = []
        done = threading.Event()

        def callback(result, exc):
            got.append((result, exc))
            done.set()

        log.submit(make_batch(1), callback)
        assert done.wait(10)
        assert got[0][0] is None and isinstance(got[0][1], LogOfflineError)
        assert isinstance(got[0][1], StorageError)
    finally:
        log.close()


_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from storage.batches import batch_of_size
    from streamcore.errors import LogOfflineError
    if sys.argv[2] == "native":
        from streamcore._native.wal import WalLog
    else:
        from streamcore._reference.wal import WalLog
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    log = WalLog(sys.argv[1], fsync="always")
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    batch = batch_of_size(4096)
    first = None
    appended = 0
    for _ in range(100):
        try:
            log.append(batch)
            appended += 1
        except Exception as exc:
            first = exc
            break
    try:
        log.append(batch)
        later = "ok"
    except Exception as exc:
        later = type(exc).__name__
    print(type(first).__name__, isinstance(first, LogOfflineError), later, log.is_offline, appended)
    try:
        log.close()
    except Exception:
        pass
    """
)


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_a_real_write_failure_takes_either_twin_offline(tmp_path, impl):
    if impl == "native" and native_wal_module() is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    out = subprocess.run(
        # The child imports the same streamcore as this process (installed build or source tree).
        [sys.executable, "-c", _CHILD, str(tmp_path / "p"), impl, TESTS_DIR, PACKAGE_PARENT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    name, is_offline_error, later, offline, appended = out.stdout.split()
    assert (name, is_offline_error, later, offline) == ("LogOfflineError", "True", "LogOfflineError", "True")
    assert 0 < int(appended) <= 16  # 64 KiB of 4 KiB batches


_QUEUE_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys
    sys.path[:0] = [sys.argv[3], sys.argv[4]]
    from storage.batches import batch_of_size
    from streamcore.errors import LogOfflineError
    if sys.argv[2] == "native":
        from streamcore._native.wal import CompletionQueue, WalLog
    else:
        from streamcore._reference.wal import CompletionQueue, WalLog
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
    log = WalLog(sys.argv[1], fsync="always")
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    queue = CompletionQueue()
    batch = batch_of_size(4096)
    refused = "none"
    accepted = 0
    for i in range(100):
        try:
            log.submit_to(batch, queue, i)
        except Exception as exc:  # offline already: refused at once, nothing delivered
            refused = type(exc).__name__
            break
        accepted += 1
        try:
            log.flush()
        except Exception:
            pass
    # flush() raises on an offline log only once every earlier append's outcome is
    # out, so one drain, with no waiting, finds them all.
    delivered = queue.drain()
    tokens = [t for t, _, _ in delivered]
    failed = [type(e).__name__ for _, r, e in delivered if e is not None and r is None]
    print(refused, tokens == list(range(len(tokens))), len(delivered), ",".join(failed) or "-", accepted)
    try:
        log.close()
    except Exception:
        pass
    """
)


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_a_write_failure_reaches_submit_to_queues_as_an_exception(tmp_path, impl):
    if impl == "native" and native_wal_module() is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    out = subprocess.run(
        [sys.executable, "-c", _QUEUE_CHILD, str(tmp_path / "p"), impl, TESTS_DIR, PACKAGE_PARENT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    refused, in_order, delivered, failed, accepted = out.stdout.split()
    # Every submitted batch was answered once, in order, before flush() raised; the one
    # whose write failed got LogOfflineError through the queue, and the next submit_to
    # was refused at once.
    assert (refused, in_order, failed) == ("LogOfflineError", "True", "LogOfflineError")
    assert 0 < int(delivered) == int(accepted) <= 17
