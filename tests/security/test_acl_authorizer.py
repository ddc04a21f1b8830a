"""AclAuthorizer semantics, checked against Kafka's StandardAuthorizer rules.

Every rule here is one Kafka applies (metadata/.../authorizer/StandardAuthorizerData.java,
clients/.../common/acl and .../resource): DENY wins, ALLOW implications for DESCRIBE and
DESCRIBE_CONFIGS (not for DENY), ALL, the wildcard principal ``User:*``, the literal
``*`` resource, PREFIXED patterns, hosts, super users, allow.everyone.if.no.acl.found,
filters with ANY and MATCH, persistence and validation.
"""

from __future__ import annotations

import json
import os

import pytest

from streamcore.broker.authorizer import (
    ACL_FILE,
    AclAuthorizer,
    AclBinding,
    AclBindingFilter,
    AclError,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from streamcore.errors import ConfigError, ErrorCode

Op = AclOperation
RT = ResourceType
ALICE, BOB = "User:alice", "User:bob"
HOST = "10.0.0.1"


def acl(
    name: str = "orders",
    op: str = "READ",
    principal: str = ALICE,
    *,
    rtype: str = "TOPIC",
    pattern: str = "LITERAL",
    host: str = "*",
    perm: str = "ALLOW",
) -> AclBinding:
    return AclBinding.of(rtype, name, pattern, principal, host, op, perm)


@pytest.fixture
def authz(tmp_path):
    return AclAuthorizer(tmp_path)


def ok(a: AclAuthorizer, op: AclOperation, name: str = "orders", principal: str = ALICE, **kw) -> bool:
    return a.authorize(principal, kw.get("host", HOST), op, kw.get("rtype", RT.TOPIC), name)


def test_codes_are_kafkas():
    assert (RT.TOPIC, RT.GROUP, RT.CLUSTER, RT.TRANSACTIONAL_ID, RT.DELEGATION_TOKEN, RT.USER) == (
        2,
        3,
        4,
        5,
        6,
        7,
    )
    assert (PatternType.ANY, PatternType.MATCH, PatternType.LITERAL, PatternType.PREFIXED) == (1, 2, 3, 4)
    assert (Op.ALL, Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE) == (2, 3, 4, 5, 6, 7, 8)
    assert (Op.CLUSTER_ACTION, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS, Op.IDEMPOTENT_WRITE) == (9, 10, 11, 12)
    assert (AclPermissionType.DENY, AclPermissionType.ALLOW) == (2, 3)


def test_no_acl_denies_by_default_and_allow_everyone_flag(tmp_path):
    assert not ok(AclAuthorizer(tmp_path), Op.READ)
    assert ok(AclAuthorizer(tmp_path, allow_everyone_if_no_acl_found=True), Op.READ)


def test_allow_everyone_applies_only_to_resources_without_any_acl(tmp_path):
    a = AclAuthorizer(tmp_path, allow_everyone_if_no_acl_found=True)
    a.create([acl("orders", "READ", BOB)])
    # An ACL for someone else exists on "orders": no fallback to "allow everyone".
    assert not ok(a, Op.READ, "orders", ALICE)
    assert ok(a, Op.READ, "orders", BOB)
    # Another resource still has no ACL at all.
    assert ok(a, Op.WRITE, "payments", ALICE)
    # A prefixed ACL for anyone covers the name too.
    a.create([acl("pay", "READ", BOB, pattern="PREFIXED")])
    assert not ok(a, Op.WRITE, "payments", ALICE)


def test_literal_allow_is_exact(authz):
    authz.create([acl("orders", "WRITE")])
    assert ok(authz, Op.WRITE, "orders")
    assert not ok(authz, Op.WRITE, "orders2")
    assert not ok(authz, Op.WRITE, "order")
    assert not ok(authz, Op.READ, "orders")
    assert not ok(authz, Op.WRITE, "orders", BOB)
    assert not ok(authz, Op.WRITE, "orders", rtype=RT.GROUP)


def test_deny_wins_over_allow(authz):
    authz.create([acl("orders", "READ"), acl("orders", "READ", perm="DENY")])
    assert not ok(authz, Op.READ)
    # Across patterns: a prefixed DENY beats a literal ALLOW, a wildcard ALLOW does not help.
    authz.create(
        [acl("pay", "WRITE", pattern="PREFIXED", perm="DENY"), acl("payments", "WRITE"), acl("*", "ALL")]
    )
    assert not ok(authz, Op.WRITE, "payments")
    assert ok(authz, Op.WRITE, "refunds")  # only the wildcard ALL applies
    # ALL denied beats any specific allow.
    authz.create([acl("refunds", "ALL", perm="DENY")])
    assert not ok(authz, Op.WRITE, "refunds")
    assert not ok(authz, Op.DESCRIBE, "refunds")


def test_describe_implied_by_read_write_delete_alter_only_when_allowed(authz):
    for op in ("READ", "WRITE", "DELETE", "ALTER"):
        authz.create([acl(f"t-{op}", op)])
        assert ok(authz, Op.DESCRIBE, f"t-{op}"), op
    for op in ("CREATE", "ALTER_CONFIGS", "DESCRIBE_CONFIGS"):
        authz.create([acl(f"t-{op}", op)])
        assert not ok(authz, Op.DESCRIBE, f"t-{op}"), op
    # DENY READ does not deny DESCRIBE.
    authz.create([acl("mixed", "DESCRIBE"), acl("mixed", "READ", perm="DENY")])
    assert ok(authz, Op.DESCRIBE, "mixed")
    assert not ok(authz, Op.READ, "mixed")
    # ...but DENY DESCRIBE beats an ALLOW READ's implied DESCRIBE.
    authz.create([acl("hidden", "READ"), acl("hidden", "DESCRIBE", perm="DENY")])
    assert not ok(authz, Op.DESCRIBE, "hidden")
    assert ok(authz, Op.READ, "hidden")


def test_describe_configs_implied_by_alter_configs(authz):
    authz.create([acl("orders", "ALTER_CONFIGS")])
    assert ok(authz, Op.DESCRIBE_CONFIGS)
    assert ok(authz, Op.ALTER_CONFIGS)
    assert not ok(authz, Op.DESCRIBE)  # ALTER_CONFIGS does not imply DESCRIBE
    authz.create([acl("other", "DESCRIBE_CONFIGS")])
    assert not ok(authz, Op.ALTER_CONFIGS, "other")
    # An implication is not reversed: WRITE does not imply READ.
    authz.create([acl("w", "WRITE")])
    assert not ok(authz, Op.READ, "w")


def test_all_allows_every_operation(authz):
    authz.create([acl("orders", "ALL")])
    for op in (Op.READ, Op.WRITE, Op.CREATE, Op.DELETE, Op.ALTER, Op.DESCRIBE, Op.DESCRIBE_CONFIGS):
        assert ok(authz, op)


def test_wildcard_principal_and_wildcard_resource(authz):
    authz.create([acl("orders", "READ", "User:*")])
    assert ok(authz, Op.READ, "orders", ALICE)
    assert ok(authz, Op.READ, "orders", "User:ANONYMOUS")
    authz.create([acl("*", "WRITE", BOB)])
    assert ok(authz, Op.WRITE, "anything", BOB)
    assert ok(authz, Op.WRITE, "orders", BOB)
    assert not ok(authz, Op.WRITE, "anything", ALICE)
    # "*" is only a wildcard as a LITERAL name; a PREFIXED "*" is the prefix "*".
    authz.create([acl("*", "DELETE", ALICE, pattern="PREFIXED")])
    assert not ok(authz, Op.DELETE, "anything", ALICE)
    assert ok(authz, Op.DELETE, "*weird", ALICE)


def test_prefixed_patterns(authz):
    authz.create([acl("team-a.", "WRITE", pattern="PREFIXED")])
    assert ok(authz, Op.WRITE, "team-a.orders")
    assert ok(authz, Op.WRITE, "team-a.")
    assert not ok(authz, Op.WRITE, "team-a")
    assert not ok(authz, Op.WRITE, "team-b.orders")
    # Several prefixes of one name all apply; a DENY at any length wins.
    authz.create(
        [acl("team-a.secret", "WRITE", pattern="PREFIXED", perm="DENY"), acl("t", "READ", pattern="PREFIXED")]
    )
    assert not ok(authz, Op.WRITE, "team-a.secret-orders")
    assert ok(authz, Op.WRITE, "team-a.public")
    assert ok(authz, Op.READ, "team-a.public")


def test_host_matching(authz):
    authz.create([acl("orders", "READ", host="10.0.0.1")])
    assert ok(authz, Op.READ, host="10.0.0.1")
    assert not ok(authz, Op.READ, host="10.0.0.2")
    # IPv6 hosts are stored and compared in canonical form.
    authz.create([acl("v6", "READ", host="0:0:0:0:0:0:0:1")])
    assert authz.describe(AclBindingFilter.of(name="v6"))[0].host == "::1"
    assert ok(authz, Op.READ, "v6", host="::1")
    assert not ok(authz, Op.READ, "v6", host="::2")


def test_super_users(tmp_path):
    a = AclAuthorizer(tmp_path, super_users=["User:admin", " User:ops "])
    a.create([acl("orders", "ALL", "User:admin", perm="DENY")])
    assert ok(a, Op.DELETE, "orders", "User:admin")  # DENY does not bind a super user
    assert ok(a, Op.ALTER, "kafka-cluster", "User:ops", rtype=RT.CLUSTER)
    assert not ok(a, Op.READ, "orders", ALICE)
    with pytest.raises(ConfigError, match="super_users"):
        AclAuthorizer(tmp_path, super_users=["admin"])


def test_cluster_and_group_resources(authz):
    authz.create(
        [acl("kafka-cluster", "CREATE", rtype="CLUSTER"), acl("g", "READ", rtype="GROUP", pattern="PREFIXED")]
    )
    assert ok(authz, Op.CREATE, "kafka-cluster", rtype=RT.CLUSTER)
    assert not ok(authz, Op.ALTER, "kafka-cluster", rtype=RT.CLUSTER)
    assert ok(authz, Op.READ, "group-1", rtype=RT.GROUP)
    assert not ok(authz, Op.READ, "group-1", rtype=RT.TOPIC)


def test_changes_apply_at_once_and_cache_is_invalidated(authz):
    assert not ok(authz, Op.READ)
    assert not ok(authz, Op.READ)  # cached
    authz.create([acl("orders", "READ")])
    assert ok(authz, Op.READ)
    authz.create([acl("orders", "READ", perm="DENY")])
    assert not ok(authz, Op.READ)
    (removed,) = authz.delete([AclBindingFilter.of(permission="DENY")])
    assert removed == [acl("orders", "READ", perm="DENY")]
    assert ok(authz, Op.READ)
    authz.delete([AclBindingFilter.of()])
    assert not ok(authz, Op.READ)
    assert authz.acls() == ()


def test_acls_survive_a_restart(tmp_path):
    a = AclAuthorizer(tmp_path)
    wanted = [
        acl("orders", "READ"),
        acl("pay", "WRITE", BOB, pattern="PREFIXED", host="10.1.2.3", perm="DENY"),
    ]
    assert a.create(wanted) == [None, None]
    stored = json.loads((tmp_path / ACL_FILE).read_text())
    assert stored["version"] == 1 and len(stored["acls"]) == 2
    assert not os.path.exists(tmp_path / (ACL_FILE + ".tmp"))
    b = AclAuthorizer(tmp_path)
    assert list(b.acls()) == wanted
    assert ok(b, Op.READ)


def test_unreadable_acl_file_refuses_to_start(tmp_path):
    (tmp_path / ACL_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the ACLs"):
        AclAuthorizer(tmp_path)
    (tmp_path / ACL_FILE).write_text(json.dumps({"version": 1, "acls": [{"name": "x"}]}))
    with pytest.raises(ConfigError):
        AclAuthorizer(tmp_path)


def test_failed_write_changes_nothing(tmp_path, monkeypatch):
    a = AclAuthorizer(tmp_path)
    a.create([acl("orders", "READ")])
    import streamcore.broker.authorizer.acl_authorizer as mod

    def boom(path, data):
        raise OSError("disk full")

    monkeypatch.setattr(mod, "write_atomic", boom)
    with pytest.raises(OSError):
        a.create([acl("orders", "READ", perm="DENY")])
    with pytest.raises(OSError):
        a.delete([AclBindingFilter.of()])
    assert list(a.acls()) == [acl("orders", "READ")]
    assert ok(a, Op.READ)


def test_create_is_idempotent_and_validates_each_binding(authz):
    good = acl("orders", "READ")
    bad_cluster = AclBinding(
        RT.CLUSTER, "other", PatternType.LITERAL, ALICE, "*", Op.ALTER, AclPermissionType.ALLOW
    )
    bad_pattern = AclBinding(RT.TOPIC, "t", PatternType.MATCH, ALICE, "*", Op.READ, AclPermissionType.ALLOW)
    results = authz.create([good, bad_cluster, good, bad_pattern])
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], AclError) and results[1].code == ErrorCode.INVALID_REQUEST.code
    assert "kafka-cluster" in results[1].message
    assert isinstance(results[3], AclError)
    assert authz.acls() == (good,)
    assert authz.create([good]) == [None]
    assert authz.acls() == (good,)


