"""The broker's metrics and its Prometheus ``/metrics`` HTTP endpoint.

Counters live in the native atomics of the ``metrics`` capability, so recording a
request costs a couple of atomic adds on the hot path. Figures that are state rather
than events (partition offsets and sizes, consumer lag, WAL totals, the process) are
read at scrape time from the sources the runtime registers. docs/broker.md lists every
name; docs/grafana-dashboard.json charts them.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import struct
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from streamcore._version import __version__
from streamcore.codec.batch_header import BATCH_LENGTH_AT, LOG_OVERHEAD, RECORDS_COUNT_AT
from streamcore.errors import ErrorCode
from streamcore.metrics import CounterArray, Family, LabelledCounters, Registry, process_families

log = logging.getLogger("streamcore.broker")

__all__ = ["BrokerMetrics", "serve_metrics", "batch_records"]

_MAX_API_KEY = 128
# Error codes run from -1 to 127; index = code + 1.
_ERROR_SLOTS = 130
# Observations are microseconds; exposed in seconds.
_US = 1_000_000

_INT32 = struct.Struct(">i")

#: A source of partition logs: ((topic, partition), log) pairs, ``log`` having
#: ``high_watermark``, ``log_start_offset`` and ``size_bytes``.
PartitionSource = Callable[[], Iterable[tuple[tuple[str, int], object]]]
#: A source of committed offsets: (group, topic, partition, offset) tuples.
CommittedSource = Callable[[], Iterable[tuple[str, str, int, int]]]


class SearchSource(Protocol):
    """What the search indexer metrics are read from (``streamcore.storage.indexer.Indexer``)."""

    stats: Any

    def lag(self) -> Mapping[tuple[str, int], Any]: ...


#: An extra route of the HTTP responder: called with the query string (text after ``?``),
#: returns (HTTP status, content type, body).
Route = Callable[[str], Awaitable[tuple[int, str, bytes]]]


class QuotaSource(Protocol):
    """What the quota metrics are read from (``streamcore.broker.quotas.QuotaManager``)."""

    throttle_ms_total: dict[str, int]
    throttled_total: dict[str, int]
    enabled: dict[str, bool]

    def sensors(self) -> list[tuple[str, str, str, float, float]]: ...


def batch_records(data: bytes | memoryview) -> int:
    """Records in a run of whole v2 record batches (the sum of their recordsCount fields).

    Reads two header fields per batch and nothing else; a truncated last batch is not counted.
    """
    total = 0
    pos = 0
    end = len(data)
    while pos + RECORDS_COUNT_AT + 4 <= end:
        total += _INT32.unpack_from(data, pos + RECORDS_COUNT_AT)[0]
        pos += LOG_OVERHEAD + _INT32.unpack_from(data, pos + BATCH_LENGTH_AT)[0]
    return total


def _implementation_label() -> str:
    from streamcore._impl import implementation

    kinds = {"reference" if v == "reference" else "native" for v in implementation().values()}
    return kinds.pop() if len(kinds) == 1 else "mixed"


class BrokerMetrics:
    """Requests by API and error code, bytes and records per topic, latencies, rebalances,
    WAL figures, partition offsets and sizes, consumer lag, process figures, build info."""

    def __init__(self) -> None:
        self.registry = Registry()
        r = self.registry
        self._requests = CounterArray(_MAX_API_KEY)
        self._errors = CounterArray(_ERROR_SLOTS)
        self._produced_bytes = r.labelled_counters(
            "streamcore_produced_bytes_total", "Record batch bytes appended by Produce, by topic", ("topic",)
        )
        self._produced_records = r.labelled_counters(
            "streamcore_produced_records_total", "Records appended by Produce, by topic", ("topic",)
        )
        self._fetched_bytes = r.labelled_counters(
            "streamcore_fetched_bytes_total", "Record batch bytes returned by Fetch, by topic", ("topic",)
        )
        self._fetched_records = r.labelled_counters(
            "streamcore_fetched_records_total",
            "Records in the batches returned by Fetch, by topic",
            ("topic",),
        )
        self._response_bytes = r.counter(
            "streamcore_response_bytes_total", "Response bytes written to client connections"
        )
        self._connections = r.gauge("streamcore_connections", "Open client connections")
        # Registered at the first refusal: a broker that never refuses shows no such family.
        self._refused: LabelledCounters | None = None
        self.produce_latency_us = r.histogram(
            "streamcore_produce_request_duration_seconds", "Produce request handling time", divisor=_US
        )
        self.fetch_latency_us = r.histogram(
            "streamcore_fetch_request_duration_seconds",
            "Fetch request handling time (including the long-poll wait)",
            divisor=_US,
        )
        self.rebalances = r.counter(
            "streamcore_group_rebalances_total", "Consumer group rebalances completed"
        )
        r.add_collector(self._collect)
        self._wal_sources: list[Callable[[], dict[str, int]]] = []
        self._storage_health: Callable[[], dict[str, int]] | None = None
        self._partitions: PartitionSource | None = None
        self._committed: CommittedSource | None = None
        self._quotas: QuotaSource | None = None
        self._search: SearchSource | None = None
        self._topics: Callable[[], Iterable[str]] | None = None
        self._build_labels = {
            "version": __version__,
            "implementation": _implementation_label(),
            "python": platform.python_version(),
        }
        # Per-topic counter pairs by topic, so the hot path does one dict lookup.
        self._produced: dict[str, tuple[object, object]] = {}
        self._fetched: dict[str, tuple[object, object]] = {}

    # -- hot-path recorders -------------------------------------------------------------

    def request(self, api_key: int) -> None:
        if 0 <= api_key < _MAX_API_KEY:
            self._requests.inc(api_key)

    def error(self, code: int) -> None:
        if code:
            self._errors.inc(min(max(code + 1, 0), _ERROR_SLOTS - 1))

    def produced(self, topic: str, nbytes: int, records: int) -> None:
        """One batch of ``records`` records, ``nbytes`` bytes, appended to ``topic``."""
        cells = self._produced.get(topic)
        if cells is None:
            cells = self._produced[topic] = (
                self._produced_bytes.labels(topic),
                self._produced_records.labels(topic),
            )
        cells[0].inc(nbytes)  # type: ignore[attr-defined]
        cells[1].inc(records)  # type: ignore[attr-defined]

    def fetched(self, topic: str, data: bytes | memoryview) -> None:
        """Record batches ``data`` (whole batches) returned to a consumer from ``topic``."""
        cells = self._fetched.get(topic)
        if cells is None:
            cells = self._fetched[topic] = (
                self._fetched_bytes.labels(topic),
                self._fetched_records.labels(topic),
            )
        cells[0].inc(len(data))  # type: ignore[attr-defined]
        cells[1].inc(batch_records(data))  # type: ignore[attr-defined]

    def bytes_out(self, n: int) -> None:
        """Response bytes written to a connection."""
        self._response_bytes.inc(n)

    def connections(self, n: int) -> None:
        self._connections.set(n)

    def connection_refused(self, reason: str) -> None:
        """A connection closed right after accept (``max_connections_per_ip``,
        ``connection_creation_rate``)."""
        if self._refused is None:
            self._refused = self.registry.labelled_counters(
                "streamcore_connections_refused_total",
                "Connections closed right after accept, by reason (max_connections_per_ip, "
                "connection_creation_rate)",
                ("reason",),
            )
        self._refused.labels(reason).inc()

    # -- scrape-time sources ------------------------------------------------------------

    def add_wal_source(self, source: Callable[[], dict[str, int]]) -> None:
        """Register a function returning summed WAL stats (queue depth, fsyncs …)."""
        self._wal_sources.append(source)

    def set_storage_health(self, source: Callable[[], dict[str, int]]) -> None:
        """Register the function giving ``offline_partitions`` and ``damaged_reads``
        (``LogManager.health_figures``)."""
        self._storage_health = source

    def set_partition_source(self, partitions: PartitionSource, topics: Callable[[], Iterable[str]]) -> None:
        """Register the open partition logs (for offsets and sizes) and the topic names
        (per-topic series of a deleted topic are dropped at the next scrape)."""
        self._partitions = partitions
        self._topics = topics

    def set_committed_source(self, committed: CommittedSource) -> None:
        """Register the committed offsets of every group (for consumer lag)."""
        self._committed = committed

    def set_search_source(self, indexer: SearchSource | None) -> None:
        """Register the search indexer (lag per partition, records indexed, backoffs);
        None when the broker runs none."""
        self._search = indexer

    def set_quota_source(self, quotas: QuotaSource) -> None:
        """Register the client quota manager (throttle totals, measured rates)."""
        self._quotas = quotas

    # -- exposition ---------------------------------------------------------------------

    def render(self) -> str:
        """All broker metrics in Prometheus text format."""
        if self._topics is not None:
            live = set(self._topics())
            for cells in (
                self._produced_bytes,
                self._produced_records,
                self._fetched_bytes,
                self._fetched_records,
            ):
                cells.remove_unless(lambda values: values[0] in live)
            for cache in (self._produced, self._fetched):
                for topic in [t for t in cache if t not in live]:
                    del cache[topic]
        return self.registry.render()

    def _collect(self) -> list[Family]:
        from streamcore.protocol import api_versions

        names = api_versions.API_NAMES
        requests = Family("streamcore_requests_total", "counter", "Requests received, by API")
        for key, value in enumerate(self._requests.values()):
            if value:
                requests.add(value, api=names.get(key, key))
        errors = Family("streamcore_errors_total", "counter", "Error codes answered, by error")
        for slot, value in enumerate(self._errors.values()):
            if value:
                errors.add(value, error=ErrorCode.from_code(slot - 1).name)
        fams = [requests, errors, *self._wal_families(), *self._storage_families()]
        fams += self._partition_families()
        fams += self._quota_families()
        fams += self._search_families()
        fams += process_families()
        build = Family(
            "streamcore_build_info", "gauge", "Version and implementation of this broker (always 1)"
        )
        build.add(1, **self._build_labels)
        fams.append(build)
        return fams

    def _wal_families(self) -> list[Family]:
        totals: dict[str, int] = {}
        for source in self._wal_sources:
            for k, v in source().items():
                totals[k] = totals.get(k, 0) + int(v)
        # Totals are summed over the open logs: a deleted partition's share leaves them,
        # which Prometheus's rate() reads as a counter reset.
        return [
            Family("streamcore_wal_queue_depth", "gauge", "Appends queued in the WAL and not yet written",
                   [((), totals.get("queue_depth", 0))]),
            Family("streamcore_wal_fsyncs_total", "counter", "fsync calls made by the WAL",
                   [((), totals.get("fsyncs", 0))]),
            Family("streamcore_wal_fsync_seconds_total", "counter", "Time spent in WAL fsync calls, in seconds",
                   [((), totals.get("fsync_total_us", 0) / _US)]),
            Family("streamcore_wal_written_bytes_total", "counter", "Bytes written to segment files",
                   [((), totals.get("bytes_written", 0))]),
            Family("streamcore_wal_backpressure_rejections_total", "counter",
                   "Appends refused because the WAL queue was full", [((), totals.get("backpressure_rejections", 0))]),
        ]  # fmt: skip

    def _storage_families(self) -> list[Family]:
        health = self._storage_health() if self._storage_health is not None else {}
        return [
            Family("streamcore_offline_partitions", "gauge",
                   "Partitions offline now (storage failure or damaged data)",
                   [((), health.get("offline_partitions", 0))]),
            Family("streamcore_storage_damaged_reads_total", "counter",
                   "Reads that met corrupt or missing log data", [((), health.get("damaged_reads", 0))]),
        ]  # fmt: skip

    def _partition_families(self) -> list[Family]:
        end = Family("streamcore_log_end_offset", "gauge", "Next offset to be written, by partition")
        start = Family("streamcore_log_start_offset", "gauge", "First offset still in the log, by partition")
        size = Family(
            "streamcore_log_size_bytes", "gauge", "Bytes of record batches in the log, by partition"
        )
        ends: dict[tuple[str, int], int] = {}
        for (topic, partition), plog in sorted(self._partitions() if self._partitions else (), key=_by_key):
            try:
                hw = int(plog.high_watermark)  # type: ignore[attr-defined]
                lso = int(plog.log_start_offset)  # type: ignore[attr-defined]
                nbytes = int(plog.size_bytes)  # type: ignore[attr-defined]
            except Exception:  # a log closed or offline while we looked: leave it out this time
                continue
            ends[(topic, partition)] = hw
            end.add(hw, topic=topic, partition=partition)
            start.add(lso, topic=topic, partition=partition)
            size.add(nbytes, topic=topic, partition=partition)
        committed = Family(
            "streamcore_group_committed_offset", "gauge", "Committed offset, by group and partition"
        )
        lag = Family(
            "streamcore_group_lag",
            "gauge",
            "Records between a group's committed offset and the log end offset, by group and partition",
        )
        for group, topic, partition, offset in sorted(self._committed() if self._committed else ()):
            committed.add(offset, group=group, topic=topic, partition=partition)
            hw_now = ends.get((topic, partition))
            if hw_now is not None:
                lag.add(max(hw_now - offset, 0), group=group, topic=topic, partition=partition)
        return [end, start, size, committed, lag]

    def _search_families(self) -> list[Family]:
        indexer = self._search
        if indexer is None:
            return []  # indexing switched off
        stats = indexer.stats
        lags = indexer.lag()
        # Shown once a topic is indexed (as the quota families once a quota exists): a
        # broker whose topics do not opt in shows no such families.
        if not lags and not stats.records_indexed:
            return []
        records = Family(
            "streamcore_search_index_lag_records",
            "gauge",
            "Records between a partition's committed search index and its log end, by partition",
        )
        seconds = Family(
            "streamcore_search_index_lag_seconds",
            "gauge",
            "Age of the oldest record not yet in a partition's committed search index (0 when caught up)",
        )
        for (topic, partition), lag in sorted(lags.items()):
            records.add(lag.records, topic=topic, partition=partition)
            seconds.add(lag.seconds, topic=topic, partition=partition)
        return [
            records,
            seconds,
            Family("streamcore_search_indexed_records_total", "counter",
                   "Records added to search indexes (re-indexing after compaction included)",
                   [((), stats.records_indexed)]),
            Family("streamcore_search_index_commits_total", "counter", "Search index commits",
                   [((), stats.commits)]),
            Family("streamcore_search_index_backoffs_total", "counter",
                   "Indexer rounds skipped because a WAL queue was under pressure", [((), stats.backoffs)]),
            Family("streamcore_search_index_backoff_seconds", "gauge",
                   "The indexer's current pause for WAL pressure (0 when not backing off)",
                   [((), stats.backoff_ms / 1000.0)]),
            Family("streamcore_search_index_failures_total", "counter", "Indexer rounds that failed",
                   [((), stats.failures)]),
        ]  # fmt: skip

    def _quota_families(self) -> list[Family]:
        quotas = self._quotas
        # Shown once a client quota exists (or has throttled someone): a broker without
        # quotas shows no such families.
        if quotas is None or not (any(quotas.enabled.values()) or any(quotas.throttled_total.values())):
            return []
        throttle = Family(
            "streamcore_quota_throttle_seconds_total",
            "counter",
            "Throttle time given to clients over a quota, by quota (produce, fetch, request)",
        )
        throttled = Family(
            "streamcore_quota_throttled_responses_total",
            "counter",
            "Responses throttled for a quota, by quota (produce, fetch, request)",
        )
        for kind in sorted(quotas.throttle_ms_total):
            throttle.add(quotas.throttle_ms_total[kind] / 1000.0, quota=kind)
            throttled.add(quotas.throttled_total.get(kind, 0), quota=kind)
        rate = Family(
            "streamcore_quota_rate",
            "gauge",
            "Measured rate of each client with a quota: bytes/s (produce, fetch) or percent (request)",
        )
        limit = Family("streamcore_quota_limit", "gauge", "The quota that rate is held to, same units")
        for kind, user, client_id, value, bound in quotas.sensors():
            rate.add(value, quota=kind, user=user, client_id=client_id)
            limit.add(bound, quota=kind, user=user, client_id=client_id)
        return [throttle, throttled, rate, limit]


def _by_key(item: tuple[tuple[str, int], object]) -> tuple[str, int]:
    return item[0]


_HTTP_TIMEOUT_S = 5.0


_STATUS = {200: b"200 OK", 400: b"400 Bad Request", 403: b"403 Forbidden", 404: b"404 Not Found",
           409: b"409 Conflict", 500: b"500 Internal Server Error", 503: b"503 Service Unavailable"}  # fmt: skip


async def serve_metrics(
    metrics: BrokerMetrics,
    host: str,
    port: int,
    health: Callable[[], str | None] | None = None,
    routes: Mapping[str, Route] | None = None,
) -> asyncio.base_events.Server:
    """Serve ``GET``/``HEAD /metrics`` on host:port (a deliberately tiny HTTP/1.0 responder).

    With ``health``, ``/health`` answers 200 ``ok`` when ``health()`` returns None and
    503 with its text otherwise. ``routes`` adds paths (``"/search"``) answered by their
    handler, given the query string. HEAD answers the same headers as GET, without the body.
    """
    extra = {path.encode(): handler for path, handler in (routes or {}).items()}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), _HTTP_TIMEOUT_S)
            while (await asyncio.wait_for(reader.readline(), _HTTP_TIMEOUT_S)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.split()
            method = parts[0] if parts else b""
            target = parts[1] if len(parts) >= 2 and method in (b"GET", b"HEAD") else b""
            path, _, query = target.partition(b"?")
            if path in extra:
                try:
                    code, content_type, body = await extra[path](query.decode("latin-1"))
                except Exception:
                    log.exception("the %s endpoint failed", path.decode("latin-1"))
                    code, content_type, body = 500, "text/plain", b"internal error\n"
                head = (
                    b"HTTP/1.0 " + _STATUS.get(code, b"%d Error" % code) + b"\r\n"
                    b"Content-Type: " + content_type.encode("latin-1") + b"\r\n"
                )
            elif path == b"/metrics":
                body = metrics.render().encode()
                head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            elif path == b"/health" and health is not None:
                problem = health()
                body = b"ok\n" if problem is None else problem.encode() + b"\n"
                status = b"200 OK" if problem is None else b"503 Service Unavailable"
                head = b"HTTP/1.0 " + status + b"\r\nContent-Type: text/plain\r\n"
            elif method not in (b"GET", b"HEAD"):
                body = b"method not allowed\n"
                head = b"HTTP/1.0 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n"
            else:
                body = b"not found\n"
                head = b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            head += b"Content-Length: %d\r\n\r\n" % len(body)
            writer.write(head if method == b"HEAD" else head + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
