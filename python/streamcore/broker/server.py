"""The asyncio Kafka-wire server: accepting, framing, dispatch, in-order responses, budgets.

One ``KafkaConnection`` (an ``asyncio.BufferedProtocol``, in
:mod:`streamcore.broker.connection`) per client socket. Its reads go
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
  (:class:`~streamcore.broker.request_memory.RequestMemory`), in two halves. The budget is fair the way Kafka's muting is: a
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
open segment-file ranges (``broker.fetch_records.FileRecords``) go out with ``os.sendfile``
in chunks of ``fetch_sending._SENDFILE_CHUNK_BYTES``, after the bytes before them have drained:
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
import errno
import functools
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

from streamcore.broker.config import ListenerSpec
from streamcore.broker.connection import KafkaConnection
from streamcore.broker.request_memory import _READ_BYTES, RequestMemory
from streamcore.broker.security import tls
from streamcore.broker.security.sasl import FAILED
from streamcore.errors import ConfigError

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