@pytest.mark.parametrize(
    "fields",
    [
        ("ANY", "t", "LITERAL", ALICE, "*", "READ", "ALLOW"),
        (0, "t", "LITERAL", ALICE, "*", "READ", "ALLOW"),
        ("TOPIC", "t", "ANY", ALICE, "*", "READ", "ALLOW"),
        ("TOPIC", "t", 99, ALICE, "*", "READ", "ALLOW"),
        ("TOPIC", "t", "LITERAL", ALICE, "*", "ANY", "ALLOW"),
        ("TOPIC", "t", "LITERAL", ALICE, "*", "READ", "ANY"),
        ("TOPIC", "", "LITERAL", ALICE, "*", "READ", "ALLOW"),
        ("TOPIC", "t", "LITERAL", "alice", "*", "READ", "ALLOW"),
        ("TOPIC", "t", "LITERAL", "User:", "*", "READ", "ALLOW"),
        ("TOPIC", "t", "LITERAL", ALICE, "example.com", "READ", "ALLOW"),
        ("CLUSTER", "my-cluster", "LITERAL", ALICE, "*", "ALTER", "ALLOW"),
    ],
)
def test_invalid_bindings(fields):
    with pytest.raises(AclError) as info:
        AclBinding.of(*fields)
    assert info.value.code == ErrorCode.INVALID_REQUEST.code


