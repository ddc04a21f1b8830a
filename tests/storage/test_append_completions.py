"""``Log.append_async``: a plain function returning the loop's future; completions wake the loop once per burst."""

from __future__ import annotations

import asyncio
import inspect
import threading

from streamcore.codec import encode_batch
from streamcore.storage import AppendResult, Log


def _batch(i: int) -> bytes:
    return encode_batch([b"value-%d" % i])


def test_append_async_is_a_plain_function_returning_a_future(tmp_path):
    with Log(tmp_path / "p", fsync="never") as log:
        assert not inspect.iscoroutinefunction(log.append_async)

        async def main() -> AppendResult:
            fut = log.append_async(_batch(0))
            assert isinstance(fut, asyncio.Future)
            assert fut.get_loop() is asyncio.get_running_loop()
            return await fut

        result = asyncio.run(main())
    assert type(result) is AppendResult
    assert result == (0, 0, result.log_append_time_ms)


def test_a_burst_of_completions_wakes_the_loop_once_not_once_per_batch(tmp_path):
    # fsync="always" with a long max wait: the writer gathers queued batches into
    # groups, and each group's completions arrive on the notifier thread in one burst.
    # How many groups a busy machine makes is the scheduler's business (a loaded CI
    # runner made 10 of 50), so the bound is the degenerate case: one wake-up per batch.
    with Log(tmp_path / "p", fsync="always", max_wait_ms=50) as log:

        async def main() -> tuple[list[AppendResult], int]:
            loop = asyncio.get_running_loop()
            wakeups = 0
            original = loop.call_soon_threadsafe

            def counting(callback, *args, **kwargs):
                nonlocal wakeups
                wakeups += 1
                return original(callback, *args, **kwargs)

            loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
            try:
                futs = [log.append_async(_batch(i)) for i in range(50)]
                results = list(await asyncio.gather(*futs))
            finally:
                del loop.call_soon_threadsafe
            return results, wakeups

        results, wakeups = asyncio.run(main())
    assert [r.base_offset for r in results] == list(range(50))
    assert [r.last_offset for r in results] == list(range(50))
    assert 1 <= wakeups < 50


def test_completions_queued_before_the_loop_drains_cost_one_wake_up():
    # The mechanism itself, without the WAL's timing: completions that arrive from
    # another thread while the loop is busy are drained by one scheduled callback.
    from streamcore.storage.log import _Completions

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        completions = _Completions(loop)
        wakeups = 0
        original = loop.call_soon_threadsafe

        def counting(callback, *args, **kwargs):
            nonlocal wakeups
            wakeups += 1
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        try:
            futs = [loop.create_future() for _ in range(20)]
            callbacks = [completions.callback(f) for f in futs]

            def notifier() -> None:
                for i, done in enumerate(callbacks):
                    done((i, i, 0), None)

            # The loop thread is blocked in join() here, so all 20 land before any drain.
            thread = threading.Thread(target=notifier)
            thread.start()
            thread.join()
            results = await asyncio.gather(*futs)
        finally:
            del loop.call_soon_threadsafe
        return [r.base_offset for r in results], wakeups

    offsets, wakeups = asyncio.run(main())
    assert offsets == list(range(20))
    assert wakeups == 1


def test_cancelling_the_wait_does_not_withdraw_the_append(tmp_path):
    with Log(tmp_path / "p", fsync="always") as log:

        async def main() -> None:
            fut = log.append_async(_batch(0))
            fut.cancel()
            # A later append's completion proves the cancelled one was written first.
            second = await log.append_async(_batch(1))
            assert second.base_offset == 1

        asyncio.run(main())
        assert log.high_watermark == 2


def test_completions_reach_each_event_loop_that_appended(tmp_path):
    with Log(tmp_path / "p", fsync="never") as log:

        async def one(i: int) -> int:
            return (await log.append_async(_batch(i))).base_offset

        assert [asyncio.run(one(i)) for i in range(3)] == [0, 1, 2]
