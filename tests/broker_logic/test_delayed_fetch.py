"""Long-poll wakeups: notify wakes the right waiters; ready() decides; timeouts return False."""

from __future__ import annotations

import asyncio

from streamcore.broker.delayed_fetch import DelayedFetch

LONG_MS = 300_000


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


async def turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_ready_before_waiting_returns_at_once_without_registering():
    async def main():
        d = DelayedFetch()
        assert await d.wait_for([("t", 0)], lambda: True, LONG_MS) is True
        assert d.waiting() == 0

    run(main())


def test_notify_on_a_watched_partition_wakes_the_waiter_when_ready():
    async def main():
        d = DelayedFetch()
        data = {"bytes": 0}
        task = asyncio.ensure_future(d.wait_for([("t", 0), ("t", 1)], lambda: data["bytes"] >= 10, LONG_MS))
        await turns()
        assert d.waiting() == 1
        d.notify("t", 5)  # not watched
        d.notify("u", 0)
        await turns()
        assert not task.done()
        data["bytes"] = 4
        d.notify("t", 1)  # woken, but not enough yet: keeps waiting
        await turns()
        assert not task.done()
        data["bytes"] = 12
        d.notify("t", 0)
        await turns()
        assert task.done() and task.result() is True
        assert d.waiting() == 0

    run(main())


def test_timeout_returns_false_and_unregisters():
    async def main():
        d = DelayedFetch()
        assert await d.wait_for([("t", 0)], lambda: False, 20) is False
        assert d.waiting() == 0

    run(main())


def test_timeout_reports_ready_if_data_arrived_without_notify():
    async def main():
        d = DelayedFetch()
        data = {"ready": False}
        task = asyncio.ensure_future(d.wait_for([("t", 0)], lambda: data["ready"], 20))
        await turns()
        data["ready"] = True
        assert await task is True

    run(main())


def test_zero_max_wait_never_parks():
    async def main():
        d = DelayedFetch()
        assert await d.wait_for([("t", 0)], lambda: False, 0) is False
        assert d.waiting() == 0

    run(main())


def test_without_ready_the_first_notify_ends_the_wait():
    async def main():
        d = DelayedFetch()
        task = asyncio.ensure_future(d.wait_for([("t", 0)], None, LONG_MS))
        await turns()
        d.notify("t", 0)
        await turns()
        assert task.result() is True

    run(main())


def test_one_notify_wakes_every_waiter_of_the_partition():
    async def main():
        d = DelayedFetch()
        tasks = [asyncio.ensure_future(d.wait_for([("t", 0)], None, LONG_MS)) for _ in range(3)]
        other = asyncio.ensure_future(d.wait_for([("t", 1)], None, LONG_MS))
        await turns()
        assert d.waiting() == 4
        d.notify("t", 0)
        await turns()
        assert all(t.done() for t in tasks) and not other.done()
        other.cancel()
        await turns()
        assert d.waiting() == 0

    run(main())


def test_cancelled_waiter_is_removed():
    async def main():
        d = DelayedFetch()
        task = asyncio.ensure_future(d.wait_for([("t", 0)], lambda: False, LONG_MS))
        await turns()
        task.cancel()
        await turns()
        assert d.waiting() == 0
        d.notify("t", 0)  # nobody left: harmless

    run(main())


def test_topic_deletion_and_shutdown_wake_waiters():
    async def main():
        d = DelayedFetch()
        a = asyncio.ensure_future(d.wait_for([("gone", 3)], None, LONG_MS))
        b = asyncio.ensure_future(d.wait_for([("kept", 0)], None, LONG_MS))
        await turns()
        d.notify_topic_deleted("gone")
        await turns()
        assert a.done() and not b.done()
        d.notify_all()
        await turns()
        assert b.done()

    run(main())
