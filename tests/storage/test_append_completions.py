"""``Log.append_async``: a plain function returning the loop's future; completions wake the loop once per burst."""

from __future__ import annotations

import asyncio
import gc
import inspect
import os

import pytest

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


def _count_drains(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the loop's wake-ups for completions (one entry per drain)."""
    from streamcore.storage import log as log_module

    drains: list[int] = []
    original = log_module._Completions._drain

    def counting(self) -> None:
        drains.append(1)
        original(self)

    monkeypatch.setattr(log_module._Completions, "_drain", counting)
    return drains


def test_a_burst_of_completions_wakes_the_loop_once_not_once_per_batch(tmp_path, monkeypatch):
    # fsync="always" with a long max wait: the writer gathers queued batches into
    # groups, and each group's completions reach the loop's queue in one burst. How
    # many groups a busy machine makes is the scheduler's business (a loaded CI runner
    # made 10 of 50), so the bound is the degenerate case: one wake-up per batch.
    drains = _count_drains(monkeypatch)
    with Log(tmp_path / "p", fsync="always", max_wait_ms=50) as log:

        async def main() -> list[AppendResult]:
            futs = [log.append_async(_batch(i)) for i in range(50)]
            return list(await asyncio.gather(*futs))

        results = asyncio.run(main())
    assert [r.base_offset for r in results] == list(range(50))
    assert [r.last_offset for r in results] == list(range(50))
    assert 1 <= len(drains) < 50


def test_completions_delivered_while_the_loop_is_busy_cost_one_wake_up(tmp_path, monkeypatch):
    # The mechanism itself: completions that land while the loop thread is blocked
    # (here in flush(), until every batch is written) are settled by one drain.
    drains = _count_drains(monkeypatch)
    with Log(tmp_path / "p", fsync="never") as log:

        async def main() -> list[int]:
            futs = [log.append_async(_batch(i)) for i in range(20)]
            log.flush()  # blocks the loop: all 20 outcomes are queued before any drain
            return [r.base_offset for r in await asyncio.gather(*futs)]

        assert asyncio.run(main()) == list(range(20))
    assert len(drains) == 1


def test_each_loop_has_its_own_queue_and_a_closed_loop_leaves_no_pipe_open(tmp_path):
    from streamcore.storage import log as log_module

    with Log(tmp_path / "p", fsync="never") as log:

        async def one(i: int) -> tuple[int, int]:
            offset = (await log.append_async(_batch(i))).base_offset
            return offset, log_module._completions(asyncio.get_running_loop()).queue.fileno()

        first = [asyncio.run(one(i)) for i in range(3)]
        assert [o for o, _ in first] == [0, 1, 2]
        gc.collect()
        # Each closed loop took its queue, and the queue's pipe, with it.
        assert len(log_module._completions_by_loop) <= 1
        before = len(os.listdir("/proc/self/fd"))
        for i in range(3, 23):
            asyncio.run(one(i))
        gc.collect()
        assert len(os.listdir("/proc/self/fd")) <= before + 2


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


def test_on_written_runs_before_the_future_settles_even_when_it_was_cancelled(tmp_path):
    with Log(tmp_path / "p", fsync="never") as log:

        async def main() -> tuple[list[tuple[object, object, bool]], list[AppendResult | None]]:
            seen: list[tuple[object, object, bool]] = []
            fut = log.append_async(_batch(0), on_written=lambda r, e: seen.append((r, e, fut.done())))
            result = await fut
            assert seen == [(result, None, False)]
            # Cancelled (a client hanging up): the hook still hears where the batch landed.
            abandoned: list[AppendResult | None] = []
            cancelled = log.append_async(_batch(1), on_written=lambda r, e: abandoned.append(r))
            cancelled.cancel()
            await log.append_async(_batch(2))  # completes after the abandoned one
            return seen, abandoned

        seen, abandoned = asyncio.run(main())
    assert [r.base_offset for r in abandoned if r is not None] == [1]


def test_a_failing_on_written_hook_is_logged_and_the_future_still_settles(tmp_path):
    with Log(tmp_path / "p", fsync="never") as log:

        async def main() -> AppendResult:
            def broken(result: object, exc: object) -> None:
                raise RuntimeError("a hook's own bug")

            return await log.append_async(_batch(0), on_written=broken)

        result = asyncio.run(main())
    assert result.base_offset == 0
