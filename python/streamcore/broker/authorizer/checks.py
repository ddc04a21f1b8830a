"""The one-line checks handlers make: nothing to do (one attribute read) without an authorizer."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

__all__ = ["acl_admin_refusal", "denied"]


def denied(state: BrokerState, ctx: RequestContext, operation: int, resource_type: int, name: str) -> bool:
    """True when the broker has an authorizer and it refuses the sender of ``ctx``
    ``operation`` on ``resource_type``/``name``; False without an authorizer."""
    authorizer = getattr(state, "authorizer", None)
    return authorizer is not None and not authorizer.allows(ctx, operation, resource_type, name)


def acl_admin_refusal(state: BrokerState, ctx: RequestContext, operation: int) -> tuple[int, str] | None:
    """Why an ACL request (Create/Delete/DescribeAcls) is refused as a whole: the error
    code and message, counted in the metrics; None when it may go on.

    Kafka answers SECURITY_DISABLED without an authorizer, and CLUSTER_AUTHORIZATION_FAILED
    when the sender lacks ``operation`` (ALTER or DESCRIBE) on the cluster.
    """
    from streamcore.errors import ErrorCode

    authorizer = getattr(state, "authorizer", None)
    if authorizer is None:
        code, message = ErrorCode.SECURITY_DISABLED.code, "No Authorizer is configured."
    elif not authorizer.allows_cluster(ctx, operation):
        code, message = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code, "Cluster authorization failed."
    else:
        return None
    state.metrics.error(code)
    return code, message
