"""Metadata (3): brokers (this one), cluster id, controller (this one) and topics.

v0-v13. An empty topic list means "all topics" in v0, a null list in v1+. v1 adds
rack, controller id and is_internal; v2 the cluster id; v4 lets the client ask that
missing topics not be auto-created; v5 offline replicas; v7 leader epochs; v9 is
flexible; v10 topic ids (a request may name a topic by id only); v11 drops the
cluster-wide authorized operations.

A missing topic is created here when auto-creation is on and the request allows it,
and answered at once with its partitions (a single broker has nothing to wait for).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

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
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 3
REQUEST = MetadataRequest

_ZERO_UUID = bytes(16)
_UNKNOWN_TOPIC_ID = ErrorCode.UNKNOWN_TOPIC_ID.code
_STORAGE_ERROR = ErrorCode.KAFKA_STORAGE_ERROR.code


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
