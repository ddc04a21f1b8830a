"""DescribeUserScramCredentials (50): which SCRAM mechanisms each user has, and their
iteration counts (never salts or keys), from the broker's credential store.

As in Kafka: no user list (null or empty) describes every user; a user named twice is
DUPLICATE_RESOURCE, a user without credentials RESOURCE_NOT_FOUND. With an authorizer the
sender needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED for the request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, AclOperation, ResourceType, denied
from streamcore.broker.security.credentials import SCRAM_MECHANISMS
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResponse_CredentialInfo,
    DescribeUserScramCredentialsResponse_DescribeUserScramCredentialsResult,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

API_KEY = 50
REQUEST = DescribeUserScramCredentialsRequest

_Result = DescribeUserScramCredentialsResponse_DescribeUserScramCredentialsResult


def handle(
    state: BrokerState, ctx: RequestContext, request: DescribeUserScramCredentialsRequest
) -> DescribeUserScramCredentialsResponse:
    if denied(state, ctx, AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return DescribeUserScramCredentialsResponse(
            error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
            error_message="Cluster authorization failed: DESCRIBE on the cluster is needed",
            results=[],
        )
    stored = state.scram_credentials.users()
    if request.users:
        seen: dict[str, bool] = {}
        for user in request.users:
            seen[user.name] = user.name in seen
    else:
        seen = dict.fromkeys(sorted(stored), False)
    results = []
    for name, duplicate in seen.items():
        if duplicate:
            results.append(
                _Result(
                    user=name,
                    error_code=ErrorCode.DUPLICATE_RESOURCE.code,
                    error_message=f"Cannot describe SCRAM credentials for the same user twice in a single request: {name}",
                    credential_infos=[],
                )
            )
            continue
        mechanisms = stored.get(name)
        if not mechanisms:
            results.append(
                _Result(
                    user=name,
                    error_code=ErrorCode.RESOURCE_NOT_FOUND.code,
                    error_message=f"Attempt to describe a user credential that does not exist: {name}",
                    credential_infos=[],
                )
            )
            continue
        infos = [
            DescribeUserScramCredentialsResponse_CredentialInfo(
                mechanism=SCRAM_MECHANISMS[mech].type, iterations=cred.iterations
            )
            for mech, cred in sorted(mechanisms.items(), key=lambda item: SCRAM_MECHANISMS[item[0]].type)
        ]
        results.append(_Result(user=name, error_code=0, error_message=None, credential_infos=infos))
    return DescribeUserScramCredentialsResponse(error_code=0, error_message=None, results=results)
