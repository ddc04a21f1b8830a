"""CreateTopics (19): create topics with partition counts and configs.

Advertised v2-v7 (the spec's floor). v4 lets num_partitions / replication_factor be
-1 (broker defaults); v5 is flexible and returns the configs and counts; v7 topic ids.
Replication factors other than 1 (or -1) are refused with INVALID_REPLICATION_FACTOR
and a message saying why: this is one broker. Manual replica assignments are refused
the same way unless they name only this broker.

A topic that exists is TOPIC_ALREADY_EXISTS before its counts or configs are looked at,
as in Kafka (Kafka Connect re-creates its topics, with configs, at every start). Configs
are checked against every topic config Kafka defines (``broker.topic_configs``); v5+
answers with all of them, sorted by name, with their sources.

With an authorizer (as Kafka): creating needs CREATE on the cluster or on the topic
(TOPIC_AUTHORIZATION_FAILED "Authorization failed." otherwise); a created topic's
configs are returned only to a sender with DESCRIBE_CONFIGS on it (otherwise
topic_config_error_code is TOPIC_AUTHORIZATION_FAILED and the list is empty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    CreateTopicsRequest,
    CreateTopicsResponse,
    CreateTopicsResponse_CreatableTopicConfigs,
    CreateTopicsResponse_CreatableTopicResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 19
REQUEST = CreateTopicsRequest


def handle(state: BrokerState, ctx: RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse:
    version = ctx.api_version
    results = []
    authorizer = getattr(state, "authorizer", None)
    for t in request.topics:
        result = CreateTopicsResponse_CreatableTopicResult(name=t.name, error_message=None)
        results.append(result)
        if authorizer is not None and not authorizer.may_create_topic(ctx, t.name):
            result.error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
            result.error_message = "Authorization failed."
            state.metrics.error(result.error_code)
            continue
        partitions, rf = t.num_partitions, t.replication_factor
        if t.assignments:
            nodes = {b for a in t.assignments for b in a.broker_ids}
            if nodes - {state.node_id} or any(len(a.broker_ids) != 1 for a in t.assignments):
                result.error_code = ErrorCode.INVALID_REPLICA_ASSIGNMENT.code
                result.error_message = (
                    f"streamcore is a single broker (node {state.node_id}); one replica each"
                )
                continue
            partitions, rf = len(t.assignments), 1
        try:
            info = state.topics.create_topic(
                t.name,
                partitions,
                rf,
                {c.name: c.value for c in t.configs},
                validate_only=request.validate_only,
            )
        except TopicError as exc:
            result.error_code = exc.error_code
            result.error_message = exc.message
            state.metrics.error(exc.error_code)
            continue
        result.topic_id = info.topic_id.bytes
        if not request.validate_only:
            state.topics.open_soon(t.name)
        if version >= 5:
            result.num_partitions = info.partitions
            result.replication_factor = 1
            if authorizer is not None and not authorizer.allows(
                ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, t.name
            ):
                result.topic_config_error_code = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
                result.configs = []
                continue
            result.configs = (
                [
                    CreateTopicsResponse_CreatableTopicConfigs(
                        name=name, value=entry.value, read_only=entry.read_only, config_source=entry.source
                    )
                    for name, entry in state.topics.describe_configs(t.name).items()
                ]
                if not request.validate_only
                else []
            )
    return CreateTopicsResponse(topics=results)
