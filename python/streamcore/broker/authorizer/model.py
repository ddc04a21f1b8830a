"""Kafka's ACL model: resource patterns, access control entries, bindings and filters.

The numeric codes are Kafka's (``org.apache.kafka.common.acl`` and ``.resource``), so
they go on the wire (CreateAcls/DescribeAcls/DeleteAcls) unchanged. An ACL *binding*
is one rule: a resource pattern (type, name, LITERAL or PREFIXED) and an entry
(principal, host, operation, ALLOW or DENY). A *filter* selects bindings for
DescribeAcls and DeleteAcls; besides concrete values it takes ``ANY`` for every
field, ``None`` for the name, principal and host, and the pattern type ``MATCH``
(every binding that would apply to the named resource: the literal name, the
literal wildcard ``*`` and every prefix of the name).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

from streamcore.errors import ErrorCode

__all__ = [
    "CLUSTER_NAME",
    "WILDCARD",
    "WILDCARD_PRINCIPAL",
    "AclBinding",
    "AclBindingFilter",
    "AclError",
    "AclOperation",
    "AclPermissionType",
    "PatternType",
    "ResourceType",
    "SUPPORTED_OPERATIONS",
    "normalize_host",
    "validate_principal",
]

#: The one name of the CLUSTER resource.
CLUSTER_NAME = "kafka-cluster"
#: A LITERAL resource name matching every resource of its type; the host matching every host.
WILDCARD = "*"
#: The principal matching every principal.
WILDCARD_PRINCIPAL = "User:*"


class ResourceType(enum.IntEnum):
    """Kafka's resource types; UNKNOWN and ANY only occur in filters (ANY) or bad input."""

    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(enum.IntEnum):
    """How a binding's resource name applies: exactly (LITERAL) or to names starting
    with it (PREFIXED). ANY and MATCH are for filters only."""

    UNKNOWN = 0
    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class AclOperation(enum.IntEnum):
    """Kafka's operations. ALL grants or denies every operation; ANY is for filters only."""

    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class AclPermissionType(enum.IntEnum):
    """ALLOW or DENY (DENY wins); ANY is for filters only."""

    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


#: The operations that make sense per resource type (Kafka's AclEntry.supportedOperations):
#: what authorized-operations bit fields are computed over and what ``streamcore acls``
#: accepts; the broker itself stores any operation, as Kafka's does.
SUPPORTED_OPERATIONS: dict[ResourceType, tuple[AclOperation, ...]] = {
    ResourceType.TOPIC: (
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.CREATE,
        AclOperation.DESCRIBE,
        AclOperation.DELETE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    ),
    ResourceType.GROUP: (
        AclOperation.READ,
        AclOperation.DESCRIBE,
        AclOperation.DELETE,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
    ),
    ResourceType.CLUSTER: (
        AclOperation.CREATE,
        AclOperation.CLUSTER_ACTION,
        AclOperation.DESCRIBE_CONFIGS,
        AclOperation.ALTER_CONFIGS,
        AclOperation.IDEMPOTENT_WRITE,
        AclOperation.ALTER,
        AclOperation.DESCRIBE,
    ),
    ResourceType.TRANSACTIONAL_ID: (AclOperation.DESCRIBE, AclOperation.WRITE),
    ResourceType.DELEGATION_TOKEN: (AclOperation.DESCRIBE,),
    ResourceType.USER: (AclOperation.CREATE_TOKENS, AclOperation.DESCRIBE_TOKENS),
}


class AclError(ValueError):
    """A binding or filter the broker refuses, with the Kafka error code to answer."""

    def __init__(self, message: str, code: int = ErrorCode.INVALID_REQUEST.code) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _enum(kind: type[enum.IntEnum], value: int | str, what: str) -> enum.IntEnum:
    """``value`` (a code or a name, any case) as a member of ``kind``; AclError otherwise.
    An unknown code is UNKNOWN, as Kafka's ``fromCode`` makes it."""
    if isinstance(value, str):
        try:
            return kind[value.strip().upper().replace("-", "_")]
        except KeyError:
            raise AclError(f"unknown {what} {value!r}") from None
    try:
        return kind(int(value))
    except ValueError:
        return kind(0)


def validate_principal(principal: str) -> str:
    """``principal`` if it is ``Type:name`` with both parts non-empty; AclError otherwise."""
    kind, sep, name = principal.partition(":")
    if not sep or not kind or not name:
        raise AclError(f"invalid principal {principal!r}: expected Type:name, such as User:alice")
    return principal


