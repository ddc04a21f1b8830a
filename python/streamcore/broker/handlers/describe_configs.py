"""DescribeConfigs (32): topic configs (and the broker's, read-only).

Advertised v1-v4 (the spec's floor). v1 adds synonyms (sent when the request asks
for them, as Kafka does); v3 config types and documentation; v4 is flexible.
Resource type 2 is a topic, 4 a broker. A topic lists every public Kafka topic
config from ``broker.topic_configs``, with Kafka's ConfigType (cleanup.policy is a
LIST) and its synonyms, then streamcore's own topic configs (``search.index``), so
``kafka-configs --describe`` and AdminClient show what ``--alter`` set. Clients list
whatever names a broker sends; CreateTopics' answer keeps Kafka's list exactly.

With an authorizer, a resource the sender may not DESCRIBE_CONFIGS answers the
matching *_AUTHORIZATION_FAILED (see ``_config_resources``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation
from streamcore.broker.handlers._config_resources import config_access_error
from streamcore.broker.topic_configs import ALL_TOPIC_CONFIGS
from streamcore.broker.topics import TopicError
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    DescribeConfigsResponse_DescribeConfigsResourceResult,
    DescribeConfigsResponse_DescribeConfigsResult,
    DescribeConfigsResponse_DescribeConfigsSynonym,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 32
REQUEST = DescribeConfigsRequest

_TOPIC, _BROKER = 2, 4


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeConfigsRequest
) -> DescribeConfigsResponse:
    results = []
    for res in request.resources:
        out = DescribeConfigsResponse_DescribeConfigsResult(
            resource_type=res.resource_type, resource_name=res.resource_name, error_message=None
        )
        results.append(out)
        refused = config_access_error(
            state, ctx, AclOperation.DESCRIBE_CONFIGS, res.resource_type, res.resource_name
        )
        if refused is not None:
            out.error_code, out.error_message = refused
            continue
        if res.resource_type == _TOPIC:
            try:
                # Null (or empty) configuration keys mean every config, for topics and the broker alike.
                entries = state.topics.describe_configs(
                    res.resource_name, res.configuration_keys or None, extensions=True
                )
            except TopicError as exc:
                out.error_code = exc.error_code
                out.error_message = exc.message
                continue
            out.configs = [
                DescribeConfigsResponse_DescribeConfigsResourceResult(
                    name=name,
                    value=e.value,
                    read_only=e.read_only,
                    config_source=e.source,
                    is_default=e.is_default,
                    config_type=int(ALL_TOPIC_CONFIGS[name].config_type),
                    documentation=None,
                    synonyms=[
                        DescribeConfigsResponse_DescribeConfigsSynonym(
                            name=s.name, value=s.value, source=s.source
                        )
                        for s in e.synonyms
                    ]
                    if request.include_synonyms
                    else [],
                )
                for name, e in entries.items()
            ]
        elif res.resource_type == _BROKER:
            if res.resource_name not in ("", str(state.node_id)):
                out.error_code = ErrorCode.INVALID_REQUEST.code
                out.error_message = f"this is broker {state.node_id}"
                continue
            out.configs = [
                DescribeConfigsResponse_DescribeConfigsResourceResult(
                    name=name, value=str(value), read_only=True, config_source=4, documentation=None
                )
                for name, value in state.broker_configs().items()
                if not res.configuration_keys or name in res.configuration_keys
            ]
        else:
            out.error_code = ErrorCode.INVALID_REQUEST.code
            out.error_message = f"resource type {res.resource_type} is not supported (2 = topic, 4 = broker)"
    return DescribeConfigsResponse(results=results)
