"""DeleteAcls (31): remove the ACL bindings each filter selects.

Advertised v1-v3 (Kafka 4 dropped v0; v2 is flexible). Without an authorizer every
filter answers SECURITY_DISABLED, as Kafka does. With one, the sender needs ALTER on
the cluster (CLUSTER_AUTHORIZATION_FAILED for every filter otherwise). Filters are
those of DescribeAcls (ANY, MATCH, null); a filter with an UNKNOWN field is
INVALID_REQUEST on its own. Every filter is applied to the ACLs as they were before
the request, each result lists the bindings it selected, and all of them are removed
together, taking effect at once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclBindingFilter, AclError, AclOperation
from streamcore.broker.authorizer.checks import acl_admin_refusal
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DeleteAclsRequest,
    DeleteAclsResponse,
    DeleteAclsResponse_DeleteAclsFilterResult,
    DeleteAclsResponse_DeleteAclsMatchingAcl,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 31
REQUEST = DeleteAclsRequest


def _all(request: DeleteAclsRequest, code: int, message: str) -> DeleteAclsResponse:
    return DeleteAclsResponse(
        filter_results=[
            DeleteAclsResponse_DeleteAclsFilterResult(
                error_code=code, error_message=message, matching_acls=[]
            )
            for _ in request.filters
        ]
    )


async def handle(state: BrokerState, ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    refused = acl_admin_refusal(state, ctx, AclOperation.ALTER)
    if refused is not None:
        return _all(request, *refused)
    authorizer = state.authorizer
    results: list[DeleteAclsResponse_DeleteAclsFilterResult] = []
    valid: list[tuple[int, AclBindingFilter]] = []
    for i, f in enumerate(request.filters):
        results.append(
            DeleteAclsResponse_DeleteAclsFilterResult(error_code=0, error_message=None, matching_acls=[])
        )
        try:
            valid.append(
                (
                    i,
                    AclBindingFilter.of(
                        f.resource_type_filter,
                        f.resource_name_filter,
                        f.pattern_type_filter,
                        f.principal_filter,
                        f.host_filter,
                        f.operation,
                        f.permission_type,
                    ),
                )
            )
        except AclError as exc:
            results[i].error_code, results[i].error_message = exc.code, exc.message
    if valid:
        try:
            # Persisting fsyncs: off the event loop.
            deleted = await asyncio.to_thread(authorizer.delete, [f for _, f in valid])
        except OSError as exc:
            for i, _ in valid:
                results[i].error_code = ErrorCode.UNKNOWN_SERVER_ERROR.code
                results[i].error_message = f"could not store the ACLs: {exc}"
        else:
            for (i, _), bindings in zip(valid, deleted, strict=True):
                results[i].matching_acls = [
                    DeleteAclsResponse_DeleteAclsMatchingAcl(
                        error_code=0,
                        error_message=None,
                        resource_type=int(b.resource_type),
                        resource_name=b.name,
                        pattern_type=int(b.pattern_type),
                        principal=b.principal,
                        host=b.host,
                        operation=int(b.operation),
                        permission_type=int(b.permission),
                    )
                    for b in bindings
                ]
    for r in results:
        state.metrics.error(r.error_code)
    return DeleteAclsResponse(filter_results=results)
