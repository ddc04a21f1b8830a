"""Topics: names, partition counts, per-topic configs and one partition log each.

:class:`TopicManager` owns ``<data_dir>/topics.json`` (the topic catalogue,
rewritten atomically on every change: temp file -> fsync -> rename -> fsync
directory) and decides each partition log's settings; the logs themselves
(``<data_dir>/<topic>-<partition>/``, opened on first use, retention, removal,
closing) are kept by its :class:`streamcore.storage.log_manager.LogManager`
(``TopicManager.logs``). Topic config definitions are the one table in
:mod:`streamcore.broker.topic_configs`. It speaks plain Python values; failures
are :class:`TopicError` carrying the Kafka error code a handler should answer with.

Single node: the replication factor is always 1 (``-1`` = broker default, also 1).
The internal topics ``__consumer_offsets`` (committed offsets) and
``__transaction_state`` (the transaction coordinator's records), one compacted
partition each, are hidden from normal listings.

Thread safety: methods take an internal lock, so the retention thread may run
while the event loop creates or deletes topics. Opening a log recovers it from disk and may block for a moment.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamcore._atomic_file import write_atomic
from streamcore.broker.config import BrokerConfig
from streamcore.broker.topic_configs import (
    ALL_TOPIC_CONFIGS,
    CONFIG_SOURCE_DEFAULT,
    CONFIG_SOURCE_STATIC_BROKER,
    CONFIG_SOURCE_TOPIC,
    DESCRIBED_CONFIG_NAMES,
    STREAMCORE_TOPIC_CONFIGS,
    TOPIC_CONFIG_NAMES,
    TOPIC_CONFIGS,
    ConfigEntry,
    ConfigSynonym,
    TopicConfig,
    TopicError,
    check_topic_configs,
    incremental_change,
    unknown_config,
)
from streamcore.errors import ErrorCode, LogOfflineError, StreamcoreError
from streamcore.storage.cleaner import CompactionSettings
from streamcore.storage.log_manager import LogManager

__all__ = [
    "OFFSETS_TOPIC",
    "TRANSACTION_STATE_TOPIC",
    "TOPIC_CONFIG_NAMES",
    "ConfigEntry",
    "TopicConfig",
    "TopicError",
    "TopicInfo",
    "TopicManager",
    "validate_topic_name",
    "CONFIG_SOURCE_TOPIC",
    "CONFIG_SOURCE_STATIC_BROKER",
    "CONFIG_SOURCE_DEFAULT",
]

logger = logging.getLogger("streamcore.broker")

#: Internal topic holding committed offsets (partition 0).
OFFSETS_TOPIC = "__consumer_offsets"
_OFFSETS_SEGMENT_BYTES = 16 * 1024 * 1024  # small so that the cleaner frees space early
# Kafka's __consumer_offsets is compacted: the latest commit per group and partition is
# kept, and a deleted group's tombstones go after delete.retention.ms.
_OFFSETS_CONFIGS = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "segment.bytes": str(_OFFSETS_SEGMENT_BYTES),
}

#: Internal topic holding the transaction coordinator's state (partition 0).
TRANSACTION_STATE_TOPIC = "__transaction_state"
# Kafka's: compacted (the latest record per transactional id is what counts), 100 MiB
# segments (transaction.state.log.segment.bytes).
_TRANSACTION_STATE_CONFIGS = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "segment.bytes": str(100 * 1024 * 1024),
}

_CATALOGUE = "topics.json"
_MAX_NAME = 249
_LEGAL = re.compile(r"^[a-zA-Z0-9._-]+$")
_MAX_PARTITIONS = 100_000


@dataclass(frozen=True)
class TopicInfo:
    """A topic as the catalogue knows it; ``configs`` holds only per-topic overrides (text)."""

    name: str
    topic_id: uuid.UUID
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)
    internal: bool = False


def validate_topic_name(name: str) -> None:
    """Raise TopicError(INVALID_TOPIC) unless ``name`` follows Kafka's rules.

    1..249 characters from ``[a-zA-Z0-9._-]``, and not ``.`` or ``..``.
    """
    if not isinstance(name, str) or not name:
        raise TopicError(ErrorCode.INVALID_TOPIC, "topic name is empty")
    if name in (".", ".."):
        raise TopicError(ErrorCode.INVALID_TOPIC, f"topic name cannot be {name!r}")
    if len(name) > _MAX_NAME:
        raise TopicError(
            ErrorCode.INVALID_TOPIC, f"topic name is {len(name)} characters long; the limit is 249"
        )
    if not _LEGAL.match(name):
        raise TopicError(
            ErrorCode.INVALID_TOPIC,
            f"topic name {name!r} has characters other than ASCII letters, digits, '.', '_' and '-'",
        )


def _collision_key(name: str) -> str:
    # Kafka refuses names differing only by '.' vs '_' (they collide in metric names).
    return name.replace(".", "_")


# Seconds the opener of a new topic's logs pauses between partitions (see open_soon).
_OPEN_PAUSE_S = 0.001


class TopicManager:
    """The broker's topics and their partition logs under ``data_dir``.

    ``config`` supplies storage defaults, the auto-create policy and the default
    partition count. ``log_factory(directory, **kwargs)`` builds a log (default
    :class:`streamcore.storage.Log`); kwargs are those of ``Log``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        config: BrokerConfig,
        *,
        log_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config
        self._lock = threading.RLock()
        self._topics: dict[str, TopicInfo] = {}
        self._by_id: dict[uuid.UUID, str] = {}
        self._config_cache: dict[str, TopicConfig] = {}
        self._search_cache: dict[str, bool] = {}
        #: Called with the (key, log) pairs of a topic being deleted, before its logs close.
        self._deletion_listeners: list[Callable[[list[tuple[tuple[str, int], Any]]], None]] = []
        self._closed = False
        # Opens the logs of newly created topics off the event loop (open_soon); made
        # on first use.
        self._opener: ThreadPoolExecutor | None = None
        #: The partition logs (opening, retention, removal, closing).
        self.logs = LogManager(self.data_dir, log_factory=log_factory, on_damage=config.storage.on_damage)
        self._load()
        if TRANSACTION_STATE_TOPIC not in self._topics:
            self._create_locked(TRANSACTION_STATE_TOPIC, 1, dict(_TRANSACTION_STATE_CONFIGS), internal=True)
        if OFFSETS_TOPIC not in self._topics:
            self._create_locked(OFFSETS_TOPIC, 1, dict(_OFFSETS_CONFIGS), internal=True)
        elif "cleanup.policy" not in self._topics[OFFSETS_TOPIC].configs:
            # A data directory from before compaction: its offsets topic becomes compacted
            # as Kafka's is (the offset store reclaimed its space by snapshots until then).
            info = self._topics[OFFSETS_TOPIC]
            configs = {**info.configs, "cleanup.policy": "compact"}
            self._commit(
                {
                    **self._topics,
                    OFFSETS_TOPIC: TopicInfo(info.name, info.topic_id, info.partitions, configs, True),
                }
            )

    # ------------------------------------------------------------------ catalogue persistence

    def _load(self) -> None:
        path = self.data_dir / _CATALOGUE
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text("utf-8"))
            for name, entry in data["topics"].items():
                info = TopicInfo(
                    name=name,
                    topic_id=uuid.UUID(entry["topic_id"]),
                    partitions=int(entry["partitions"]),
                    configs=dict(entry.get("configs", {})),
                    internal=bool(entry.get("internal", False)),
                )
                self._topics[name] = info
                self._by_id[info.topic_id] = name
        except (ValueError, KeyError, TypeError) as exc:
            raise StreamcoreError(
                f"{path}: unreadable topic catalogue ({exc}); restore it or remove it"
            ) from exc

    def _commit(self, topics: dict[str, TopicInfo]) -> None:
        """Persist ``topics`` as the catalogue, then make it the live one.

        The order is the point: a topic must never be visible to clients (and
        acknowledge writes) unless the catalogue that makes it survive a restart is
        on disk. A failed write (disk full, read-only, out of descriptors) leaves
        memory and disk as they were and raises TopicError KAFKA_STORAGE_ERROR.
        """
        data = {
            "version": 1,
            "topics": {
                t.name: {
                    "topic_id": str(t.topic_id),
                    "partitions": t.partitions,
                    "configs": dict(t.configs),
                    "internal": t.internal,
                }
                for t in topics.values()
            },
        }
        path = self.data_dir / _CATALOGUE
        try:
            write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
        except OSError as exc:
            logger.error("writing the topic catalogue %s failed: %s", path, exc)
            raise TopicError(
                ErrorCode.KAFKA_STORAGE_ERROR, f"cannot write the topic catalogue {path}: {exc}"
            ) from exc
        self._topics = topics
        self._by_id = {info.topic_id: name for name, info in topics.items()}
        self._config_cache = {}
        self._search_cache = {}

    # ------------------------------------------------------------------ queries

    def get(self, name: str) -> TopicInfo | None:
        """The topic called ``name``, or None."""
        return self._topics.get(name)

    def get_by_id(self, topic_id: uuid.UUID) -> TopicInfo | None:
        """The topic with id ``topic_id``, or None."""
        name = self._by_id.get(topic_id)
        return self._topics.get(name) if name is not None else None

    def list_topics(self, *, include_internal: bool = False) -> list[TopicInfo]:
        """Every topic sorted by name; the internal offsets topic only when asked."""
        with self._lock:
            return sorted(
                (t for t in self._topics.values() if include_internal or not t.internal), key=lambda t: t.name
            )

    def topic_config(self, name: str) -> TopicConfig:
        """Effective settings of a topic (raises TopicError UNKNOWN_TOPIC_OR_PARTITION).

        Cached per catalogue version: the produce path asks for it on every batch.
        """
        # The cache is read before the catalogue: a commit in between replaces the whole
        # dict (after the catalogue), so a stale entry only lands in a discarded one.
        cache = self._config_cache
        cached = cache.get(name)
        if cached is not None:
            return cached
        info = self._require(name)
        cfg = TopicConfig(
            **{d.field: self._effective(info, key)[0] for key, d in TOPIC_CONFIGS.items() if d.field}
        )
        cache[name] = cfg
        return cfg

    def search_indexed(self, name: str) -> bool:
        """Whether the topic's records are indexed for search (its ``search.index``, else the
        broker's ``search.index_default``); False for internal and unknown topics.

        Cached per catalogue version: the indexer asks for every partition on every round.
        """
        cache = self._search_cache
        cached = cache.get(name)
        if cached is not None:
            return cached
        info = self._topics.get(name)
        indexed = info is not None and not info.internal and bool(self._effective(info, "search.index")[0])
        cache[name] = indexed
        return indexed

    def add_deletion_listener(self, listener: Callable[[list[tuple[tuple[str, int], Any]]], None]) -> None:
        """Call ``listener`` with the ((topic, partition), log) pairs of each topic being
        deleted, after the catalogue drops it and before its logs are closed and removed
        (the log is None for a partition not open). It runs under the manager's lock."""
        self._deletion_listeners.append(listener)

    def _inherited(self, key: str) -> tuple[Any, str | None, int]:
        # What a topic without an override gets: (parsed value, text, ConfigSource code).
        definition = ALL_TOPIC_CONFIGS[key]
        setting = definition.broker_setting
        if setting is None:
            if definition.default is None:
                return None, None, CONFIG_SOURCE_DEFAULT
            return definition.parse(definition.default), definition.default, CONFIG_SOURCE_DEFAULT
        value = self.config.get(setting)
        source = (
            CONFIG_SOURCE_DEFAULT if self.config.source(setting) == "default" else CONFIG_SOURCE_STATIC_BROKER
        )
        # Kafka writes booleans in lower case.
        return value, str(value).lower() if isinstance(value, bool) else str(value), source

    def _effective(self, info: TopicInfo, key: str) -> tuple[Any, str | None, int]:
        """(parsed value, value as text, ConfigSource code) of config ``key`` on topic ``info``."""
        if key in info.configs:
            text = info.configs[key]
            return ALL_TOPIC_CONFIGS[key].parse(text), text, CONFIG_SOURCE_TOPIC
        return self._inherited(key)

    def describe_configs(
        self, name: str, keys: list[str] | None = None, *, extensions: bool = False
    ) -> dict[str, ConfigEntry]:
        """DescribeConfigs for a topic: config name -> ConfigEntry; ``keys`` narrows the answer.

        Every public Kafka topic config is listed, sorted by name, with its synonyms as
        Kafka reports them: the topic's override (DYNAMIC_TOPIC_CONFIG), then the
        broker-wide value under Kafka's server property name (STATIC_BROKER_CONFIG when
        set in streamcore's settings, else DEFAULT_CONFIG). Unknown keys are left out
        (Kafka does the same). ``extensions`` adds streamcore's own configs
        (``search.index``) after Kafka's. Raises TopicError UNKNOWN_TOPIC_OR_PARTITION
        for an unknown topic.
        """
        info = self._require(name)
        out: dict[str, ConfigEntry] = {}
        names = [*DESCRIBED_CONFIG_NAMES, *(STREAMCORE_TOPIC_CONFIGS if extensions else ())]
        for key in names:
            if keys is not None and key not in keys:
                continue
            definition = ALL_TOPIC_CONFIGS[key]
            _, text, source = self._effective(info, key)
            synonyms: list[ConfigSynonym] = []
            if source == CONFIG_SOURCE_TOPIC:
                synonyms.append(ConfigSynonym(key, text or "", source))
            if definition.synonym is not None:
                _, inherited, inherited_source = self._inherited(key)
                if inherited_source != CONFIG_SOURCE_DEFAULT or definition.default_synonym:
                    synonyms.append(ConfigSynonym(definition.synonym, inherited or "", inherited_source))
            out[key] = ConfigEntry(
                text or "", source == CONFIG_SOURCE_DEFAULT, False, source, tuple(synonyms)
            )
        return out

    def _require(self, name: str) -> TopicInfo:
        info = self._topics.get(name)
        if info is None:
            raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
        return info

    # ------------------------------------------------------------------ changes

    def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        configs: Mapping[str, str | None] | None = None,
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        """Create a topic (CreateTopics). ``num_partitions`` -1 = topics.default_partitions.

        Raises TopicError: INVALID_TOPIC (name), TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS,
        INVALID_REPLICATION_FACTOR (anything but 1 or -1: single node), INVALID_CONFIG.
        ``validate_only`` checks everything and creates nothing.
        """
        validate_topic_name(name)
        # Kafka answers TOPIC_ALREADY_EXISTS before looking at counts or configs (Connect
        # re-creates its topics with configs at every start and relies on it).
        if name in self._topics:
            raise TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
        if replication_factor not in (-1, 1):
            raise TopicError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"replication factor {replication_factor} is not possible: streamcore is a single broker, "
                "use 1 (or -1 for the default)",
            )
        if num_partitions == -1:
            num_partitions = self.config.topics.default_partitions
        if not 1 <= num_partitions <= _MAX_PARTITIONS:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"number of partitions must be between 1 and {_MAX_PARTITIONS}, not {num_partitions}",
            )
        self.check_request_partitions(num_partitions)
        clean = check_topic_configs(configs or {})
        with self._lock:
            self._check_open()
            self._check_broker_partitions(num_partitions)
            if name in self._topics:
                raise TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
            key = _collision_key(name)
            for other in self._topics:
                if _collision_key(other) == key:
                    raise TopicError(
                        ErrorCode.INVALID_TOPIC,
                        f"topic {name!r} collides with existing topic {other!r} ('.' and '_' are treated alike)",
                    )
            if validate_only:
                return TopicInfo(name, uuid.UUID(int=0), num_partitions, clean)
            created = self._create_locked(name, num_partitions, clean)
            logger.info("created topic %s (%d partitions)", name, num_partitions)
            return created

    def partition_count(self) -> int:
        """Partitions of every topic together, internal ones included."""
        return sum(info.partitions for info in self._topics.values())

    def check_request_partitions(self, added: int) -> None:
        """Refuse a request that adds more than ``topics.max_partitions_per_request`` partitions.

        ``added`` is the sum over the request's topics (CreateTopics: each topic's count,
        -1 counted as ``topics.default_partitions``; CreatePartitions: each increase).
        Raises TopicError POLICY_VIOLATION, the code Kafka's controller answers for an
        excessively large request, so that one request cannot make the broker open
        thousands of logs at once.
        """
        limit = self.config.topics.max_partitions_per_request
        if added > limit:
            raise TopicError(
                ErrorCode.POLICY_VIOLATION,
                f"the request adds {added} partitions, more than topics.max_partitions_per_request "
                f"({limit}); split it into smaller requests or raise the setting",
            )

    def _check_broker_partitions(self, added: int) -> None:
        # Called with self._lock held so that two concurrent creations cannot both fit.
        limit = self.config.topics.max_partitions
        have = self.partition_count()
        if have + added > limit:
            raise TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"adding {added} partitions to the broker's {have} would pass topics.max_partitions "
                f"({limit}); delete topics or raise the setting",
            )

    def _create_locked(
        self, name: str, partitions: int, configs: dict[str, str], *, internal: bool = False
    ) -> TopicInfo:
        info = TopicInfo(name, uuid.uuid4(), partitions, configs, internal)
        self._commit({**self._topics, name: info})
        return info

    def ensure_topic(self, name: str) -> TopicInfo:
        """The topic ``name``, auto-creating it when the policy allows (Metadata/Produce path).

        Raises TopicError UNKNOWN_TOPIC_OR_PARTITION when it is missing and
        auto-creation is off, INVALID_TOPIC for an illegal name.
        """
        info = self._topics.get(name)
        if info is not None:
            return info
        if not self.config.topics.auto_create:
            raise TopicError(
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"topic {name!r} does not exist and topics.auto_create is off",
            )
        try:
            return self.create_topic(name)
        except TopicError as exc:
            if exc.error_code == ErrorCode.TOPIC_ALREADY_EXISTS.code:
                return self._require(name)
            raise

    def create_partitions(self, name: str, total: int, *, validate_only: bool = False) -> TopicInfo:
        """Grow a topic to ``total`` partitions (CreatePartitions); shrinking is INVALID_PARTITIONS."""
        with self._lock:
            self._check_open()
            info = self._require(name)
            if info.internal:
                raise TopicError(
                    ErrorCode.INVALID_PARTITIONS, f"{name} is internal; its partitions are fixed"
                )
            if total <= info.partitions or total > _MAX_PARTITIONS:
                raise TopicError(
                    ErrorCode.INVALID_PARTITIONS,
                    f"topic {name!r} has {info.partitions} partitions; the new count must be larger "
                    f"(and at most {_MAX_PARTITIONS}), not {total}",
                )
            self.check_request_partitions(total - info.partitions)
            self._check_broker_partitions(total - info.partitions)
            grown = TopicInfo(info.name, info.topic_id, total, info.configs, info.internal)
            if validate_only:
                return grown
            self._commit({**self._topics, name: grown})
            return grown

    def alter_configs(
        self,
        name: str,
        set_configs: Mapping[str, str | None],
        delete_keys: tuple[str, ...] | list[str] = (),
        *,
        replace: bool = False,
        validate_only: bool = False,
    ) -> TopicInfo:
        """Change per-topic configs: IncrementalAlterConfigs (set/delete) or AlterConfigs (``replace=True``).

        Open logs pick up new retention values at once; segment settings apply
        when a partition log is next opened. Raises TopicError INVALID_CONFIG /
        UNKNOWN_TOPIC_OR_PARTITION.
        """
        clean = check_topic_configs(set_configs, null_code=ErrorCode.INVALID_REQUEST)
        for key in delete_keys:
            if key not in ALL_TOPIC_CONFIGS:
                raise unknown_config(key)
        with self._lock:
            self._check_open()
            info = self._require(name)
            configs = {} if replace else dict(info.configs)
            for key in delete_keys:
                configs.pop(key, None)
            configs.update(clean)
            return self._replace_configs(info, configs, validate_only)

    def incremental_alter_configs(
        self,
        name: str,
        changes: list[tuple[str, int, str | None]] | tuple[tuple[str, int, str | None], ...],
        *,
        validate_only: bool = False,
    ) -> TopicInfo:
        """IncrementalAlterConfigs on a topic: ``changes`` are (config name, operation, value).

        Operations are Kafka's: 0 SET, 1 DELETE (back to the default), 2 APPEND and
        3 SUBTRACT (list configs only, applied to the effective value). They apply in
        order, the result is validated as a whole and, unless ``validate_only``,
        persisted in the catalogue before it takes effect. Raises TopicError
        INVALID_CONFIG, INVALID_REQUEST (a config named twice, an unknown operation) or
        UNKNOWN_TOPIC_OR_PARTITION.
        """
        names = [key for key, _, _ in changes]
        if len(set(names)) != len(names):
            raise TopicError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")
        with self._lock:
            self._check_open()
            info = self._require(name)
            configs = dict(info.configs)
            for key, op, value in changes:
                current = configs[key] if key in configs else None
                if current is None and key in ALL_TOPIC_CONFIGS:
                    current = self._effective(info, key)[1]
                changed = incremental_change(key, op, value, current or "")
                if changed is None:
                    configs.pop(key, None)
                else:
                    configs[key] = changed
            return self._replace_configs(
                info, check_topic_configs(configs, null_code=ErrorCode.INVALID_REQUEST), validate_only
            )

    def _replace_configs(self, info: TopicInfo, configs: dict[str, str], validate_only: bool) -> TopicInfo:
        # Caller holds the lock and has validated ``configs``.
        altered = TopicInfo(info.name, info.topic_id, info.partitions, configs, info.internal)
        if validate_only:
            return altered
        self._commit({**self._topics, info.name: altered})
        retention_ms, retention_bytes = self.topic_config(info.name).retention_limits
        self.logs.set_retention(
            [(info.name, p) for p in range(altered.partitions)], retention_ms, retention_bytes
        )
        if self.logs.cleaner is not None:
            self.logs.cleaner.wake()  # the policy or the cleaner's settings may have changed
        return altered

    def delete_topic(self, name: str) -> TopicInfo:
        """Delete a topic and its data (DeleteTopics).

        Its logs are closed, their directories renamed ``*-delete`` (so a crash
        mid-way cannot resurrect them) and removed. Raises TopicError
        UNKNOWN_TOPIC_OR_PARTITION, or INVALID_TOPIC for the internal topic.
        """
        with self._lock:
            self._check_open()
            info = self._require(name)
            if info.internal:
                raise TopicError(ErrorCode.INVALID_TOPIC, f"{name} is internal and cannot be deleted")
            # The catalogue goes first: if it cannot be written the topic stays whole.
            self._commit({k: v for k, v in self._topics.items() if k != name})
            keys = [(name, p) for p in range(info.partitions)]
            opened = [(key, self.logs.get(key)) for key in keys]
            for listener in self._deletion_listeners:
                try:
                    listener(opened)
                except Exception:  # a listener's failure must not leave the topic half deleted
                    logger.exception("a deletion listener failed for topic %s", name)
            self.logs.delete(keys, info.topic_id.hex)
            logger.info("deleted topic %s (%d partitions)", name, info.partitions)
            return info

    def delete_topic_by_id(self, topic_id: uuid.UUID) -> TopicInfo:
        """DeleteTopics v6+ by topic id; unknown ids raise TopicError UNKNOWN_TOPIC_ID."""
        name = self._by_id.get(topic_id)
        if name is None:
            raise TopicError(ErrorCode.UNKNOWN_TOPIC_ID, f"no topic has id {topic_id}")
        return self.delete_topic(name)

    # ------------------------------------------------------------------ logs

    def log(self, name: str, partition: int) -> Any:
        """The partition's Log, opened (and recovered) on first use.

        Raises TopicError UNKNOWN_TOPIC_OR_PARTITION for an unknown topic or partition,
        and TopicError KAFKA_STORAGE_ERROR for a partition that could not be opened (its
        data is damaged, or the disk failed; the log manager keeps it offline).
        """
        key = (name, partition)
        log = self.logs.get(key)
        if log is not None:
            return log
        with self._lock:
            self._check_open()
            log = self.logs.get(key)
            if log is not None:
                return log
            info = self._require(name)
            if not 0 <= partition < info.partitions:
                raise TopicError(
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                    f"topic {name!r} has partitions 0..{info.partitions - 1}, not {partition}",
                )
            return self._open_log(name, partition)

    def open_soon(self, name: str) -> Future[None] | None:
        """Open the partition logs of topic ``name`` on a worker thread, one at a time.

        Called after CreateTopics, as Kafka creates a partition's log when the topic
        is created rather than at its first write. Opening a new log costs a few
        milliseconds of file creation and fsyncs (about 2.5 ms on the development VM);
        done by the first Produce, it held the event loop, and with it every
        connection, that long per partition. A Produce that comes first opens the log
        itself, as before; a topic deleted meanwhile, or a closed manager, just stops
        the opening. Returns the opening's future (done once every earlier one is),
        or None when the manager is closed.
        """
        with self._lock:
            if self._closed:
                return None
            if self._opener is None:
                self._opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamcore-log-open")
            return self._opener.submit(self._open_partitions, name)

    def _open_partitions(self, name: str) -> None:
        info = self._topics.get(name)
        for partition in range(info.partitions if info is not None else 0):
            if partition:
                # Opening holds the manager's lock. Python's locks are not fair: opening
                # one partition after another, this thread took it back before a waiting
                # one (the event loop's CreateTopics, Metadata or first Produce) could,
                # for 50-150 ms with 100-200 partitions. A pause lets it in each time.
                time.sleep(_OPEN_PAUSE_S)
            try:
                self.log(name, partition)
            except TopicError:
                return  # deleted, closed, or offline (the log manager logged why)
            except Exception:
                # The first Produce will try again and answer the error.
                logger.exception("opening %s-%d after its creation failed", name, partition)
                return

    def _open_log(self, name: str, partition: int) -> Any:
        cfg = self.topic_config(name)
        retention_ms, retention_bytes = cfg.retention_limits
        storage = self.config.storage
        try:
            return self.logs.open(
                (name, partition),
                # The offset store reclaims the offsets topic's space itself.
                retention=name != OFFSETS_TOPIC,
                fsync=storage.fsync,
                fsync_interval_ms=storage.fsync_interval_ms,
                profile=storage.profile,
                segment_bytes=cfg.effective_segment_bytes,
                segment_ms=cfg.segment_ms,
                # Only a policy with delete lets time and size retention remove segments.
                retention_ms=retention_ms,
                retention_bytes=retention_bytes,
                # The broker's lock on the whole data directory covers its logs.
                lock=False,
            )
        except LogOfflineError as exc:
            raise TopicError(ErrorCode.KAFKA_STORAGE_ERROR, str(exc)) from exc

    def open_all(self) -> int:
        """Open every partition log now (e.g. at start, to recover before serving); returns the
        count opened.

        A partition that cannot be opened stays offline (the log manager logged why) and
        the others are opened; with ``storage.on_damage=refuse`` damaged data raises
        StorageError instead.
        """
        count = 0
        for info in self.list_topics(include_internal=True):
            for p in range(info.partitions):
                try:
                    self.log(info.name, p)
                except TopicError as exc:
                    if exc.error_code != ErrorCode.KAFKA_STORAGE_ERROR.code:
                        raise
                    continue
                count += 1
        return count

    def open_logs(self) -> list[tuple[tuple[str, int], Any]]:
        """Currently open logs as ((topic, partition), log) pairs."""
        return self.logs.items()

    def compaction_settings(self, key: tuple[str, int]) -> CompactionSettings | None:
        """The cleaner's settings for a partition, or None when its topic's policy has no compact
        (or the topic is gone)."""
        try:
            cfg = self.topic_config(key[0])
        except TopicError:
            return None
        if not cfg.compact:
            return None
        return CompactionSettings(
            delete_retention_ms=cfg.delete_retention_ms,
            min_cleanable_dirty_ratio=cfg.min_cleanable_dirty_ratio,
            min_compaction_lag_ms=cfg.min_compaction_lag_ms,
            max_compaction_lag_ms=cfg.max_compaction_lag_ms,
            segment_bytes=cfg.effective_segment_bytes,
        )

    def start_cleaner(self) -> None:
        """Start the log cleaner for compacted topics, with the broker's cleaner settings."""
        storage = self.config.storage
        if not storage.cleaner_enable:
            return
        rate = storage.cleaner_io_max_bytes_per_second
        self.logs.start_cleaner(
            self.compaction_settings,
            io_max_bytes_per_second=None if rate < 0 else float(rate),
            dedupe_buffer_bytes=storage.cleaner_dedupe_buffer_bytes,
            backoff_ms=storage.cleaner_backoff_ms,
        )

    def transaction_state_log(self) -> Any:
        """Partition 0 of ``__transaction_state``, for the transaction coordinator."""
        return self.log(TRANSACTION_STATE_TOPIC, 0)

    def offsets_log(self) -> Any:
        """Partition 0 of ``__consumer_offsets``, for the offset store."""
        return self.log(OFFSETS_TOPIC, 0)

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Apply each open user log's retention; returns segments deleted.

        The offsets topic is left alone: the offset store reclaims its space itself.
        A failing log is logged and skipped.
        """
        return self.logs.apply_retention(now_ms)

    def _check_open(self) -> None:
        if self._closed:
            raise TopicError(ErrorCode.KAFKA_STORAGE_ERROR, "the topic manager is closed")

    def close(self) -> None:
        """Close every open log (each drains, fsyncs and checkpoints); idempotent."""
        with self._lock:
            self._closed = True
            opener, self._opener = self._opener, None
        if opener is not None:
            # Logs still to open see the manager closed and stop.
            opener.shutdown(wait=True, cancel_futures=True)
        self.logs.close()

    def __enter__(self) -> TopicManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
