"""Backpressure, many threads, many asyncio tasks: offsets stay unique, contiguous, and readable."""

from __future__ import annotations

import asyncio
import threading

import pytest

from streamcore.errors import BackpressureError

from .batches import batch_offsets, make_batch, same_but_offset, split_batches


def _payload_batch(tag: str) -> bytes:
    return make_batch([tag.encode()])


def _check_log_holds(log, appended: dict[int, bytes]) -> None:
    """Every appended batch is at its offset and the log is exactly those batches, contiguous."""
    assert sorted(appended) == list(range(log.high_watermark))
    stored = split_batches(log.read(0, 1 << 30))
    assert [batch_offsets(b)[0] for b in stored] == sorted(appended)
    for batch in stored:
        assert same_but_offset(batch, appended[batch_offsets(batch)[0]])


def test_full_queue_raises_backpressure_error_with_a_throttle_time(open_log):
    log = open_log(fsync="always", queue_depth=1)
    errors: list[BackpressureError] = []
    depths: list[int] = []
    stop = threading.Event()

    def worker(n: int) -> None:
        for i in range(200):
            if stop.is_set():
                return
            try:
                log.append(_payload_batch(f"{n}-{i}"))
            except BackpressureError as exc:
                errors.append(exc)
                stop.set()
            depths.append(log.stats()["queue_depth"])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors, "8 appenders against a queue of 1 under fsync=always never hit backpressure"
    assert all(e.throttle_time_ms >= 1 for e in errors)
    assert errors[0].retriable
    assert log.stats()["backpressure_rejections"] >= len(errors)
    assert max(depths) <= 1  # memory is bounded by queue_depth


def test_append_async_raises_backpressure_at_once_without_awaiting(open_log):
    log = open_log(fsync="always", queue_depth=2)

    async def main() -> tuple[int, int]:
        pending = []
        rejected = 0
        for i in range(2000):
            try:
                coro = log.append_async(_payload_batch(str(i)))
                # Drive the coroutine to its first await: submit happens there, synchronously.
                task = asyncio.ensure_future(coro)
                await asyncio.sleep(0)
                if task.done() and isinstance(task.exception(), BackpressureError):
                    rejected += 1
                    break
                pending.append(task)
            except BackpressureError:
                rejected += 1
                break
        results = await asyncio.gather(*pending)
        return rejected, len(results)

    rejected, accepted = asyncio.run(main())
    assert rejected == 1
    assert log.high_watermark == accepted


def test_eight_threads_appending_get_unique_contiguous_offsets(open_log):
    log = open_log(fsync="never", queue_depth=100_000)
    appended: dict[int, bytes] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(100):
            batch = _payload_batch(f"t{n}-{i}")
            res = log.append(batch)
            with lock:
                assert res.base_offset not in appended
                appended[res.base_offset] = batch

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(appended) == 800
    _check_log_holds(log, appended)


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_sixty_four_asyncio_tasks_appending_get_unique_contiguous_offsets(open_log, fsync):
    log = open_log(fsync=fsync, queue_depth=100_000)
    appended: dict[int, bytes] = {}

    async def task(n: int) -> None:
        for i in range(10):
            batch = _payload_batch(f"a{n}-{i}")
            res = await log.append_async(batch)
            assert res.base_offset not in appended
            appended[res.base_offset] = batch

    async def main() -> None:
        await asyncio.gather(*(task(n) for n in range(64)))

    asyncio.run(main())
    assert len(appended) == 640
    _check_log_holds(log, appended)
    if fsync == "always":
        assert log.recovery_point == log.high_watermark


def test_append_async_does_not_block_the_event_loop(open_log):
    log = open_log(fsync="always")
    ticks = 0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> None:
        stop = asyncio.Event()
        t = asyncio.ensure_future(ticker(stop))
        for i in range(5):
            await log.append_async(_payload_batch(str(i)))
        stop.set()
        await t

    asyncio.run(main())
    # While each append waited for its fsync, the loop kept running other tasks.
    assert ticks > 5
