"""The broker-wide budget of request bytes read and not yet answered (:class:`RequestMemory`).

``limits.queued_max_request_bytes`` (Kafka's queued.max.request.bytes) counts the bytes
of every request read and not yet answered, plus partial frames, across connections, in
two halves; :mod:`streamcore.broker.server` explains how connections share it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamcore.broker.connection import KafkaConnection

__all__ = ["RequestMemory"]

# What one socket read can bring (asyncio's selector transports recv() at most this much);
# the room promised to a connection resumed for the budget.
_READ_BYTES = 256 * 1024

# Connections holding budget resumed per turn of the event loop while the budget is full:
# each brings up to one socket read into the same turn, so a flood of pipelining clients
# adds a few reads to each turn rather than one per connection, and whoever sends one
# request at a time waits at most that long (see RequestMemory).
_GRANTS_PER_TURN = 4


class RequestMemory:
    """The broker-wide budget of request bytes read and not yet answered (bytes).

    ``used`` counts complete frames until answered and partial frames as they grow.
    Connections that hold budget and find the complete half full queue with :meth:`may_read`;
    as bytes leave the budget they are resumed oldest-waiting first, each with a grant of one
    socket read counted against the room until that read arrives, so that freed room is
    handed out rather than raced for. Connections whose partial frame waits for older
    partial frames (:meth:`wait_partial`) are re-checked whenever bytes leave the budget.
    Connections holding a partial frame are kept in the order their frames began
    (:meth:`older_partial`).
    """

    def __init__(self, limit_bytes: int) -> None:
        #: The budget, bytes.
        self.limit = limit_bytes
        #: Bytes of complete and partial frames held now.
        self.used = 0
        #: Of ``used``, bytes of partial frames.
        self.partial = 0
        #: Largest ``used`` seen, bytes (for tests and the soak benchmark).
        self.peak = 0
        #: Bytes promised to resumed connections for their next socket read.
        self.granted = 0
        #: Times a connection holding budget was queued for room (a count, never reset).
        self.waits = 0
        #: Reads by connections holding nothing while the complete half was full (a count).
        self.free_reads = 0
        # Connections holding budget that wait for room, oldest first (dicts keep insertion order).
        self._queue: dict[KafkaConnection, None] = {}
        self._grants: set[KafkaConnection] = set()
        self._partial_waiting: dict[KafkaConnection, None] = {}
        # Connections with a partial frame, oldest first.
        self._partials: dict[KafkaConnection, None] = {}
        self._waking = False
        self._wake_again = False
        # Grants given in this turn of the event loop, and the callback that starts the next.
        self._turn_grants = 0
        self._turn_end: asyncio.Handle | None = None

    @property
    def partial_limit(self) -> int:
        """Bytes of older partial frames beyond which a partial frame above 64 KiB waits."""
        return self.limit // 2

    @property
    def complete_limit(self) -> int:
        """Bytes of complete requests not yet answered beyond which connections holding budget wait."""
        return self.limit - self.limit // 2

    @property
    def complete_used(self) -> int:
        """Bytes of complete requests read and not yet answered."""
        return self.used - self.partial

    @property
    def full(self) -> bool:
        """Whether the complete half is used up (connections holding budget are paused)."""
        return self.used - self.partial >= self.complete_limit

    @property
    def queued(self) -> int:
        """Connections waiting now for room in the complete half."""
        return len(self._queue)

    def add(self, complete: int, partial_delta: int) -> None:
        self.used += complete + partial_delta
        self.partial += partial_delta
        if self.used > self.peak:
            self.peak = self.used

    def release(self, complete: int, partial: int = 0) -> None:
        self.used -= complete + partial
        self.partial -= partial
        self._wake()

    def _room(self) -> bool:
        return self.used - self.partial + self.granted < self.complete_limit

    def may_read(self, conn: KafkaConnection) -> bool:
        """Whether ``conn``, which holds budget, may read now; if not, it queues for room.

        A connection that was resumed holds a grant until its next read. Otherwise it may
        read only while nobody is queued before it and the complete half has room.
        """
        if conn in self._grants:
            return True
        if not self._queue and self._room():
            return True
        if conn not in self._queue:
            self._queue[conn] = None
            self.waits += 1
            conn.budget_waits += 1
        return False

    def read_by(self, conn: KafkaConnection) -> None:
        """``conn`` read from its socket: a grant it held is used up."""
        if conn in self._grants:
            self._grants.discard(conn)
            self.granted -= _READ_BYTES
            self._wake()

    def unqueue(self, conn: KafkaConnection) -> None:
        """``conn`` no longer waits for room (it holds nothing, or waits for its own reasons)."""
        self._queue.pop(conn, None)
        if conn in self._grants:
            self._grants.discard(conn)
            self.granted -= _READ_BYTES
            self._wake()

    def _wake(self) -> None:
        if self._waking:
            # A resumed connection gave bytes back while being resumed: go round once more.
            self._wake_again = True
            return
        self._waking = True
        try:
            while True:
                self._wake_again = False
                if self._partial_waiting:
                    waiting = list(self._partial_waiting)
                    self._partial_waiting.clear()
                    for conn in waiting:
                        conn.update_reading()
                queue = self._queue
                while queue and self._room():
                    if self._turn_grants >= _GRANTS_PER_TURN:
                        break
                    conn = next(iter(queue))
                    del queue[conn]
                    if conn.wants_budget():
                        self._grants.add(conn)
                        self.granted += _READ_BYTES
                        self._turn_grants += 1
                        if self._turn_end is None:
                            self._turn_end = asyncio.get_running_loop().call_soon(self._new_turn)
                        conn.update_reading()
                if not self._wake_again:
                    return
        finally:
            self._waking = False

    def _new_turn(self) -> None:
        self._turn_end = None
        self._turn_grants = 0
        if self._queue:
            self._wake()

    def partial_started(self, conn: KafkaConnection) -> None:
        """``conn`` began a new partial frame: it is now the youngest."""
        self._partials.pop(conn, None)
        self._partials[conn] = None

    def partial_ended(self, conn: KafkaConnection) -> None:
        if self._partials.pop(conn, 0) is None:
            self._wake()

    def older_partial(self, conn: KafkaConnection) -> int:
        """Bytes of the partial frames that began before ``conn``'s (all of them if it has none)."""
        total = 0
        for other in self._partials:
            if other is conn:
                break
            total += other.partial_bytes
        return total

    def wait_partial(self, conn: KafkaConnection) -> None:
        """``conn``'s partial frame waits until older partial frames shrink."""
        self._partial_waiting[conn] = None

    def forget(self, conn: KafkaConnection) -> None:
        self._partial_waiting.pop(conn, None)
        self._partials.pop(conn, None)
        self._queue.pop(conn, None)
        if conn in self._grants:
            self._grants.discard(conn)
            self.granted -= _READ_BYTES
