"""DescribeCluster (60): this one broker, which is also the controller.

v0-v2. v1 adds endpoint_type (1 = brokers; 2 = controllers, which we answer with the
same single node since this broker plays both roles); v2 adds fenced brokers (none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.protocol.messages import (
    DescribeClusterRequest,
    DescribeClusterResponse,
    DescribeClusterResponse_DescribeClusterBroker,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 60
REQUEST = DescribeClusterRequest


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeClusterRequest
) -> DescribeClusterResponse:
    return DescribeClusterResponse(
        error_code=0,
        endpoint_type=request.endpoint_type,
        cluster_id=state.cluster_id,
        controller_id=state.node_id,
        brokers=[
            DescribeClusterResponse_DescribeClusterBroker(
                broker_id=state.node_id, host=state.advertised_host, port=state.advertised_port
            )
        ],
    )