def normalize_host(host: str) -> str:
    """``*`` or an IP address in its canonical text form (``::1``, not ``0:0:0:0:0:0:0:1``),
    which is how client addresses are compared; AclError for anything else."""
    if host == WILDCARD:
        return host
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        raise AclError(f"invalid host {host!r}: expected * or an IP address") from None


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ACL: ``principal`` from ``host`` is allowed (or denied) ``operation`` on the
    resources ``resource_type``/``name`` selects under ``pattern_type``."""

    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: AclOperation
    permission: AclPermissionType

    @classmethod
    def of(
        cls,
        resource_type: int | str,
        name: str,
        pattern_type: int | str,
        principal: str,
        host: str,
        operation: int | str,
        permission: int | str,
    ) -> AclBinding:
        """A validated binding from codes or names (``"TOPIC"``, ``"prefixed"``, ``"READ"``,
        ``"allow"``), the host in canonical form; AclError (INVALID_REQUEST) for what Kafka
        refuses: a type, pattern, operation or permission that is UNKNOWN or only valid in
        filters, an empty name, a CLUSTER name other than ``kafka-cluster``, a principal
        that is not ``Type:name``, a host that is not ``*`` or an IP address."""
        rtype = _enum(ResourceType, resource_type, "resource type")
        ptype = _enum(PatternType, pattern_type, "pattern type")
        op = _enum(AclOperation, operation, "operation")
        perm = _enum(AclPermissionType, permission, "permission type")
        if rtype in (ResourceType.UNKNOWN, ResourceType.ANY):
            raise AclError(f"invalid resource type {rtype.name}")
        if ptype not in (PatternType.LITERAL, PatternType.PREFIXED):
            raise AclError(f"invalid pattern type {ptype.name}: an ACL is LITERAL or PREFIXED")
        if op in (AclOperation.UNKNOWN, AclOperation.ANY):
            raise AclError(f"invalid operation {op.name}")
        if perm not in (AclPermissionType.ALLOW, AclPermissionType.DENY):
            raise AclError(f"invalid permission type {perm.name}")
        if not name:
            raise AclError("resource name should not be empty")
        if rtype == ResourceType.CLUSTER and name != CLUSTER_NAME:
            raise AclError(f"the only valid name for the CLUSTER resource is {CLUSTER_NAME}")
        if principal is None:
            raise AclError("principal should not be null")
        if host is None:
            raise AclError("host should not be null")
        return cls(
            ResourceType(rtype),
            name,
            PatternType(ptype),
            validate_principal(principal),
            normalize_host(host),
            AclOperation(op),
            AclPermissionType(perm),
        )

    def to_json(self) -> dict[str, str]:
        """The binding as stored in ``acls.json`` (names, not codes, so the file reads well)."""
        return {
            "resource_type": self.resource_type.name,
            "name": self.name,
            "pattern_type": self.pattern_type.name,
            "principal": self.principal,
            "host": self.host,
            "operation": self.operation.name,
            "permission": self.permission.name,
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> AclBinding:
        return cls.of(
            data["resource_type"],
            data["name"],
            data["pattern_type"],
            data["principal"],
            data["host"],
            data["operation"],
            data["permission"],
        )

    def __str__(self) -> str:
        return (
            f"{self.permission.name} {self.principal} from {self.host} {self.operation.name} on "
            f"{self.resource_type.name}:{self.pattern_type.name}:{self.name}"
        )


@dataclass(frozen=True)
class AclBindingFilter:
    """Selects bindings (DescribeAcls, DeleteAcls). ``None`` for name, principal or host
    and ``ANY`` for the enumerations match everything; ``MATCH`` selects the bindings
    that apply to the resource ``name`` (the literal name, the literal ``*`` and every
    PREFIXED pattern the name starts with)."""

    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: AclOperation = AclOperation.ANY
    permission: AclPermissionType = AclPermissionType.ANY

    @classmethod
    def of(
        cls,
        resource_type: int | str = ResourceType.ANY,
        name: str | None = None,
        pattern_type: int | str = PatternType.ANY,
        principal: str | None = None,
        host: str | None = None,
        operation: int | str = AclOperation.ANY,
        permission: int | str = AclPermissionType.ANY,
    ) -> AclBindingFilter:
        """A validated filter; AclError (INVALID_REQUEST) for an UNKNOWN (or unrecognised)
        resource type, pattern type, operation or permission type, which Kafka refuses."""
        rtype = _enum(ResourceType, resource_type, "resource type")
        ptype = _enum(PatternType, pattern_type, "pattern type")
        op = _enum(AclOperation, operation, "operation")
        perm = _enum(AclPermissionType, permission, "permission type")
        for member, what in (
            (rtype, "resource type"),
            (ptype, "pattern type"),
            (op, "operation"),
            (perm, "permission type"),
        ):
            if member == 0:
                raise AclError(f"filter has an unknown {what}")
        if host is not None and host != WILDCARD:
            # An IP given in another spelling still finds the stored canonical form; a
            # host that is no address matches nothing, as Kafka's string comparison would.
            try:
                host = ipaddress.ip_address(host).compressed
            except ValueError:
                pass
        return cls(
            ResourceType(rtype),
            name,
            PatternType(ptype),
            principal,
            host,
            AclOperation(op),
            AclPermissionType(perm),
        )

    def matches(self, b: AclBinding) -> bool:
        """Whether binding ``b`` is selected (Kafka's AclBindingFilter.matches)."""
        if self.resource_type != ResourceType.ANY and self.resource_type != b.resource_type:
            return False
        pt = self.pattern_type
        if pt not in (PatternType.ANY, PatternType.MATCH) and pt != b.pattern_type:
            return False
        if self.name is not None:
            if pt == PatternType.ANY or pt == b.pattern_type:
                if self.name != b.name:
                    return False
            elif b.pattern_type == PatternType.LITERAL:  # MATCH against a literal binding
                if self.name != b.name and b.name != WILDCARD:
                    return False
            elif not self.name.startswith(b.name):  # MATCH against a prefixed binding
                return False
        if self.principal is not None and self.principal != b.principal:
            return False
        if self.host is not None and self.host != b.host:
            return False
        if self.operation != AclOperation.ANY and self.operation != b.operation:
            return False
        return self.permission == AclPermissionType.ANY or self.permission == b.permission
