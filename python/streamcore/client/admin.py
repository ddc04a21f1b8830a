"""Asyncio admin client: topics, partitions, configs, groups, offsets and records.

Topic creation and deletion return once the metadata the client reads agrees.
Apache Kafka answers CreateTopics/DeleteTopics when its controller has committed
the change; each broker's metadata follows a moment later, so a topic just
created can be missing from a Metadata answer (and a deleted one still listed).
Code written against an immediately consistent broker (streamcore) would break on
Kafka in that window, so ``create_topics`` waits until Metadata shows each created
topic with a leader for every partition, and ``delete_topics`` until Metadata no
longer knows each deleted one, both bounded by the request's ``timeout_ms``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streamcore.client.cluster import Cluster, TopicInfo
from streamcore.client.config import build_config
from streamcore.client.errors import ConnectionLostError, broker_error
from streamcore.client.offsets import list_offsets
from streamcore.client.retrying import (
    Backoff,
    connection_failed,
    coordinator_moved,
    metadata_is_stale,
    retry_async,
)
from streamcore.client.types import OffsetAndMetadata, TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    AlterConfigsRequest,
    AlterConfigsRequest_AlterableConfig,
    AlterConfigsRequest_AlterConfigsResource,
    ConsumerProtocolAssignment,
    CreatePartitionsRequest,
    CreatePartitionsRequest_CreatePartitionsTopic,
    CreateTopicsRequest,
    CreateTopicsRequest_CreatableTopic,
    CreateTopicsRequest_CreatableTopicConfig,
    DeleteGroupsRequest,
    DeleteRecordsRequest,
    DeleteRecordsRequest_DeleteRecordsPartition,
    DeleteRecordsRequest_DeleteRecordsTopic,
    DeleteTopicsRequest,
    DeleteTopicsRequest_DeleteTopicState,
    DescribeConfigsRequest,
    DescribeConfigsRequest_DescribeConfigsResource,
    DescribeGroupsRequest,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsRequest_AlterableConfig,
    IncrementalAlterConfigsRequest_AlterConfigsResource,
    ListGroupsRequest,
    OffsetCommitRequest,
    OffsetCommitRequest_OffsetCommitRequestPartition,
    OffsetCommitRequest_OffsetCommitRequestTopic,
    OffsetFetchRequest,
    OffsetFetchRequest_OffsetFetchRequestTopic,
)

__all__ = [
    "NewTopic",
    "GroupMember",
    "GroupDescription",
    "AdminClient",
    "ConfigResource",
    "ConfigEntry",
    "ConfigOp",
    "AlterConfig",
    "RESOURCE_TOPIC",
    "RESOURCE_BROKER",
]

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4

#: Kafka's ConfigSource numbers (DescribeConfigs v1+) by name.
CONFIG_SOURCES = {
    0: "UNKNOWN",
    1: "DYNAMIC_TOPIC_CONFIG",
    2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG",
    4: "STATIC_BROKER_CONFIG",
    5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG",
    7: "CLIENT_METRICS_CONFIG",
    8: "GROUP_CONFIG",
}


class ConfigResource(NamedTuple):
    """A resource that has configs: ``type`` RESOURCE_TOPIC (2) or RESOURCE_BROKER (4), and its name.

    Equal to the plain ``(type, name)`` tuples ``describe_configs`` uses as keys.
    """

    type: int
    name: str


@dataclass
class ConfigEntry:
    """One config of a resource as DescribeConfigs reports it.

    ``source`` is Kafka's ConfigSource name (``DYNAMIC_TOPIC_CONFIG`` for a value
    set on the topic, ``DEFAULT_CONFIG`` or ``STATIC_BROKER_CONFIG`` for one it
    inherits); ``value`` is None for sensitive configs.
    """

    name: str
    value: str | None
    source: str
    is_default: bool
    read_only: bool
    is_sensitive: bool


class ConfigOp(enum.IntEnum):
    """IncrementalAlterConfigs operations; APPEND and SUBTRACT apply to list-valued configs only."""

    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


@dataclass
class AlterConfig:
    """One change of ``incremental_alter_configs``: ``op`` on config ``name`` with ``value``.

    DELETE takes no value and restores the config's default.
    """

    name: str
    value: str | None = None
    op: ConfigOp = ConfigOp.SET


@dataclass
class NewTopic:
    """A topic to create: ``num_partitions`` (-1 = broker default), ``config`` as name -> value."""

    name: str
    num_partitions: int = 1
    replication_factor: int = 1
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class GroupMember:
    """A member of a described group; ``assignment`` as TopicPartitions (consumer groups)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: list[TopicPartition]


