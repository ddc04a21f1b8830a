"""One client connection of the Kafka-wire server (:class:`KafkaConnection`).

Framing, dispatch to the handlers, in-order responses, the per-connection limits, SASL
and quotas; Fetch responses with segment-file ranges go out through
:class:`~streamcore.broker.fetch_sending.FetchResponseSender` (``os.sendfile``).
:mod:`streamcore.broker.server` describes the whole, and accepts the connections.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import os
import time
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any, cast

from streamcore.broker import handlers as _handlers
from streamcore.broker.context import RequestContext
from streamcore.broker.fetch_sending import FetchResponseSender, close_parts
from streamcore.broker.handlers import sasl_authenticate, sasl_handshake
from streamcore.broker.quotas import FETCH, PRODUCE, REQUEST, user_of
from streamcore.broker.security import tls
from streamcore.broker.security.mechanisms import AuthenticationFailed
from streamcore.broker.security.sasl import AUTHENTICATE, COMPLETE, FAILED, SaslSession
from streamcore.broker.state import current_listener
from streamcore.errors import ProtocolError
from streamcore.protocol import headers
from streamcore.protocol.framing import FrameReceiver
from streamcore.protocol.headers import ApiKey

if TYPE_CHECKING:
    from streamcore.broker.server import KafkaServer, Listener

log = logging.getLogger("streamcore.broker")

__all__ = ["KafkaConnection"]

# A partial frame this small never waits for other connections' partial frames: small
# requests that straddle two socket reads are the normal case for well-behaved clients.
_SMALL_PARTIAL_BYTES = 64 * 1024

_FETCH_KEY_BYTES = ApiKey.FETCH.to_bytes(2, "big")
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)

# Largest frame a SASL connection may send before it has authenticated (Kafka's
# sasl.server.max.receive.size): strangers do not get to fill the request budget.
_PRE_AUTH_MAX_BYTES = 512 * 1024

# Seconds between the answer to a failed authentication and the close. A client that reads
# the answer and the end of the stream in one go may drop the answer (kafka-python does):
# the pause lets it read the error first. The connection reads nothing meanwhile.
_FAILED_AUTH_LINGER_S = 0.5


class _Timed:
    """Awaits ``inner`` and adds up the time its steps run on the event loop (seconds), not
    the time it waits: the request handler time the request quota measures."""

    __slots__ = ("_inner", "seconds")

    def __init__(self, inner: Awaitable[Any], seconds: float = 0.0) -> None:
        self._inner = inner
        #: Seconds the awaitable ran so far (and the handler call that made it).
        self.seconds = seconds

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self._inner.__await__()
        clock = time.perf_counter
        value: Any = None
        error: BaseException | None = None
        while True:
            started = clock()
            try:
                if error is not None:
                    thrown, error = error, None
                    yielded = steps.throw(thrown)
                else:
                    yielded = steps.send(value)
            except StopIteration as stop:
                self.seconds += clock() - started
                return stop.value
            except BaseException:
                self.seconds += clock() - started
                raise
            self.seconds += clock() - started
            try:
                value = yield yielded
            except GeneratorExit:
                steps.close()
                raise
            except BaseException as exc:  # cancellation and the like go on to the inner awaitable
                value, error = None, exc


class _Slot:
    """One dispatched request's place in its connection's response queue."""

    __slots__ = ("close_after", "data", "done", "size")

    def __init__(self, size: int) -> None:
        #: The response frame: bytes, or parts (bytes and OutOfLine record sets).
        self.data: bytes | list[bytes | headers.OutOfLine] | None = None
        self.done = False
        #: Bytes of the request frame, held in the budget until the response is written.
        self.size = size
        #: Why the connection closes once this response is written (a failed authentication).
        self.close_after: str | None = None


class KafkaConnection(FetchResponseSender, asyncio.BufferedProtocol):
    """Serves one client socket."""

    def __init__(self, server: KafkaServer, ip: str, listener: Listener) -> None:
        self._server = server
        #: The listener this connection came in on.
        self.listener = listener
        #: Who the requests of this connection come from (see RequestContext.principal).
        self.principal = "User:ANONYMOUS"
        self._state = server.state
        self._memory = server.memory
        limits = server.state.config.limits
        self._receiver = FrameReceiver(limits.max_request_bytes, scratch=server.read_scratch)
        self._max_inflight = max(1, limits.max_inflight_per_connection)
        self._response_buffer = limits.max_buffered_response_bytes
        #: Frames read but not yet dispatched (beyond the in-flight limit, or a Fetch
        #: waiting for its turn).
        self._backlog: collections.deque[bytes | bytearray] = collections.deque()
        self._pending: collections.deque[_Slot] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._pumping = False
        self._closed = False
        self._released = False
        #: Bytes of the partial frame counted in the budget.
        self._partial = 0
        #: Bytes of backlog frames counted in the budget.
        self._backlog_bytes = 0
        #: monotonic() of the first byte of the partial frame; 0.0 when there is none.
        self.partial_since = 0.0
        #: monotonic() since which the send buffer is over its high-water mark; 0.0 when not.
        self.write_stalled_since = 0.0
        self.ip = ip
        self.peer = "?"
        self.last_active = time.monotonic()
        #: Times this connection, holding budget, was queued for room (a count, never reset).
        self.budget_waits = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        #: The SASL exchange of a connection on a SASL listener (None elsewhere).
        self.sasl: SaslSession | None = None
        if listener.spec.uses_sasl and server.state.sasl is not None:
            self.sasl = SaslSession(server.state.sasl)
        #: monotonic() of the connection's start (a SASL client must authenticate in time).
        self.connected_at = time.monotonic()
        #: monotonic() until which a quota throttles this connection (nothing is read or
        #: dispatched meanwhile); 0.0 when it is not throttled.
        self.throttled_until = 0.0
        self._throttle_timer: asyncio.TimerHandle | None = None
        #: Whether record sets may go out with os.sendfile (a plain socket; set once connected).
        self._sendfile = False
        #: The socket's descriptor for direct os.sendfile calls (-1 when not sending files).
        self._sock_fd = -1
        #: True while the response at the head of the queue is being sent by a task.
        self._sending = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self.listener.protocol == "SSL":
            # Verified during the handshake; absent unless ssl.client_auth asked for one.
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                self.principal = tls.principal_from_certificate(ssl_object.getpeercert())
        transport.set_write_buffer_limits(high=self._response_buffer, low=self._response_buffer // 2)
        plain = (
            transport.get_extra_info("sslcontext") is None and transport.get_extra_info("socket") is not None
        )
        self._sendfile = hasattr(os, "sendfile") and plain
        sock = transport.get_extra_info("socket")
        self._sock_fd = sock.fileno() if self._sendfile and sock is not None else -1
        self._server.register(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
            self._throttle_timer = None
        self._server.unregister(self)
        self._release_all()
        for task in list(self._tasks):
            task.cancel()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self.write_stalled_since = time.monotonic()
        self.update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self.write_stalled_since = 0.0
        self.last_active = time.monotonic()
        self._pump()

    def get_buffer(self, sizehint: int) -> memoryview:
        # The read goes straight into the frame's own buffer when a large frame is
        # arriving (see protocol.framing): no copy between the socket and the handler.
        return self._receiver.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        now = time.monotonic()
        self.last_active = now
        try:
            frames = self._receiver.received(nbytes)
        except ProtocolError as exc:
            self.close(f"malformed frame: {exc}", kind="closed for a malformed frame")
            return
        buffered = self._receiver.buffered()
        sasl = self.sasl
        if sasl is not None and sasl.state != COMPLETE:
            if buffered > _PRE_AUTH_MAX_BYTES or any(len(f) > _PRE_AUTH_MAX_BYTES for f in frames):
                self.close(
                    f"a frame above {_PRE_AUTH_MAX_BYTES} bytes before SASL authentication",
                    kind="closed for a request its SASL state does not allow",
                )
                return
        memory = self._memory
        if memory.full and not self._holds_budget():
            memory.free_reads += 1
        if not buffered:
            if self.partial_since:
                memory.partial_ended(self)
            self.partial_since = 0.0
        elif frames or not self.partial_since:
            # The partial frame's first byte came in this read.
            self.partial_since = now
            memory.partial_started(self)
        complete = 0
        for frame in frames:
            complete += len(frame)
        memory.add(complete, buffered - self._partial)
        self._partial = buffered
        if frames:
            self._backlog_bytes += complete
            self._backlog.extend(frames)
        memory.read_by(self)
        self._pump()

    # -- dispatch ---------------------------------------------------------------------

    def _pump(self) -> None:
        """Dispatch what the limits allow, then decide whether to read on."""
        if self._pumping:
            return
        self._pumping = True
        try:
            backlog = self._backlog
            while backlog and not self._closed:
                if self._writing_paused or len(self._pending) >= self._max_inflight:
                    break
                if self.sasl is not None and self.sasl.state == FAILED:
                    # The failure's answer is on its way; nothing more is served.
                    break
                if self.throttled_until:
                    # Muted by a quota: the next request waits for the throttle to end.
                    break
                frame = backlog[0]
                if self._pending and frame[:2] == _FETCH_KEY_BYTES:
                    # Its records are read when the earlier answers are out (see module doc).
                    break
                backlog.popleft()
                self._backlog_bytes -= len(frame)
                self._dispatch(frame)
        finally:
            self._pumping = False
        self.update_reading()

    def _dispatch(self, frame: bytes | bytearray) -> None:
        size = len(frame)
        if self.sasl is not None and self.sasl.expects_raw_token:
            self._raw_token(frame)
            self._memory.release(size)
            return
        slot = self._handle(frame, size)
        if slot is None:
            # Answered (or refused) already: the request's bytes leave the budget.
            self._memory.release(size)

    def _handle(self, frame: bytes | bytearray, size: int) -> _Slot | None:
        """Run the frame's handler; returns the slot of an answer still to come, else None."""
        state = self._state
        try:
            api_key, version, correlation_id, client_id, body_offset = headers.parse_request_header(frame)
        except ProtocolError as exc:
            self.close(f"malformed request header: {exc}", kind="closed for a malformed request")
            return None
        sasl = self.sasl
        if sasl is not None:
            refusal = sasl.refusal(api_key)
            if refusal is not None:
                self.close(
                    f"{refusal} (correlation id {correlation_id})",
                    kind="closed for a request its SASL state does not allow",
                )
                return None
        handler = _handlers.HANDLERS.get(api_key)
        if handler is None:
            self.close(
                f"unknown api key {api_key} (correlation id {correlation_id})",
                kind="closed for an unknown api key",
            )
            return None
        if not handler.MIN_VERSION <= version <= handler.MAX_VERSION:
            if api_key == ApiKey.API_VERSIONS:
                # The protocol's downgrade answer: a v0 body listing what we support.
                self._respond_now(headers.unsupported_api_versions_response(correlation_id))
                return None
            self.close(
                f"unsupported version {version} of api {api_key} "
                f"(we support {handler.MIN_VERSION}-{handler.MAX_VERSION})",
                kind="closed for an unsupported api version",
            )
            return None
        try:
            request = handler.REQUEST.decode(memoryview(frame)[body_offset:], version)
        except ProtocolError as exc:
            self.close(
                f"malformed api {api_key} v{version} request: {exc}", kind="closed for a malformed request"
            )
            return None
        state.metrics.request(api_key)
        ctx = RequestContext(api_key, version, correlation_id, client_id, self.peer, self.principal)
        if sasl is not None and (
            api_key == ApiKey.SASL_HANDSHAKE
            or (api_key == ApiKey.SASL_AUTHENTICATE and sasl.state == AUTHENTICATE)
        ):
            return self._sasl_exchange(ctx, request, size)
        quotas = state.quotas
        if api_key == _PRODUCE and quotas.enabled[PRODUCE]:
            # The request's bytes count against the producer's byte rate; over it, the
            # requests behind this one wait from now on (the answer carries the time).
            throttle_ms = quotas.record(PRODUCE, user_of(self.principal), ctx.client_id, size)
            if throttle_ms:
                ctx.throttle_ms = throttle_ms
                quotas.throttled(PRODUCE, throttle_ms)
                self._throttle(throttle_ms)
        timed = quotas.enabled[REQUEST]
        started = time.perf_counter() if timed else 0.0
        # The handler, and the task of an answer that waits, see this connection's listener.
        token = current_listener.set(self.listener)
        try:
            try:
                result = handler.handle(state, ctx, request)
            except Exception:
                log.exception("handler for api %d v%d failed; closing %s", api_key, version, self.peer)
                self.close(None)
                return None
            # The type's __await__, not isinstance(..., Awaitable): an ABC check runs
            # Python code, and every request asks.
            if getattr(type(result), "__await__", None) is not None:
                waits = cast("Awaitable[Any]", result)
                slot = _Slot(size)
                self._pending.append(slot)
                timer = _Timed(waits, time.perf_counter() - started) if timed else None
                task = asyncio.ensure_future(waits if timer is None else timer)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._finished, slot=slot, ctx=ctx, timer=timer))
                return slot
        finally:
            current_listener.reset(token)
        self._quota_answer(ctx, result, time.perf_counter() - started if timed else None)
        if result is not None:
            data = self._encode_parts(ctx, result)
            if data is not None:
                self._respond_now(data)
        # None: nothing to send (acks=0 produce).
        return None

    # -- SASL ---------------------------------------------------------------------------

    def _sasl_exchange(self, ctx: RequestContext, request: Any, size: int) -> _Slot | None:
        """SaslHandshake or SaslAuthenticate on a SASL listener (see security.sasl)."""
        sasl = self.sasl
        assert sasl is not None
        response: Any
        if ctx.api_key == ApiKey.SASL_HANDSHAKE:
            response, failure = sasl_handshake.handle_session(sasl, ctx, request)
        else:
            response, failure = sasl_authenticate.handle_session(sasl, ctx, request)
        data = self._encode(ctx, response)
        if data is None:
            return None
        if failure is not None:
            return self._authentication_failed(failure, data, size)
        if ctx.api_key == ApiKey.SASL_AUTHENTICATE and sasl.state == COMPLETE:
            self._authenticated()
        self._respond_now(data)
        return None

    def _raw_token(self, frame: bytes | bytearray) -> None:
        """A SASL token framed without a Kafka header (after SaslHandshake v0)."""
        sasl = self.sasl
        assert sasl is not None
        try:
            token, _ = sasl.authenticate(bytes(frame), supports_reauth=False)
        except AuthenticationFailed as exc:
            # This framing has no way to carry an error: the connection just closes.
            self._authentication_failed(str(exc), None, 0)
            return
        if sasl.state == COMPLETE:
            self._authenticated()
        self._respond_now(len(token).to_bytes(4, "big") + token)

    def _authenticated(self) -> None:
        sasl = self.sasl
        assert sasl is not None and sasl.principal is not None
        self.principal = sasl.principal
        state = self._state
        if state.authentications is not None:
            state.authentications.inc()
        if state.sasl is not None:
            state.sasl.throttle.succeeded(self.ip)

    def _authentication_failed(self, reason: str, data: bytes | None, size: int) -> _Slot:
        """Count the failure; answer ``data`` (if any) after the throttle's delay for this
        address, then close."""
        state = self._state
        if state.authentication_failures is not None:
            state.authentication_failures.inc()
        throttle = state.sasl.throttle if state.sasl is not None else None
        delay_s = throttle.failed(self.ip) if throttle is not None else 0.0
        slot = _Slot(size)
        slot.close_after = reason
        self._pending.append(slot)
        asyncio.get_running_loop().call_later(delay_s, self._deliver, slot, data)
        return slot

    def _deliver(self, slot: _Slot, data: bytes | None) -> None:
        if self._closed:
            return
        slot.data = data
        slot.done = True
        self._flush()

    def _finished(
        self, task: asyncio.Task[Any], *, slot: _Slot, ctx: RequestContext, timer: _Timed | None = None
    ) -> None:
        self._tasks.discard(task)
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
        self._quota_answer(ctx, response, timer.seconds if timer is not None else None)
        if response is not None:
            slot.data = self._encode_parts(ctx, response)
            if slot.data is None:
                return
        self._flush()

    # -- quotas ------------------------------------------------------------------------------

    def _quota_answer(self, ctx: RequestContext, response: Any, handler_s: float | None) -> None:
        """Record the handler time (``handler_s``, None when no request quota exists) and
        throttle by the larger of it and the request's byte-rate throttle: the response
        carries the time in throttle_time_ms and the connection reads nothing meanwhile.
        (A Produce's byte throttle began at dispatch; an acks=0 Produce, which has no
        response, is exempt from the request quota, as in Kafka.)"""
        quotas = self._state.quotas
        byte_ms = ctx.throttle_ms
        request_ms = 0
        if handler_s is not None and response is not None:
            request_ms = quotas.record(REQUEST, user_of(self.principal), ctx.client_id, handler_s * 100.0)
        if request_ms > byte_ms:
            quotas.throttled(REQUEST, request_ms)
            self._throttle(request_ms)
        elif byte_ms and ctx.api_key == _FETCH:
            quotas.throttled(FETCH, byte_ms)
            self._throttle(byte_ms)
        throttle_ms = max(byte_ms, request_ms)
        if throttle_ms and response is not None and hasattr(response, "throttle_time_ms"):
            response.throttle_time_ms = max(response.throttle_time_ms or 0, throttle_ms)

    def _throttle(self, throttle_ms: int) -> None:
        """Mute this connection for ``throttle_ms`` (longer if it already is)."""
        until = time.monotonic() + throttle_ms / 1000.0
        if until <= self.throttled_until or self._closed:
            return
        self.throttled_until = until
        if self._throttle_timer is not None:
            self._throttle_timer.cancel()
        self._throttle_timer = asyncio.get_running_loop().call_at(
            asyncio.get_running_loop().time() + throttle_ms / 1000.0, self._throttle_ended
        )
        self.update_reading()

    def _throttle_ended(self) -> None:
        self._throttle_timer = None
        self.throttled_until = 0.0
        if self._closed:
            return
        if self.partial_since:
            # The frame could not arrive while nothing was read: its time starts again.
            self.partial_since = time.monotonic()
        self._pump()

    def _encode_parts(
        self, ctx: RequestContext, response: Any
    ) -> bytes | list[bytes | headers.OutOfLine] | None:
        """``_encode``, except that a Fetch response carrying record sets comes as parts
        (see module doc)."""
        if ctx.api_key != _FETCH:
            return self._encode(ctx, response)
        try:
            parts = headers.encode_response_parts(ctx.correlation_id, ctx.api_key, ctx.api_version, response)
        except Exception:
            self._encoding_failed(ctx)
            return None
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return parts

    def _encode(self, ctx: RequestContext, response: Any) -> bytes | None:
        """Frame a response (None when it cannot be encoded: see ``_encoding_failed``)."""
        try:
            return headers.encode_response(ctx.correlation_id, ctx.api_key, ctx.api_version, response)
        except Exception:
            self._encoding_failed(ctx)
            return None

    def _encoding_failed(self, ctx: RequestContext) -> None:
        """A response we cannot encode is our bug: log it with its traceback, close."""
        log.exception(
            "could not encode the api %d v%d response; closing %s", ctx.api_key, ctx.api_version, self.peer
        )
        self.close(None)

    def _respond_now(self, data: bytes | list[bytes | headers.OutOfLine]) -> None:
        if not self._pending and not isinstance(data, list):
            self._write(data)
            return
        slot = _Slot(0)
        slot.data = data
        slot.done = True
        self._pending.append(slot)
        self._flush()

    def _flush(self) -> None:
        if self._sending:
            return  # the task sending the head of the queue flushes again when done
        pending = self._pending
        released = 0
        close_reason = None
        while pending and pending[0].done:
            slot = pending[0]
            data = slot.data
            if isinstance(data, list):
                slot.data = None
                if not self._write_parts(data):
                    # Sent by a task: the slot stays at the head until it is done.
                    slot.data = data
                    break
            elif data is not None:
                self._write(data)
            pending.popleft()
            released += slot.size
            if slot.close_after is not None:
                close_reason = slot.close_after
                break
        if released:
            self._memory.release(released)
        if close_reason is not None:
            asyncio.get_running_loop().call_later(
                _FAILED_AUTH_LINGER_S,
                functools.partial(self.close, close_reason, kind="closed after a failed authentication"),
            )
            return
        if self._sending:
            return
        self._pump()

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        if self._transport is not None and not self._closed:
            self._state.metrics.bytes_out(len(data))
            self._transport.write(data)

    def _holds_budget(self) -> bool:
        """A request queued or in progress, or a partial frame above 64 KiB."""
        return bool(self._pending or self._backlog) or self._partial > _SMALL_PARTIAL_BYTES

    def _paused_by_itself(self) -> bool:
        """Paused whatever the budget: responses unsent, frames undispatched, in-flight limit,
        a failed authentication (the connection is about to close), or a quota's throttle."""
        return (
            self._writing_paused
            or bool(self._backlog)
            or len(self._pending) >= self._max_inflight
            or (self.sasl is not None and self.sasl.state == FAILED)
            or bool(self.throttled_until)
        )

    def wants_budget(self) -> bool:
        """Whether a grant of room would let this connection read (see :class:`RequestMemory`)."""
        return (
            not self._closed
            and self._transport is not None
            and self._holds_budget()
            and not self._paused_by_itself()
        )

    def update_reading(self) -> None:
        """Pause or resume reading from the socket by the limits (see module doc)."""
        transport = self._transport
        if transport is None or self._closed:
            return
        memory = self._memory
        own = self._partial
        if self._paused_by_itself():
            # A grant or a place in the queue is for a connection that would read.
            memory.unqueue(self)
            should_pause = True
        elif (
            own > _SMALL_PARTIAL_BYTES
            and memory.partial - own >= memory.partial_limit
            and memory.older_partial(self) >= memory.partial_limit
        ):
            # Only frames begun earlier count against this one (see module doc); the walk is
            # taken only near the budget.
            memory.unqueue(self)
            memory.wait_partial(self)
            should_pause = True
        elif self._holds_budget():
            should_pause = not memory.may_read(self)
        else:
            # Nothing outstanding: like a connection Kafka unmutes, it may always bring its
            # next request (see module doc).
            memory.unqueue(self)
            should_pause = False
        if should_pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not should_pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _release_all(self) -> None:
        """Give back every budget byte this connection holds (it is gone)."""
        if self._released:
            return
        self._released = True
        self._memory.forget(self)
        held = self._backlog_bytes + sum(slot.size for slot in self._pending)
        self._backlog.clear()
        self._backlog_bytes = 0
        for i, slot in enumerate(self._pending):
            slot.size = 0
            # The task sending the head closes its own files as it is cancelled.
            if isinstance(slot.data, list) and not (i == 0 and self._sending):
                close_parts(slot.data)
        partial = self._partial
        self._partial = 0
        self._memory.release(held, partial)

    def close(self, reason: str | None, *, kind: str | None = None) -> None:
        """Close this connection; ``reason`` goes into the summary log under ``kind``."""
        if self._closed:
            return
        self._closed = True
        if reason:
            self._server.connection_log.note(kind or "closed", self.peer, reason)
        if self._transport is not None:
            self._transport.close()
        self._release_all()

    @property
    def partial_bytes(self) -> int:
        """Bytes of this connection's partial frame held in the budget."""
        return self._partial

    @property
    def idle_seconds(self) -> float:
        """Seconds since the last read or drained write; 0 while a request is being served."""
        return time.monotonic() - self.last_active if not self._pending else 0.0
