"""Everything a running broker holds, and the operations handlers share.

``BrokerState`` opens the data directory (topic catalogue, partition logs, committed
offsets, producer ids), starts the Kafka listener, the retention timer and (when
configured) the ``/metrics`` endpoint, and shuts all of it down cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from streamcore.broker.append import Appender
from streamcore.broker.config import BrokerConfig, load_or_create_cluster_id
from streamcore.broker.delayed_fetch import DelayedFetch
from streamcore.broker.fetch_sessions import FetchSessionCache
from streamcore.broker.group_coordinator import GroupCoordinator
from streamcore.broker.metrics import BrokerMetrics, serve_metrics
from streamcore.broker.offset_store import OffsetStore
from streamcore.broker.producer_state import ProducerIdManager, ProducerStateManager
from streamcore.broker.topics import TopicManager
from streamcore.storage.dir_lock import DirLock

log = logging.getLogger("streamcore.broker")

__all__ = ["BrokerState"]


class BrokerState:
    """The broker's components, shared by every connection and handler."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.metrics = BrokerMetrics()
        self.cluster_id = ""
        self.listen_host = config.listeners.host
        self.listen_port = config.listeners.port
        self.advertised_host = config.listeners.host
        self.advertised_port = config.listeners.port
        self.topics: TopicManager
        self.offsets: OffsetStore
        self.producers: ProducerStateManager
        self.producer_ids: ProducerIdManager
        self.appender: Appender
        self.coordinator: GroupCoordinator
        self.fetch_sessions: FetchSessionCache
        self.delayed = DelayedFetch()
        self._server: Any = None
        self._metrics_server: asyncio.base_events.Server | None = None
        self._retention_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._dir_lock: DirLock | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Lock and open the data directory, recover the logs, start listening.

        Raises DataDirLockedError when another process has the data directory open.
        """
        cfg = self.config
        # Before anything in the directory is read or written: a second broker on the
        # same directory would lose acknowledged writes of the first.
        Path(cfg.data_dir).mkdir(parents=True, exist_ok=True)
        self._dir_lock = DirLock(cfg.data_dir).acquire()
        try:
            await self._start_locked()
        except BaseException:
            if self._server is not None:
                await self._server.stop()
            if getattr(self, "topics", None) is not None:
                self.topics.close()
            self._dir_lock.release()
            raise

    async def _start_locked(self) -> None:
        from streamcore.broker.server import KafkaServer

        cfg = self.config
        self.cluster_id = load_or_create_cluster_id(cfg.data_dir, cfg.node_id, cfg.cluster_id)
        self.topics = TopicManager(cfg.data_dir, cfg)
        # Recover every partition before serving, so the first request does not pay for it.
        self.topics.open_all()
        self.metrics.add_wal_source(self._wal_stats)
        self.coordinator = GroupCoordinator.from_config(cfg.groups, on_rebalance=self._on_rebalance)
        self.offsets = OffsetStore(self.topics.offsets_log(), validator=self.coordinator.validate_commit)
        self.producer_ids = ProducerIdManager(cfg.data_dir)
        self.producers = ProducerStateManager(is_issued=self.producer_ids.is_issued)
        self.appender = Appender(self.producers, self.delayed)
        for (topic, partition), plog in self.topics.open_logs():
            largest = self.producers.rebuild_from_log((topic, partition), plog)
            if largest >= 0:
                self.producer_ids.observe(largest)
        self.fetch_sessions = FetchSessionCache(
            max_slots=cfg.fetch_sessions.max_cache_slots, eviction_ms=cfg.fetch_sessions.eviction_ms
        )
        self._server = KafkaServer(self)
        await self._server.start()
        self.listen_port = self._server.port
        self.advertised_host = cfg.listeners.advertised_host or (
            "localhost" if self.listen_host in ("0.0.0.0", "::", "") else self.listen_host
        )
        self.advertised_port = cfg.listeners.advertised_port or self.listen_port
        loop = asyncio.get_running_loop()
        self._retention_task = loop.create_task(self._retention_loop())
        if cfg.metrics.http_port is not None:
            self._metrics_server = await serve_metrics(self.metrics, self.listen_host, cfg.metrics.http_port)
        log.info(
            "broker %d (cluster %s) listening on %s:%d",
            self.node_id,
            self.cluster_id,
            self.listen_host,
            self.listen_port,
        )

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish, flush and close every log."""
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            await self._server.stop()
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self._retention_task is not None:
            self._retention_task.cancel()
        self.coordinator.close()
        # Closing a log drains its queue, fsyncs, checkpoints and writes the clean-shutdown marker.
        await asyncio.get_running_loop().run_in_executor(None, self.topics.close)
        if self._dir_lock is not None:
            self._dir_lock.release()

    @property
    def metrics_port(self) -> int | None:
        if self._metrics_server is None:
            return None
        return self._metrics_server.sockets[0].getsockname()[1]

    async def _retention_loop(self) -> None:
        """Housekeeping on the retention interval: segment retention, expired offsets of
        empty groups, compaction of the offsets log, idle producer state."""
        interval = self.config.storage.retention_check_interval_ms / 1000.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            try:
                deleted = await loop.run_in_executor(None, self.topics.apply_retention)
                if deleted:
                    log.info("retention deleted %d segment(s)", deleted)
                now = self.now_ms()
                self.offsets.expire(
                    now, self.config.groups.offsets_retention_ms, self.coordinator.empty_since_ms
                )
                await loop.run_in_executor(None, self.offsets.maybe_compact)
                self.producers.expire(now)
            except Exception:  # housekeeping failures must not stop the broker
                log.exception("periodic housekeeping failed")

    def _wal_stats(self) -> dict[str, int]:
        """WAL figures summed over every open partition log (for /metrics)."""
        totals: dict[str, int] = {}
        for _, plog in self.topics.open_logs():
            for key, value in plog.stats().items():
                totals[key] = totals.get(key, 0) + int(value)
        return totals

    def _on_rebalance(self, group_id: str, generation: int) -> None:
        self.metrics.rebalances.inc()

    # -- shared operations ----------------------------------------------------------------

    def forget_topic(self, name: str, partitions: int) -> None:
        """Drop per-topic state after a deletion."""
        for p in range(partitions):
            self.producers.forget_partition((name, p))
        self.fetch_sessions.forget_partitions(lambda key: key[0] == name)
        self.delayed.notify_topic_deleted(name)

    def broker_configs(self) -> dict[str, object]:
        """Broker-level settings shown by DescribeConfigs on the broker resource."""
        cfg = self.config
        return {
            "log.dirs": cfg.data_dir,
            "num.partitions": cfg.topics.default_partitions,
            "auto.create.topics.enable": str(cfg.topics.auto_create).lower(),
            "log.retention.ms": cfg.storage.retention_ms,
            "log.retention.bytes": cfg.storage.retention_bytes,
            "log.segment.bytes": cfg.storage.segment_bytes,
            "message.max.bytes": cfg.limits.max_message_bytes,
            "socket.request.max.bytes": cfg.limits.max_request_bytes,
            "default.replication.factor": 1,
            "offsets.topic.replication.factor": 1,
            "broker.id": cfg.node_id,
            "streamcore.fsync": cfg.storage.fsync,
            "streamcore.profile": cfg.storage.profile,
        }

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)
