"""The producer's record accumulator: per-partition batches under a memory budget.

Records are appended from any thread (the blocking API calls ``append`` in the
caller's thread, so a tight send loop never crosses into the event loop per
record); the sender drains full or lingered batches on the event loop. One lock
guards the whole structure; it is held for list appends only, never for I/O or
encoding.

Memory: every record charges ``len(key) + len(value) + RECORD_OVERHEAD`` bytes
against ``buffer_memory`` until its batch is answered (or fails). When the budget
is exhausted ``reserve`` blocks (blocking callers) or the caller awaits
``space_available()`` (asyncio), for at most ``max_block_ms``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import TYPE_CHECKING, Any

from streamcore._impl import accumulator as _accumulator
from streamcore.client.types import TopicPartition

__all__ = ["RECORD_OVERHEAD", "ProducerBatch", "Accumulator"]

#: Bytes charged per record beyond key and value: the record framing and list slots.
RECORD_OVERHEAD: int = _accumulator.RECORD_OVERHEAD

#: Records of one partition on their way into one record batch v2: per-record columns
#: (values, keys, headers, timestamps), the records' futures and the batch's state on
#: its way to the broker. Native when built (``_native.accumulator``), so that the
#: one-call send path appends without attribute look-ups; the twin is
#: ``streamcore._reference.accumulator.ProducerBatch``.
if TYPE_CHECKING:
    from streamcore._reference.accumulator import ProducerBatch
else:
    ProducerBatch = _accumulator.ProducerBatch


class Accumulator:
    """Open and sealed batches per partition, with the memory budget (thread-safe)."""

    def __init__(self, batch_size: int, buffer_memory: int, linger_ms: int, delivery_timeout_ms: int) -> None:
        self.batch_size = batch_size
        self.buffer_memory = buffer_memory
        self.linger_s = linger_ms / 1000.0
        self.delivery_timeout_s = delivery_timeout_ms / 1000.0
        self.lock = threading.Lock()
        self._space = threading.Condition(self.lock)
        self.open: dict[TopicPartition, ProducerBatch] = {}
        self.sealed: dict[TopicPartition, collections.deque[ProducerBatch]] = {}
        self.used = 0
        self.records_waiting = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.on_sealed: Any = None  # called (lock held) when a batch becomes full
        self.on_first_open: Any = None  # called (lock held) when the first open batch appears

    # ------------------------------------------------------------------ memory

    def try_reserve(self, size: int) -> bool:
        """Charge ``size`` bytes if they fit (lock held by the caller)."""
        if self.used + size > self.buffer_memory and self.used > 0:
            return False
        self.used += size
        return True

    def reserve_blocking(self, size: int, timeout_s: float) -> bool:
        """Charge ``size`` bytes, waiting up to ``timeout_s`` for space (lock held by the caller)."""
        if self.try_reserve(size):
            return True
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._space.wait(left)
            if self.try_reserve(size):
                return True

    def space_future(self) -> asyncio.Future[None]:
        """A future (of the running loop) resolved the next time memory is released (lock held)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._async_waiters.append((loop, fut))
        return fut

    def release(self, size: int) -> None:
        """Return ``size`` bytes to the budget and wake waiters (takes the lock)."""
        with self.lock:
            self.used -= size
            self._space.notify_all()
            waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_set_none, fut)

    # ------------------------------------------------------------------ batches

    def batch_for(
        self, tp: TopicPartition, size: int, now: float, limit: int | None = None
    ) -> tuple[ProducerBatch, bool]:
        """The open batch of ``tp`` that can take ``size`` more bytes (lock held).

        Returns (batch, sealed_one): a full open batch is sealed first, and
        ``sealed_one`` says so (sticky partitioning switches partition then).
        ``limit``: the batch size in bytes for this append instead of ``batch_size``.
        """
        batch = self.open.get(tp)
        sealed = False
        if batch is not None and batch.size + size > (limit or self.batch_size) and batch.count:
            self._seal(tp, batch)
            sealed = True
            batch = None
        if batch is None:
            batch = ProducerBatch(tp, now, now + self.delivery_timeout_s)
            first = not self.open
            self.open[tp] = batch
            if first and self.on_first_open is not None:
                self.on_first_open()
        return batch, sealed

    def seal_if_full(self, tp: TopicPartition, batch: ProducerBatch, limit: int | None = None) -> bool:
        """Seal ``batch`` if it reached batch_size (or ``limit`` bytes; lock held); True if it did."""
        if batch.size >= (limit or self.batch_size):
            self._seal(tp, batch)
            return True
        return False

    def _seal(self, tp: TopicPartition, batch: ProducerBatch) -> None:
        del self.open[tp]
        q = self.sealed.get(tp)
        if q is None:
            q = self.sealed[tp] = collections.deque()
        q.append(batch)
        if self.on_sealed is not None:
            self.on_sealed()

    def seal_expired(self, now: float, force: bool) -> float | None:
        """Seal open batches older than linger (all of them when ``force``).

        Returns the monotonic time the next open batch lingers out, or None.
        """
        nxt: float | None = None
        with self.lock:
            for tp, batch in list(self.open.items()):
                due = batch.created + self.linger_s
                if force or due <= now:
                    self._seal(tp, batch)
                elif nxt is None or due < nxt:
                    nxt = due
        return nxt

    def requeue(self, batch: ProducerBatch) -> None:
        """Put a batch to retry back in front of its partition, in sequence order."""
        with self.lock:
            q = self.sealed.get(batch.tp)
            if q is None:
                q = self.sealed[batch.tp] = collections.deque()
            q.appendleft(batch)
            if batch.base_sequence >= 0:
                # Retries of one partition must go out in sequence order.
                retried = sorted((b for b in q if b.base_sequence >= 0), key=lambda b: b.base_sequence)
                rest = [b for b in q if b.base_sequence < 0]
                q.clear()
                q.extend(retried)
                q.extend(rest)

    def has_data(self) -> bool:
        """True while any batch is open or sealed."""
        return bool(self.open) or any(self.sealed.values())


def _set_none(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