def test_filters_any_literal_prefixed_match(authz):
    lit = acl("orders", "READ")
    wild = acl("*", "DESCRIBE", BOB)
    pre = acl("ord", "WRITE", pattern="PREFIXED")
    other_pre = acl("pay", "WRITE", pattern="PREFIXED")
    grp = acl("orders", "READ", rtype="GROUP")
    authz.create([lit, wild, pre, other_pre, grp])
    d = authz.describe
    assert d(AclBindingFilter.of()) == [lit, wild, pre, other_pre, grp]
    assert d(AclBindingFilter.of(resource_type="TOPIC", name="orders")) == [lit]
    assert d(AclBindingFilter.of(resource_type="TOPIC", name="orders", pattern_type="LITERAL")) == [lit]
    assert d(AclBindingFilter.of(name="ord", pattern_type="PREFIXED")) == [pre]
    # MATCH: everything that applies to the topic "orders".
    assert d(AclBindingFilter.of(resource_type="TOPIC", name="orders", pattern_type="MATCH")) == [
        lit,
        wild,
        pre,
    ]
    assert d(AclBindingFilter.of(pattern_type="MATCH")) == [lit, wild, pre, other_pre, grp]
    assert d(AclBindingFilter.of(principal=BOB)) == [wild]
    assert d(AclBindingFilter.of(operation="WRITE")) == [pre, other_pre]
    assert d(AclBindingFilter.of(permission="DENY")) == []
    assert d(AclBindingFilter.of(host="*", resource_type="GROUP")) == [grp]
    with pytest.raises(AclError):
        AclBindingFilter.of(resource_type=0)
    with pytest.raises(AclError):
        AclBindingFilter.of(operation=42)


