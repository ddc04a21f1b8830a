"""The broker's shared state: what every connection and handler works with.

``BrokerState`` opens the data directory's contents (topic catalogue, partition
logs, committed offsets, producer ids, transaction state) and closes them again; it
starts nothing.
The process around it (data-directory lock, listener, ``/metrics``, background
loops) is ``streamcore.broker.runtime``.
"""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any, Protocol

from streamcore.broker.append import Appender
from streamcore.broker.config import BrokerConfig, load_or_create_cluster_id
from streamcore.broker.delayed_fetch import DelayedFetch
from streamcore.broker.fetch_sessions import FetchSessionCache
from streamcore.broker.group_coordinator import GroupCoordinator
from streamcore.broker.metrics import BrokerMetrics
from streamcore.broker.offset_store import OffsetStore
from streamcore.broker.producer_state import ProducerIdManager, ProducerStateManager
from streamcore.broker.quotas import QuotaManager, QuotaStore, resolve_ip_quotas
from streamcore.broker.security.credentials import CredentialStore
from streamcore.broker.security.sasl import SaslAuthenticator
from streamcore.broker.topics import TopicManager
from streamcore.broker.transactions import (
    TransactionalPartitions,
    TransactionCoordinator,
    TransactionSettings,
    make_marker_appender,
)
from streamcore.metrics import Counter

log = logging.getLogger("streamcore.broker")

__all__ = ["BrokerState", "AdvertisedListener", "current_listener"]


class AdvertisedListener(Protocol):
    """What a request's listener tells clients (``streamcore.broker.server.Listener``)."""

    @property
    def advertised_host(self) -> str: ...

    @property
    def advertised_port(self) -> int: ...


#: The listener the request being handled came in on: the server sets it around each
#: handler call (and the tasks a handler starts inherit it), so that Metadata,
#: FindCoordinator and DescribeCluster answer with that listener's advertised address.
current_listener: contextvars.ContextVar[AdvertisedListener | None] = contextvars.ContextVar(
    "streamcore_current_listener", default=None
)


