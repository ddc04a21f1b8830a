"""Long-poll for Fetch: park a request until its partitions get data or max_wait passes.

A Fetch that found fewer than ``min_bytes`` calls :meth:`DelayedFetch.wait_for`
with the partitions it reads and a ``ready()`` check (e.g. "enough bytes above
the fetch offsets now?"). Every append calls :meth:`DelayedFetch.notify` for its
partition; a notify wakes the waiters of that partition, each of which re-runs
its own ``ready()`` and either returns or keeps waiting for the rest of its time.

Cost: ``notify`` on a partition nobody waits for is one dict lookup. A waiter
costs one future and one timer, no task. All methods run on the event loop's
thread (appends complete there, through ``Log.append_async``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable

__all__ = ["DelayedFetch"]


class _Waiter:
    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[bool] | None = None

    def wake(self) -> None:
        fut = self.future
        if fut is not None and not fut.done():
            fut.set_result(True)


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)


class DelayedFetch:
    """Registry of parked fetches keyed by (topic, partition)."""

    def __init__(self) -> None:
        self._waiters: dict[Hashable, set[_Waiter]] = {}
        #: Wakeups delivered (count), for metrics.
        self.wakeups = 0

    def waiting(self) -> int:
        """Number of distinct parked fetches."""
        return len({w for ws in self._waiters.values() for w in ws})

    def notify(self, topic: str, partition: int) -> None:
        """New data (or a new log start / high watermark) in a partition: wake its waiters."""
        waiters = self._waiters.get((topic, partition))
        if not waiters:
            return
        for w in list(waiters):
            w.wake()
            self.wakeups += 1

    def notify_topic_deleted(self, topic: str) -> None:
        """Wake every waiter on any partition of ``topic`` (they will see the topic gone)."""
        for key in [k for k in self._waiters if isinstance(k, tuple) and k and k[0] == topic]:
            self.notify(*key)

    def notify_all(self) -> None:
        """Wake every waiter (shutdown)."""
        for key in list(self._waiters):
            for w in list(self._waiters.get(key, ())):
                w.wake()

    async def wait_for(
        self,
        partitions: Iterable[tuple[str, int]],
        ready: Callable[[], bool] | None,
        max_wait_ms: int,
    ) -> bool:
        """Wait until ``ready()`` is true after a notify on one of ``partitions``, or ``max_wait_ms`` passes.

        ``ready`` is checked first (no wait if already true) and after each wakeup;
        with ``ready=None`` the first notify ends the wait. Returns True when ready
        (or notified), False on timeout. Cancellation (client gone) unregisters cleanly.
        """
        if ready is not None and ready():
            return True
        if max_wait_ms <= 0:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait_ms / 1000.0
        waiter = _Waiter()
        keys = list(dict.fromkeys(partitions))
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return bool(ready()) if ready is not None else False
                fut: asyncio.Future[bool] = loop.create_future()
                waiter.future = fut
                timer = loop.call_later(remaining, _expire, fut)
                try:
                    woken = await fut
                finally:
                    timer.cancel()
                if not woken:
                    return bool(ready()) if ready is not None else False
                if ready is None or ready():
                    return True
        finally:
            waiter.future = None
            for key in keys:
                ws = self._waiters.get(key)
                if ws is not None:
                    ws.discard(waiter)
                    if not ws:
                        del self._waiters[key]
