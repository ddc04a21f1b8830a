"""Connections per broker: a bundle of ``connections_per_broker`` connections, and a pool of bundles.

The hot path, ``ConnectionPool.get(node_id)``, is a dict lookup and a round-robin
pick with no lock: the dict is only ever replaced or extended, never mutated in a
way a reader could observe half-done. Opening a connection is slow (TCP plus an
ApiVersions round trip), so it happens with no lock held: concurrent callers wanting
the same node share one pending connect (a future), and callers wanting other
nodes are never blocked by it.

A broker's throttle time pauses the whole bundle: its connections share one
``ThrottleGate``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from streamcore.client.connection import BrokerConnection, ThrottleGate
from streamcore.client.errors import ClientClosedError, ConnectionLostError

__all__ = ["ConnectionBundle", "ConnectionPool"]


class ConnectionBundle:
    """Up to ``size`` connections to one broker, picked round-robin among the usable ones."""

    def __init__(
        self,
        node_id: int,
        host: str,
        port: int,
        size: int,
        factory: Callable[..., Any],
        channel_capacities: tuple[int, int] | None = None,
    ) -> None:
        self.node_id = node_id
        self.channel_capacities = channel_capacities
        self.host = host
        self.port = port
        self.size = size
        self._factory = factory
        self._conns: list[BrokerConnection | None] = [None] * size
        self._connecting: list[asyncio.Future[BrokerConnection] | None] = [None] * size
        self._rr = itertools.count()
        #: Pauses writes to this broker on every connection after a throttled answer.
        self.throttle = ThrottleGate()

    def __len__(self) -> int:
        return self.size

    @property
    def usable_count(self) -> int:
        """Connections open and healthy right now."""
        return sum(1 for c in self._conns if c is not None and not c.closed)

    @property
    def connections(self) -> list[BrokerConnection]:
        """The open connections."""
        return [c for c in self._conns if c is not None and not c.closed]

    def select_ready(self) -> BrokerConnection | None:
        """Round-robin pick of an open connection, or None if none is open (no I/O)."""
        conns = self._conns
        n = self.size
        start = next(self._rr)
        for i in range(n):
            c = conns[(start + i) % n]
            if c is not None and not c.closed:
                return c
        return None

    def get(self, index: int) -> BrokerConnection | None:
        """The connection in slot ``index`` if it is open (request affinity)."""
        c = self._conns[index % self.size]
        return c if c is not None and not c.closed else None

    async def select(self) -> BrokerConnection:
        """A usable connection, opening closed slots as needed.

        Every slot that is not open starts (or joins) a connect; the first to
        finish serves this call, so one dead slot does not stall the bundle.
        """
        start = next(self._rr)
        slot = start % self.size
        c = self._conns[slot]
        if c is not None and not c.closed:
            return c
        ready = self.select_ready()
        if ready is not None:
            # Reconnect the dead slot in the background; serve from a live one now.
            self._ensure_connecting(slot)
            return ready
        return await self._ensure_connecting(slot)

    def _ensure_connecting(self, slot: int) -> asyncio.Future[BrokerConnection]:
        fut = self._connecting[slot]
        if fut is not None and not fut.done():
            return fut
        fut = asyncio.ensure_future(self._open(slot))
        self._connecting[slot] = fut
        # A background reconnect nobody awaits must not log "exception never retrieved".
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return fut

    async def _open(self, slot: int) -> BrokerConnection:
        conn = await self._factory(self.host, self.port, self.node_id)
        self.throttle.join(conn)
        if self.channel_capacities is not None:
            conn.set_channel_capacities(*self.channel_capacities)
        self._conns[slot] = conn
        return conn

    async def connect_all(self) -> None:
        """Open every slot (used to warm a bundle up front)."""
        await asyncio.gather(*(self._ensure_connecting(i) for i in range(self.size) if self.get(i) is None))

    def close(self) -> None:
        """Close every connection and pending connect of the bundle."""
        for fut in self._connecting:
            if fut is not None and not fut.done():
                fut.cancel()
        for c in self._conns:
            if c is not None:
                c.close()
        self._conns = [None] * self.size


class ConnectionPool:
    """Bundles keyed by node id; ``get(node_id)`` returns a ready connection.

    ``factory(host, port, node_id)`` opens one connection (a coroutine).
    ``channel_capacities`` (high, normal) bounds the request channels of every
    connection the pool opens (None: the connections' defaults, 64 and 256); set it
    before the first connection is opened.
    """

    def __init__(
        self,
        connections_per_broker: int,
        factory: Callable[..., Any],
        channel_capacities: tuple[int, int] | None = None,
    ) -> None:
        self.connections_per_broker = connections_per_broker
        self.channel_capacities = channel_capacities
        self._factory = factory
        self._bundles: dict[int, ConnectionBundle] = {}
        self._addresses: dict[int, tuple[str, int]] = {}
        self._closed = False

    def set_address(self, node_id: int, host: str, port: int) -> None:
        """Record where ``node_id`` listens; a changed address replaces its bundle."""
        if self._addresses.get(node_id) == (host, port):
            return
        self._addresses[node_id] = (host, port)
        old = self._bundles.get(node_id)
        bundles = dict(self._bundles)
        bundles[node_id] = ConnectionBundle(
            node_id, host, port, self.connections_per_broker, self._factory, self.channel_capacities
        )
        self._bundles = bundles  # one reference swap: lock-free readers see old or new
        if old is not None:
            old.close()

    def set_channel_capacities(self, high: int, normal: int) -> None:
        """Bound the request channels (high, normal; queued requests) of every connection,
        open or opened later."""
        if high < 1 or normal < 1:
            raise ValueError(f"channel capacities must be >= 1, got high={high} normal={normal}")
        self.channel_capacities = (high, normal)
        for b in self._bundles.values():
            b.channel_capacities = self.channel_capacities
            for c in b.connections:
                c.set_channel_capacities(high, normal)

    def bundle(self, node_id: int) -> ConnectionBundle:
        """The bundle of ``node_id`` (KeyError if its address is unknown)."""
        return self._bundles[node_id]

    async def get(self, node_id: int) -> BrokerConnection:
        """A usable connection to ``node_id``; raises ConnectionLostError if unreachable."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        bundle = self._bundles.get(node_id)
        if bundle is None:
            raise ConnectionLostError(f"no known address for broker node {node_id}")
        conn = bundle.select_ready()  # fast path: no await, no lock
        if conn is not None and bundle.size == 1:
            return conn
        return await bundle.select()

    def usable_counts(self) -> dict[int, int]:
        """Usable connections per node."""
        return {n: b.usable_count for n, b in self._bundles.items()}

    def close(self) -> None:
        """Close every bundle."""
        self._closed = True
        for b in self._bundles.values():
            b.close()
