"""What AlterConfigs and IncrementalAlterConfigs share: resource types and the broker's answer.

Resource type 2 is a topic, 4 a broker, 8 a broker logger (Kafka's ConfigResource.Type).
streamcore's broker settings come from its config file, environment and command line
when it starts; none can change at run time, so every change to a broker resource is
refused with INVALID_REQUEST, the answer Apache Kafka gives for a config it cannot update
dynamically (such as log.dirs; tests/interop/test_admin_interop.py compares the two).

With an authorizer, describing needs DESCRIBE_CONFIGS and changing ALTER_CONFIGS on the
resource: the topic (else TOPIC_AUTHORIZATION_FAILED), the group (resource type 32,
else GROUP_AUTHORIZATION_FAILED) or, for a broker, broker logger or client-metrics
resource, the cluster (else CLUSTER_AUTHORIZATION_FAILED), as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamcore.broker.authorizer import CLUSTER_NAME, ResourceType
from streamcore.errors import ErrorCode

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32

#: Config resource type -> (ACL resource type, error code and message when refused).
_ACL_RESOURCE: dict[int, tuple[int, int, str]] = {
    TOPIC: (ResourceType.TOPIC, ErrorCode.TOPIC_AUTHORIZATION_FAILED.code, "Topic authorization failed."),
    GROUP: (ResourceType.GROUP, ErrorCode.GROUP_AUTHORIZATION_FAILED.code, "Group authorization failed."),
    BROKER: (
        ResourceType.CLUSTER,
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
        "Cluster authorization failed.",
    ),
    BROKER_LOGGER: (
        ResourceType.CLUSTER,
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
        "Cluster authorization failed.",
    ),
    CLIENT_METRICS: (
        ResourceType.CLUSTER,
        ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code,
        "Cluster authorization failed.",
    ),
}


def config_access_error(
    state: BrokerState, ctx: RequestContext, operation: int, resource_type: int, resource_name: str
) -> tuple[int, str] | None:
    """(error code, message) when an authorizer refuses ``operation`` (DESCRIBE_CONFIGS or
    ALTER_CONFIGS) on the config resource; None when allowed, without an authorizer, or
    for a resource type that is refused for other reasons."""
    authorizer = getattr(state, "authorizer", None)
    if authorizer is None:
        return None
    acl = _ACL_RESOURCE.get(resource_type)
    if acl is None:
        return None
    acl_type, code, message = acl
    name = CLUSTER_NAME if acl_type == ResourceType.CLUSTER else resource_name
    if authorizer.allows(ctx, operation, acl_type, name):
        return None
    state.metrics.error(code)
    return code, message


def broker_change_error(state: BrokerState, resource_name: str, names: list[str]) -> tuple[int, str]:
    """(error code, message) for a request to change configs ``names`` of broker ``resource_name``."""
    if resource_name not in ("", str(state.node_id)):
        return (
            ErrorCode.INVALID_REQUEST.code,
            f"this is broker {state.node_id}, not {resource_name!r} (streamcore is a single broker)",
        )
    listed = ", ".join(sorted(names)) or "(none)"
    # Kafka answers INVALID_REQUEST for a config it cannot update dynamically (log.dirs).
    return (
        ErrorCode.INVALID_REQUEST.code,
        f"cannot update these broker configs at run time: {listed}; streamcore's broker settings are "
        "static (config file, STREAMCORE_* environment, command line) and apply at the next start",
    )


def unsupported_type(resource_type: int) -> tuple[int, str]:
    """(error code, message) for a resource type other than topic and broker."""
    return (
        ErrorCode.INVALID_REQUEST.code,
        f"resource type {resource_type} cannot be altered here (2 = topic, 4 = broker)",
    )
