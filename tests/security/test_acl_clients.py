"""Real clients against a broker with an ACL authorizer.

On the PLAINTEXT listener every client is ``User:ANONYMOUS``; the ACLs below give that
principal some topics and not others, and the clients must see Kafka's answers:
TOPIC_AUTHORIZATION_FAILED for a produce without WRITE, Metadata without the topics
they may not DESCRIBE, a consumer refused a group it may not READ.
"""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from streamcore.broker.authorizer import AclAuthorizer, AclBindingFilter

from .test_acl_handlers import ADMIN, Harness
from .test_acl_tool import acl_apis  # noqa: F401 (fixture)

ANON = "User:ANONYMOUS"


@pytest.fixture
def h(streamcore_broker_factory, tmp_path):
    acl_dir = tmp_path / "acls"
    acl_dir.mkdir()
    harness = Harness(
        streamcore_broker_factory(auto_create=True), AclAuthorizer(acl_dir, super_users=[ADMIN])
    )
    for name in ("writable", "readonly", "hidden"):
        harness.create_topic(name)
    harness.allow(ANON, "WRITE", "TOPIC", "writable")
    harness.allow(ANON, "READ", "TOPIC", "readonly")
    return harness


def produce_one(bootstrap: str, topic: str, **conf: object) -> KafkaError | None:
    """Produce one message; the delivery error (None on success)."""
    outcome: list[KafkaError | None] = []
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "message.timeout.ms": 10000,
            "socket.timeout.ms": 10000,
            "allow.auto.create.topics": False,
            **conf,
        }
    )
    p.produce(topic, b"value", on_delivery=lambda err, msg: outcome.append(err))
    p.flush(20)
    assert len(outcome) == 1, "no delivery report"
    return outcome[0]


def test_produce_without_write_is_topic_authorization_failed(h):
    bootstrap = h.broker.bootstrap_servers
    assert produce_one(bootstrap, "writable") is None
    # DESCRIBE (implied by READ) but no WRITE: the Produce answer refuses it.
    err = produce_one(bootstrap, "readonly")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Not even DESCRIBE: Metadata already refuses it.
    err = produce_one(bootstrap, "hidden")
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert h.state.topics.log("readonly", 0).high_watermark == 0
    assert h.state.topics.log("writable", 0).high_watermark == 1


def test_idempotent_producer_needs_write_somewhere(h):
    bootstrap = h.broker.bootstrap_servers
    assert produce_one(bootstrap, "writable", **{"enable.idempotence": True}) is None
    # With no WRITE left anywhere (DESCRIBE kept, so Metadata still answers), InitProducerId
    # is refused with CLUSTER_AUTHORIZATION_FAILED, fatal for an idempotent producer.
    h.authorizer.delete([AclBindingFilter.of(operation="WRITE")])
    h.allow(ANON, "DESCRIBE", "TOPIC", "writable")
    errors: list[KafkaError] = []
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "message.timeout.ms": 10000,
            "error_cb": errors.append,
        }
    )
    p.produce("writable", b"value")
    try:
        p.flush(15)
    except KafkaException as exc:
        errors.append(exc.args[0])
    assert errors, "no error reported"
    assert any(e.fatal() and "Cluster authorization failed" in e.str() for e in errors), errors
    assert h.state.topics.log("writable", 0).high_watermark == 1


def test_metadata_shows_no_unauthorized_topic(h):
    admin = AdminClient({"bootstrap.servers": h.broker.bootstrap_servers})
    topics = set(admin.list_topics(timeout=10).topics)
    assert topics == {"writable", "readonly"}
    # A super user would see all; the authorizer decides per principal, not per client.
    assert {"writable", "readonly", "hidden"} <= {t.name for t in h.state.topics.list_topics()}


def test_consumer_needs_group_read(h):
    bootstrap = h.broker.bootstrap_servers
    group = f"g-{uuid.uuid4().hex[:8]}"
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
    }
    c = Consumer(conf)
    try:
        c.subscribe(["readonly"])
        errors = []
        for _ in range(40):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is not None:
                errors.append(msg.error().code())
                break
        assert errors == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    finally:
        c.close()

    assert produce_one(bootstrap, "writable") is None
    h.allow(ANON, "READ", "GROUP", group)
    h.allow(ANON, "READ", "TOPIC", "writable")
    c = Consumer(conf)
    try:
        c.subscribe(["writable"])
        got = None
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                got = msg.value()
                break
        assert got == b"value"
        c.commit(asynchronous=False)
    finally:
        c.close()


@pytest.mark.usefixtures("acl_apis")
def test_confluent_admin_manages_acls(streamcore_broker_factory, tmp_path):
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    broker = streamcore_broker_factory()
    (tmp_path / "acls").mkdir()
    broker.runtime.state.authorizer = AclAuthorizer(tmp_path / "acls", super_users=[ANON])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    binding = AclBinding(
        ResourceType.TOPIC,
        "orders",
        ResourcePatternType.PREFIXED,
        "User:alice",
        "*",
        AclOperation.WRITE,
        AclPermissionType.ALLOW,
    )
    for fut in admin.create_acls([binding], request_timeout=10).values():
        assert fut.result(10) is None
    any_filter = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    assert admin.describe_acls(any_filter, request_timeout=10).result(10) == [binding]
    deleted = admin.delete_acls([any_filter], request_timeout=10)
    assert [f.result(10) for f in deleted.values()] == [[binding]]
    assert broker.runtime.state.authorizer.acls() == ()


@pytest.mark.interop
def test_java_producer_without_write_gets_topic_authorization_failed(h):
    import subprocess

    from interop.conftest import JAVA_VERSIONS, JavaBuilds

    classpath = JavaBuilds().classpath(JAVA_VERSIONS[-1])
    bootstrap = h.broker.bootstrap_servers

    def client_check(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = ["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classpath]
        cmd += ["streamcore.interop.ClientCheck", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180)

    # Idempotent (the Java default): WRITE on "writable" also lets InitProducerId through.
    ok = client_check("produce", bootstrap, "writable", "10", "none", "true")
    assert ok.returncode == 0 and ok.stdout.splitlines()[-1] == "produced 10", ok.stderr[-3000:]
    for topic in ("readonly", "hidden"):
        refused = client_check("produce", bootstrap, topic, "10", "none", "true")
        assert refused.returncode != 0
        assert "TopicAuthorizationException" in refused.stderr, refused.stderr[-3000:]
    assert h.state.topics.log("readonly", 0).high_watermark == 0
