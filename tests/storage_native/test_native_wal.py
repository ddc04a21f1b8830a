"""Behaviour specific to the native (Rust) WAL and buffer pool, and twin parity sweeps.

The shared contract tests live in tests/storage/ and run against whichever WAL
``streamcore._impl`` selected; these pin what only the native side can show
(GIL release, pooled queue buffers, writer-thread callbacks) and sweep crash
states through both twins to check they recover to byte-identical directories.
"""

from __future__ import annotations

import os
import shutil
import struct
import threading

import pytest

from storage.batches import batch_of_size, make_batch
from storage.crash import read_checkpoint, set_crash_state
from streamcore._reference import wal as reference_wal
from streamcore.errors import CorruptRecordError, LogOfflineError, OffsetOutOfRangeError, StorageError

try:
    from streamcore import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on the build
    _native = None

native_wal = getattr(_native, "wal", None)
native_pool = getattr(_native, "buffer_pool", None)

# These tests address the native module directly, so they run in the pure-Python
# pass too (where the selector uses the reference twin) whenever the build has it.
pytestmark = pytest.mark.skipif(native_wal is None, reason="streamcore._native (with wal) is not built")

SAMPLE = {"fsync": "never", "segment_bytes": 6000, "index_interval_bytes": 500}


def _files(path: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = f.read()
    return out


def _write_sample(cls, path: str, n: int = 30) -> None:
    with cls(path, **SAMPLE) as wal:
        for i in range(n):
            wal.append(batch_of_size(100 + (i * 397) % 1500, records=1 + i % 3, base_timestamp=5000 + i % 7))


def test_steady_state_appends_reuse_pooled_queue_buffers(tmp_path):
    with native_wal.WalLog(str(tmp_path / "p"), fsync="never") as wal:
        batch = batch_of_size(16384)
        for _ in range(500):
            wal.append(batch)
        pool = wal.buffer_pool_stats()
    assert pool["allocations"] <= 2
    assert pool["hits"] >= 498
    assert pool["in_use"] == 0


def test_append_releases_the_gil_while_waiting_for_fsync(tmp_path):
    ticks = 0
    stop = threading.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    with native_wal.WalLog(str(tmp_path / "p"), fsync="always") as wal:
        t = threading.Thread(target=ticker)
        t.start()
        try:
            before = ticks
            for _ in range(20):
                wal.append(make_batch(1))
            during = ticks - before
        finally:
            stop.set()
            t.join()
    # With the GIL held across each wait for an fsync the ticker could not run at all.
    assert during > 0


def test_a_raising_submit_callback_does_not_stop_the_writer(tmp_path, monkeypatch):
    unraisable: list = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)
    done = threading.Event()

    def bad(result, exc):
        raise RuntimeError("callback bug")

    def good(result, exc):
        done.set()

    with native_wal.WalLog(str(tmp_path / "p"), fsync="never") as wal:
        wal.submit(make_batch(1), bad)
        wal.submit(make_batch(1), good)
        assert done.wait(30)
        assert wal.append(make_batch(1))[0] == 2
    assert any(isinstance(u.exc_value, RuntimeError) for u in unraisable)


def test_closed_log_refuses_appends_and_reads_with_storage_error(tmp_path):
    wal = native_wal.WalLog(str(tmp_path / "p"), fsync="never")
    wal.append(make_batch(1))
    wal.close()
    wal.close()
    for call in (lambda: wal.append(make_batch(1)), lambda: wal.read(0, 100), wal.flush):
        with pytest.raises(StorageError) as info:
            call()
        assert not isinstance(info.value, LogOfflineError)
    assert wal.high_watermark == 1


def test_read_outside_the_log_raises_offset_out_of_range(tmp_path):
    with native_wal.WalLog(str(tmp_path / "p"), fsync="never") as wal:
        wal.append(make_batch(2))
        with pytest.raises(OffsetOutOfRangeError):
            wal.read(3, 100)
        with pytest.raises(LookupError):
            wal.read(-1, 100)
        assert wal.read(2, 100) == b""
        assert isinstance(wal.read(1, 1), bytes)


def test_append_accepts_any_contiguous_buffer(tmp_path):
    batch = make_batch(2)
    with native_wal.WalLog(str(tmp_path / "p"), fsync="never") as wal:
        for obj in (batch, bytearray(batch), memoryview(batch)):
            wal.append(obj)
        data = wal.read(0, 1 << 20)
    assert len(data) == 3 * len(batch)
    assert [struct.unpack_from(">q", data, i * len(batch))[0] for i in range(3)] == [0, 2, 4]


