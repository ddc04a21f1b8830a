"""The asyncio Kafka-wire server: connections, framing, dispatch, in-order responses.

One ``KafkaConnection`` (an ``asyncio.Protocol``) per client socket. Bytes are cut
into frames by ``streamcore.protocol.headers.FrameSplitter`` (with the configured maximum
request size); each frame's request header (``headers.parse_request_header``) picks a handler module
from ``streamcore.broker.handlers``, called with the shared state and a
``streamcore.broker.context.RequestContext``. Handlers may answer at once or later (long-polling
fetches, joins waiting for a rebalance), yet the responses on one connection leave in
the order the requests arrived, as the protocol requires. A client that pipelines more
than ``max_inflight_per_connection`` requests is paused until answers drain.

A malformed frame, an unknown API key or an unsupported version (except ApiVersions,
which gets the protocol's downgrade answer) closes that one connection with one log
line; nothing a client sends reaches past its own connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from streamcore.broker import handlers as _handlers
from streamcore.broker.context import RequestContext
from streamcore.errors import ProtocolError
from streamcore.protocol import headers
from streamcore.protocol.headers import ApiKey

if TYPE_CHECKING:
    from streamcore.broker.state import BrokerState

log = logging.getLogger("streamcore.broker")


class _Slot:
    """One request's place in its connection's response queue."""

    __slots__ = ("data", "done")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.done = False


class KafkaConnection(asyncio.Protocol):
    """Serves one client socket."""

    def __init__(self, server: KafkaServer) -> None:
        self._server = server
        self._state = server.state
        limits = server.state.config.limits
        self._splitter = headers.FrameSplitter(limits.max_request_bytes)
        self._max_inflight = max(1, limits.max_inflight_per_connection)
        self._pending: collections.deque[_Slot] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._closed = False
        self.peer = "?"
        self.last_active = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if not self._server.register(self):
            log.warning("refusing connection from %s: max_connections reached", self.peer)
            self._closed = True
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.unregister(self)
        for task in list(self._tasks):
            task.cancel()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            frames = self._splitter.feed(data)
        except ProtocolError as exc:
            self.close(f"malformed frame: {exc}")
            return
        for frame in frames:
            if self._closed:
                return
            self._dispatch(frame)
        self._update_reading()

    # -- dispatch ---------------------------------------------------------------------

    def _dispatch(self, frame: bytes) -> None:
        state = self._state
        try:
            api_key, version, correlation_id, client_id, body_offset = headers.parse_request_header(frame)
        except ProtocolError as exc:
            self.close(f"malformed request header: {exc}")
            return
        handler = _handlers.HANDLERS.get(api_key)
        if handler is None:
            self.close(f"unknown api key {api_key} (correlation id {correlation_id})")
            return
        if not handler.MIN_VERSION <= version <= handler.MAX_VERSION:
            if api_key == ApiKey.API_VERSIONS:
                # The protocol's downgrade answer: a v0 body listing what we support.
                self._respond_now(headers.unsupported_api_versions_response(correlation_id))
                return
            self.close(
                f"unsupported version {version} of api {api_key} "
                f"(we support {handler.MIN_VERSION}-{handler.MAX_VERSION})"
            )
            return
        try:
            request = handler.REQUEST.decode(memoryview(frame)[body_offset:], version)
        except ProtocolError as exc:
            self.close(f"malformed api {api_key} v{version} request: {exc}")
            return
        state.metrics.request(api_key)
        ctx = RequestContext(api_key, version, correlation_id, client_id, self.peer)
        try:
            result = handler.handle(state, ctx, request)
        except Exception:
            log.exception("handler for api %d v%d failed; closing %s", api_key, version, self.peer)
            self.close(None)
            return
        if isinstance(result, Awaitable):
            slot = _Slot()
            self._pending.append(slot)
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t, s=slot, c=ctx: self._finished(t, s, c))
        elif result is not None:
            data = self._encode(ctx, result)
            if data is not None:
                self._respond_now(data)
        # None: nothing to send (acks=0 produce).

    def _finished(self, task: asyncio.Future[Any], slot: _Slot, ctx: RequestContext) -> None:
        self._tasks.discard(task)  # type: ignore[arg-type]
        slot.done = True
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "handler for api %d v%d failed; closing %s",
                ctx.api_key,
                ctx.api_version,
                self.peer,
                exc_info=exc,
            )
            self.close(None)
            return
        response = task.result()
        if response is not None:
            slot.data = self._encode(ctx, response)
            if slot.data is None:
                return
        self._flush()

    def _encode(self, ctx: RequestContext, response: Any) -> bytes | None:
        """Frame a response; a response we cannot encode is our bug: log it, close."""
        try:
            return headers.encode_response(ctx.correlation_id, ctx.api_key, ctx.api_version, response)
        except Exception:
            log.exception(
                "could not encode the api %d v%d response; closing %s",
                ctx.api_key,
                ctx.api_version,
                self.peer,
            )
            self.close(None)
            return None

    def _respond_now(self, data: bytes) -> None:
        if not self._pending:
            self._write(data)
            return
        slot = _Slot()
        slot.data = data
        slot.done = True
        self._pending.append(slot)
        self._flush()

    def _flush(self) -> None:
        pending = self._pending
        while pending and pending[0].done:
            data = pending.popleft().data
            if data is not None:
                self._write(data)
        self._update_reading()

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._state.metrics.bytes_out(len(data))
            self._transport.write(data)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or self._closed:
            return
        should_pause = self._writing_paused or len(self._pending) >= self._max_inflight
        if should_pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not should_pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def close(self, reason: str | None) -> None:
        """Close this connection; ``reason`` becomes the one log line."""
        if self._closed:
            return
        self._closed = True
        if reason:
            log.warning("closing connection from %s: %s", self.peer, reason)
        if self._transport is not None:
            self._transport.close()

    @property
    def idle_seconds(self) -> float:
        return time.monotonic() - self.last_active if not self._pending else 0.0


class KafkaServer:
    """Listens on one address and owns the set of live connections."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[KafkaConnection] = set()
        self._idle_task: asyncio.Task[None] | None = None
        self.host = state.config.listeners.host
        self.port = state.config.listeners.port

    def register(self, conn: KafkaConnection) -> bool:
        if len(self._connections) >= self.state.config.limits.max_connections:
            return False
        self._connections.add(conn)
        self.state.metrics.connections(len(self._connections))
        return True

    def unregister(self, conn: KafkaConnection) -> None:
        self._connections.discard(conn)
        self.state.metrics.connections(len(self._connections))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: KafkaConnection(self),
            self.host,
            self.port,
            reuse_address=True,
            backlog=1024,
        )
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        self._idle_task = loop.create_task(self._close_idle())

    async def _close_idle(self) -> None:
        limit_s = self.state.config.limits.connection_idle_ms / 1000.0
        while True:
            await asyncio.sleep(min(max(limit_s / 4, 0.05), 5.0))
            for conn in list(self._connections):
                if conn.idle_seconds > limit_s:
                    conn.close(f"idle for more than {limit_s:.0f} s")

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, give in-flight requests ``grace_s`` seconds, then close all."""
        if self._server is not None:
            self._server.close()
        if self._idle_task is not None:
            self._idle_task.cancel()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(c._pending for c in self._connections):
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            conn.close(None)
        if self._server is not None:
            await self._server.wait_closed()
