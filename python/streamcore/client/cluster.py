"""Cluster view shared by a client's producer/consumer/admin logic.

* bootstrap: the configured addresses get node ids -1, -2 ... until the first
  Metadata answer names the real brokers;
* metadata: brokers, and per topic the leader of each partition; refreshed on
  demand (coalesced: concurrent callers share one request), after routing errors,
  and at least every ``metadata_max_age_ms``;
* coordinators: FindCoordinator per group id (key type 0) or transactional id
  (key type 1), cached until a request says the coordinator moved.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from streamcore.client.config import ClientConfig
from streamcore.client.connection import BrokerConnection, Priority
from streamcore.client.errors import ClientClosedError, ConnectionLostError, broker_error
from streamcore.client.pool import ConnectionPool
from streamcore.client.retrying import Backoff, retry_async
from streamcore.client.security import Security
from streamcore.errors import AuthenticationError
from streamcore.protocol.messages import (
    FindCoordinatorRequest,
    MetadataRequest,
    MetadataRequest_MetadataRequestTopic,
)

__all__ = ["TopicInfo", "Cluster"]


@dataclass
class TopicInfo:
    """What metadata says about one topic: error code and partition -> leader node id."""

    name: str
    error_code: int = 0
    leaders: dict[int, int] = field(default_factory=dict)
    is_internal: bool = False

    @property
    def partitions(self) -> list[int]:
        """Partition ids, sorted."""
        return sorted(self.leaders)


class Cluster:
    """Brokers, topics and coordinators as last seen, plus the connection pool."""

    def __init__(self, config: ClientConfig, *, auto_create_topics: bool = True) -> None:
        self.config = config
        self.auto_create_topics = auto_create_topics
        # TLS context and SASL credentials, built once: a bad certificate file fails here.
        self.security = Security.from_config(config)
        #: The last authentication failure of a connection attempt, until taken
        #: (``take_auth_failure``): background tasks (fetcher, group) hand it to poll().
        self.auth_failure: AuthenticationError | None = None
        #: Called with each authentication failure (the consumer wakes a waiting poll).
        self.on_auth_failure: list[Any] = []
        self.pool = ConnectionPool(config.connections_per_broker, self._open_connection)
        self.bootstrap_ids: list[int] = []
        for i, (host, port) in enumerate(config.bootstrap_servers):
            node = -(i + 1)
            self.pool.set_address(node, host, port)
            self.bootstrap_ids.append(node)
        self.brokers: dict[int, tuple[str, int]] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.cluster_id: str | None = None
        self.controller_id: int = -1
        self._wanted: set[str] = set()
        self._refreshing: asyncio.Future[None] | None = None
        self._last_refresh = 0.0
        self._coordinators: dict[tuple[int, str], int] = {}
        self._closed = False
        # Metadata and coordinator retries follow the configured retry policy (retry.* settings).
        self.backoff = Backoff.from_config(config)

    async def _open_connection(self, host: str, port: int, node_id: int) -> BrokerConnection:
        try:
            return await self._connect(host, port, node_id)
        except AuthenticationError as exc:
            self.auth_failure = exc
            for callback in self.on_auth_failure:
                callback(exc)
            raise

    def take_auth_failure(self) -> AuthenticationError | None:
        """The authentication failure recorded since the last call (None if none), cleared."""
        exc, self.auth_failure = self.auth_failure, None
        return exc

    async def _connect(self, host: str, port: int, node_id: int) -> BrokerConnection:
        c = self.config
        return await BrokerConnection.connect(
            host,
            port,
            client_id=c.client_id,
            request_timeout_ms=c.request_timeout_ms,
            max_in_flight=c.max_in_flight_requests_per_connection,
            min_in_flight=c.min_in_flight_requests_per_connection,
            connect_timeout_ms=c.socket_connection_setup_timeout_ms,
            node_id=node_id,
            high_capacity=c.high_priority_channel_capacity,
            normal_capacity=c.normal_priority_channel_capacity,
            security=self.security,
        )

    def close(self) -> None:
        """Close every connection."""
        self._closed = True
        self.pool.close()

    # ------------------------------------------------------------------ connections

    async def connection(self, node_id: int) -> BrokerConnection:
        """A ready connection to ``node_id`` (ConnectionLostError if unreachable)."""
        return await self.pool.get(node_id)

    async def any_connection(self) -> BrokerConnection:
        """A connection to any reachable broker: known brokers first, then bootstrap addresses."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        candidates = list(self.brokers) + self.bootstrap_ids
        for node in candidates:  # an open one needs no I/O
            b = self.pool._bundles.get(node)
            if b is not None:
                conn = b.select_ready()
                if conn is not None:
                    return conn
        last: BaseException | None = None
        for node in candidates:
            try:
                return await self.pool.get(node)
            except (ConnectionLostError, OSError) as exc:
                last = exc
        raise ConnectionLostError(f"no broker reachable (tried {len(candidates)}): {last}")

    async def request_node(self, node_id: int | None, msg: Any, **kw: Any) -> Any:
        """Send ``msg`` to ``node_id`` (or any broker when None) and return the response."""
        conn = await (self.any_connection() if node_id is None else self.connection(node_id))
        return await conn.request(msg, **kw)

    # ------------------------------------------------------------------ metadata

    def want_topics(self, topics: list[str] | set[str]) -> None:
        """Add ``topics`` to what every metadata refresh asks about."""
        self._wanted.update(topics)

    async def refresh(self, topics: list[str] | None = None, *, all_topics: bool = False) -> None:
        """Fetch metadata now for the wanted topics (plus ``topics``), or all topics.

        Concurrent callers share one request. Raises on a network failure after
        trying every broker.
        """
        if topics:
            self._wanted.update(topics)
        if self._refreshing is not None and not self._refreshing.done() and not all_topics:
            return await asyncio.shield(self._refreshing)
        fut = asyncio.ensure_future(self._refresh_once(all_topics))
        if not all_topics:
            self._refreshing = fut
        await fut

    async def _refresh_once(self, all_topics: bool) -> None:
        conn = await self.any_connection()
        version = conn.version_for(MetadataRequest)
        if all_topics:
            req_topics: Any = None if version >= 1 else []
        else:
            req_topics = [MetadataRequest_MetadataRequestTopic(name=t) for t in sorted(self._wanted)]
            if not req_topics and version >= 1:
                req_topics = []
        req = MetadataRequest(topics=req_topics, allow_auto_topic_creation=self.auto_create_topics)
        if version == 0 and not req_topics and not all_topics:
            return  # v0 cannot ask for "no topics"; nothing wanted yet
        resp = await conn.request(req, version, priority=Priority.HIGH)
        self._apply(resp, complete=all_topics)

    def _apply(self, resp: Any, complete: bool = False) -> None:
        """Take in a Metadata answer; ``complete`` when it lists every topic.

        A complete listing replaces what was known, so a deleted topic does not
        linger; an answer about some topics updates only those.
        """
        brokers = {b.node_id: (b.host, b.port) for b in resp.brokers}
        for node, (host, port) in brokers.items():
            self.pool.set_address(node, host, port)
        self.brokers = brokers
        self.cluster_id = getattr(resp, "cluster_id", None)
        self.controller_id = getattr(resp, "controller_id", -1)
        topics = {} if complete else dict(self.topics)
        for t in resp.topics:
            info = TopicInfo(
                t.name,
                t.error_code,
                {p.partition_index: p.leader_id for p in t.partitions},
                bool(getattr(t, "is_internal", False)),
            )
            topics[t.name] = info
        self.topics = topics
        self._last_refresh = time.monotonic()

    def forget_topics(self, topics: list[str] | set[str]) -> None:
        """Stop asking about ``topics`` and drop what was known of them (e.g. deleted)."""
        self._wanted.difference_update(topics)
        self.topics = {n: t for n, t in self.topics.items() if n not in topics}

    def metadata_stale(self) -> bool:
        """True when metadata is older than ``metadata_max_age_ms``."""
        return (time.monotonic() - self._last_refresh) * 1000 >= self.config.metadata_max_age_ms

    def partitions_for(self, topic: str) -> list[int] | None:
        """Known partitions of ``topic`` (None if unknown or in error)."""
        info = self.topics.get(topic)
        if info is None or info.error_code or not info.leaders:
            return None
        return info.partitions

    def leader_for(self, topic: str, partition: int) -> int | None:
        """Leader node of (topic, partition), or None if unknown/leaderless."""
        info = self.topics.get(topic)
        if info is None:
            return None
        leader = info.leaders.get(partition)
        return leader if leader is not None and leader >= 0 else None

    async def wait_for_partitions(self, topic: str, timeout_s: float) -> list[int]:
        """Partitions of ``topic``, refreshing metadata until known or ``timeout_s`` passes.

        Raises the topic's KafkaError (e.g. UNKNOWN_TOPIC_OR_PARTITION) or TimeoutError.
        """
        parts = self.partitions_for(topic)
        if parts is not None:
            return parts
        self._wanted.add(topic)
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                await self.refresh([topic])
            except (ConnectionLostError, OSError):
                if time.monotonic() >= deadline:
                    raise
            parts = self.partitions_for(topic)
            if parts is not None:
                return parts
            delay = self.backoff.delay_ms(attempt) / 1000.0
            attempt += 1
            if time.monotonic() + delay >= deadline:
                info = self.topics.get(topic)
                if info is not None and info.error_code:
                    raise broker_error(info.error_code, f"metadata for topic {topic!r}")
                raise TimeoutError(f"no metadata for topic {topic!r} within {timeout_s:g} s")
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ coordinators

    async def coordinator(self, key: str, key_type: int = 0, *, refresh: bool = False) -> int:
        """Node id of the coordinator of ``key`` via FindCoordinator: a group id (key_type 0)
        or a transactional id (key_type 1).

        Retries COORDINATOR_NOT_AVAILABLE and network errors with backoff for up to
        ``request_timeout_ms``.
        """
        cache_key = (key_type, key)
        if not refresh and cache_key in self._coordinators:
            return self._coordinators[cache_key]

        async def attempt() -> int:
            conn = await self.any_connection()
            version = conn.version_for(FindCoordinatorRequest)
            req = FindCoordinatorRequest(key=key, key_type=key_type)
            resp = await conn.request(req, version, priority=Priority.HIGH)
            if resp.error_code:
                raise broker_error(resp.error_code, f"FindCoordinator({key!r}, key type {key_type})")
            self.pool.set_address(resp.node_id, resp.host, resp.port)
            return resp.node_id

        deadline = time.monotonic() + self.config.request_timeout_ms / 1000.0
        node = await retry_async(attempt, self.backoff, deadline)
        self._coordinators[cache_key] = node
        return node

    def forget_coordinator(self, key: str, key_type: int = 0) -> None:
        """Drop the cached coordinator of ``key`` (after NOT_COORDINATOR and the like)."""
        self._coordinators.pop((key_type, key), None)