def test_delete_reports_per_filter_and_overlaps(authz):
    a1, a2, a3 = acl("a", "READ"), acl("b", "READ"), acl("b", "WRITE")
    authz.create([a1, a2, a3])
    r = authz.delete(
        [AclBindingFilter.of(name="b"), AclBindingFilter.of(operation="READ"), AclBindingFilter.of(name="zz")]
    )
    assert r == [[a2, a3], [a1, a2], []]
    assert authz.acls() == ()


def test_authorize_any_like_kafkas_authorize_by_resource_type(tmp_path):
    a = AclAuthorizer(tmp_path)
    assert not a.authorize_any(ALICE, HOST, Op.WRITE, RT.TOPIC)
    a.create([acl("logs-", "WRITE", pattern="PREFIXED")])
    assert a.authorize_any(ALICE, HOST, Op.WRITE, RT.TOPIC)
    assert not a.authorize_any(BOB, HOST, Op.WRITE, RT.TOPIC)
    # A DENY on a shorter prefix dominates the allow.
    a.create([acl("log", "WRITE", pattern="PREFIXED", perm="DENY")])
    assert not a.authorize_any(ALICE, HOST, Op.WRITE, RT.TOPIC)
    # A literal allow not dominated by the denied prefix counts again.
    a.create([acl("metrics", "ALL")])
    assert a.authorize_any(ALICE, HOST, Op.WRITE, RT.TOPIC)
    # A wildcard DENY denies outright.
    a.create([acl("*", "WRITE", perm="DENY")])
    assert not a.authorize_any(ALICE, HOST, Op.WRITE, RT.TOPIC)
    # Super users and allow-everyone are honoured.
    assert AclAuthorizer(tmp_path, super_users=[BOB]).authorize_any(BOB, HOST, Op.WRITE, RT.TOPIC)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert AclAuthorizer(empty, allow_everyone_if_no_acl_found=True).authorize_any(
        ALICE, HOST, Op.WRITE, RT.TOPIC
    )
