"""Storage: WAL append throughput per fsync policy and concurrency, reads, recovery,
and allocations per append with and without the buffer pool.

Parametrized over the WAL twins (``native``: ``streamcore._native.wal``; ``reference``:
the pure-Python one). A native module that is not built makes ``setup`` raise
NotImplementedError, which asv reports as skipped. The full-size figures of the issue
(1 GiB recovery, 64 appenders with fsync=always) come from benchmarks/storage_bench.py;
these are the same measurements at sizes an asv run can repeat.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import threading
from types import ModuleType

from streamcore.codec import encode_batch

IMPLEMENTATIONS = ["native", "reference"]


def make_batch(total: int) -> bytes:
    """A valid one-record v2 batch of about ``total`` bytes."""
    return encode_batch([b"x" * max(0, total - 61 - 12)])


def _wal(impl: str) -> ModuleType:
    if impl == "reference":
        return importlib.import_module("streamcore._reference.wal")
    try:
        native = importlib.import_module("streamcore._native")
    except ImportError as exc:
        raise NotImplementedError("streamcore._native is not built") from exc
    module = getattr(native, "wal", None)
    if module is None:
        raise NotImplementedError("streamcore._native has no wal")
    return module


class _Base:
    def _dir(self) -> str:
        # fsync must reach a real disk: keep the logs under the working directory.
        return tempfile.mkdtemp(prefix="asv-wal-", dir=os.getcwd())

    def teardown(self, *params: object) -> None:
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        shutil.rmtree(getattr(self, "path", ""), ignore_errors=True)


class AppendThroughput(_Base):
    """16 KiB batches: 2,000 appends spread over N appender threads."""

    params = (IMPLEMENTATIONS, ["never", "interval", "always"], [1, 8, 64])
    param_names = ["impl", "fsync", "appenders"]
    timeout = 300
    number = 1
    repeat = 3

    def setup(self, impl: str, fsync: str, appenders: int) -> None:
        self.path = self._dir()
        self.log = _wal(impl).WalLog(self.path, fsync=fsync, fsync_interval_ms=100)
        self.batch = make_batch(16 * 1024)
        self.count = 2000 if fsync != "always" else 400

    def time_append(self, impl: str, fsync: str, appenders: int) -> None:
        per = self.count // appenders

        def run() -> None:
            for _ in range(per):
                self.log.append(self.batch)

        threads = [threading.Thread(target=run) for _ in range(appenders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class SubmitThroughput(_Base):
    """The broker's path: 256 batches of 256 KiB (within the default memory budget)
    handed over with ``submit_to`` from one thread and drained from its
    ``CompletionQueue``, each a memoryview slice of a larger bytearray (a request
    frame), copied into the queue or lent (``lend=True``)."""

    params = (IMPLEMENTATIONS, ["copied", "lent"])
    param_names = ["impl", "batch"]
    timeout = 300
    number = 1
    repeat = 3

    def setup(self, impl: str, batch: str) -> None:
        self.path = self._dir()
        wal = _wal(impl)
        self.log = wal.WalLog(self.path, fsync="never")
        self.queue = wal.CompletionQueue()
        one = make_batch(256 * 1024)
        self.frame = bytearray(b"\0" * 64 + one)
        self.view = memoryview(self.frame)[64:]
        self.lend = batch == "lent"

    def time_submit(self, impl: str, batch: str) -> None:
        done = 0
        for i in range(256):
            self.log.submit_to(self.view, self.queue, i, lend=self.lend)
            done += len(self.queue.drain())
        self.log.flush()
        done += len(self.queue.drain())
        assert done == 256


class ReadThroughput(_Base):
    """Sequential 1 MiB reads over 64 MiB of 16 KiB batches."""

    params = IMPLEMENTATIONS
    param_names = ["impl"]
    timeout = 300

    def setup(self, impl: str) -> None:
        self.path = self._dir()
        self.log = _wal(impl).WalLog(self.path, fsync="never")
        batch = make_batch(16 * 1024)
        self.batch_len = len(batch)
        for _ in range(4096):
            self.log.append(batch)
        self.log.flush()

    def time_read_all(self, impl: str) -> None:
        offset, end = 0, self.log.high_watermark
        while offset < end:
            data = self.log.read(offset, 1 << 20)
            offset += len(data) // self.batch_len or 1  # one record per batch


class Recovery(_Base):
    """Open after a crash (no clean-shutdown marker, recovery point 0): 128 MiB."""

    params = IMPLEMENTATIONS
    param_names = ["impl"]
    timeout = 600
    number = 1
    repeat = 3

    def setup(self, impl: str) -> None:
        self.impl = impl
        self.path = self._dir()
        log = _wal(impl).WalLog(self.path, fsync="never", segment_bytes=64 << 20)
        batch = make_batch(64 * 1024)
        for _ in range(2048):
            log.append(batch)
        log.close()
        os.remove(os.path.join(self.path, ".clean_shutdown"))
        with open(os.path.join(self.path, "checkpoint"), "w") as fh:
            fh.write("version 1\nlog_start_offset 0\nrecovery_point 0\n")
        self.log = None

    def time_recover(self, impl: str) -> None:
        log = _wal(impl).WalLog(self.path, fsync="never", segment_bytes=64 << 20)
        log.close()
        os.remove(os.path.join(self.path, ".clean_shutdown"))


class PoolAllocations(_Base):
    """Buffer allocations per steady-state append in the native WAL, whose queued
    copies come from its buffer pool. Without a pool every append's copy is a new
    buffer (1.0 per append: the reference twin's path, not measured here)."""

    unit = "allocations per append"

    def setup(self) -> None:
        self.path = self._dir()
        self.log = _wal("native").WalLog(self.path, fsync="never")
        self.batch = make_batch(16 * 1024)
        for _ in range(200):  # warm the pool
            self.log.append(self.batch)

    def track_allocations_per_append(self) -> float:
        n = 1000
        before = self.log.buffer_pool_stats()["allocations"]
        for _ in range(n):
            self.log.append(self.batch)
        return (self.log.buffer_pool_stats()["allocations"] - before) / n
