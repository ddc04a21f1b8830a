"""ACLs for SASL principals: a broker started with ``authorizer = "acl"``, PLAIN users
alice, bob and the super user admin, real clients authenticating as each.

ACLs are managed with ``streamcore acls`` as admin (``--command-config`` with the SASL
settings) and apply to the next request without a restart; they survive one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from streamcore import Broker
from streamcore.tools.acls import add_acls_command

from .test_acl_tool import acl_apis  # noqa: F401 (fixture, until the ACL APIs are registered)

USERS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw"}


def start(data_dir: Path) -> Broker:
    return Broker(
        str(data_dir),
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_mechanisms="PLAIN",
        sasl_plain_users=",".join(f"{u}:{p}" for u, p in USERS.items()),
        authorizer="acl",
        super_users="User:admin",
    ).start()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def broker(acl_apis, data_dir):  # noqa: F811
    b = start(data_dir)
    yield b
    b.stop()


def conf(broker: Broker, user: str) -> dict[str, object]:
    return {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanisms": "PLAIN",
        "sasl.username": user,
        "sasl.password": USERS[user],
    }


def produce_one(broker: Broker, user: str, topic: str) -> KafkaError | None:
    outcome: list[KafkaError | None] = []
    p = Producer({**conf(broker, user), "message.timeout.ms": 10000, "allow.auto.create.topics": False})
    p.produce(topic, b"v", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    assert len(outcome) == 1
    return outcome[0]


def acls(broker: Broker, tmp_path: Path, capsys, *argv: str) -> str:
    props = tmp_path / "admin.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        'username="admin" password="admin-pw";\n'
    )
    parser = argparse.ArgumentParser(prog="streamcore")
    add_acls_command(parser.add_subparsers())
    args = parser.parse_args(
        ["acls", argv[0], "--bootstrap", broker.bootstrap_servers, "--command-config", str(props), *argv[1:]]
    )
    status = args.handler(args)
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def create_topics(broker: Broker, *names: str) -> None:
    from confluent_kafka.admin import NewTopic

    admin = AdminClient(conf(broker, "admin"))
    for fut in admin.create_topics([NewTopic(n, 1, 1) for n in names], request_timeout=10).values():
        fut.result(10)


def visible_topics(broker: Broker, user: str) -> set[str]:
    return set(AdminClient(conf(broker, user)).list_topics(timeout=10).topics)


def test_principals_get_what_their_acls_say_and_changes_apply_at_once(broker, tmp_path, capsys):
    assert broker.state.authorizer is not None
    create_topics(broker, "orders", "payments", "team-a.events")
    err = produce_one(broker, "alice", "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert visible_topics(broker, "alice") == set()
    assert visible_topics(broker, "admin") >= {"orders", "payments", "team-a.events"}

    acls(
        broker, tmp_path, capsys, "add", "--allow", "User:alice", "--operation", "WRITE", "--topic", "orders"
    )
    assert produce_one(broker, "alice", "orders") is None  # no restart, no reconnect needed
    assert visible_topics(broker, "alice") == {"orders"}  # WRITE implies DESCRIBE
    err = produce_one(broker, "bob", "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Prefixed: bob may write every team-a. topic; a DENY for one wins over it.
    acls(
        broker,
        tmp_path,
        capsys,
        "add",
        "--allow",
        "User:bob",
        "--operation",
        "WRITE",
        "--topic",
        "team-a.",
        "--prefixed",
    )
    assert produce_one(broker, "bob", "team-a.events") is None
    acls(
        broker,
        tmp_path,
        capsys,
        "add",
        "--deny",
        "User:bob",
        "--operation",
        "WRITE",
        "--topic",
        "team-a.events",
    )
    err = produce_one(broker, "bob", "team-a.events")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    out = acls(broker, tmp_path, capsys, "remove", "--principal", "User:alice")
    assert out.splitlines() == ["removed: ALLOW User:alice from * WRITE on TOPIC:LITERAL:orders"]
    err = produce_one(broker, "alice", "orders")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_acls_survive_a_restart(acl_apis, data_dir, tmp_path, capsys):  # noqa: F811
    b = start(data_dir)
    try:
        create_topics(b, "orders")
        acls(b, tmp_path, capsys, "add", "--allow", "User:alice", "--operation", "WRITE", "--topic", "orders")
        assert produce_one(b, "alice", "orders") is None
    finally:
        b.stop()
    b = start(data_dir)
    try:
        assert produce_one(b, "alice", "orders") is None
        err = produce_one(b, "bob", "orders")
        assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
        out = acls(b, tmp_path, capsys, "list")
        assert "User:alice" in out and "WRITE" in out
    finally:
        b.stop()
