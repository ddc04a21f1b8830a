"""One asyncio TCP connection to a broker.

What it does, in the order a request meets it:

* **Version negotiation.** ``connect()`` sends ApiVersions first and keeps the
  broker's range per API; ``version_for(cls)`` is then the highest version both
  sides speak (ours bounded by the generated classes and ``CLIENT_MAX_VERSION``).
* **Two request channels.** Requests that keep membership and routing alive
  (ApiVersions, Metadata, Heartbeat, FindCoordinator, SaslHandshake) go to the high
  priority queue, which the writer always drains before the normal one (Produce,
  Fetch, OffsetCommit ...), so a heartbeat never waits behind megabytes of produce
  data. ``priority=`` overrides the choice per request. When both queues are empty
  and the in-flight window has room the frame is written at once ("bypass").
  Each channel holds at most its capacity (``high_capacity``, ``normal_capacity``:
  64 and 256 by default) of queued requests: ``request()`` then waits for room,
  ``send()`` raises ChannelFullError, so a stalled broker never grows a queue
  without bound.
* **Pipelining.** Up to ``in_flight_limit`` requests await answers at once;
  correlation ids match answers to requests. The limit adapts AIMD between the
  configured bounds: +1 per window of successes, halved on an error or throttle.
* **Throttling.** An answer carrying ``throttle_time_ms`` > 0 (a broker quota, or
  streamcore's full write queue) pauses writing to that broker for that long, as
  Kafka clients do since KIP-219: queued requests wait, answers are still read. The
  pause is shared by every connection of a broker's bundle (``ThrottleGate``). For
  the old request versions whose answer the broker itself delayed, there is no
  second pause (``CLIENT_THROTTLES_FROM``).
* **Failure.** A lost connection fails every waiting request with
  ConnectionLostError; a request unanswered past ``request_timeout_ms`` closes
  the connection (answers come in order, so nothing behind it can arrive).
* **Security.** With a ``Security`` (client.security) the socket is wrapped in TLS
  and, after ApiVersions, SaslHandshake v1 and SaslAuthenticate authenticate it
  before ``connect()`` returns. A refusal, or a TLS handshake the broker or we
  reject, is AuthenticationError (never retried). When the broker limits the
  session (SaslAuthenticate v1+ ``session_lifetime_ms``, KIP-368) the connection
  retires itself at 85 % of it: it takes no new requests, closes once its answers
  are in, and the pool opens a fresh, freshly authenticated one in its place.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

from streamcore._version import __version__
from streamcore.client.errors import ConnectionLostError, RequestTimeoutError
from streamcore.client.security import Security
from streamcore.errors import AuthenticationError, BackpressureError, ErrorCode, KafkaError, ProtocolError
from streamcore.protocol.headers import (
    ApiKey,
    FrameSplitter,
    decode_response,
    encode_request_parts,
    response_correlation_id,
)
from streamcore.protocol.messages import ApiVersionsRequest, SaslAuthenticateRequest, SaslHandshakeRequest

__all__ = [
    "Priority",
    "HIGH_PRIORITY_KEYS",
    "CLIENT_MAX_VERSION",
    "CLIENT_THROTTLES_FROM",
    "ChannelFullError",
    "ConnectionStats",
    "ThrottleGate",
    "BrokerConnection",
]

_MAX_FRAME = 512 * 1024 * 1024
_WRITE_HIGH_WATER = 8 * 1024 * 1024


class Priority(enum.IntEnum):
    """Request channel: HIGH is always written before NORMAL."""

    HIGH = 0
    NORMAL = 1


#: Requests that keep membership and routing alive.
HIGH_PRIORITY_KEYS = frozenset(
    {
        ApiKey.API_VERSIONS,
        ApiKey.METADATA,
        ApiKey.HEARTBEAT,
        ApiKey.FIND_COORDINATOR,
        ApiKey.SASL_HANDSHAKE,
        ApiKey.SASL_AUTHENTICATE,
    }
)

#: Fraction of the broker's session lifetime after which a connection retires (the
#: Java client re-authenticates between 85 and 95 %).
REAUTH_FRACTION = 0.85

#: Highest version the client sends per api key, where the newest generated version
#: changes a field's shape we do not use: topic ids instead of names (Produce 13,
#: Fetch 13+, OffsetCommit 10, OffsetFetch 10), batched coordinator keys
#: (FindCoordinator 4+), grouped OffsetFetch (8+). The transactional APIs stop at
#: transaction protocol version 1: AddPartitionsToTxn 4+ is the brokers' batched form,
#: EndTxn 5 and TxnOffsetCommit 5 would ask for an epoch bump per transaction
#: (KIP-890 part 2); the transactional producer also sends Produce at most v11.
CLIENT_MAX_VERSION: dict[int, int] = {
    ApiKey.PRODUCE: 12,
    ApiKey.FETCH: 12,
    ApiKey.OFFSET_COMMIT: 9,
    ApiKey.OFFSET_FETCH: 7,
    ApiKey.FIND_COORDINATOR: 3,
    ApiKey.LIST_OFFSETS: 10,
    ApiKey.METADATA: 12,
    ApiKey.INIT_PRODUCER_ID: 5,
    ApiKey.ADD_PARTITIONS_TO_TXN: 3,
    ApiKey.ADD_OFFSETS_TO_TXN: 4,
    ApiKey.END_TXN: 4,
    ApiKey.TXN_OFFSET_COMMIT: 4,
}


#: The first version of each API whose throttled answer comes at once, leaving the
#: pause to the client (KIP-219); below it the broker delayed the answer itself. APIs
#: not listed were added after KIP-219: the client always pauses.
CLIENT_THROTTLES_FROM: dict[int, int] = {
    ApiKey.PRODUCE: 6,
    ApiKey.FETCH: 8,
    ApiKey.LIST_OFFSETS: 3,
    ApiKey.METADATA: 6,
    ApiKey.OFFSET_COMMIT: 4,
    ApiKey.OFFSET_FETCH: 4,
    ApiKey.FIND_COORDINATOR: 2,
    ApiKey.JOIN_GROUP: 3,
    ApiKey.HEARTBEAT: 2,
    ApiKey.LEAVE_GROUP: 2,
    ApiKey.SYNC_GROUP: 2,
    ApiKey.DESCRIBE_GROUPS: 2,
    ApiKey.LIST_GROUPS: 2,
    ApiKey.API_VERSIONS: 2,
    ApiKey.CREATE_TOPICS: 3,
    ApiKey.DELETE_TOPICS: 2,
    ApiKey.INIT_PRODUCER_ID: 1,
    ApiKey.DESCRIBE_CONFIGS: 2,
}

#: Default capacities of the two request channels (requests queued per connection).
HIGH_CAPACITY = 64
NORMAL_CAPACITY = 256


class ChannelFullError(BackpressureError):
    """A request channel of a connection holds its capacity of queued requests.

    Raised by ``BrokerConnection.send`` (which cannot wait); ``request`` waits for room
    instead. Retriable: room comes back as the broker answers.
    """


class ThrottleGate:
    """Until when writes to one broker are paused because it answered a throttle time.

    Shared by the connections of one broker's bundle: a quota applies to the client,
    not to one of its connections. ``until`` is a ``time.monotonic()`` value in
    seconds (0.0: not paused).
    """

    __slots__ = ("until", "_members")

    def __init__(self) -> None:
        self.until = 0.0
        self._members: list[BrokerConnection] = []

    def join(self, conn: BrokerConnection) -> None:
        """Make ``conn`` pause with the others; a closed member is dropped."""
        self._members = [c for c in self._members if not c.closed]
        self._members.append(conn)
        conn.throttle = self
        if self.until > time.monotonic():
            conn._schedule_resume(self.until)

    def pause(self, throttle_ms: int) -> bool:
        """Pause writes for ``throttle_ms`` milliseconds from now (a pause never shortens
        one already running); True if it extended the pause."""
        until = time.monotonic() + throttle_ms / 1000.0
        if until <= self.until:
            return False
        self.until = until
        for c in self._members:
            if not c.closed:
                c._schedule_resume(until)
        return True

    def remaining_s(self) -> float:
        """Seconds left of the current pause (0.0 when not paused)."""
        return max(0.0, self.until - time.monotonic()) if self.until else 0.0


class ConnectionStats:
    """Counters of one connection (plain ints: read them any time)."""

    __slots__ = (
        "high",
        "normal",
        "bypass",
        "responses",
        "errors",
        "bytes_written",
        "in_flight_limit",
        "throttled",
        "throttle_time_ms",
        "channel_full_waits",
    )

    def __init__(self) -> None:
        self.high = 0  # requests sent on the high priority channel
        self.normal = 0  # requests sent on the normal channel
        self.bypass = 0  # requests written at once (both queues empty, window open)
        self.responses = 0
        self.errors = 0
        self.bytes_written = 0
        self.in_flight_limit = 0.0
        self.throttled = 0  # answers that paused writes (throttle_time_ms > 0)
        self.throttle_time_ms = 0  # sum of the throttle times those answers asked for
        self.channel_full_waits = 0  # times a request waited for room in a full channel

    def as_dict(self) -> dict[str, float]:
        """The counters as a dict."""
        return {k: getattr(self, k) for k in self.__slots__}


class _Request:
    __slots__ = ("cid", "api_key", "version", "frame", "size", "future", "deadline", "decode")

    def __init__(
        self,
        cid: int,
        api_key: int,
        version: int,
        frame: list[Any],
        future: Any,
        deadline: float,
        decode: Any,
    ):
        self.cid = cid
        self.api_key = api_key
        self.version = version
        #: The frame as buffers sent back to back (headers.encode_request_parts), and its size.
        self.frame = frame
        self.size = len(frame[0]) if len(frame) == 1 else sum(len(p) for p in frame)
        self.future = future
        self.deadline = deadline
        self.decode = decode


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: BrokerConnection) -> None:
        self.conn = conn
        self.splitter = FrameSplitter(_MAX_FRAME)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.splitter.feed(data)
        except ProtocolError as exc:
            self.conn._fail(ConnectionLostError(f"bad frame from {self.conn.address}: {exc}"))
            return
        for frame in frames:
            self.conn._on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        if _is_tls_refusal(exc):
            # A TLS alert (bad certificate, certificate required ...) will come again on
            # every reconnect: it is an authentication failure, not a lost connection.
            self.conn._fail(AuthenticationError(f"TLS with {self.conn.address} failed: {exc}"))
            return
        self.conn._fail(
            ConnectionLostError(f"connection to {self.conn.address} closed" + (f": {exc}" if exc else ""))
        )

    def pause_writing(self) -> None:
        self.conn._paused_by_transport = True

    def resume_writing(self) -> None:
        self.conn._paused_by_transport = False
        self.conn._pump()


def _is_tls_refusal(exc: BaseException | None) -> bool:
    """True for a TLS failure that retrying cannot cure: a certificate refused by either
    side or a protocol alert. An EOF in the middle of TLS is a lost connection."""
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError))


class BrokerConnection:
    """A connection to one broker; create with ``await BrokerConnection.connect(...)``.

    ``request(msg)`` sends a generated request object and returns the decoded
    response. Test hooks: ``hold_writes()`` / ``release_writes()`` keep frames queued;
    ``write_log`` (a deque, or None) records the api key of every frame written;
    ``drop_after_write`` (a set of api keys) closes the connection right after the
    next frame of such an api key is written, before its answer can be read.

    ``high_capacity`` and ``normal_capacity`` bound the requests queued in each
    channel (requests written or awaiting an answer do not count).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "streamcore",
        request_timeout_ms: int = 30_000,
        max_in_flight: int = 5,
        min_in_flight: int = 1,
        node_id: int = -1,
        high_capacity: int = HIGH_CAPACITY,
        normal_capacity: int = NORMAL_CAPACITY,
        security: Security | None = None,
    ) -> None:

        self.host = host
        self.port = port
        self.node_id = node_id
        self.address = f"{host}:{port}"
        self.client_id = client_id
        self.request_timeout_s = request_timeout_ms / 1000.0
        self.max_in_flight = max(1, max_in_flight)
        self.min_in_flight = max(1, min(min_in_flight, self.max_in_flight))
        self.stats = ConnectionStats()
        self._limit = float(self.max_in_flight)
        self.stats.in_flight_limit = self._limit
        self.api_versions: dict[int, tuple[int, int]] = {}
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        # The socket's descriptor on a plain TCP connection (-1 otherwise): frames in
        # several parts are written to it with one vectored write (see _write).
        self._fd = -1
        self._queues: tuple[collections.deque[_Request], collections.deque[_Request]] = (
            collections.deque(),
            collections.deque(),
        )
        self.capacities = (HIGH_CAPACITY, NORMAL_CAPACITY)
        self.set_channel_capacities(high_capacity, normal_capacity)
        self._room_waiters: tuple[collections.deque[asyncio.Future[None]], ...] = (
            collections.deque(),
            collections.deque(),
        )
        self.throttle = ThrottleGate()
        self._resume_handle: asyncio.TimerHandle | None = None
        self._pending: dict[int, _Request] = {}
        self._next_cid = 1
        self._closed_exc: BaseException | None = None
        self._paused_by_transport = False
        self._held = False
        self._sweeper: asyncio.TimerHandle | None = None
        self._ok_streak = 0
        self.write_log: collections.deque[int] | None = None
        self.drop_after_write: set[int] = set()
        self.on_close: Callable[[BrokerConnection], None] | None = None
        self.security = security or Security()
        #: Mechanism this connection authenticated with (None: no SASL).
        self.sasl_mechanism: str | None = None
        #: What the broker answered in SaslAuthenticate v1+ (0: no limit).
        self.session_lifetime_ms = 0
        self._retiring = False
        self._retire_handle: asyncio.TimerHandle | None = None
        ThrottleGate().join(self)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def connect(
        cls, host: str, port: int, *, connect_timeout_ms: int = 10_000, **kw: Any
    ) -> BrokerConnection:
        """Open the TCP connection (and TLS), negotiate API versions, then authenticate (SASL).

        Raises ConnectionLostError (an OSError subclass) when the broker cannot be
        reached within ``connect_timeout_ms`` (the TLS handshake included), and
        AuthenticationError when the TLS handshake or SASL authentication is refused.
        """
        conn = cls(host, port, **kw)
        loop = asyncio.get_running_loop()
        ctx = conn.security.ssl_context
        timeout_s = connect_timeout_ms / 1000.0
        tls: dict[str, Any] = {}
        if ctx is not None:
            # server_hostname is what check_hostname compares the certificate with.
            tls = {"ssl": ctx, "server_hostname": host, "ssl_handshake_timeout": timeout_s}
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(conn), host, port, **tls), timeout_s
            )
        except (OSError, asyncio.TimeoutError) as exc:
            if _is_tls_refusal(exc):
                raise AuthenticationError(f"TLS handshake with {host}:{port} failed: {exc}") from exc
            raise ConnectionLostError(f"cannot connect to {host}:{port}: {exc!r}") from exc
        conn._transport = transport
        conn._protocol = protocol
        sock = transport.get_extra_info("socket")
        if sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ctx is None:
                conn._fd = sock.fileno()
        conn._arm_sweeper()
        try:
            await conn._negotiate()
            if conn.security.uses_sasl:
                await conn._authenticate()
        except BaseException:
            conn.close()
            raise
        return conn

    async def _authenticate(self) -> None:
        """SaslHandshake v1, then SaslAuthenticate until the mechanism's exchange ends."""
        sec = self.security
        mech = sec.mechanism
        assert mech is not None
        hs = self.api_versions.get(ApiKey.SASL_HANDSHAKE)
        if hs is None or hs[1] < 1 or ApiKey.SASL_AUTHENTICATE not in self.api_versions:
            raise AuthenticationError(
                f"{self.address} does not serve SaslHandshake v1 and SaslAuthenticate: "
                "is this listener SASL-enabled, and the broker Kafka 1.0 or newer?"
            )
        resp = await self.request(SaslHandshakeRequest(mechanism=mech), 1)
        if resp.error_code:
            offered = ", ".join(resp.mechanisms) or "none"
            raise AuthenticationError(
                f"{self.address} refused SASL mechanism {mech} (it offers: {offered})",
                ErrorCode.from_code(resp.error_code),
            )
        version = self.version_for(SaslAuthenticateRequest)
        client = await sec.sasl_client()
        message: bytes | None = client.initial()
        while message is not None:
            resp = await self.request(SaslAuthenticateRequest(auth_bytes=message), version)
            if resp.error_code:
                detail = resp.error_message or "no reason given"
                extra = getattr(client, "error_detail", None)
                raise AuthenticationError(
                    f"{mech} authentication with {self.address} failed: {detail}"
                    + (f" ({extra})" if extra else ""),
                    ErrorCode.from_code(resp.error_code),
                )
            message = client.evaluate(bytes(resp.auth_bytes or b""))
            self.session_lifetime_ms = int(getattr(resp, "session_lifetime_ms", 0) or 0)
        extra = getattr(client, "error_detail", None)
        if extra:
            # OAUTHBEARER: the broker sent its error and should have failed the exchange.
            raise AuthenticationError(f"OAUTHBEARER authentication with {self.address} failed: {extra}")
        self.sasl_mechanism = mech
        if self.session_lifetime_ms > 0:
            self._retire_handle = asyncio.get_running_loop().call_later(
                self.session_lifetime_ms * REAUTH_FRACTION / 1000.0, self.retire
            )

    def retire(self) -> None:
        """Take no new requests (``closed`` turns True, so the pool opens a replacement) and
        close once the requests already written or queued are answered."""
        self._retiring = True
        self._retire_handle = None
        self._close_if_retired()

    def _close_if_retired(self) -> None:
        if self._retiring and not self._pending and not self._queues[0] and not self._queues[1]:
            self._fail(ConnectionLostError(f"connection to {self.address} retired (SASL session expiring)"))

    async def _negotiate(self) -> None:
        version = 3
        for _ in range(3):
            resp = await self.request(
                ApiVersionsRequest(client_software_name="streamcore", client_software_version=__version__),
                version=version,
            )
            if resp.error_code == ErrorCode.UNSUPPORTED_VERSION.code:
                theirs = {k.api_key: k.max_version for k in resp.api_keys}.get(ApiKey.API_VERSIONS, 0)
                version = min(theirs, ApiVersionsRequest.MAX_VERSION)
                continue
            if resp.error_code:
                raise KafkaError(resp.error_code, f"ApiVersions from {self.address}")
            self.api_versions = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
            return
        raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, f"no common ApiVersions version with {self.address}")

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed, or retired (no new requests)."""
        return self._closed_exc is not None or self._retiring

    @property
    def in_flight(self) -> int:
        """Requests written and awaiting an answer."""
        return len(self._pending)

    @property
    def queued(self) -> int:
        """Requests waiting in either channel."""
        return len(self._queues[0]) + len(self._queues[1])

    def set_channel_capacities(self, high: int, normal: int) -> None:
        """Bound the high and normal channels to ``high`` and ``normal`` queued requests
        (requests already queued stay; new ones wait until the queue is below the bound)."""
        if high < 1 or normal < 1:
            raise ValueError(f"channel capacities must be >= 1, got high={high} normal={normal}")
        self.capacities = (high, normal)

    def room(self, priority: Priority) -> int:
        """Requests the ``priority`` channel can still queue."""
        return self.capacities[priority] - len(self._queues[priority])

    @property
    def throttled(self) -> bool:
        """True while writes are paused by a broker's throttle time."""
        until = self.throttle.until
        return until > 0.0 and until > time.monotonic()

    async def wait_for_room(self, priority: Priority) -> None:
        """Return once the ``priority`` channel has room for one more request.

        Raises the connection's failure if it closes meanwhile.
        """
        counted = False
        while len(self._queues[priority]) >= self.capacities[priority]:
            if self._closed_exc is not None:
                raise type(self._closed_exc)(*self._closed_exc.args)
            if not counted:
                self.stats.channel_full_waits += 1
                counted = True
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters[priority].append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    # Woken for room it will not use: pass the turn on.
                    self._wake_room(priority)
                raise
        if self._closed_exc is not None:
            raise type(self._closed_exc)(*self._closed_exc.args)

    def _wake_room(self, priority: Priority | int) -> None:
        waiters = self._room_waiters[priority]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def close(self) -> None:
        """Close the connection; waiting requests fail with ConnectionLostError."""
        self._fail(ConnectionLostError(f"connection to {self.address} closed by the client"))

    def _fail(self, exc: BaseException) -> None:
        if self._closed_exc is not None:
            return
        self._closed_exc = exc
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        if self._retire_handle is not None:
            self._retire_handle.cancel()
        if self._transport is not None:
            self._transport.close()
        waiting = list(self._pending.values()) + list(self._queues[0]) + list(self._queues[1])
        self._pending.clear()
        self._queues[0].clear()
        self._queues[1].clear()
        for req in waiting:
            if req.future is not None and not req.future.done():
                req.future.set_exception(type(exc)(*exc.args))
        for waiters in self._room_waiters:
            while waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(None)  # the waiter sees the failure and raises it
        if self.on_close is not None:
            self.on_close(self)

    # ------------------------------------------------------------------ versions

    def version_for(self, cls: type) -> int:
        """Highest version of request class ``cls`` both sides speak.

        Raises KafkaError(UNSUPPORTED_VERSION) when the ranges do not overlap.
        """
        key = cls.API_KEY  # type: ignore[attr-defined]
        ours_hi = min(cls.MAX_VERSION, CLIENT_MAX_VERSION.get(key, cls.MAX_VERSION))  # type: ignore[attr-defined]
        theirs = self.api_versions.get(key)
        if theirs is None:
            raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, f"{self.address} does not support api key {key}")
        hi = min(ours_hi, theirs[1])
        if hi < max(cls.MIN_VERSION, theirs[0]):  # type: ignore[attr-defined]
            raise KafkaError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"{cls.__name__}: broker {self.address} speaks {theirs}, we speak {cls.MIN_VERSION}-{ours_hi}",  # type: ignore[attr-defined]
            )
        return hi

    # ------------------------------------------------------------------ requests

    def send(
        self,
        msg: Any,
        version: int | None = None,
        *,
        priority: Priority | None = None,
        expect_response: bool = True,
    ) -> asyncio.Future[Any] | None:
        """Queue ``msg`` and return a future of its decoded response (None if no answer is expected).

        ``priority`` defaults by api key (HIGH_PRIORITY_KEYS). Raises the connection's
        failure if it is already closed, and ChannelFullError if the frame must queue
        and its channel is full (``request`` waits for room instead).
        """
        if self._closed_exc is not None:
            raise type(self._closed_exc)(*self._closed_exc.args)
        cls = type(msg)
        api_key = cls.API_KEY
        if version is None:
            version = self.version_for(cls)
        cid = self._next_cid
        self._next_cid = (cid + 1) & 0x7FFFFFFF or 1
        frame = encode_request_parts(api_key, version, cid, self.client_id, msg)
        fut = asyncio.get_running_loop().create_future() if expect_response else None
        req = _Request(cid, api_key, version, frame, fut, time.monotonic() + self.request_timeout_s, None)
        if priority is None:
            priority = Priority.HIGH if api_key in HIGH_PRIORITY_KEYS else Priority.NORMAL
        q_high, q_normal = self._queues
        if (
            not q_high
            and not q_normal
            and not self._held
            and not self._paused_by_transport
            and len(self._pending) < self._limit
            and not self.throttled
        ):
            self._count(priority)
            self.stats.bypass += 1
            self._write(req)
        else:
            queue = self._queues[priority]
            if len(queue) >= self.capacities[priority]:
                if fut is not None:
                    fut.cancel()
                raise ChannelFullError(
                    f"the {priority.name.lower()} priority channel to {self.address} holds its capacity of "
                    f"{self.capacities[priority]} queued requests"
                )
            self._count(priority)
            queue.append(req)
            self._pump()
        return fut

    def _count(self, priority: Priority) -> None:
        if priority is Priority.HIGH:
            self.stats.high += 1
        else:
            self.stats.normal += 1

    async def request(
        self,
        msg: Any,
        version: int | None = None,
        *,
        priority: Priority | None = None,
        expect_response: bool = True,
    ) -> Any:
        """Send ``msg`` and await its decoded response (None when ``expect_response`` is False).

        Waits for room first when the request's channel is full (backpressure).
        """
        if priority is None:
            priority = Priority.HIGH if type(msg).API_KEY in HIGH_PRIORITY_KEYS else Priority.NORMAL
        if len(self._queues[priority]) >= self.capacities[priority]:
            await self.wait_for_room(priority)
        fut = self.send(msg, version, priority=priority, expect_response=expect_response)
        if fut is None:
            return None
        return await fut

    def _write(self, req: _Request) -> None:
        assert self._transport is not None
        if req.future is not None:
            self._pending[req.cid] = req
        frame = req.frame
        if len(frame) == 1:
            self._transport.write(frame[0])
        else:
            self._write_parts(frame)
        self.stats.bytes_written += req.size
        if self.write_log is not None:
            self.write_log.append(req.api_key)
        if req.api_key in self.drop_after_write:
            # Test hook: the frame is handed to the kernel (close() flushes the buffer
            # first) but its answer is never read.
            self.drop_after_write.discard(req.api_key)
            asyncio.get_running_loop().call_soon(
                self._fail, ConnectionLostError(f"test hook dropped {self.address}")
            )

    def _write_parts(self, parts: list[Any]) -> None:
        """Send a frame built in parts (a Produce request around its record batches).

        With nothing queued in the transport, one ``writev`` hands the parts to the
        kernel as they are; the transport then queues only what the socket did not
        take (one copy of that rest, instead of copying every batch into the frame and
        the frame into bytes). On TLS, or behind queued data, each part goes through
        the transport, which sends or queues it in order.
        """
        transport = self._transport
        assert transport is not None
        sent = 0
        if self._fd >= 0 and not transport.get_write_buffer_size() and not transport.is_closing():
            try:
                sent = os.writev(self._fd, parts)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # A broken connection: the transport's own write below meets the same
                # error and reports it the usual way (connection_lost).
                sent = 0
        for part in parts:
            n = len(part)
            if sent >= n:
                sent -= n
                continue
            transport.write(memoryview(part)[sent:] if sent else part)
            sent = 0

    def _pump(self) -> None:
        """Write queued frames, high channel first, while the window, the socket and any
        throttle pause allow."""
        if self._held or self._closed_exc is not None or self.throttled:
            return
        q_high, q_normal = self._queues
        while (q_high or q_normal) and not self._paused_by_transport and len(self._pending) < self._limit:
            if q_high:
                req, channel = q_high.popleft(), Priority.HIGH
            else:
                req, channel = q_normal.popleft(), Priority.NORMAL
            # The answer is due request_timeout_ms after the write, not after queueing.
            req.deadline = time.monotonic() + self.request_timeout_s
            self._write(req)
            if self._room_waiters[channel]:
                self._wake_room(channel)
            if self._closed_exc is not None:
                return

    def _schedule_resume(self, until: float) -> None:
        """Write what queued during a throttle pause once it ends at ``until`` (monotonic s)."""
        if self._resume_handle is not None:
            self._resume_handle.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a connection never opened): nothing can be queued
        self._resume_handle = loop.call_later(max(0.0, until - time.monotonic()), self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        if self.throttled:  # the pause was extended meanwhile
            self._schedule_resume(self.throttle.until)
            return
        self._pump()

    def hold_writes(self) -> None:
        """Test hook: keep new requests queued (nothing is written) until release_writes()."""
        self._held = True

    def release_writes(self) -> None:
        """Test hook: write what hold_writes() kept queued, high channel first."""
        self._held = False
        self._pump()

    # ------------------------------------------------------------------ answers

    def _on_frame(self, frame: bytes) -> None:
        try:
            cid = response_correlation_id(frame)
        except ProtocolError:
            self._fail(ConnectionLostError(f"short response frame from {self.address}"))
            return
        req = self._pending.pop(cid, None)
        if req is None:
            self._fail(ConnectionLostError(f"{self.address} answered unknown correlation id {cid}"))
            return
        fut = req.future
        try:
            resp = decode_response(frame, req.api_key, req.version)
        except ProtocolError as exc:
            self._fail(ConnectionLostError(f"undecodable answer from {self.address}: {exc}"))
            return
        self.stats.responses += 1
        throttle_ms = getattr(resp, "throttle_time_ms", 0) or 0
        self.record_outcome(throttle_ms <= 0)
        if throttle_ms > 0:
            self.stats.throttled += 1
            self.stats.throttle_time_ms += throttle_ms
            if req.version >= CLIENT_THROTTLES_FROM.get(req.api_key, 0):
                self.throttle.pause(throttle_ms)
        if not fut.done():
            fut.set_result(resp)
        if self._queues[0] or self._queues[1]:
            self._pump()
        elif self._retiring:
            self._close_if_retired()

    def record_outcome(self, ok: bool) -> None:
        """Feed the adaptive window: success grows it by 1 per window, an error halves it."""
        if ok:
            self._ok_streak += 1
            if self._ok_streak >= self._limit and self._limit < self.max_in_flight:
                self._limit = min(float(self.max_in_flight), self._limit + 1.0)
                self._ok_streak = 0
        else:
            self.stats.errors += 1
            self._ok_streak = 0
            self._limit = max(float(self.min_in_flight), self._limit / 2.0)
        self.stats.in_flight_limit = self._limit

    @property
    def in_flight_limit(self) -> int:
        """Current adaptive bound on requests in flight."""
        return int(self._limit)

    def _arm_sweeper(self) -> None:
        period = max(0.05, min(1.0, self.request_timeout_s / 4))
        self._sweeper = asyncio.get_running_loop().call_later(period, self._sweep)

    def _sweep(self) -> None:
        if self._closed_exc is not None:
            return
        now = time.monotonic()
        # Answers arrive in order, so the oldest pending request is the one to check;
        # queued requests time out too (the window may never reopen).
        oldest = min((r.deadline for r in self._pending.values()), default=None)
        queued = [r.deadline for q in self._queues for r in q if r.future is not None]
        # Time spent paused by the broker's own throttle is not the broker failing to answer.
        queued_due = max(min(queued), self.throttle.until + self.request_timeout_s) if queued else None
        if (oldest is not None and oldest < now) or (queued_due is not None and queued_due < now):
            self.record_outcome(False)
            self._fail(
                RequestTimeoutError(f"no answer from {self.address} within {self.request_timeout_s:g} s")
            )
            return
        self._arm_sweeper()
