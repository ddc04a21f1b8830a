"""The asyncio Kafka-wire server: accepting, framing, dispatch, in-order responses, budgets.

One ``KafkaConnection`` (an ``asyncio.BufferedProtocol``) per client socket. Its reads go
into the buffers of a ``streamcore.protocol.framing.FrameReceiver`` (with the configured
maximum request size), which hands back whole frames; the rest of a large frame is read
straight into a buffer of its own, which becomes the frame the handler reads. Each frame's request header (``headers.parse_request_header``) picks a handler module
from ``streamcore.broker.handlers``, called with the shared state and a
``streamcore.broker.context.RequestContext``. Handlers may answer at once or later (long-polling
fetches, joins waiting for a rebalance), yet the responses on one connection leave in
the order the requests arrived, as the protocol requires.

Memory is bounded whatever clients send:

* ``limits.queued_max_request_bytes`` (Kafka's queued.max.request.bytes) counts the bytes of
  every request read and not yet answered, plus partial frames, across connections
  (:class:`RequestMemory`), in two halves. The budget is fair the way Kafka's muting is: a
  connection that holds nothing (no request queued or being served, no partial frame above
  64 KiB) may always read its next request, as Kafka reads from a connection it has
  unmuted, so a client sending one request at a time is never held up behind a flood. A
  connection that does hold budget reads only while complete requests waiting for their
  answers hold less than half of it; otherwise it queues, and as answers go out the queued
  connections are resumed oldest-waiting first, each promised one socket read (256 KiB) of
  the room, so the room freed is shared in turn rather than taken by whoever reads first.
  A partial frame above 64 KiB also grows only while the partial frames begun before it
  hold less than the other half: the oldest partial frame always completes (no deadlock
  however many arrive at once), and clients that trickle huge frames cannot starve clients
  that send small requests. So the bytes held stay below the budget plus one largest
  request, plus what each connection read in its last socket read (at most 256 KiB) and
  64 KiB of a small partial frame; a connection holding nothing adds no more than that.
* A connection dispatches at most ``limits.max_inflight_per_connection`` requests at once;
  frames beyond that, even ones that arrived in the same socket read, wait undecoded and
  the socket is not read meanwhile.
* Once ``limits.max_buffered_response_bytes`` of responses wait in a connection's send buffer
  (the transport's high-water mark), its further requests wait until it drains to half.
* A Fetch is dispatched only when every earlier request of its connection is answered and
  the send buffer is below that mark, so its records are read when they can be sent, never
  for a whole burst of pipelined fetches at once.
* A request must arrive completely within ``limits.request_timeout_ms`` of its first byte,
  and a connection whose responses have not drained for that long is closed.

A Fetch response comes as parts (``headers.encode_response_parts``): the frame's bytes
and, between them, the record sets. On a connection without TLS, record sets that are
open segment-file ranges (``handlers.fetch.FileRecords``) go out with ``os.sendfile``
in chunks of ``_SENDFILE_CHUNK_BYTES``, after the bytes before them have drained:
straight from the event loop while the socket has room, through ``loop.sendfile`` (which
waits for room) once it is full; responses behind it wait, so they still leave in
request order. A client
that reads nothing for ``limits.request_timeout_ms`` during one chunk is closed as for
any stalled response, and a file that turns out shorter than its range (cut under the
broker) closes the connection, since its frame can no longer be completed. Record sets
in memory (and, on TLS connections, everything) are written through the transport.

Accepting is our own loop on the listening socket (``KafkaServer``), so that the global
connection limit and the creation rate hold before any work is spent on a socket: at the
limit the listener is not read (the kernel's backlog holds new clients, as Kafka's acceptor
does); over the rate accepting pauses until a token is due; a client over
``limits.max_connections_per_ip`` is closed right after accept. Accepted sockets get TCP
keepalive so that half-open peers go away.

Refused connections and connections closed for what the client sent (malformed frames,
unknown APIs, timeouts) are logged as one summary line per kind every
``LOG_SUMMARY_INTERVAL_S`` seconds, with counts and the last example, never one line each:
an attacker cannot fill the disk with log lines.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Generator
from typing import TYPE_CHECKING, Any

from streamcore.broker import handlers as _handlers
from streamcore.broker.config import ListenerSpec
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import sasl_authenticate, sasl_handshake
from streamcore.broker.handlers.fetch import FileRecords
from streamcore.broker.quotas import FETCH, PRODUCE, REQUEST, user_of
from streamcore.broker.security import tls
from streamcore.broker.security.mechanisms import AuthenticationFailed
from streamcore.broker.security.sasl import AUTHENTICATE, COMPLETE, FAILED, SaslSession
from streamcore.broker.state import current_listener
from streamcore.errors import ConfigError, ProtocolError, StorageError
from streamcore.protocol import headers
from streamcore.protocol.framing import FrameReceiver
from streamcore.protocol.headers import ApiKey

if TYPE_CHECKING:
    from streamcore.broker.state import BrokerState

log = logging.getLogger("streamcore.broker")

__all__ = [
    "KafkaConnection",
    "KafkaServer",
    "Listener",
    "RequestMemory",
    "parse_ip_overrides",
    "LOG_SUMMARY_INTERVAL_S",
]

#: Seconds between the summary lines of refused and closed connections.
LOG_SUMMARY_INTERVAL_S = 10.0

# A partial frame this small never waits for other connections' partial frames: small
# requests that straddle two socket reads are the normal case for well-behaved clients.
_SMALL_PARTIAL_BYTES = 64 * 1024

# What one socket read can bring (asyncio's selector transports recv() at most this much);
# the room promised to a connection resumed for the budget.
_READ_BYTES = 256 * 1024

# Connections holding budget resumed per turn of the event loop while the budget is full:
# each brings up to one socket read into the same turn, so a flood of pipelining clients
# adds a few reads to each turn rather than one per connection, and whoever sends one
# request at a time waits at most that long (see RequestMemory).
_GRANTS_PER_TURN = 4

# Connections accepted per readiness event of the listening socket (asyncio's own default
# is the backlog; a smaller batch lets the rate limit and the limits act between accepts).
_ACCEPT_BATCH = 64

# Errors of accept() that mean "out of a resource", not "this one client failed": back off.
_ACCEPT_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_ACCEPT_BACKOFF_S = 0.1

# Keepalive: probe a silent peer after a minute, give up after six unanswered probes 10 s
# apart. (The kernel default waits two hours before the first probe.)
_KEEPALIVE_IDLE_S = 60
_KEEPALIVE_INTERVAL_S = 10
_KEEPALIVE_PROBES = 6

_FETCH_KEY_BYTES = ApiKey.FETCH.to_bytes(2, "big")
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)

# Bytes per loop.sendfile call: the stall timeout counts from the start of each chunk, so
# a client that reads slowly but steadily is never closed for one long record set.
_SENDFILE_CHUNK_BYTES = 1 << 20

# Largest frame a SASL connection may send before it has authenticated (Kafka's
# sasl.server.max.receive.size): strangers do not get to fill the request budget.
_PRE_AUTH_MAX_BYTES = 512 * 1024

# Seconds between the answer to a failed authentication and the close. A client that reads
# the answer and the end of the stream in one go may drop the answer (kafka-python does):
# the pause lets it read the error first. The connection reads nothing meanwhile.
_FAILED_AUTH_LINGER_S = 0.5


def parse_ip_overrides(text: str) -> dict[str, int]:
    """Parse ``host:count,host:count`` (Kafka's max.connections.per.ip.overrides) to {ip: count}.

    A host name is resolved once, here, to every address it has. IPv6 addresses may be
    written in brackets (``[::1]:5``). Raises ConfigError naming the bad entry.
    """
    out: dict[str, int] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        host, sep, count_text = entry.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not sep or not host:
            raise ConfigError(
                f"limits.max_connections_per_ip_overrides: {entry!r} is not 'host:count' "
                "(for example '127.0.0.1:200,10.0.0.7:50')"
            )
        try:
            count = int(count_text.strip())
        except ValueError:
            count = -1
        if count < 0:
            raise ConfigError(
                f"limits.max_connections_per_ip_overrides: count {count_text.strip()!r} of {host!r} "
                "is not a whole number >= 0"
            )
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConfigError(
                f"limits.max_connections_per_ip_overrides: cannot resolve {host!r}: {exc}"
            ) from None
        for info in infos:
            out[str(info[4][0])] = count
    return out


class _ConnectionLog:
    """Counts refusals and client-caused closes by kind; one log line per kind per interval."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._last: dict[str, str] = {}

    def note(self, kind: str, peer: str, detail: str) -> None:
        self._counts[kind] = self._counts.get(kind, 0) + 1
        self._last[kind] = f"{peer}: {detail}"

    def flush(self, interval_s: float) -> None:
        for kind, count in self._counts.items():
            log.warning(
                "%d connection(s) %s in the last %.0f s (last: %s)",
                count,
                kind,
                interval_s,
                self._last[kind],
            )
        self._counts.clear()
        self._last.clear()


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


class _FileCutShort(Exception):
    """A segment file ended before the range being sent from it (args: the byte where)."""


def _close_parts(parts: list[bytes | headers.OutOfLine]) -> None:
    for part in parts:
        if isinstance(part, headers.OutOfLine):
            part.close()


# Errors of a direct sendfile that loop.sendfile knows how to judge (the socket or the
# file cannot do sendfile after all): the chunk is handed to it, which decides.
_SENDFILE_UNSURE_ERRNOS = frozenset({errno.ENOTSOCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def _sendfile_now(sock_fd: int, fd: int, offset: int, count: int) -> int:
    """One non-blocking ``os.sendfile``: bytes sent (0: the file ends at ``offset``), or
    -1 when the socket has no room or the error is for ``loop.sendfile`` to judge."""
    try:
        return os.sendfile(sock_fd, fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return -1
    except OSError as exc:
        if exc.errno in _SENDFILE_UNSURE_ERRNOS:
            return -1
        raise


class KafkaConnection(asyncio.BufferedProtocol):
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
            if isinstance(result, Awaitable):
                slot = _Slot(size)
                self._pending.append(slot)
                timer = _Timed(result, time.perf_counter() - started) if timed else None
                task = asyncio.ensure_future(result if timer is None else timer)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._finished, slot=slot, ctx=ctx, timer=timer))
                return slot
        finally:
            current_listener.reset(token)
        self._quota_answer(ctx, result, time.perf_counter() - started if timed else None)
        if result is not None:
            data = self._encode(ctx, result)
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
            log.exception(
                "could not encode the api %d v%d response; closing %s",
                ctx.api_key,
                ctx.api_version,
                self.peer,
            )
            self.close(None)
            return None
        if len(parts) == 1 and isinstance(parts[0], bytes):
            return parts[0]
        return parts

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

    def _write_parts(self, parts: list[bytes | headers.OutOfLine]) -> bool:
        """Send a response given as parts; False when a task sends it (sendfile), True when done."""
        if self._transport is None or self._closed:
            _close_parts(parts)
            return True
        if self._sendfile and any(type(p) is FileRecords for p in parts):
            self._sending = True
            task = asyncio.get_running_loop().create_task(self._send_parts(parts))
            self._tasks.add(task)
            task.add_done_callback(self._parts_sent)
            return False
        try:
            # Everything in memory before the first byte goes out: a file that cannot be
            # read then fails the response, not the middle of a frame.
            pieces = [p.materialize() if isinstance(p, headers.OutOfLine) else p for p in parts]
        except (StorageError, OSError) as exc:
            self.close(f"could not read a record set for a response: {exc}", kind="closed on a storage error")
            return True
        finally:
            _close_parts(parts)
        for piece in pieces:
            self._write(piece)
        return True

    async def _send_parts(self, parts: list[bytes | headers.OutOfLine]) -> None:
        """Send ``parts`` in order: bytes through the transport, FileRecords by sendfile."""
        loop = asyncio.get_running_loop()
        transport = self._transport
        assert transport is not None
        metrics = self._state.metrics
        try:
            for part in parts:
                if self._closed:
                    return
                if type(part) is FileRecords:
                    for fd, position, length in part.ranges:
                        await self._send_range(loop, transport, fd, position, length)
                    metrics.bytes_out(len(part))
                else:
                    self._write(part.materialize() if isinstance(part, headers.OutOfLine) else part)
        finally:
            _close_parts(parts)

    async def _send_range(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        fd: int,
        position: int,
        length: int,
    ) -> None:
        """``length`` bytes of file ``fd`` from byte ``position`` to the socket, in chunks.

        While the transport holds nothing and the socket has room, each chunk goes
        straight to ``os.sendfile``. ``loop.sendfile`` is used only once the socket is
        full (or the transport still holds bytes): it waits for room, and costs a pause
        and a resume of reading, a drain waiter and a writer registration per call,
        which was a fifth of the broker's CPU when serving ConsumerPerformance.
        """
        done = 0
        file = None
        try:
            while done < length:
                if self._closed or transport.is_closing():
                    raise ConnectionResetError("connection closed during sendfile")
                count = min(length - done, _SENDFILE_CHUNK_BYTES)
                if not self._sendfile:
                    # sendfile turned out unavailable on this socket: copy what is left.
                    data = os.pread(fd, count, position + done)
                    if len(data) != count:
                        raise _FileCutShort(position + done + len(data))
                    self._write(data)
                    done += count
                    continue
                if self._sock_fd >= 0 and not transport.get_write_buffer_size():
                    # Nothing of this connection is queued in the transport, so these
                    # bytes cannot overtake any.
                    sent = _sendfile_now(self._sock_fd, fd, position + done, count)
                    if sent == 0:
                        raise _FileCutShort(position + done)
                    if sent > 0:
                        done += sent
                        self.last_active = time.monotonic()
                        continue
                if file is None:
                    file = open(fd, "rb", buffering=0, closefd=False)
                self.write_stalled_since = time.monotonic()
                try:
                    sent = await loop.sendfile(transport, file, position + done, count, fallback=False)
                except asyncio.SendfileNotAvailableError:
                    self._sendfile = False
                    continue
                finally:
                    self.write_stalled_since = 0.0
                    self._reconcile_reading()
                if sent != count:
                    raise _FileCutShort(position + done + sent)
                done += count
                self.last_active = time.monotonic()
        finally:
            if file is not None:
                file.close()

    def _parts_sent(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._sending = False
        if task.cancelled() or self._closed:
            return
        exc = task.exception()
        if exc is not None:
            if isinstance(exc, _FileCutShort):
                self.close(
                    f"a segment file ended at byte {exc.args[0]} while a fetch response was sent from it",
                    kind="closed on a storage error",
                )
            elif isinstance(exc, (ConnectionError, OSError, RuntimeError)):
                self.close(None)  # the client went away mid-response
            else:
                log.error("sending a fetch response to %s failed; closing", self.peer, exc_info=exc)
                self.close(None)
            return
        if self._pending:
            self._pending[0].data = None
        self._flush()

    def _reconcile_reading(self) -> None:
        """loop.sendfile pauses reading and resumes it as it found it: keep our own decision."""
        transport = self._transport
        if transport is None or self._closed or transport.is_closing():
            return
        if self._reading_paused and transport.is_reading():
            transport.pause_reading()
        elif not self._reading_paused and not transport.is_reading():
            transport.resume_reading()

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
                _close_parts(slot.data)
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


class Listener:
    """One listening socket: its spec, bound port, advertised address and TLS context."""

    def __init__(self, spec: ListenerSpec) -> None:
        self.spec = spec
        #: The listener's name (its security protocol).
        self.name = spec.name
        self.protocol = spec.protocol
        self.host = spec.host
        #: The bound port (the real one once bound, also for port 0).
        self.port = spec.port
        self.sock: socket.socket | None = None
        #: The TLS context new connections get (replaced by a certificate reload), None
        #: on PLAINTEXT and SASL_PLAINTEXT listeners.
        self.ssl_context: ssl.SSLContext | None = None

    @property
    def advertised_host(self) -> str:
        """The host clients are told to connect to for this listener."""
        if self.spec.advertised_host:
            return self.spec.advertised_host
        return "localhost" if self.host in ("", "0.0.0.0", "::") else self.host

    @property
    def advertised_port(self) -> int:
        """The port clients are told to connect to for this listener."""
        return self.spec.advertised_port or self.port

    @property
    def bootstrap(self) -> str:
        """``host:port`` to give a client of this listener."""
        host = self.advertised_host
        return f"[{host}]:{self.advertised_port}" if ":" in host else f"{host}:{self.advertised_port}"

    def __repr__(self) -> str:
        return f"<Listener {self.name}://{self.host}:{self.port}>"


class KafkaServer:
    """Listens on every configured listener, accepts within the connection limits (shared by
    all listeners), owns the live connections."""

    def __init__(self, state: BrokerState) -> None:
        self.state = state
        limits = state.config.limits
        self.memory = RequestMemory(limits.queued_max_request_bytes)
        #: The buffer every connection's socket reads go into unless a large frame is
        #: arriving (see protocol.framing): reads are handled one at a time on the loop.
        self.read_scratch = bytearray(_READ_BYTES)
        self.connection_log = _ConnectionLog()
        self._ip_overrides = parse_ip_overrides(limits.max_connections_per_ip_overrides)
        self._per_ip: dict[str, int] = {}
        self._connections: set[KafkaConnection] = set()
        #: Accepted sockets whose transport is still being set up (they hold a slot).
        self._opening = 0
        #: The listeners, the first being the bootstrap one.
        self.listeners = [Listener(spec) for spec in state.config.listener_specs()]
        self._accepting = False
        self._accept_resume: asyncio.TimerHandle | None = None
        self._rate = limits.max_connection_creation_rate
        self._tokens = float(self._rate)
        self._tokens_at = time.monotonic()
        self._sweep_task: asyncio.Task[None] | None = None
        self._last_summary = time.monotonic()
        self._opening_tasks: set[asyncio.Task[Any]] = set()

    @property
    def host(self) -> str:
        """Bind host of the first listener."""
        return self.listeners[0].host

    @property
    def port(self) -> int:
        """Bound port of the first listener."""
        return self.listeners[0].port

    # -- connection bookkeeping ----------------------------------------------------------

    @property
    def connection_count(self) -> int:
        """Open connections (including ones being set up)."""
        return len(self._connections) + self._opening

    @property
    def connections(self) -> list[KafkaConnection]:
        """The open connections, a snapshot (read it on the broker's event loop)."""
        return list(self._connections)

    def register(self, conn: KafkaConnection) -> None:
        self._connections.add(conn)
        self.state.metrics.connections(len(self._connections))

    def unregister(self, conn: KafkaConnection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        self._forget_ip(conn.ip)
        self.state.metrics.connections(len(self._connections))
        self._maybe_resume_accepting()

    def _forget_ip(self, ip: str) -> None:
        left = self._per_ip.get(ip, 0) - 1
        if left > 0:
            self._per_ip[ip] = left
        else:
            self._per_ip.pop(ip, None)

    def _ip_limit(self, ip: str) -> int:
        return self._ip_overrides.get(ip, self.state.config.limits.max_connections_per_ip)

    # -- accepting -------------------------------------------------------------------------

    def _tls_contexts(self) -> dict[str, ssl.SSLContext]:
        """A new TLS context per TLS listener name; ConfigError when a file cannot be used.

        Client certificates are asked for on SSL listeners only: on SASL_SSL the client
        authenticates with SASL (as in Kafka, where ssl.client.auth applies to SSL).
        """
        cfg = self.state.config.ssl
        contexts = {}
        for listener in self.listeners:
            if listener.spec.uses_tls:
                client_auth = cfg.client_auth if listener.protocol == "SSL" else "none"
                contexts[listener.name] = tls.server_context(cfg, client_auth)
        return contexts

    def reload_certificates(self) -> int:
        """Load the certificate, key and CA files again; new connections get them, open ones
        keep theirs. All or nothing: ConfigError (the old contexts stay) when a file cannot
        be used. Returns the number of TLS listeners reloaded."""
        contexts = self._tls_contexts()
        for listener in self.listeners:
            if listener.name in contexts:
                listener.ssl_context = contexts[listener.name]
        return len(contexts)

    async def start(self) -> None:
        """Load TLS contexts, bind every listener (all or none: a failure closes those
        bound and raises the OSError with ``.listener`` set to the one that failed), accept."""
        self.reload_certificates()
        loop = asyncio.get_running_loop()
        try:
            for listener in self.listeners:
                try:
                    listener.sock = await self._bind(loop, listener.host, listener.port)
                except OSError as exc:
                    exc.listener = listener  # type: ignore[attr-defined]
                    raise
                listener.port = listener.sock.getsockname()[1]
        except BaseException:
            for listener in self.listeners:
                if listener.sock is not None:
                    listener.sock.close()
                    listener.sock = None
            raise
        self._start_accepting()
        self._sweep_task = loop.create_task(self._sweep())

    @staticmethod
    async def _bind(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
        infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, type_, proto, _, address = infos[0]
        sock = socket.socket(family, type_, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # "::" serves IPv4 clients too, as asyncio's create_server does on Linux.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _start_accepting(self) -> None:
        if not self._accepting and self._accept_resume is None and self.listeners[0].sock is not None:
            self._accepting = True
            loop = asyncio.get_running_loop()
            for listener in self.listeners:
                if listener.sock is not None:
                    loop.add_reader(listener.sock.fileno(), self._on_acceptable, listener)

    def _stop_accepting(self, resume_after_s: float | None = None) -> None:
        if self._accepting:
            self._accepting = False
            loop = asyncio.get_running_loop()
            for listener in self.listeners:
                if listener.sock is not None:
                    loop.remove_reader(listener.sock.fileno())
        if resume_after_s is not None and self._accept_resume is None:
            self._accept_resume = asyncio.get_running_loop().call_later(resume_after_s, self._resume_timer)

    def _resume_timer(self) -> None:
        self._accept_resume = None
        self._maybe_resume_accepting()

    def _maybe_resume_accepting(self) -> None:
        if (
            self.listeners[0].sock is not None
            and not self._accepting
            and self._accept_resume is None
            and self.connection_count < self.state.config.limits.max_connections
        ):
            self._start_accepting()

    def _take_token(self) -> float:
        """0.0 when a connection may be created now, else seconds until the next token."""
        now = time.monotonic()
        self._tokens = min(float(self._rate), self._tokens + (now - self._tokens_at) * self._rate)
        self._tokens_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def _on_acceptable(self, listener: Listener) -> None:
        sock = listener.sock
        if sock is None:
            return
        max_connections = self.state.config.limits.max_connections
        for _ in range(_ACCEPT_BATCH):
            if self.connection_count >= max_connections:
                # Not read until a connection closes: the kernel's backlog holds the rest.
                self._stop_accepting()
                return
            wait_s = self._take_token()
            if wait_s > 0.0:
                self._stop_accepting(resume_after_s=wait_s)
                return
            try:
                client, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                self._tokens += 1.0  # nothing was created
                return
            except OSError as exc:
                self._tokens += 1.0
                self.connection_log.note("not accepted", "listener", str(exc))
                if exc.errno in _ACCEPT_RESOURCE_ERRNOS:
                    self._stop_accepting(resume_after_s=_ACCEPT_BACKOFF_S)
                    return
                continue
            ip = str(address[0])
            # As Kafka's ConnectionQuotas: the address's creation rate first, then its count.
            if not self.state.quotas.accept_connection(ip):
                # Counted before the close, so that whoever sees the close sees the count.
                self.state.metrics.connection_refused("connection_creation_rate")
                self.connection_log.note(
                    "refused: connection rate of one address",
                    ip,
                    f"connection_creation_rate is {self.state.quotas.connection_rate_limit(ip):g}/s",
                )
                client.close()
                continue
            limit = self._ip_limit(ip)
            if self._per_ip.get(ip, 0) >= limit:
                self.state.metrics.connection_refused("max_connections_per_ip")
                self.connection_log.note(
                    "refused: too many from one address", ip, f"max_connections_per_ip is {limit}"
                )
                client.close()
                continue
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
            self._open(client, ip, listener)

    def _open(self, client: socket.socket, ip: str, listener: Listener) -> None:
        client.setblocking(False)
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if hasattr(socket, "TCP_KEEPIDLE"):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPALIVE_IDLE_S)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPALIVE_INTERVAL_S)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPALIVE_PROBES)
        except OSError as exc:  # the peer may already be gone
            client.close()
            self._forget_ip(ip)
            self.connection_log.note("failed during setup", ip, str(exc))
            return
        self._opening += 1
        loop = asyncio.get_running_loop()
        ssl_context = listener.ssl_context
        if ssl_context is None:
            setup = loop.connect_accepted_socket(lambda: KafkaConnection(self, ip, listener), client)
        else:
            # The TLS handshake must end within the request timeout, as a request must.
            setup = loop.connect_accepted_socket(
                lambda: KafkaConnection(self, ip, listener),
                client,
                ssl=ssl_context,
                ssl_handshake_timeout=self.state.config.limits.request_timeout_ms / 1000.0,
            )
        task = loop.create_task(setup)
        self._opening_tasks.add(task)
        task.add_done_callback(functools.partial(self._opened, client=client, ip=ip))

    def _opened(self, task: asyncio.Task[Any], *, client: socket.socket, ip: str) -> None:
        self._opening_tasks.discard(task)
        self._opening -= 1
        if task.cancelled() or task.exception() is not None:
            client.close()
            self._forget_ip(ip)
            if not task.cancelled():
                self.connection_log.note("failed during setup", ip, str(task.exception()))
        self._maybe_resume_accepting()

    # -- housekeeping ----------------------------------------------------------------------

    async def _sweep(self) -> None:
        """Close idle, slow-sending and non-reading connections; write the summary lines."""
        limits = self.state.config.limits
        idle_s = limits.connection_idle_ms / 1000.0
        timeout_s = limits.request_timeout_ms / 1000.0
        tick_s = min(max(min(idle_s, timeout_s) / 4, 0.05), 1.0)
        while True:
            await asyncio.sleep(tick_s)
            now = time.monotonic()
            for conn in list(self._connections):
                if conn.partial_since and not conn.throttled_until and now - conn.partial_since > timeout_s:
                    conn.close(
                        f"request not complete {timeout_s:g} s after its first byte",
                        kind="closed for a request arriving too slowly",
                    )
                elif conn.write_stalled_since and now - conn.write_stalled_since > timeout_s:
                    conn.close(
                        f"responses not read for {timeout_s:g} s",
                        kind="closed for not reading responses",
                    )
                elif conn.idle_seconds > idle_s:
                    conn.close(f"idle for more than {idle_s:g} s", kind="closed after being idle")
                elif (
                    conn.sasl is not None
                    and conn.sasl.principal is None
                    and conn.sasl.state != FAILED
                    and now - conn.connected_at > timeout_s
                ):
                    conn.close(
                        f"not authenticated {timeout_s:g} s after connecting",
                        kind="closed for not authenticating in time",
                    )
            if now - self._last_summary >= LOG_SUMMARY_INTERVAL_S:
                self.connection_log.flush(now - self._last_summary)
                self._last_summary = now

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, give in-flight requests ``grace_s`` seconds, then close all."""
        self._stop_accepting()
        if self._accept_resume is not None:
            self._accept_resume.cancel()
            self._accept_resume = None
        for listener in self.listeners:
            if listener.sock is not None:
                listener.sock.close()
                listener.sock = None
        if self._sweep_task is not None:
            self._sweep_task.cancel()
        for task in list(self._opening_tasks):
            task.cancel()
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(c._pending for c in self._connections):
            await asyncio.sleep(0.01)
        for conn in list(self._connections):
            conn.close(None)
        self.connection_log.flush(time.monotonic() - self._last_summary)
