"""CreateAcls (30): add ACL bindings to the authorizer.

Advertised v1-v3 (Kafka 4 dropped v0; v2 is flexible). Without an authorizer every
creation answers SECURITY_DISABLED, as Kafka does. With one, the sender needs ALTER on
the cluster (otherwise every creation is CLUSTER_AUTHORIZATION_FAILED); each binding is
then checked on its own (INVALID_REQUEST for a pattern type other than LITERAL/PREFIXED,
a resource type, operation or permission that is UNKNOWN or ANY, an empty name, a
CLUSTER name other than kafka-cluster, a principal not ``Type:name``, a host not ``*``
or an IP address) and the valid ones are stored together, applying at once. Creating
an ACL that exists succeeds and changes nothing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from streamcore.broker.authorizer import AclBinding, AclError, AclOperation
from streamcore.broker.authorizer.checks import acl_admin_refusal
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    CreateAclsRequest,
    CreateAclsResponse,
    CreateAclsResponse_AclCreationResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 30
REQUEST = CreateAclsRequest


def _all(request: CreateAclsRequest, code: int, message: str) -> CreateAclsResponse:
    return CreateAclsResponse(
        results=[
            CreateAclsResponse_AclCreationResult(error_code=code, error_message=message)
            for _ in request.creations
        ]
    )


async def handle(state: BrokerState, ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    refused = acl_admin_refusal(state, ctx, AclOperation.ALTER)
    if refused is not None:
        return _all(request, *refused)
    authorizer = state.authorizer
    results: list[CreateAclsResponse_AclCreationResult] = []
    valid: list[tuple[int, AclBinding]] = []
    for i, c in enumerate(request.creations):
        results.append(CreateAclsResponse_AclCreationResult(error_code=0, error_message=None))
        try:
            valid.append(
                (
                    i,
                    AclBinding.of(
                        c.resource_type,
                        c.resource_name,
                        c.resource_pattern_type,
                        c.principal,
                        c.host,
                        c.operation,
                        c.permission_type,
                    ),
                )
            )
        except AclError as exc:
            results[i].error_code, results[i].error_message = exc.code, exc.message
    if valid:
        try:
            # Persisting fsyncs: off the event loop.
            outcome = await asyncio.to_thread(authorizer.create, [b for _, b in valid])
        except OSError as exc:
            outcome = [
                AclError(f"could not store the ACLs: {exc}", ErrorCode.UNKNOWN_SERVER_ERROR.code)
            ] * len(valid)
        for (i, _), err in zip(valid, outcome, strict=True):
            if err is not None:
                results[i].error_code, results[i].error_message = err.code, err.message
    for r in results:
        state.metrics.error(r.error_code)
    return CreateAclsResponse(results=results)
