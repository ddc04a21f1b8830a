"""DescribeCluster (60): this one broker, which is also the controller.

v0-v2. v1 adds endpoint_type (1 = brokers; 2 = controllers, which we answer with the
same single node since this broker plays both roles); v2 adds fenced brokers (none).

With an authorizer, the cluster's authorized operations (when asked for) are those
the sender has, or none (0) without DESCRIBE on the cluster; the request itself needs
no permission, as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType
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
    response = DescribeClusterResponse(
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
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None and request.include_cluster_authorized_operations:
        response.cluster_authorized_operations = (
            authorizer.authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME)
            if authorizer.allows_cluster(ctx, AclOperation.DESCRIBE)
            else 0
        )
    return response
