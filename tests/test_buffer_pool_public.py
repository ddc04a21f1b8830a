"""``streamcore.BufferPool``, the public face of the buffer_pool capability (native or reference, per pass)."""

from __future__ import annotations

import threading

import pytest

import streamcore
from streamcore import _impl
from streamcore.buffer_pool import BufferPool, PoolStats


def test_buffer_pool_is_public_and_runs_on_the_selected_implementation():
    assert streamcore.BufferPool is BufferPool
    assert "BufferPool" in streamcore.__all__
    pool = BufferPool(256, max_buffers=2)
    assert type(pool._pool) is _impl.buffer_pool.BufferPool
    assert (pool.buffer_size, pool.max_buffers) == (256, 2)
    assert repr(pool) == "BufferPool(buffer_size=256, max_buffers=2)"


def test_get_gives_writable_buffers_of_the_pool_size_and_put_reuses_them():
    pool = BufferPool(1024, max_buffers=4)
    buf = pool.get()
    assert isinstance(buf, bytearray) and len(buf) == 1024
    buf[:5] = b"hello"
    assert pool.stats() == PoolStats(hits=0, misses=1, allocations=1, in_use=1, pooled=0)
    pool.put(buf)
    again = pool.get()
    assert again is buf  # the same memory, not a copy
    assert pool.stats() == PoolStats(hits=1, misses=1, allocations=1, in_use=1, pooled=0)


def test_lease_returns_the_buffer_even_when_the_block_raises():
    pool = BufferPool(64, max_buffers=1)
    with pool.lease() as buf:
        assert len(buf) == 64
        assert pool.stats().in_use == 1
    assert pool.stats().in_use == 0 and pool.stats().pooled == 1
    with pytest.raises(RuntimeError), pool.lease():
        raise RuntimeError("boom")
    assert pool.stats() == PoolStats(hits=1, misses=1, allocations=1, in_use=0, pooled=1)


def test_steady_state_allocates_once_and_counts_hits():
    pool = BufferPool(4096, max_buffers=2)
    for i in range(500):
        with pool.lease() as buf:
            buf[0] = i % 256
    stats = pool.stats()
    assert (stats.allocations, stats.misses, stats.hits) == (1, 1, 499)


def test_idle_memory_is_bounded_by_max_buffers():
    pool = BufferPool(128, max_buffers=2)
    bufs = [pool.get() for _ in range(5)]
    for buf in bufs:
        pool.put(buf)
    assert pool.stats().pooled == 2 and pool.stats().in_use == 0


def test_threads_sharing_a_pool_never_get_the_same_buffer_at_once():
    pool = BufferPool(32, max_buffers=8)
    seen_twice = []
    held: set[int] = set()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(300):
            with pool.lease() as buf:
                with lock:
                    if id(buf) in held:
                        seen_twice.append(id(buf))
                    held.add(id(buf))
                with lock:
                    held.discard(id(buf))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not seen_twice
    stats = pool.stats()
    assert stats.hits + stats.misses == 1200 and stats.in_use == 0 and stats.allocations <= 8


@pytest.mark.parametrize(
    "args, exc",
    [
        ((0,), ValueError),
        ((-1,), ValueError),
        ((16, -1), ValueError),
        ((1.5,), TypeError),
        ((True,), TypeError),
    ],
)
def test_bad_sizes_are_refused_by_name(args, exc):
    with pytest.raises(exc, match="buffer_size|max_buffers"):
        BufferPool(*args)


def test_put_refuses_what_did_not_come_from_the_pool():
    pool = BufferPool(16, max_buffers=1)
    with pytest.raises(TypeError, match="bytearray"):
        pool.put(b"\x00" * 16)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16-byte"):
        pool.put(bytearray(15))


# ------------------------------------------------------------ unfilled buffers (frame receiving)


def _twins() -> list:
    from streamcore._reference import buffer_pool as reference

    twins = [reference]
    native = getattr(streamcore, "_native", None)
    native_pool = getattr(native, "buffer_pool", None) if native is not None else None
    if _impl.buffer_pool is not reference:
        twins.append(_impl.buffer_pool)
    elif native_pool is not None:
        twins.append(native_pool)
    return twins


@pytest.mark.parametrize("size", [0, 1, 4096, 300_000])
def test_unfilled_bytearray_has_the_size_and_keeps_what_is_written(size: int) -> None:
    for twin in _twins():
        buf = twin.unfilled_bytearray(size)
        assert type(buf) is bytearray and len(buf) == size, twin.__name__
        pattern = bytes(i % 251 for i in range(size))
        memoryview(buf)[:] = pattern
        assert buf == pattern


def test_extend_unfilled_keeps_the_contents_and_adds_the_length() -> None:
    for twin in _twins():
        buf = twin.unfilled_bytearray(3)
        buf[:] = b"abc"
        twin.extend_unfilled(buf, 200_000)
        assert len(buf) == 200_003 and buf[:3] == b"abc", twin.__name__
        twin.extend_unfilled(buf, 0)
        assert len(buf) == 200_003
        buf[3:] = bytes(200_000)
        assert buf[:3] == b"abc" and len(buf) == 200_003


def test_extend_unfilled_refuses_a_viewed_buffer_and_bad_arguments_on_both_twins() -> None:
    for twin in _twins():
        buf = twin.unfilled_bytearray(8)
        view = memoryview(buf)
        with pytest.raises(BufferError):
            twin.extend_unfilled(buf, 1)
        assert len(buf) == 8, twin.__name__  # unchanged
        view.release()
        twin.extend_unfilled(buf, 1)
        assert len(buf) == 9
        with pytest.raises(TypeError):
            twin.extend_unfilled(b"bytes", 1)
        with pytest.raises(OverflowError):
            twin.extend_unfilled(buf, -1)
        with pytest.raises(OverflowError):
            twin.unfilled_bytearray(-1)
