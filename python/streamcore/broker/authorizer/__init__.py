"""Authorization: Kafka's ACL model and the ACL authorizer the broker consults.

``BrokerState.authorizer`` is an :class:`AclAuthorizer` when the broker runs with
``authorizer = "acl"`` and None otherwise (then every request is allowed, as on a
Kafka broker without ``authorizer.class.name``). Handlers ask it with
``authorizer.allows(ctx, AclOperation.WRITE, ResourceType.TOPIC, name)``.
"""

from __future__ import annotations

from streamcore.broker.authorizer.acl_authorizer import ACL_FILE, AclAuthorizer
from streamcore.broker.authorizer.checks import denied
from streamcore.broker.authorizer.model import (
    CLUSTER_NAME,
    SUPPORTED_OPERATIONS,
    WILDCARD,
    WILDCARD_PRINCIPAL,
    AclBinding,
    AclBindingFilter,
    AclError,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)

__all__ = [
    "ACL_FILE",
    "CLUSTER_NAME",
    "SUPPORTED_OPERATIONS",
    "WILDCARD",
    "WILDCARD_PRINCIPAL",
    "AclAuthorizer",
    "AclBinding",
    "AclBindingFilter",
    "AclError",
    "AclOperation",
    "AclPermissionType",
    "PatternType",
    "ResourceType",
    "denied",
]