class BrokerState:
    """The broker's components, shared by every connection and handler.

    Built closed; :meth:`open` reads the data directory, :meth:`close` flushes and
    closes it. The runtime sets the listener fields once it is bound.
    """

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.node_id = config.node_id
        self.metrics = BrokerMetrics()
        self.cluster_id = ""
        #: Where the Kafka listener is bound (the port is the real one after binding port 0).
        self.listen_host = config.listeners.host
        self.listen_port = config.listeners.port
        # The first listener's advertised address (see the advertised_* properties).
        self._advertised_host = config.listeners.host
        self._advertised_port = config.listeners.port
        #: The bound listeners, the first being the bootstrap one (set by the runtime).
        self.listeners: list[Any] = []
        #: Port of the ``/metrics`` endpoint, None when it is not served.
        self.metrics_port: int | None = None
        self.topics: TopicManager
        self.offsets: OffsetStore
        self.producers: ProducerStateManager
        self.producer_ids: ProducerIdManager
        self.appender: Appender
        self.coordinator: GroupCoordinator
        self.fetch_sessions: FetchSessionCache
        #: The transaction coordinator; also the per-partition LSO and aborted index
        #: (``transactions.partitions``).
        self.transactions: TransactionCoordinator
        self.delayed = DelayedFetch()
        #: SCRAM credentials of the data directory (DescribeUserScramCredentials and
        #: AlterUserScramCredentials, SCRAM authentication).
        self.scram_credentials: CredentialStore
        #: What the SASL listeners share (mechanisms, PLAIN users, failure throttle); None
        #: when no listener uses SASL.
        self.sasl: SaslAuthenticator | None = None
        #: The ACL authorizer (``authorizer = "acl"``), None = every request is allowed.
        self.authorizer: Any = None
        #: Failed SASL authentications, unsupported mechanisms included, and successful
        #: ones (re-authentications too): counters exposed when a listener uses SASL.
        self.authentication_failures: Counter | None = None
        self.authentications: Counter | None = None
        q = config.quotas
        #: Client quotas in force and the rates measured against them (the server and the
        #: Produce/Fetch handlers throttle with it).
        self.quotas = QuotaManager(
            window_num=q.window_num,
            window_size_ms=q.window_size_ms,
            defaults={
                "producer_byte_rate": q.producer_byte_rate,
                "consumer_byte_rate": q.consumer_byte_rate,
                "request_percentage": q.request_percentage,
            },
            connection_creation_rate=q.connection_creation_rate,
        )
        self.metrics.set_quota_source(self.quotas)
        #: The quotas set with AlterClientQuotas, in the data directory.
        self.quota_store: QuotaStore
        self._opened = False

    def open(self) -> None:
        """Read the data directory: catalogue, every partition log (recovered now, so the
        first request does not pay for it), committed offsets, producer and transaction state.

        The caller holds the data-directory lock.
        """
        cfg = self.config
        self.cluster_id = load_or_create_cluster_id(cfg.data_dir, cfg.node_id, cfg.cluster_id)
        self.scram_credentials = CredentialStore(cfg.data_dir)
        self.quota_store = QuotaStore(cfg.data_dir)
        self.quotas.install(self.quota_store.quotas, resolve_ip_quotas(self.quota_store.quotas))
        if any(spec.uses_sasl for spec in cfg.listener_specs()) and self.sasl is None:
            self.sasl = SaslAuthenticator(cfg.sasl, self.scram_credentials)
            registry = self.metrics.registry
            self.authentication_failures = registry.counter(
                "streamcore_authentication_failures_total",
                "Failed SASL authentications and re-authentications (unsupported mechanisms included)",
            )
            self.authentications = registry.counter(
                "streamcore_authentications_total", "Successful SASL authentications and re-authentications"
            )
        if cfg.authorizer == "acl":
            # Imported on use: a broker without an authorizer never loads it.
            from streamcore.broker.authorizer import AclAuthorizer

            self.authorizer = AclAuthorizer(
                cfg.data_dir,
                super_users=cfg.super_users,
                allow_everyone_if_no_acl_found=cfg.allow_everyone_if_no_acl_found,
            )
        self.topics = TopicManager(cfg.data_dir, cfg)
        self._opened = True
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
        # Every partition's open and aborted transactions, from its files and batch
        # headers (now, so that no request pays for a scan), then the coordinator's state.
        partitions = TransactionalPartitions(self.topics.log)
        for key, plog in self.topics.open_logs():
            partitions.load(key, plog)
        txn = cfg.transactions
        self.transactions = TransactionCoordinator(
            self.topics.transaction_state_log(),
            producer_ids=self.producer_ids,
            partitions=partitions,
            append_marker=make_marker_appender(self.topics),
            offsets=self.offsets,
            on_partition_change=self.delayed.notify,
            settings=TransactionSettings(
                max_timeout_ms=txn.max_timeout_ms,
                abort_interval_ms=txn.abort_interval_ms,
                transactional_id_expiration_ms=txn.id_expiration_ms,
            ),
        )
        self.transactions.load()
        self.fetch_sessions = FetchSessionCache(
            max_slots=cfg.fetch_sessions.max_cache_slots, eviction_ms=cfg.fetch_sessions.eviction_ms
        )

    def close(self) -> None:
        """Close every log (each drains its queue, fsyncs, checkpoints and writes the
        clean-shutdown marker); blocking, idempotent."""
        if not self._opened:
            return
        self._opened = False
        transactions = getattr(self, "transactions", None)
        if transactions is not None:
            transactions.close()
        coordinator = getattr(self, "coordinator", None)
        if coordinator is not None:
            coordinator.close()
        self.topics.close()

    def _wal_stats(self) -> dict[str, int]:
        """WAL figures summed over every open partition log (for /metrics)."""
        totals: dict[str, int] = {}
        for _, plog in self.topics.open_logs():
            for key, value in plog.stats().items():
                totals[key] = totals.get(key, 0) + int(value)
        return totals

    def _on_rebalance(self, group_id: str, generation: int) -> None:
        self.metrics.rebalances.inc()

    # -- what clients are told to connect to ------------------------------------------------

    @property
    def advertised_host(self) -> str:
        """Host Metadata and FindCoordinator give clients: that of the listener the request
        came in on, else (outside a request) the first listener's."""
        listener = current_listener.get()
        return listener.advertised_host if listener is not None else self._advertised_host

    @advertised_host.setter
    def advertised_host(self, host: str) -> None:
        self._advertised_host = host

    @property
    def advertised_port(self) -> int:
        """Port that goes with :attr:`advertised_host`."""
        listener = current_listener.get()
        return listener.advertised_port if listener is not None else self._advertised_port

    @advertised_port.setter
    def advertised_port(self, port: int) -> None:
        self._advertised_port = port

    # -- shared operations ----------------------------------------------------------------

    def forget_topic(self, name: str, partitions: int) -> None:
        """Drop per-topic state after a deletion, committed offsets included (as Kafka does:
        a topic created again under the same name starts without the old group positions)."""
        self.offsets.delete_topic(name)
        for p in range(partitions):
            self.producers.forget_partition((name, p))
            self.transactions.partitions.forget((name, p))
        self.fetch_sessions.forget_partitions(lambda key: isinstance(key, tuple) and key[0] == name)
        self.delayed.notify_topic_deleted(name)

    def broker_configs(self) -> dict[str, object]:
        """Broker-level settings shown by DescribeConfigs on the broker resource."""
        cfg = self.config
        configs: dict[str, object] = {
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
        if self.metrics_port is not None:
            # Where /search is served: the Kafka protocol has no search request, so a
            # client given only a bootstrap address looks the metrics port up here.
            configs["streamcore.metrics.port"] = self.metrics_port
        return configs

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)
