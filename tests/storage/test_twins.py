"""The WAL and buffer-pool twins side by side: same contract, same files, each opens the other's logs."""

from __future__ import annotations

import os
import random
import select
import shutil

import pytest

from streamcore import _impl
from streamcore._reference import buffer_pool as reference_buffer_pool
from streamcore._reference import wal as reference_wal
from streamcore.errors import BackpressureError, CorruptRecordError, StorageError

from .batches import batch_of_size, make_batch
from .conftest import native_buffer_pool_module, native_wal_module
from .crash import set_crash_state

STATS_KEYS = {
    "queue_depth",
    "appends",
    "groups",
    "fsyncs",
    "fsync_total_us",
    "writeback_starts",
    "bytes_written",
    "backpressure_rejections",
}


def _wal_class(name: str):
    if name == "reference":
        return reference_wal.WalLog
    mod = native_wal_module()
    if mod is None:
        pytest.skip("streamcore._native has no wal submodule (native WAL not built)")
    return mod.WalLog


def _write_sample(cls, path: str) -> None:
    rng = random.Random(99)
    with cls(path, fsync="never", segment_bytes=8000, index_interval_bytes=700) as wal:
        for i in range(40):
            wal.append(
                batch_of_size(
                    rng.randrange(80, 2500), records=1 + i % 4, base_timestamp=1000 + rng.randrange(50)
                )
            )


def _files(path: str) -> dict[str, bytes]:
    out = {}
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out[name] = f.read()
    return out


def test_active_wal_is_the_one_the_selector_chose():
    expected = "reference" if _impl.implementation()["wal"] == "reference" else "native"
    assert (_impl.wal is reference_wal) == (expected == "reference")


def test_wal_contract_surface(twin, tmp_path):
    with twin(str(tmp_path / "p"), fsync="never") as wal:
        res = wal.append(make_batch(3))
        assert tuple(res)[:2] == (0, 2) and len(tuple(res)) == 3
        assert set(wal.stats()) == STATS_KEYS
        assert all(isinstance(v, int) for v in wal.stats().values())
        assert (wal.high_watermark, wal.log_start_offset, wal.segment_count) == (3, 0, 1)
        assert wal.size_bytes == len(make_batch(3))
        assert wal.is_offline is False
        assert os.path.samefile(wal.directory, tmp_path / "p")
        assert wal.apply_retention(None, None) == 0
        with pytest.raises(CorruptRecordError):
            wal.append(b"\x00" * 70)
    with pytest.raises(ValueError):
        twin(str(tmp_path / "q"), fsync="bogus")


def test_submit_calls_back_exactly_once_with_the_result(twin, tmp_path):
    import threading

    results = []
    done = threading.Event()

    def callback(result, exc):
        results.append((tuple(result), exc))
        if len(results) == 3:
            done.set()

    with twin(str(tmp_path / "p"), fsync="always") as wal:
        for _ in range(3):
            wal.submit(make_batch(2), callback)
        assert done.wait(30)
    assert [r[0][:2] for r in results] == [(0, 1), (2, 3), (4, 5)]
    assert all(exc is None for _, exc in results)


def _queue_class(twin):
    """The CompletionQueue of the twin whose WalLog is ``twin``."""
    if twin is reference_wal.WalLog:
        return reference_wal.CompletionQueue
    return native_wal_module().CompletionQueue


def test_submit_to_puts_every_outcome_in_the_queue_with_one_wake_up(twin, tmp_path):
    queue = _queue_class(twin)()
    tokens = [object() for _ in range(20)]
    with twin(str(tmp_path / "p"), fsync="always") as wal:
        assert select.select([queue], [], [], 0)[0] == []
        for token in tokens:
            wal.submit_to(make_batch(2), queue, token)
        # flush() returns after every earlier batch's group was written and delivered.
        wal.flush()
        # Delivered while nobody drained: the pipe holds exactly one wake-up byte.
        assert select.select([queue], [], [], 0)[0] == [queue]
        got = queue.drain()
        assert select.select([queue], [], [], 0)[0] == []
        assert queue.drain() == []
        # The next delivery wakes the reader again.
        wal.submit_to(make_batch(1), queue, "last")
        wal.flush()
        assert select.select([queue], [], [], 0)[0] == [queue]
        [(token, last, exc)] = queue.drain()
        assert token == "last" and tuple(last)[:2] == (40, 40) and exc is None
    assert [t for t, _, _ in got] == tokens
    assert [tuple(r)[:2] for _, r, _ in got] == [(2 * i, 2 * i + 1) for i in range(20)]
    assert all(exc is None for _, _, exc in got)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_lent_batches_land_as_copied_ones_and_the_lenders_memory_is_untouched(twin, tmp_path, kind):
    queue = _queue_class(twin)()
    originals = [make_batch(1 + i % 3) for i in range(12)]
    # A memoryview slice out of a larger frame, as the broker hands over.
    frames = [bytearray(b"head" + b + b"tail") for b in originals]
    lent = [
        memoryview(f)[4:-4] if kind is memoryview else kind(b) for f, b in zip(frames, originals, strict=True)
    ]
    with (
        twin(str(tmp_path / "lent"), fsync="never") as wal,
        twin(str(tmp_path / "copied"), fsync="never") as ref,
    ):
        for i, batch in enumerate(lent):
            wal.submit_to(batch, queue, i, lend=True)
            ref.append(bytes(batch))
        wal.flush()
        got = queue.drain()
        assert [t for t, _, _ in got] == list(range(12))
        assert wal.high_watermark == ref.high_watermark
        assert wal.read(0, 1 << 20) == ref.read(0, 1 << 20)
    # Nothing was written into the lender's memory (the base offsets live elsewhere).
    assert [bytes(b) for b in lent] == originals
    assert all(bytes(f[:4]) == b"head" and bytes(f[-4:]) == b"tail" for f in frames)


