"""The broker's metrics and its Prometheus ``/metrics`` HTTP endpoint.

Counters live in the native atomics of the ``metrics`` capability, so recording a
request costs a couple of atomic adds on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from streamcore.errors import ErrorCode
from streamcore.metrics import CounterArray, Registry

log = logging.getLogger("streamcore.broker")

_MAX_API_KEY = 128
# Error codes run from -1 to 127; index = code + 1.
_ERROR_SLOTS = 130


class BrokerMetrics:
    """Requests by API and error code, bytes, latencies, rebalances, WAL figures."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self._requests = CounterArray(_MAX_API_KEY)
        self._errors = CounterArray(_ERROR_SLOTS)
        self._bytes_in = r.counter("streamcore_bytes_in_total", "Record batch bytes accepted by Produce")
        self._bytes_out = r.counter("streamcore_bytes_out_total", "Response bytes written to clients")
        self._connections = r.gauge("streamcore_connections", "Open client connections")
        self.produce_latency_us = r.histogram(
            "streamcore_produce_latency_seconds", "Produce request handling time", scale=1e-6
        )
        self.fetch_latency_us = r.histogram(
            "streamcore_fetch_latency_seconds",
            "Fetch request handling time (including long-poll wait)",
            scale=1e-6,
        )
        self.rebalances = r.counter(
            "streamcore_group_rebalances_total", "Consumer group rebalances completed"
        )
        self.backpressure_rejections = r.counter(
            "streamcore_backpressure_rejections_total", "Appends refused because the WAL queue was full"
        )
        self._wal_sources: list[Callable[[], dict[str, int]]] = []
        self._storage_health: Callable[[], dict[str, int]] | None = None

    # -- hot-path recorders -------------------------------------------------------------

    def request(self, api_key: int) -> None:
        if 0 <= api_key < _MAX_API_KEY:
            self._requests.inc(api_key)

    def error(self, code: int) -> None:
        if code:
            self._errors.inc(min(max(code + 1, 0), _ERROR_SLOTS - 1))

    def bytes_in(self, n: int) -> None:
        self._bytes_in.inc(n)

    def bytes_out(self, n: int) -> None:
        self._bytes_out.inc(n)

    def connections(self, n: int) -> None:
        self._connections.set(n)

    def add_wal_source(self, source: Callable[[], dict[str, int]]) -> None:
        """Register a function returning summed WAL stats (queue depth, fsyncs …)."""
        self._wal_sources.append(source)

    def set_storage_health(self, source: Callable[[], dict[str, int]]) -> None:
        """Register the function giving ``offline_partitions`` and ``damaged_reads``
        (``LogManager.health_figures``)."""
        self._storage_health = source

    # -- exposition ---------------------------------------------------------------------

    def render(self) -> str:
        """All broker metrics in Prometheus text format."""
        from streamcore.protocol import api_versions

        names = api_versions.API_NAMES
        lines = [self.registry.render().rstrip("\n")]
        lines.append("# HELP streamcore_requests_total Requests received, by API")
        lines.append("# TYPE streamcore_requests_total counter")
        for key, value in enumerate(self._requests.values()):
            if value:
                lines.append(f'streamcore_requests_total{{api="{names.get(key, key)}"}} {value}')
        lines.append("# HELP streamcore_errors_total Error codes answered, by code")
        lines.append("# TYPE streamcore_errors_total counter")
        for slot, value in enumerate(self._errors.values()):
            if value:
                lines.append(
                    f'streamcore_errors_total{{error="{ErrorCode.from_code(slot - 1).name}"}} {value}'
                )
        totals: dict[str, int] = {}
        for source in self._wal_sources:
            for k, v in source().items():
                totals[k] = totals.get(k, 0) + int(v)
        for key, help_text, kind in (
            ("queue_depth", "Appends queued in the WAL and not yet written", "gauge"),
            ("fsyncs", "fsync calls made by the WAL", "counter"),
            ("fsync_total_us", "Time spent in fsync, microseconds", "counter"),
            ("bytes_written", "Bytes written to segment files", "counter"),
            ("backpressure_rejections", "WAL appends refused because the queue was full", "counter"),
        ):
            name = f"streamcore_wal_{key}" + ("_total" if kind == "counter" else "")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.append(f"{name} {totals.get(key, 0)}")
        health = self._storage_health() if self._storage_health is not None else {}
        lines += [
            "# HELP streamcore_offline_partitions Partitions offline now (storage failure or damaged data)",
            "# TYPE streamcore_offline_partitions gauge",
            f"streamcore_offline_partitions {health.get('offline_partitions', 0)}",
            "# HELP streamcore_storage_damaged_reads_total Reads that met corrupt or missing log data",
            "# TYPE streamcore_storage_damaged_reads_total counter",
            f"streamcore_storage_damaged_reads_total {health.get('damaged_reads', 0)}",
        ]
        return "\n".join(lines) + "\n"


async def serve_metrics(
    metrics: BrokerMetrics, host: str, port: int, health: Callable[[], str | None] | None = None
) -> asyncio.base_events.Server:
    """Serve ``GET /metrics`` on host:port (a deliberately tiny HTTP/1.0 responder).

    With ``health``, ``GET /health`` answers 200 ``ok`` when ``health()`` returns None and
    503 with its text otherwise.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.split()
            path = parts[1].split(b"?")[0] if len(parts) >= 2 and parts[0] == b"GET" else b""
            if path == b"/metrics":
                body = metrics.render().encode()
                head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            elif path == b"/health" and health is not None:
                problem = health()
                body = b"ok\n" if problem is None else problem.encode() + b"\n"
                status = b"200 OK" if problem is None else b"503 Service Unavailable"
                head = b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain\r\n"
            else:
                body = b"not found\n"
                head = b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
