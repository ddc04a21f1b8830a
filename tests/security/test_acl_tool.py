"""``streamcore acls add|list|remove`` against a broker with an ACL authorizer.

The tool runs in this process (its parser built as ``streamcore.cli`` builds it), so the
embedded broker can serve CreateAcls/DescribeAcls/DeleteAcls even before they are in the
broker's api table: ``acl_apis`` puts them there for the test, exactly as the
registration lines would. On the PLAINTEXT listener the tool is User:ANONYMOUS.
"""

from __future__ import annotations

import argparse

import pytest

from streamcore.broker import handlers as handler_table
from streamcore.broker.authorizer import AclAuthorizer, AclOperation, ResourceType
from streamcore.broker.handlers import api_versions as api_versions_handler
from streamcore.broker.handlers import create_acls, delete_acls, describe_acls
from streamcore.protocol import api_versions
from streamcore.tools._common import UsageError
from streamcore.tools.acls import add_acls_command, parse_operation

ANON = "User:ANONYMOUS"


@pytest.fixture
def acl_apis(monkeypatch):
    """CreateAcls (30), DescribeAcls (29), DeleteAcls (31) served and advertised, v1-v3."""
    for module in (create_acls, describe_acls, delete_acls):
        monkeypatch.setitem(api_versions.ADVERTISED, module.API_KEY, (1, 3))
        monkeypatch.setattr(module, "MIN_VERSION", 1, raising=False)
        monkeypatch.setattr(module, "MAX_VERSION", 3, raising=False)
        monkeypatch.setitem(handler_table.HANDLERS, module.API_KEY, module)
    monkeypatch.setattr(api_versions_handler, "_ENTRIES", api_versions.api_version_entries())


@pytest.fixture
def broker(acl_apis, streamcore_broker_factory, tmp_path):
    b = streamcore_broker_factory()
    (tmp_path / "acls").mkdir()
    b.runtime.state.authorizer = AclAuthorizer(tmp_path / "acls", super_users=[ANON])
    return b


def acls(broker, capsys, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="streamcore")
    add_acls_command(parser.add_subparsers())
    args = parser.parse_args(["acls", argv[0], "--bootstrap", broker.bootstrap_servers, *argv[1:]])
    status = args.handler(args)
    out, err = capsys.readouterr()
    return status, out, err


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()[1:]]


def test_add_list_remove(broker, capsys):
    authz = broker.runtime.state.authorizer
    status, out, err = acls(
        broker, capsys, "add", "--allow", "User:alice", "--operation", "write", "--topic", "orders"
    )
    assert status == 0, err
    assert out == "added: ALLOW User:alice from * WRITE on TOPIC:LITERAL:orders\n"
    assert authz.authorize("User:alice", "10.0.0.1", AclOperation.WRITE, ResourceType.TOPIC, "orders")

    status, out, err = acls(
        broker,
        capsys,
        "add",
        "--allow",
        "User:etl",
        "--deny",
        "User:mallory",
        "--operation",
        "Read",
        "--operation",
        "DescribeConfigs",
        "--topic",
        "raw.",
        "--group",
        "etl-",
        "--prefixed",
        "--host",
        "10.0.0.7",
    )
    # 2 principals x 2 operations x 2 resources (groups support DESCRIBE_CONFIGS too, as in Kafka).
    assert status == 0, err
    assert len(out.splitlines()) == 8
    status, out, err = acls(broker, capsys, "add", "--allow", "User:ops", "--operation", "ALTER", "--cluster")
    assert status == 0, err
    assert len(authz.acls()) == 10

    status, out, _ = acls(broker, capsys, "list")
    assert status == 0
    table = rows(out)
    assert len(table) == 10
    assert ["User:ops", "*", "ALTER", "ALLOW", "CLUSTER", "LITERAL", "kafka-cluster"] in table
    assert ["User:mallory", "10.0.0.7", "READ", "DENY", "TOPIC", "PREFIXED", "raw."] in table

    status, out, _ = acls(broker, capsys, "list", "--topic", "raw.events", "--pattern-type", "match")
    assert {(r[0], r[2]) for r in rows(out)} == {
        ("User:etl", "READ"),
        ("User:etl", "DESCRIBE_CONFIGS"),
        ("User:mallory", "READ"),
        ("User:mallory", "DESCRIBE_CONFIGS"),
    }
    status, out, _ = acls(broker, capsys, "list", "--principal", "User:alice")
    assert rows(out) == [["User:alice", "*", "WRITE", "ALLOW", "TOPIC", "LITERAL", "orders"]]

    status, out, err = acls(
        broker, capsys, "remove", "--deny", "User:mallory", "--topic", "raw.", "--prefixed"
    )
    assert status == 0, err
    assert sorted(out.splitlines()) == [
        "removed: DENY User:mallory from 10.0.0.7 DESCRIBE_CONFIGS on TOPIC:PREFIXED:raw.",
        "removed: DENY User:mallory from 10.0.0.7 READ on TOPIC:PREFIXED:raw.",
    ]
    status, out, _ = acls(broker, capsys, "remove", "--principal", "User:etl", "--operation", "READ")
    assert len(out.splitlines()) == 2
    assert len(authz.acls()) == 6
    status, out, _ = acls(broker, capsys, "remove", "--cluster")
    assert out.splitlines() == ["removed: ALLOW User:ops from * ALTER on CLUSTER:LITERAL:kafka-cluster"]


def test_failures_are_one_line(broker, capsys):
    # An operation that does not apply to the resource type, like kafka-acls refuses it.
    status, _, err = acls(broker, capsys, "add", "--allow", "User:a", "--operation", "WRITE", "--group", "g")
    assert status == 2 and "does not apply to a GROUP" in err and len(err.splitlines()) == 1
    status, _, err = acls(
        broker, capsys, "add", "--allow", "User:a", "--operation", "READ", "--topic", "t", "--host", "x"
    )
    assert status == 2 and "invalid host" in err
    status, _, err = acls(broker, capsys, "add", "--operation", "READ", "--topic", "t")
    assert status == 2 and "--allow or --deny" in err
    status, _, err = acls(broker, capsys, "remove")
    assert status == 2
    # Without ALTER on the cluster the broker refuses.
    broker.runtime.state.authorizer.super_users = frozenset()
    status, _, err = acls(broker, capsys, "add", "--allow", "User:a", "--operation", "READ", "--topic", "t")
    assert status == 1 and "CLUSTER_AUTHORIZATION_FAILED" in err and len(err.splitlines()) == 1
    status, _, err = acls(broker, capsys, "list")
    assert status == 1 and "CLUSTER_AUTHORIZATION_FAILED" in err


def test_broker_without_authorizer(acl_apis, streamcore_broker_factory, capsys):
    b = streamcore_broker_factory()
    status, _, err = acls(b, capsys, "list")
    assert status == 1 and "SECURITY_DISABLED" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "op"),
    [
        ("read", AclOperation.READ),
        ("DescribeConfigs", AclOperation.DESCRIBE_CONFIGS),
        ("idempotent-write", AclOperation.IDEMPOTENT_WRITE),
        ("All", AclOperation.ALL),
    ],
)
def test_operation_spellings(text, op):
    assert parse_operation(text) is op


def test_unknown_operation():
    with pytest.raises(UsageError, match="unknown operation"):
        parse_operation("any")