@dataclass
class GroupDescription:
    """DescribeGroups answer for one group."""

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[GroupMember]
    error: KafkaError | None = None


def _assignment_partitions(raw: bytes | None) -> list[TopicPartition]:
    if not raw or len(raw) < 2:
        return []
    version = min(int.from_bytes(raw[:2], "big", signed=True), ConsumerProtocolAssignment.MAX_VERSION)
    try:
        a = ConsumerProtocolAssignment.decode(memoryview(raw)[2:], max(version, 0))
    except Exception:
        return []  # not a consumer-protocol group: nothing to show
    return [TopicPartition(t.topic, p) for t in a.assigned_partitions for p in t.partitions]


class AdminClient:
    """Manage topics and inspect groups (asyncio).

    >>> async with AdminClient("127.0.0.1:9092") as admin:   # doctest: +SKIP
    ...     await admin.create_topic("events", num_partitions=3)
    """

    def __init__(
        self,
        bootstrap_servers: str | list[str] | None = None,
        config: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        self.config = build_config("admin", bootstrap_servers, config, settings)
        # An admin client looks topics up; it never creates one by asking about it.
        self.cluster = Cluster(self.config, auto_create_topics=False)
        self._backoff = Backoff(self.config.retry_backoff_ms, self.config.retry_backoff_max_ms)

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        self.cluster.close()

    async def _controller(self) -> int | None:
        if self.cluster.controller_id < 0:
            await self.cluster.refresh()
        return self.cluster.controller_id if self.cluster.controller_id >= 0 else None

    def _timeout_ms(self, timeout_ms: int | None) -> int:
        return self.config.request_timeout_ms if timeout_ms is None else timeout_ms

    async def _await_metadata(self, want: Mapping[str, int | None], timeout_s: float) -> None:
        """Refresh metadata until it agrees with ``want``, for at most ``timeout_s`` seconds.

        ``want`` maps a topic to its partition count (-1: any count) once created,
        or to None once deleted. Returns quietly at the deadline: the broker did
        make the change, only its metadata has not caught up yet.
        """
        if not want:
            return
        deadline = time.monotonic() + timeout_s
        attempt = 0
        while True:
            try:
                await self.cluster.refresh(list(want))
            except (ConnectionLostError, OSError):
                pass  # try again until the deadline
            else:
                if all(self._metadata_agrees(t, n) for t, n in want.items()):
                    return
            delay = self._backoff.delay_ms(attempt) / 1000.0
            attempt += 1
            if time.monotonic() + delay >= deadline:
                return
            await asyncio.sleep(delay)

    def _metadata_agrees(self, topic: str, partitions: int | None) -> bool:
        info = self.cluster.topics.get(topic)
        if partitions is None:
            return info is None or info.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
        if info is None or info.error_code or not info.leaders:
            return False
        if any(v < 0 for v in info.leaders.values()):
            return False
        return partitions < 0 or len(info.leaders) == partitions

    # ------------------------------------------------------------------ topics

    async def create_topics(
        self, topics: Iterable[NewTopic], *, timeout_ms: int | None = None, validate_only: bool = False
    ) -> dict[str, KafkaError | None]:
        """Create ``topics``; returns name -> None (created) or the KafkaError the broker gave.

        Returns once Metadata shows each created topic with a leader for every
        partition, or after ``timeout_ms`` (default request_timeout_ms).
        """
        topics = list(topics)
        creatable = [
            CreateTopicsRequest_CreatableTopic(
                name=t.name,
                num_partitions=t.num_partitions,
                replication_factor=t.replication_factor,
                configs=[
                    CreateTopicsRequest_CreatableTopicConfig(name=k, value=str(v))
                    for k, v in t.config.items()
                ],
            )
            for t in topics
        ]
        req = CreateTopicsRequest(
            topics=creatable, timeout_ms=self._timeout_ms(timeout_ms), validate_only=validate_only
        )
        resp = await self.cluster.request_node(await self._controller(), req)
        out: dict[str, KafkaError | None] = {}
        for r in resp.topics:
            out[r.name] = broker_error(r.error_code, r.error_message or "") if r.error_code else None
        if not validate_only:
            counts = {t.name: t.num_partitions for t in topics}
            created = {n: counts.get(n, -1) for n, err in out.items() if err is None}
            await self._await_metadata(created, self._timeout_ms(timeout_ms) / 1000.0)
        return out

    async def create_topic(
        self,
        name: str,
        num_partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create one topic; raises KafkaError (e.g. TOPIC_ALREADY_EXISTS) on failure."""
        res = await self.create_topics(
            [NewTopic(name, num_partitions, replication_factor, dict(config or {}))]
        )
        err = res.get(name)
        if err is not None:
            raise err

    async def delete_topics(
        self, names: Iterable[str], *, timeout_ms: int | None = None
    ) -> dict[str, KafkaError | None]:
        """Delete topics by name; returns name -> None (deleted) or the KafkaError the broker gave.

        Returns once Metadata no longer knows each deleted topic, or after
        ``timeout_ms`` (default request_timeout_ms).
        """
        names = list(names)
        conn = await self.cluster.any_connection()
        ctrl = await self._controller()
        if ctrl is not None:
            conn = await self.cluster.connection(ctrl)
        version = conn.version_for(DeleteTopicsRequest)
        if version >= 6:
            req = DeleteTopicsRequest(
                topics=[DeleteTopicsRequest_DeleteTopicState(name=n) for n in names],
                timeout_ms=self._timeout_ms(timeout_ms),
            )
        else:
            req = DeleteTopicsRequest(topic_names=names, timeout_ms=self._timeout_ms(timeout_ms))
        resp = await conn.request(req, version)
        out: dict[str, KafkaError | None] = {}
        for r in resp.responses:
            out[r.name] = (
                broker_error(r.error_code, getattr(r, "error_message", None) or "") if r.error_code else None
            )
        deleted = {n: None for n, err in out.items() if err is None}
        await self._await_metadata(deleted, self._timeout_ms(timeout_ms) / 1000.0)
        self.cluster.forget_topics(set(deleted))
        return out

    async def create_partitions(
        self, new_counts: Mapping[str, int], *, timeout_ms: int | None = None, validate_only: bool = False
    ) -> dict[str, KafkaError | None]:
        """Grow topics to ``new_counts`` partitions (topic -> new total count).

        Returns topic -> None (grown) or the KafkaError the broker gave, e.g.
        INVALID_PARTITIONS for a count not above the current one. Like
        ``create_topics``, returns once Metadata shows the new partitions with
        leaders, or after ``timeout_ms`` (default request_timeout_ms).
        """
        counts = {t: int(n) for t, n in new_counts.items()}
        if not counts:
            return {}
        req = CreatePartitionsRequest(
            topics=[
                CreatePartitionsRequest_CreatePartitionsTopic(name=t, count=n, assignments=None)
                for t, n in counts.items()
            ],
            timeout_ms=self._timeout_ms(timeout_ms),
            validate_only=validate_only,
        )
        resp = await self.cluster.request_node(await self._controller(), req)
        out: dict[str, KafkaError | None] = {
            r.name: broker_error(r.error_code, r.error_message or r.name) if r.error_code else None
            for r in resp.results
        }
        if not validate_only:
            grown = {t: counts[t] for t, err in out.items() if err is None and t in counts}
            await self._await_metadata(grown, self._timeout_ms(timeout_ms) / 1000.0)
        return out

    async def delete_records(
        self, before: Mapping[TopicPartition, int], *, timeout_ms: int | None = None
    ) -> dict[TopicPartition, int]:
        """Delete the records of each partition below an offset (DeleteRecords, sent to each leader).

        ``before`` maps a partition to the first offset to keep; -1 means the high
        watermark (delete everything). Returns each partition's new log start offset
        (low watermark). Raises the first KafkaError a partition got (e.g.
        OFFSET_OUT_OF_RANGE for an offset above the high watermark); leader moves
        are retried with fresh metadata within ``request_timeout_ms``.
        """
        wanted = {tp: int(o) for tp, o in before.items()}
        topics = sorted({tp.topic for tp in wanted})
        for t in topics:
            await self.cluster.wait_for_partitions(t, self.config.request_timeout_ms / 1000.0)
        done: dict[TopicPartition, int] = {}

        async def attempt() -> dict[TopicPartition, int]:
            by_leader: dict[int | None, dict[str, list[DeleteRecordsRequest_DeleteRecordsPartition]]] = {}
            for tp, offset in wanted.items():
                if tp in done:
                    continue
                leader = self.cluster.leader_for(tp.topic, tp.partition)
                if leader is None:
                    raise broker_error(ErrorCode.LEADER_NOT_AVAILABLE.code, f"{tp.topic}-{tp.partition}")
                by_leader.setdefault(leader, defaultdict(list))[tp.topic].append(
                    DeleteRecordsRequest_DeleteRecordsPartition(partition_index=tp.partition, offset=offset)
                )
            first: KafkaError | None = None
            for leader, by_topic in by_leader.items():
                req = DeleteRecordsRequest(
                    topics=[
                        DeleteRecordsRequest_DeleteRecordsTopic(name=t, partitions=ps)
                        for t, ps in by_topic.items()
                    ],
                    timeout_ms=self._timeout_ms(timeout_ms),
                )
                resp = await self.cluster.request_node(leader, req)
                for t in resp.topics:
                    for p in t.partitions:
                        if p.error_code:
                            first = first or broker_error(
                                p.error_code, f"DeleteRecords {t.name}-{p.partition_index}"
                            )
                        else:
                            done[TopicPartition(t.name, p.partition_index)] = p.low_watermark
            if first is not None:
                raise first
            return done

        async def refresh(_exc: BaseException) -> None:
            await self.cluster.refresh(topics)

        deadline = time.monotonic() + self.config.request_timeout_ms / 1000.0
        return await retry_async(
            attempt,
            self._backoff,
            deadline,
            retriable=lambda e: metadata_is_stale(e) or connection_failed(e),
            on_error=refresh,
        )

    async def list_topics(self, *, include_internal: bool = False) -> dict[str, TopicInfo]:
        """Every topic the cluster has: name -> TopicInfo (partition -> leader)."""
        await self.cluster.refresh(all_topics=True)
        return {
            n: t
            for n, t in self.cluster.topics.items()
            if not t.error_code and (include_internal or not t.is_internal)
        }

    async def describe_topics(self, names: Iterable[str]) -> dict[str, TopicInfo]:
        """Metadata of ``names``: name -> TopicInfo; a missing topic raises KafkaError."""
        names = list(names)
        await self.cluster.refresh(names)
        out = {}
        for n in names:
            info = self.cluster.topics.get(n)
            if info is None or info.error_code:
                raise broker_error(info.error_code if info else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code, n)
            out[n] = info
        return out

    async def wait_for_topic(self, topic: str, timeout: float = 30.0) -> TopicInfo:
        """Wait until ``topic`` exists with leaders for every partition, up to ``timeout`` seconds.

        Retries with the client's backoff policy while the topic is missing or
        leaderless; raises TimeoutError when it does not appear in time. Does not
        create the topic.
        """

        async def attempt() -> TopicInfo:
            info = (await self.describe_topics([topic]))[topic]
            if not info.leaders or any(v < 0 for v in info.leaders.values()):
                raise broker_error(ErrorCode.LEADER_NOT_AVAILABLE.code, topic)
            return info

        def retriable(exc: BaseException) -> bool:
            return metadata_is_stale(exc) or connection_failed(exc)

        deadline = time.monotonic() + timeout
        try:
            return await retry_async(attempt, self._backoff, deadline, retriable=retriable)
        except KafkaError as exc:
            if retriable(exc):
                raise TimeoutError(f"topic {topic!r} did not appear within {timeout:g} s ({exc})") from exc
            raise

    # ------------------------------------------------------------------ configs

    async def describe_configs(
        self, topics: Iterable[str] = (), brokers: Iterable[int] = ()
    ) -> dict[tuple[int, str], dict[str, str | None]]:
        """Configs of ``topics`` and broker ids: (resource type, name) -> {config: value}.

        Resource types are RESOURCE_TOPIC (2) and RESOURCE_BROKER (4).
        """
        resources = [
            DescribeConfigsRequest_DescribeConfigsResource(
                resource_type=RESOURCE_TOPIC, resource_name=t, configuration_keys=None
            )
            for t in topics
        ]
        resources += [
            DescribeConfigsRequest_DescribeConfigsResource(
                resource_type=RESOURCE_BROKER, resource_name=str(b), configuration_keys=None
            )
            for b in brokers
        ]
        resp = await self.cluster.request_node(None, DescribeConfigsRequest(resources=resources))
        out: dict[tuple[int, str], dict[str, str | None]] = {}
        for r in resp.results:
            if r.error_code:
                raise broker_error(r.error_code, r.error_message or r.resource_name)
            out[(r.resource_type, r.resource_name)] = {c.name: c.value for c in r.configs}
        return out

    async def describe_config_entries(
        self, resources: Iterable[tuple[int, str]]
    ) -> dict[ConfigResource, dict[str, ConfigEntry]]:
        """Every config of each resource with its source: ConfigResource -> {name: ConfigEntry}.

        ``resources`` are ``(RESOURCE_TOPIC, topic)`` or ``(RESOURCE_BROKER, "broker id")``
        pairs. An unknown topic raises KafkaError(UNKNOWN_TOPIC_OR_PARTITION).
        """
        wanted = [ConfigResource(int(t), str(n)) for t, n in resources]
        req = DescribeConfigsRequest(
            resources=[
                DescribeConfigsRequest_DescribeConfigsResource(
                    resource_type=r.type, resource_name=r.name, configuration_keys=None
                )
                for r in wanted
            ]
        )
        resp = await self.cluster.request_node(None, req)
        out: dict[ConfigResource, dict[str, ConfigEntry]] = {}
        for r in resp.results:
            if r.error_code:
                raise broker_error(r.error_code, r.error_message or r.resource_name)
            out[ConfigResource(r.resource_type, r.resource_name)] = {
                c.name: ConfigEntry(
                    c.name,
                    c.value,
                    CONFIG_SOURCES.get(c.config_source, "UNKNOWN"),
                    bool(c.is_default) or c.config_source == 5,
                    bool(c.read_only),
                    bool(c.is_sensitive),
                )
                for c in r.configs
            }
        return out

    @staticmethod
    def _config_node(resource: ConfigResource) -> int | None:
        # A broker's own configs are altered on that broker; topic configs on any (Kafka
        # forwards them to its controller).
        if resource.type == RESOURCE_BROKER and resource.name.strip().lstrip("-").isdigit():
            return int(resource.name)
        return None

    async def _alter(
        self, resources: list[ConfigResource], make: Any
    ) -> dict[ConfigResource, KafkaError | None]:
        by_node: dict[int | None, list[ConfigResource]] = defaultdict(list)
        for r in resources:
            by_node[self._config_node(r)].append(r)
        out: dict[ConfigResource, KafkaError | None] = {}
        for node, rs in by_node.items():
            if node is not None and not self.cluster.brokers:
                await self.cluster.refresh()
            resp = await self.cluster.request_node(node, make(rs))
            for r in resp.responses:
                key = ConfigResource(r.resource_type, r.resource_name)
                out[key] = (
                    broker_error(r.error_code, r.error_message or r.resource_name) if r.error_code else None
                )
        return out

    async def alter_configs(
        self, configs: Mapping[tuple[int, str], Mapping[str, str | None]], *, validate_only: bool = False
    ) -> dict[ConfigResource, KafkaError | None]:
        """Replace the configs of each resource (AlterConfigs): ``(type, name) -> {config: value}``.

        As in Kafka, this is not a merge: configs of the resource left out of the
        mapping return to their defaults. Prefer ``incremental_alter_configs``.
        Returns ConfigResource -> None (altered) or the KafkaError the broker gave
        (INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION ...). ``validate_only`` checks
        without changing anything.
        """
        wanted = {ConfigResource(int(t), str(n)): dict(v) for (t, n), v in configs.items()}

        def make(rs: list[ConfigResource]) -> AlterConfigsRequest:
            return AlterConfigsRequest(
                resources=[
                    AlterConfigsRequest_AlterConfigsResource(
                        resource_type=r.type,
                        resource_name=r.name,
                        configs=[
                            AlterConfigsRequest_AlterableConfig(name=k, value=v) for k, v in wanted[r].items()
                        ],
                    )
                    for r in rs
                ],
                validate_only=validate_only,
            )

        return await self._alter(list(wanted), make)

    async def incremental_alter_configs(
        self, changes: Mapping[tuple[int, str], Iterable[AlterConfig]], *, validate_only: bool = False
    ) -> dict[ConfigResource, KafkaError | None]:
        """Apply SET/DELETE/APPEND/SUBTRACT changes to configs (IncrementalAlterConfigs).

        ``changes`` maps ``(type, name)`` to AlterConfig items; configs not named keep
        their values. Returns ConfigResource -> None (altered) or the KafkaError the
        broker gave. ``validate_only`` checks without changing anything.
        """
        wanted = {ConfigResource(int(t), str(n)): list(v) for (t, n), v in changes.items()}

        def make(rs: list[ConfigResource]) -> IncrementalAlterConfigsRequest:
            return IncrementalAlterConfigsRequest(
                resources=[
                    IncrementalAlterConfigsRequest_AlterConfigsResource(
                        resource_type=r.type,
                        resource_name=r.name,
                        configs=[
                            IncrementalAlterConfigsRequest_AlterableConfig(
                                name=c.name, config_operation=int(c.op), value=c.value
                            )
                            for c in wanted[r]
                        ],
                    )
                    for r in rs
                ],
                validate_only=validate_only,
            )

        return await self._alter(list(wanted), make)

    # ------------------------------------------------------------------ groups

    async def list_groups(self) -> list[tuple[str, str, str]]:
        """Groups on every broker: (group_id, protocol_type, state) sorted by group id."""
        if not self.cluster.brokers:
            await self.cluster.refresh()
        out = []
        for node in self.cluster.brokers or [None]:
            resp = await self.cluster.request_node(node, ListGroupsRequest())
            if resp.error_code:
                raise broker_error(resp.error_code, "ListGroups")
            out += [(g.group_id, g.protocol_type, getattr(g, "group_state", "") or "") for g in resp.groups]
        return sorted(set(out))

    async def describe_groups(self, group_ids: Iterable[str]) -> list[GroupDescription]:
        """State, protocol and members (with their assignments) of each group."""
        out = []
        for gid in group_ids:
            node = await self.cluster.coordinator(gid)
            resp = await self.cluster.request_node(node, DescribeGroupsRequest(groups=[gid]))
            for g in resp.groups:
                members = [
                    GroupMember(
                        m.member_id,
                        m.group_instance_id,
                        m.client_id,
                        m.client_host,
                        _assignment_partitions(m.member_assignment),
                    )
                    for m in g.members
                ]
                err = broker_error(g.error_code, g.group_id) if g.error_code else None
                out.append(
                    GroupDescription(
                        g.group_id, g.group_state, g.protocol_type, g.protocol_data, members, err
                    )
                )
        return out

    async def _coordinator_call(self, group_id: str, call: Any) -> Any:
        """Await ``call(node)`` against ``group_id``'s coordinator, finding it again when it moved.

        Retries coordinator moves, a coordinator still loading and lost connections
        with the client's backoff, for up to ``request_timeout_ms``.
        """

        async def attempt() -> Any:
            node = await self.cluster.coordinator(group_id)
            try:
                return await call(node)
            except Exception as exc:
                if coordinator_moved(exc) or connection_failed(exc):
                    self.cluster.forget_coordinator(group_id)
                raise

        def retriable(exc: BaseException) -> bool:
            return coordinator_moved(exc) or connection_failed(exc)

        deadline = time.monotonic() + self.config.request_timeout_ms / 1000.0
        return await retry_async(attempt, self._backoff, deadline, retriable=retriable)

    async def delete_groups(self, group_ids: Iterable[str]) -> dict[str, KafkaError | None]:
        """Delete consumer groups and their committed offsets (DeleteGroups, sent to each coordinator).

        Only groups without members can be deleted. Returns group id -> None
        (deleted) or the KafkaError the broker gave: NON_EMPTY_GROUP while the group
        has members, GROUP_ID_NOT_FOUND for a group the broker does not know.
        """
        out: dict[str, KafkaError | None] = {}
        for gid in dict.fromkeys(group_ids):

            async def call(node: int, gid: str = gid) -> KafkaError | None:
                resp = await self.cluster.request_node(node, DeleteGroupsRequest(groups_names=[gid]))
                for r in resp.results:
                    if r.group_id == gid and r.error_code:
                        err = broker_error(r.error_code, f"DeleteGroups (group {gid!r})")
                        if coordinator_moved(err):
                            raise err
                        return err
                return None

            out[gid] = await self._coordinator_call(gid, call)
        return out

    async def list_consumer_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """Committed offsets of ``group_id`` (OffsetFetch): TopicPartition -> OffsetAndMetadata.

        ``partitions`` None asks for every partition the group committed. Partitions
        without a committed offset are left out. A group that does not exist has no
        offsets (an empty dict), as on Kafka.
        """
        wanted = None if partitions is None else list(partitions)
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in wanted or ():
            by_topic[tp.topic].append(tp.partition)

        async def call(node: int) -> Any:
            conn = await self.cluster.connection(node)
            version = conn.version_for(OffsetFetchRequest)
            if wanted is None and version < 2:
                raise KafkaError(ErrorCode.UNSUPPORTED_VERSION, "OffsetFetch of every topic needs v2+")
            req = OffsetFetchRequest(
                group_id=group_id,
                topics=None
                if wanted is None
                else [
                    OffsetFetchRequest_OffsetFetchRequestTopic(name=t, partition_indexes=ps)
                    for t, ps in by_topic.items()
                ],
                require_stable=False,
            )
            resp = await conn.request(req, version)
            code = getattr(resp, "error_code", 0)
            if code:
                raise broker_error(code, f"OffsetFetch (group {group_id!r})")
            return resp

        resp = await self._coordinator_call(group_id, call)
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for t in resp.topics:
            for p in t.partitions:
                if p.error_code:
                    raise broker_error(
                        p.error_code, f"OffsetFetch {t.name}-{p.partition_index} (group {group_id!r})"
                    )
                if p.committed_offset >= 0:
                    out[TopicPartition(t.name, p.partition_index)] = OffsetAndMetadata(
                        p.committed_offset, p.metadata or ""
                    )
        return out

    async def alter_consumer_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetAndMetadata | int]
    ) -> dict[TopicPartition, KafkaError | None]:
        """Commit ``offsets`` for ``group_id`` as an admin (OffsetCommit without membership).

        Offsets are the next offset to consume. Brokers accept this only while the
        group has no members (Kafka answers UNKNOWN_MEMBER_ID for an active group).
        Returns TopicPartition -> None (committed) or the KafkaError the broker gave.
        """
        by_topic: dict[str, list[OffsetCommitRequest_OffsetCommitRequestPartition]] = defaultdict(list)
        for tp, om in offsets.items():
            om = om if isinstance(om, OffsetAndMetadata) else OffsetAndMetadata(int(om))
            by_topic[tp.topic].append(
                OffsetCommitRequest_OffsetCommitRequestPartition(
                    partition_index=tp.partition,
                    committed_offset=om.offset,
                    committed_leader_epoch=-1,
                    commit_timestamp=-1,
                    committed_metadata=om.metadata,
                )
            )
        if not by_topic:
            return {}
        req = OffsetCommitRequest(
            group_id=group_id,
            generation_id_or_member_epoch=-1,
            member_id="",
            group_instance_id=None,
            retention_time_ms=-1,
            topics=[
                OffsetCommitRequest_OffsetCommitRequestTopic(name=t, partitions=ps)
                for t, ps in by_topic.items()
            ],
        )

        async def call(node: int) -> Any:
            resp = await self.cluster.request_node(node, req)
            for t in resp.topics:
                for p in t.partitions:
                    if p.error_code:
                        err = broker_error(p.error_code, f"OffsetCommit (group {group_id!r})")
                        if coordinator_moved(err):
                            raise err
            return resp

        resp = await self._coordinator_call(group_id, call)
        return {
            TopicPartition(t.name, p.partition_index): (
                broker_error(p.error_code, f"OffsetCommit {t.name}-{p.partition_index} (group {group_id!r})")
                if p.error_code
                else None
            )
            for t in resp.topics
            for p in t.partitions
        }

    # ------------------------------------------------------------------ offsets

    async def list_offsets(
        self, specs: Mapping[TopicPartition, int | str], *, isolation_level: int = 0
    ) -> dict[TopicPartition, int]:
        """Offsets per partition: spec "earliest" (-2), "latest" (-1) or a timestamp in ms.

        One ListOffsets request per leader broker. For a timestamp the answer is the
        first offset at or after it (-1 if none).
        """
        named = {"earliest": -2, "latest": -1}
        resolved: dict[TopicPartition, int] = {}
        for tp, v in specs.items():
            if isinstance(v, str):
                if v not in named:
                    raise ValueError(f"offset spec {v!r}: expected 'earliest', 'latest' or a timestamp (ms)")
                resolved[tp] = named[v]
            else:
                resolved[tp] = v
        topics = {tp.topic for tp in resolved}
        for t in topics:
            await self.cluster.wait_for_partitions(t, self.config.request_timeout_ms / 1000.0)
        deadline = time.monotonic() + self.config.request_timeout_ms / 1000.0

        async def attempt() -> dict[TopicPartition, int]:
            result, errors = await list_offsets(self.cluster, resolved, isolation_level)
            if errors:
                await self.cluster.refresh(list(topics))
                raise next(iter(errors.values()))
            return result

        return await retry_async(attempt, self._backoff, deadline)
