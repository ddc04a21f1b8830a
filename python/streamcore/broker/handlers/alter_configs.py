"""AlterConfigs (33): replace a topic's per-topic configs with the ones given.

v0-v2 (Kafka's range); v2 is flexible. Every config the request does not name goes
back to its default, as in Kafka (IncrementalAlterConfigs changes one at a time).
The new set is validated as a whole against ``broker.topic_configs`` and, unless
``validate_only``, written to the topic catalogue before it takes effect. Broker
resources are refused (see ``_config_resources``); other types get INVALID_REQUEST.
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
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    AlterConfigsResponse_AlterConfigsResourceResponse,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 33
REQUEST = AlterConfigsRequest


def handle(state: BrokerState, ctx: RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse:
    responses = []
    for res in request.resources:
        out = AlterConfigsResponse_AlterConfigsResourceResponse(
            resource_type=res.resource_type, resource_name=res.resource_name, error_message=None
        )
        responses.append(out)
        names = [c.name for c in res.configs]
        refused = config_access_error(
            state, ctx, AclOperation.ALTER_CONFIGS, res.resource_type, res.resource_name
        )
        if refused is not None:
            out.error_code, out.error_message = refused
            continue
        if res.resource_type == TOPIC:
            if len(set(names)) != len(names):
                out.error_code = ErrorCode.INVALID_REQUEST.code
                out.error_message = f"a config is named more than once for topic {res.resource_name!r}"
            else:
                try:
                    state.topics.alter_configs(
                        res.resource_name,
                        {c.name: c.value for c in res.configs},
                        replace=True,
                        validate_only=request.validate_only,
                    )
                except TopicError as exc:
                    out.error_code, out.error_message = exc.error_code, exc.message
        elif res.resource_type == BROKER:
            out.error_code, out.error_message = broker_change_error(state, res.resource_name, names)
        else:
            out.error_code, out.error_message = unsupported_type(res.resource_type)
        state.metrics.error(out.error_code)
    return AlterConfigsResponse(responses=responses)
