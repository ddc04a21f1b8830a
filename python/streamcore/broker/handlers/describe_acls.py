"""DescribeAcls (29): the ACL bindings a filter selects, grouped by resource pattern.

Advertised v1-v3 (Kafka 4 dropped v0; v2 is flexible). Without an authorizer the
answer is SECURITY_DISABLED, as Kafka's. With one, the sender needs DESCRIBE on the
cluster (CLUSTER_AUTHORIZATION_FAILED otherwise). The filter takes ANY for the
resource type, pattern type (also MATCH), operation and permission, and null for the
name, principal and host; a field that is UNKNOWN (or an unrecognised code) is
INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclBinding, AclBindingFilter, AclError, AclOperation
from streamcore.broker.authorizer.checks import acl_admin_refusal
from streamcore.protocol.messages import (
    DescribeAclsRequest,
    DescribeAclsResponse,
    DescribeAclsResponse_AclDescription,
    DescribeAclsResponse_DescribeAclsResource,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 29
REQUEST = DescribeAclsRequest


def group_by_resource(bindings: list[AclBinding]) -> list[DescribeAclsResponse_DescribeAclsResource]:
    """Bindings as DescribeAcls resources: one per (type, name, pattern), in first-seen order."""
    out: dict[tuple[int, str, int], DescribeAclsResponse_DescribeAclsResource] = {}
    for b in bindings:
        key = (int(b.resource_type), b.name, int(b.pattern_type))
        res = out.get(key)
        if res is None:
            res = out[key] = DescribeAclsResponse_DescribeAclsResource(
                resource_type=key[0], resource_name=b.name, pattern_type=key[2], acls=[]
            )
        res.acls.append(
            DescribeAclsResponse_AclDescription(
                principal=b.principal,
                host=b.host,
                operation=int(b.operation),
                permission_type=int(b.permission),
            )
        )
    return list(out.values())


def handle(state: BrokerState, ctx: RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse:
    refused = acl_admin_refusal(state, ctx, AclOperation.DESCRIBE)
    if refused is not None:
        code, message = refused
        return DescribeAclsResponse(error_code=code, error_message=message)
    authorizer = state.authorizer
    try:
        acl_filter = AclBindingFilter.of(
            request.resource_type_filter,
            request.resource_name_filter,
            request.pattern_type_filter,
            request.principal_filter,
            request.host_filter,
            request.operation,
            request.permission_type,
        )
    except AclError as exc:
        state.metrics.error(exc.code)
        return DescribeAclsResponse(error_code=exc.code, error_message=exc.message)
    return DescribeAclsResponse(
        error_code=0, error_message=None, resources=group_by_resource(authorizer.describe(acl_filter))
    )
