"""Metadata (3): brokers (this one), cluster id, controller (this one) and topics.

v0-v13. An empty topic list means "all topics" in v0, a null list in v1+. v1 adds
rack, controller id and is_internal; v2 the cluster id; v4 lets the client ask that
missing topics not be auto-created; v5 offline replicas; v7 leader epochs; v9 is
flexible; v10 topic ids (a request may name a topic by id only); v11 drops the
cluster-wide authorized operations.

A missing topic is created here when auto-creation is on and the request allows it,
and answered at once with its partitions (a single broker has nothing to wait for).

With an authorizer (as Kafka): a list of all topics holds only those the sender may
DESCRIBE; a topic asked for by name without DESCRIBE is TOPIC_AUTHORIZATION_FAILED
whether it exists or not (by id: the id is echoed, the name is not); auto-creation
also needs CREATE on the cluster or the topic (TOPIC_AUTHORIZATION_FAILED otherwise);
v8+ fills in the authorized operations asked for.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType
from streamcore.broker.topics import TopicError, TopicInfo
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    MetadataRequest,
    MetadataResponse,
    MetadataResponse_MetadataResponseBroker,
    MetadataResponse_MetadataResponsePartition,
    MetadataResponse_MetadataResponseTopic,
)

if TYPE_CHECKING:
    from streamcore.broker.authorizer import AclAuthorizer
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 3
REQUEST = MetadataRequest

_ZERO_UUID = bytes(16)
_UNKNOWN_TOPIC_ID = ErrorCode.UNKNOWN_TOPIC_ID.code
_STORAGE_ERROR = ErrorCode.KAFKA_STORAGE_ERROR.code
_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_DESCRIBE = int(AclOperation.DESCRIBE)
_TOPIC = int(ResourceType.TOPIC)


def _topic_entry(
    state: BrokerState, info: TopicInfo, offline: set[tuple[str, int]]
) -> MetadataResponse_MetadataResponseTopic:
    node = state.node_id
    return MetadataResponse_MetadataResponseTopic(
        error_code=0,
        name=info.name,
        topic_id=info.topic_id.bytes,
        is_internal=info.internal,
        partitions=[
            # An offline partition (storage fault, damage) says so as Kafka does: its one
            # replica is offline and the error is retriable, so clients back off and retry
            # until the log manager brings it back.
            MetadataResponse_MetadataResponsePartition(
                error_code=_STORAGE_ERROR if (info.name, p) in offline else 0,
                partition_index=p,
                leader_id=node,
                leader_epoch=0,
                replica_nodes=[node],
                isr_nodes=[] if (info.name, p) in offline else [node],
                offline_replicas=[node] if (info.name, p) in offline else [],
            )
            for p in range(info.partitions)
        ],
    )


def handle(state: BrokerState, ctx: RequestContext, request: MetadataRequest) -> MetadataResponse:
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None:
        return _authorized(state, ctx, request, authorizer)
    version = ctx.api_version
    topics_mgr = state.topics
    wanted = request.topics
    offline = set(topics_mgr.logs.offline_partitions())
    if wanted is None or (version == 0 and not wanted):
        topics = [_topic_entry(state, info, offline) for info in topics_mgr.list_topics()]
    else:
        allow_create = request.allow_auto_topic_creation if version >= 4 else True
        topics = []
        for t in wanted:
            name = t.name
            if not name and version >= 10 and t.topic_id != _ZERO_UUID:
                info = topics_mgr.get_by_id(uuid.UUID(bytes=bytes(t.topic_id)))
                if info is None:
                    topics.append(
                        MetadataResponse_MetadataResponseTopic(
                            error_code=_UNKNOWN_TOPIC_ID, name=None, topic_id=t.topic_id
                        )
                    )
                    state.metrics.error(_UNKNOWN_TOPIC_ID)
                    continue
                topics.append(_topic_entry(state, info, offline))
                continue
            try:
                info = topics_mgr.ensure_topic(name) if allow_create else topics_mgr.get(name)
                if info is None:
                    raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {name!r}")
            except TopicError as exc:
                state.metrics.error(exc.error_code)
                topics.append(MetadataResponse_MetadataResponseTopic(error_code=exc.error_code, name=name))
                continue
            topics.append(_topic_entry(state, info, offline))
    return _response(state, topics)


def _response(state: BrokerState, topics: list[MetadataResponse_MetadataResponseTopic]) -> MetadataResponse:
    return MetadataResponse(
        brokers=[
            MetadataResponse_MetadataResponseBroker(
                node_id=state.node_id, host=state.advertised_host, port=state.advertised_port, rack=None
            )
        ],
        cluster_id=state.cluster_id,
        controller_id=state.node_id,
        topics=topics,
    )


def _denied(name: str | None, topic_id: bytes = _ZERO_UUID) -> MetadataResponse_MetadataResponseTopic:
    return MetadataResponse_MetadataResponseTopic(error_code=_DENIED, name=name, topic_id=topic_id)


def _authorized(
    state: BrokerState, ctx: RequestContext, request: MetadataRequest, authorizer: AclAuthorizer
) -> MetadataResponse:
    """handle() with an authorizer: only what the sender may DESCRIBE, creation with CREATE."""
    version = ctx.api_version
    topics_mgr = state.topics
    wanted = request.topics
    offline = set(topics_mgr.logs.offline_partitions())
    topics: list[MetadataResponse_MetadataResponseTopic] = []
    if wanted is None or (version == 0 and not wanted):
        for info in topics_mgr.list_topics():
            if authorizer.allows(ctx, _DESCRIBE, _TOPIC, info.name):
                topics.append(_topic_entry(state, info, offline))
    else:
        allow_create = (request.allow_auto_topic_creation if version >= 4 else True) and (
            state.config.topics.auto_create
        )
        for t in wanted:
            name = t.name
            if not name and version >= 10 and t.topic_id != _ZERO_UUID:
                found = topics_mgr.get_by_id(uuid.UUID(bytes=bytes(t.topic_id)))
                if found is None:
                    topics.append(
                        MetadataResponse_MetadataResponseTopic(
                            error_code=_UNKNOWN_TOPIC_ID, name=None, topic_id=t.topic_id
                        )
                    )
                elif not authorizer.allows(ctx, _DESCRIBE, _TOPIC, found.name):
                    # Topic ids are not secret; the name behind one is.
                    topics.append(_denied(None, t.topic_id))
                else:
                    topics.append(_topic_entry(state, found, offline))
                continue
            # Kafka does not say whether a topic the sender may not describe exists.
            if not authorizer.allows(ctx, _DESCRIBE, _TOPIC, name):
                topics.append(_denied(name))
                continue
            try:
                known = topics_mgr.get(name)
                if known is None and allow_create:
                    if not authorizer.may_create_topic(ctx, name):
                        topics.append(_denied(name))
                        continue
                    known = topics_mgr.ensure_topic(name)
                if known is None:
                    raise TopicError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {name!r}")
            except TopicError as exc:
                topics.append(MetadataResponse_MetadataResponseTopic(error_code=exc.error_code, name=name))
                continue
            topics.append(_topic_entry(state, known, offline))
    for entry in topics:
        if entry.error_code:
            state.metrics.error(entry.error_code)
    response = _response(state, topics)
    if version >= 8:
        if request.include_topic_authorized_operations:
            for entry in topics:
                if not entry.error_code:
                    entry.topic_authorized_operations = authorizer.authorized_operations(
                        ctx, _TOPIC, entry.name
                    )
        if version <= 10 and request.include_cluster_authorized_operations:
            response.cluster_authorized_operations = (
                authorizer.authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME)
                if authorizer.allows_cluster(ctx, _DESCRIBE)
                else 0
            )
    return response
