"""The ACL authorizer: Kafka's StandardAuthorizer rules over ACLs kept in the data directory.

A decision for (principal, host, operation, resource) follows Kafka:

* a super user is allowed everything;
* the ACLs that apply are those on the resource's type whose pattern selects its name
  (LITERAL equal, LITERAL ``*``, PREFIXED a prefix of the name);
* one of them that names the principal (or ``User:*``) and the host (or ``*``) and
  whose operation matches denies (DENY) or allows (ALLOW); any DENY wins;
* an ALLOW of READ, WRITE, DELETE or ALTER also allows DESCRIBE, an ALLOW of
  ALTER_CONFIGS also allows DESCRIBE_CONFIGS, ALL allows or denies every operation;
  a DENY denies only its own operation (or every one for ALL);
* when no ACL applies to the resource at all (for anyone), the answer is
  ``allow_everyone_if_no_acl_found``; when ACLs apply but none allows, it is a denial.

ACLs are kept in ``<data_dir>/acls.json``, replaced atomically on every change and
applied at once. Decisions are cached per (principal, host, operation, resource);
every change starts a fresh cache.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from streamcore._atomic_file import write_atomic
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
    validate_principal,
)
from streamcore.errors import ConfigError

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext

log = logging.getLogger("streamcore.broker.authorizer")

__all__ = ["ACL_FILE", "AclAuthorizer"]

#: File name of the ACLs in the data directory.
ACL_FILE = "acls.json"
_FORMAT_VERSION = 1
#: Cached decisions kept before the cache starts over (bounds memory under many names).
_CACHE_LIMIT = 65536

_ALL = int(AclOperation.ALL)
_DESCRIBE = int(AclOperation.DESCRIBE)
_DESCRIBE_CONFIGS = int(AclOperation.DESCRIBE_CONFIGS)
_IMPLIES_DESCRIBE = frozenset(
    int(o)
    for o in (
        AclOperation.DESCRIBE,
        AclOperation.READ,
        AclOperation.WRITE,
        AclOperation.DELETE,
        AclOperation.ALTER,
    )
)
_IMPLIES_DESCRIBE_CONFIGS = frozenset(
    int(o) for o in (AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS)
)


class _Entry(NamedTuple):
    """What a decision needs of one binding."""

    principal: str
    host: str
    operation: int
    allow: bool


class _TypeIndex:
    """The ACLs of one resource type: literal names, and prefixes with their lengths."""

    __slots__ = ("literal", "prefixed", "prefix_lengths")

    def __init__(self) -> None:
        self.literal: dict[str, list[_Entry]] = {}
        self.prefixed: dict[str, list[_Entry]] = {}
        self.prefix_lengths: tuple[int, ...] = ()


class _Snapshot(NamedTuple):
    """Index and decision cache, replaced together so a reader never mixes generations."""

    by_type: dict[int, _TypeIndex]
    cache: dict[tuple[str, str, int, int, str], bool]


def _build_index(bindings: Iterable[AclBinding]) -> dict[int, _TypeIndex]:
    index: dict[int, _TypeIndex] = {}
    for b in bindings:
        ti = index.setdefault(int(b.resource_type), _TypeIndex())
        table = ti.literal if b.pattern_type == PatternType.LITERAL else ti.prefixed
        table.setdefault(b.name, []).append(
            _Entry(b.principal, b.host, int(b.operation), b.permission == AclPermissionType.ALLOW)
        )
    for ti in index.values():
        ti.prefix_lengths = tuple(sorted({len(p) for p in ti.prefixed}))
    return index


def _operation_matches(entry: _Entry, operation: int) -> bool:
    """Whether ``entry``'s operation covers ``operation`` (the ALLOW implications)."""
    op = entry.operation
    if op == _ALL or op == operation:
        return True
    if not entry.allow:
        return False
    if operation == _DESCRIBE:
        return op in _IMPLIES_DESCRIBE
    if operation == _DESCRIBE_CONFIGS:
        return op in _IMPLIES_DESCRIBE_CONFIGS
    return False