def test_submit_to_raises_at_once_and_delivers_nothing_when_refused(twin, tmp_path):
    queue = _queue_class(twin)()
    with twin(str(tmp_path / "p"), fsync="always") as wal:
        with pytest.raises(CorruptRecordError):
            wal.submit_to(b"not a batch", queue, "bad")
        wal.submit_to(make_batch(1), queue, "good")
        wal.flush()
    assert [(t, tuple(r)[:2]) for t, r, _ in queue.drain()] == [("good", (0, 0))]
    with pytest.raises(StorageError):
        wal.submit_to(make_batch(1), queue, "closed")
    assert queue.drain() == []


def test_backpressure_error_is_raised_by_both_twins(twin, tmp_path):
    with twin(str(tmp_path / "p"), fsync="always", queue_depth=1) as wal:
        raised = None
        for _ in range(5000):
            try:
                wal.submit(make_batch(1), lambda result, exc: None)
            except BackpressureError as exc:
                raised = exc
                break
        assert raised is not None and raised.throttle_time_ms >= 1


@pytest.mark.parametrize("writer", ["reference", "native"])
@pytest.mark.parametrize("reader", ["reference", "native"])
def test_each_twin_opens_the_others_log_and_reads_the_same_bytes(tmp_path, writer, reader):
    wcls, rcls = _wal_class(writer), _wal_class(reader)
    path = str(tmp_path / "p")
    _write_sample(wcls, path)
    with rcls(path, fsync="never", segment_bytes=8000, index_interval_bytes=700) as wal:
        hw = wal.high_watermark
        data = wal.read(0, 1 << 30)
        spans = wal.read_spans(5, 3000)
        ts = wal.offset_for_timestamp(1025)
        wal.append(make_batch(1))
    with reference_wal.WalLog(path, fsync="never", segment_bytes=8000, index_interval_bytes=700) as ref:
        assert ref.read(0, 1 << 30)[: len(data)] == data
        assert ref.high_watermark == hw + 1
        assert [(os.path.basename(p), pos, n) for p, pos, n in ref.read_spans(5, 3000)] == [
            (os.path.basename(p), pos, n) for p, pos, n in spans
        ]
        assert ref.offset_for_timestamp(1025) == ts


def test_both_twins_write_byte_identical_directories(tmp_path):
    native = _wal_class("native")
    _write_sample(reference_wal.WalLog, str(tmp_path / "ref"))
    _write_sample(native, str(tmp_path / "nat"))
    assert _files(str(tmp_path / "ref")) == _files(str(tmp_path / "nat"))


def test_both_twins_recover_a_damaged_log_to_the_same_state(tmp_path):
    native = _wal_class("native")
    src = str(tmp_path / "src")
    _write_sample(reference_wal.WalLog, src)
    logs = sorted(n for n in os.listdir(src) if n.endswith(".log"))
    last = os.path.join(src, logs[-1])
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) - 37)
    set_crash_state(src, recovery_point=0)
    results = {}
    for name, cls in (("ref", reference_wal.WalLog), ("nat", native)):
        work = str(tmp_path / name)
        shutil.copytree(src, work)
        with cls(work, fsync="never", segment_bytes=8000, index_interval_bytes=700) as wal:
            results[name] = (wal.high_watermark, wal.read(0, 1 << 30))
    assert results["ref"] == results["nat"]
    assert _files(str(tmp_path / "ref")) == _files(str(tmp_path / "nat"))


# -- buffer pool -------------------------------------------------------------------


@pytest.fixture(params=["reference", "native"])
def pool_cls(request):
    if request.param == "reference":
        return reference_buffer_pool.BufferPool
    mod = native_buffer_pool_module()
    if mod is None:
        pytest.skip("streamcore._native has no buffer_pool submodule (native pool not built)")
    return mod.BufferPool


def test_buffer_pool_reuses_returned_buffers(pool_cls):
    pool = pool_cls(1024, 2)
    a = pool.get()
    assert len(a) == 1024
    memoryview(a)[:3] = b"abc"  # writable
    assert pool.stats() == {"hits": 0, "misses": 1, "allocations": 1, "in_use": 1, "pooled": 0}
    pool.put(a)
    b = pool.get()
    assert len(b) == 1024
    assert pool.stats() == {"hits": 1, "misses": 1, "allocations": 1, "in_use": 1, "pooled": 0}
    pool.put(b)


def test_buffer_pool_keeps_at_most_max_buffers(pool_cls):
    pool = pool_cls(64, 2)
    bufs = [pool.get() for _ in range(4)]
    for buf in bufs:
        pool.put(buf)
    stats = pool.stats()
    assert stats["pooled"] == 2
    assert stats["in_use"] == 0
    assert stats["allocations"] == 4


def test_buffer_pool_lease_returns_the_buffer(pool_cls):
    pool = pool_cls(128, 4)
    with pool.lease() as buf:
        assert len(buf) == 128
        assert pool.stats()["in_use"] == 1
    assert pool.stats()["in_use"] == 0
    assert pool.stats()["pooled"] == 1
    with pool.lease():
        pass
    assert pool.stats()["allocations"] == 1


def test_buffer_pool_steady_state_allocates_nothing(pool_cls):
    pool = pool_cls(4096, 8)
    for _ in range(1000):
        with pool.lease() as buf:
            buf[0] = 1
    assert pool.stats()["allocations"] == 1
    assert pool.stats()["hits"] == 999
