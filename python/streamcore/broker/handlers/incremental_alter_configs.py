"""IncrementalAlterConfigs (44): SET, DELETE, APPEND or SUBTRACT single topic configs.

v0-v1 (Kafka's range); v1 is flexible. Operations are 0 SET, 1 DELETE (back to the
default), 2 APPEND and 3 SUBTRACT (list configs only, such as cleanup.policy; on
any other config they are INVALID_CONFIG, as in Kafka). A config named twice in
one resource is INVALID_REQUEST. The result is validated against
``broker.topic_configs`` and, unless ``validate_only``, written to the topic
catalogue before it takes effect. Broker resources are refused (see
``_config_resources``); other types get INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclOperation
from streamcore.broker.handlers._config_resources import (
    BROKER,
    TOPIC,
    broker_change_error,
    config_access_error,
    unsupported_type,
)
from streamcore.broker.topics import TopicError
from streamcore.protocol.messages import (
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
    IncrementalAlterConfigsResponse_AlterConfigsResourceResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 44
REQUEST = IncrementalAlterConfigsRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: IncrementalAlterConfigsRequest
) -> IncrementalAlterConfigsResponse:
    responses = []
    for res in request.resources:
        out = IncrementalAlterConfigsResponse_AlterConfigsResourceResponse(
            resource_type=res.resource_type, resource_name=res.resource_name, error_message=None
        )
        responses.append(out)
        refused = config_access_error(
            state, ctx, AclOperation.ALTER_CONFIGS, res.resource_type, res.resource_name
        )
        if refused is not None:
            out.error_code, out.error_message = refused
            continue
        if res.resource_type == TOPIC:
            try:
                state.topics.incremental_alter_configs(
                    res.resource_name,
                    [(c.name, c.config_operation, c.value) for c in res.configs],
                    validate_only=request.validate_only,
                )
            except TopicError as exc:
                out.error_code, out.error_message = exc.error_code, exc.message
        elif res.resource_type == BROKER:
            out.error_code, out.error_message = broker_change_error(
                state, res.resource_name, [c.name for c in res.configs]
            )
        else:
            out.error_code, out.error_message = unsupported_type(res.resource_type)
        state.metrics.error(out.error_code)
    return IncrementalAlterConfigsResponse(responses=responses)