class AclAuthorizer:
    """Kafka's ACL authorizer over the ACLs of ``data_dir`` (``acls.json``).

    ``super_users`` are principals (``User:admin``) allowed everything.
    ``allow_everyone_if_no_acl_found``: a resource no ACL applies to is allowed to
    everyone (Kafka's ``allow.everyone.if.no.acl.found``; false denies it).

    Reads (:meth:`authorize` and friends) take no lock and may run on any thread;
    changes (:meth:`create`, :meth:`delete`) are serialised, write the file (fsync, so
    better off the event loop) and take effect when they return.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        super_users: Iterable[str] = (),
        allow_everyone_if_no_acl_found: bool = False,
    ) -> None:
        self.data_dir = os.fspath(data_dir)
        self.path = os.path.join(self.data_dir, ACL_FILE)
        try:
            self.super_users = frozenset(validate_principal(p.strip()) for p in super_users if p.strip())
        except AclError as exc:
            raise ConfigError(f"super_users: {exc}") from None
        self.allow_everyone_if_no_acl_found = bool(allow_everyone_if_no_acl_found)
        self._lock = threading.Lock()
        self._bindings: tuple[AclBinding, ...] = self._load()
        self._snap = _Snapshot(_build_index(self._bindings), {})

    # -- persistence ------------------------------------------------------------------------

    def _load(self) -> tuple[AclBinding, ...]:
        """The stored ACLs (none if the file does not exist). A file that cannot be read is
        a ConfigError: starting without its ACLs would open what they closed."""
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return ()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the ACLs in {self.path}: {exc}") from exc
        try:
            if data.get("version") != _FORMAT_VERSION:
                raise AclError(f"unsupported format version {data.get('version')!r}")
            bindings = tuple(dict.fromkeys(AclBinding.from_json(item) for item in data["acls"]))
        except (AclError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read the ACLs in {self.path}: {exc}") from exc
        log.info("loaded %d ACL(s) from %s", len(bindings), self.path)
        return bindings

    def _store(self, bindings: tuple[AclBinding, ...]) -> None:
        """Persist ``bindings`` and then apply them (so a failed write changes nothing)."""
        payload = {"version": _FORMAT_VERSION, "acls": [b.to_json() for b in bindings]}
        write_atomic(self.path, json.dumps(payload, indent=1, sort_keys=True) + "\n")
        self._bindings = bindings
        self._snap = _Snapshot(_build_index(bindings), {})

    # -- decisions --------------------------------------------------------------------------

    def authorize(self, principal: str, host: str, operation: int, resource_type: int, name: str) -> bool:
        """Whether ``principal`` connecting from ``host`` (an IP address) may perform
        ``operation`` on the resource ``resource_type``/``name`` (a literal name)."""
        if principal in self.super_users:
            return True
        snap = self._snap
        key = (principal, host, operation, resource_type, name)
        cached = snap.cache.get(key)
        if cached is not None:
            return cached
        decision = self._decide(snap.by_type, principal, host, operation, resource_type, name)
        cache = snap.cache
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[key] = decision
        return decision

    def _decide(
        self,
        index: dict[int, _TypeIndex],
        principal: str,
        host: str,
        operation: int,
        resource_type: int,
        name: str,
    ) -> bool:
        ti = index.get(resource_type)
        if ti is None:
            return self.allow_everyone_if_no_acl_found
        lists = []
        found = ti.literal.get(name)
        if found:
            lists.append(found)
        if name != WILDCARD:
            found = ti.literal.get(WILDCARD)
            if found:
                lists.append(found)
        if ti.prefix_lengths:
            size = len(name)
            for length in ti.prefix_lengths:
                if length > size:
                    break
                found = ti.prefixed.get(name[:length])
                if found:
                    lists.append(found)
        if not lists:
            return self.allow_everyone_if_no_acl_found
        allowed = False
        for entries in lists:
            for e in entries:
                if (e.principal != principal and e.principal != WILDCARD_PRINCIPAL) or (
                    e.host != WILDCARD and e.host != host
                ):
                    continue
                if not _operation_matches(e, operation):
                    continue
                if not e.allow:
                    return False
                allowed = True
        return allowed

    def allows(self, ctx: RequestContext, operation: int, resource_type: int, name: str) -> bool:
        """:meth:`authorize` for the sender of request ``ctx``."""
        return self.authorize(ctx.principal, ctx.client_host[1:], operation, resource_type, name)

    def allows_cluster(self, ctx: RequestContext, operation: int) -> bool:
        """:meth:`authorize` on the CLUSTER resource for the sender of ``ctx``."""
        return self.authorize(
            ctx.principal, ctx.client_host[1:], operation, ResourceType.CLUSTER, CLUSTER_NAME
        )

    def may_create_topic(self, ctx: RequestContext, name: str) -> bool:
        """CREATE on the cluster or on topic ``name`` (CreateTopics, auto-creation)."""
        return self.allows_cluster(ctx, AclOperation.CREATE) or self.allows(
            ctx, AclOperation.CREATE, ResourceType.TOPIC, name
        )

    def authorize_any(self, principal: str, host: str, operation: int, resource_type: int) -> bool:
        """Whether ``operation`` is allowed on at least one resource of ``resource_type``
        (Kafka's authorizeByResourceType, which InitProducerId uses for "WRITE on some
        topic"): an ALLOW pattern not covered by a DENY of the same or a shorter prefix."""
        # A made-up name settles super users and allow-everyone-if-no-ACL at once, as Kafka does.
        if self.authorize(principal, host, operation, resource_type, "hardcode"):
            return True
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow_literal: set[str] = set()
        allow_prefixed: set[str] = set()
        for b in self._bindings:
            if b.resource_type != resource_type:
                continue
            if b.host != WILDCARD and b.host != host:
                continue
            if b.principal != principal and b.principal != WILDCARD_PRINCIPAL:
                continue
            if b.operation != operation and b.operation != AclOperation.ALL:
                continue
            literal = b.pattern_type == PatternType.LITERAL
            if b.permission == AclPermissionType.DENY:
                if literal and b.name == WILDCARD:
                    return False
                (deny_literal if literal else deny_prefixed).add(b.name)
            elif literal and b.name == WILDCARD:
                return True
            else:
                (allow_literal if literal else allow_prefixed).add(b.name)
        for names, literal in ((allow_literal, True), (allow_prefixed, False)):
            for allowed in names:
                if literal and allowed in deny_literal:
                    continue
                if not any(allowed[:i] in deny_prefixed for i in range(1, len(allowed) + 1)):
                    return True
        return False

    def allows_any(self, ctx: RequestContext, operation: int, resource_type: int) -> bool:
        """:meth:`authorize_any` for the sender of ``ctx``."""
        return self.authorize_any(ctx.principal, ctx.client_host[1:], operation, resource_type)

    def authorized_operations(self, ctx: RequestContext, resource_type: int, name: str) -> int:
        """Kafka's authorized-operations bit field (bit ``code`` per allowed operation) over
        the operations ``resource_type`` supports, for DescribeGroups/Metadata/DescribeCluster."""
        bits = 0
        for op in SUPPORTED_OPERATIONS.get(ResourceType(resource_type), ()):
            if self.allows(ctx, op, resource_type, name):
                bits |= 1 << int(op)
        return bits

    # -- administration ---------------------------------------------------------------------

    def acls(self) -> tuple[AclBinding, ...]:
        """Every ACL, in the order they were created."""
        return self._bindings

    def create(self, bindings: Iterable[AclBinding]) -> list[AclError | None]:
        """Add ``bindings``; per binding None (added, or already there) or the AclError that
        refused it. The valid ones are persisted together and apply when this returns;
        OSError if they could not be written (then nothing changed)."""
        results: list[AclError | None] = []
        fresh: list[AclBinding] = []
        for b in bindings:
            try:
                fresh.append(AclBinding.of(*_fields(b)))
            except AclError as exc:
                results.append(exc)
            else:
                results.append(None)
        with self._lock:
            current = self._bindings
            known = set(current)
            added = tuple(b for b in dict.fromkeys(fresh) if b not in known)
            if added:
                self._store(current + added)
                for b in added:
                    log.info("ACL added: %s", b)
        return results

    def describe(self, acl_filter: AclBindingFilter) -> list[AclBinding]:
        """The ACLs ``acl_filter`` selects, in creation order."""
        return [b for b in self._bindings if acl_filter.matches(b)]

    def delete(self, filters: Iterable[AclBindingFilter]) -> list[list[AclBinding]]:
        """Remove every ACL any of ``filters`` selects; per filter, the ACLs it selected (an
        ACL two filters select is listed for both). Persisted at once; OSError if that
        failed (then nothing changed)."""
        filters = list(filters)
        with self._lock:
            current = self._bindings
            matched = [[b for b in current if f.matches(b)] for f in filters]
            doomed = {b for group in matched for b in group}
            if doomed:
                self._store(tuple(b for b in current if b not in doomed))
                for b in doomed:
                    log.info("ACL removed: %s", b)
        return matched


def _fields(b: AclBinding) -> tuple[int, str, int, str, str, int, int]:
    return (b.resource_type, b.name, b.pattern_type, b.principal, b.host, b.operation, b.permission)