@pytest.mark.parametrize("writer", ["reference", "native"])
def test_torn_tails_of_every_length_recover_identically_in_both_twins(fast_dir, writer):
    wcls = reference_wal.WalLog if writer == "reference" else native_wal.WalLog
    src = os.path.join(fast_dir, "src")
    _write_sample(wcls, src)
    last = sorted(n for n in os.listdir(src) if n.endswith(".log"))[-1]
    size = os.path.getsize(os.path.join(src, last))
    # Every cut inside the last 200 bytes, then coarser steps back to the start.
    cuts = sorted(set(range(1, min(size, 200) + 1)) | set(range(200, size + 1, 97)))
    for cut in cuts:
        states = {}
        for name, cls in (("ref", reference_wal.WalLog), ("nat", native_wal.WalLog)):
            work = os.path.join(fast_dir, name)
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(src, work)
            path = os.path.join(work, last)
            with open(path, "r+b") as f:
                f.truncate(size - cut)
            set_crash_state(work, recovery_point=0)
            with cls(work, **SAMPLE) as wal:
                states[name] = (wal.high_watermark, wal.segment_count, wal.read(0, 1 << 30))
            states[name] += (_files(work),)
        assert states["ref"] == states["nat"], f"cut {cut}"


@pytest.mark.parametrize("impl", ["reference", "native"])
def test_damage_below_the_recovery_point_is_refused_by_both_twins(tmp_path, impl):
    cls = reference_wal.WalLog if impl == "reference" else native_wal.WalLog
    path = str(tmp_path / "p")
    _write_sample(native_wal.WalLog, path)
    _, recovery_point = read_checkpoint(path)
    # The scan starts at the segment holding the recovery point: damage its first batch.
    last = sorted(n for n in os.listdir(path) if n.endswith(".log"))[-1]
    with open(os.path.join(path, last), "r+b") as f:
        f.seek(70)
        byte = f.read(1)[0]
        f.seek(70)
        f.write(bytes([byte ^ 0xFF]))
    size = os.path.getsize(os.path.join(path, last))
    set_crash_state(path, recovery_point=recovery_point)
    with pytest.raises(StorageError) as info:
        cls(path, **SAMPLE)
    assert last in str(info.value)
    assert "byte 0" in str(info.value)
    assert os.path.getsize(os.path.join(path, last)) == size  # nothing truncated


def test_retention_leaves_identical_directories_in_both_twins(tmp_path):
    src = str(tmp_path / "src")
    _write_sample(reference_wal.WalLog, src, n=60)
    out = {}
    for name, cls in (("ref", reference_wal.WalLog), ("nat", native_wal.WalLog)):
        work = str(tmp_path / name)
        shutil.copytree(src, work)
        with cls(work, **SAMPLE) as wal:
            deleted = (
                wal.apply_retention(100, None, now_ms=5104),
                wal.apply_retention(None, 9000),
            )
            out[name] = (deleted, wal.log_start_offset, wal.offset_for_timestamp(5003), _files(work))
    assert out["ref"] == out["nat"]
    assert out["nat"][0][1] >= 1


@pytest.mark.skipif(native_pool is None, reason="streamcore._native has no buffer_pool submodule")
def test_native_buffer_pool_hands_out_bytearrays_and_refuses_foreign_objects():
    pool = native_pool.BufferPool(32, 1)
    buf = pool.get()
    assert type(buf) is bytearray and len(buf) == 32
    with pytest.raises(TypeError):
        pool.put(b"\x00" * 32)
    with pytest.raises(ValueError):
        pool.put(bytearray(31))
    pool.put(buf)
    pool.put(buf)  # twice: kept once, in_use does not go negative
    assert pool.stats() == {"hits": 0, "misses": 1, "allocations": 1, "in_use": 0, "pooled": 1}
    assert pool.get() is buf


def test_a_lent_bytearray_stays_pinned_until_its_outcome_is_drained(tmp_path):
    """The native WAL writes a lent batch from the lender's memory: the buffer export
    is held (a bytearray cannot be resized) until the queue is drained after the write."""
    queue = native_wal.CompletionQueue()
    frame = bytearray(make_batch(3))
    with native_wal.WalLog(str(tmp_path / "p"), fsync="never") as wal:
        wal.submit_to(memoryview(frame), queue, "t", lend=True)
        wal.flush()  # written; the export is handed back to the queue, not yet released
        with pytest.raises(BufferError):
            frame.extend(b"x")
        [(token, result, exc)] = queue.drain()
        assert token == "t" and tuple(result)[:2] == (0, 2) and exc is None
        frame.extend(b"x")  # released by the drain
        # Not lent (the default): copied at once, the caller's buffer free again.
        again = bytearray(make_batch(1))
        wal.submit_to(again, queue, "copied")
        again.extend(b"x")
        wal.flush()
        assert [t for t, _, _ in queue.drain()] == ["copied"]
        # A refused lend hands the export back too.
        bad = bytearray(b"\0" * 70)
        with pytest.raises(CorruptRecordError):
            wal.submit_to(bad, queue, "bad", lend=True)
        assert queue.drain() == []
        bad.extend(b"x")
