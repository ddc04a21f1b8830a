"""The admin APIs tools call, from confluent-kafka's AdminClient and the Java Admin client.

Each client runs the same steps against streamcore and against a real Apache Kafka broker
(the control, ``apache_kafka_bootstrap``): where the answers differ, ours is wrong. What
cannot match by design is checked apart: a broker config change (Kafka has dynamic
broker configs; streamcore's are static). Transactions: the offsets ListOffsets gives
each isolation level around an open, a committed and an aborted transaction, and a
transactional producer's init_transactions from each client.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from streamcore import Broker

from .conftest import JAVA_VERSIONS, JavaBuilds

pytestmark = pytest.mark.interop

JVM_TIMEOUT_S = 180
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m"]
STEP_TIMEOUT_S = 30
JOIN_DEADLINE_S = 30
SETTLE_S = 10  # how long the control's reads may take to show a change (bounded)


def _error_name(future: Any) -> str:
    """'ok', or the Kafka error name a confluent-kafka admin future failed with."""
    try:
        future.result(timeout=STEP_TIMEOUT_S)
    except KafkaException as exc:
        return exc.args[0].name()
    return "ok"


def _incremental(admin: AdminClient, resource: ConfigResource, *, validate_only: bool = False) -> str:
    [future] = admin.incremental_alter_configs([resource], validate_only=validate_only).values()
    return _error_name(future)


def _topic_configs(admin: AdminClient, topic: str) -> dict[str, Any]:
    [future] = admin.describe_configs([ConfigResource("topic", topic)]).values()
    return future.result(timeout=STEP_TIMEOUT_S)


def _overridden(admin: AdminClient, topic: str, name: str) -> bool:
    return _topic_configs(admin, topic)[name].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value


def _join(bootstrap: str, group: str, topic: str) -> Consumer:
    """A consumer that has joined ``group`` (subscribed to ``topic``) and got its assignment."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "session.timeout.ms": 10_000,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + JOIN_DEADLINE_S
    while not consumer.assignment():
        assert time.monotonic() < deadline, "the consumer did not get an assignment"
        consumer.poll(0.2)
    return consumer


def confluent_admin_steps(bootstrap: str, *, settle: bool = False) -> dict[str, object]:
    """Run every admin step once; returns step -> outcome (values and Kafka error names).

    ``settle``: Apache Kafka applies config changes and commits through its controller
    and coordinator a moment after it answers, so for the control each read after a
    change is repeated (bounded) until it shows the expected value. streamcore makes a
    change visible before it answers, so its run reads once.
    """
    suffix = uuid.uuid4().hex[:8]
    topic, group, busy = f"adm-{suffix}", f"adm-g-{suffix}", f"adm-busy-{suffix}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    out: dict[str, object] = {}

    def read(step: str, value: Callable[[], object]) -> None:
        deadline = time.monotonic() + (SETTLE_S if settle else 0)
        out[step] = value()
        while out[step] != EXPECTED[step] and time.monotonic() < deadline:
            time.sleep(0.1)
            out[step] = value()

    [created] = admin.create_topics([NewTopic(topic, 1, 1)]).values()
    created.result(timeout=STEP_TIMEOUT_S)

    def change(name: str, value: str, op: AlterConfigOpType) -> ConfigResource:
        return ConfigResource(
            "topic", topic, incremental_configs=[ConfigEntry(name, value, incremental_operation=op)]
        )

    out["set"] = _incremental(admin, change("retention.ms", "123000", AlterConfigOpType.SET))
    read("retention.ms", lambda: _topic_configs(admin, topic)["retention.ms"].value)
    out["append-to-non-list"] = _incremental(admin, change("retention.ms", "5", AlterConfigOpType.APPEND))
    out["unknown-config"] = _incremental(admin, change("no.such.config", "5", AlterConfigOpType.SET))
    out["bad-value"] = _incremental(admin, change("retention.ms", "soon", AlterConfigOpType.SET))
    out["validate-only"] = _incremental(
        admin, change("retention.bytes", "1000", AlterConfigOpType.SET), validate_only=True
    )
    read("validate-only-changed-nothing", lambda: not _overridden(admin, topic, "retention.bytes"))
    out["delete"] = _incremental(admin, change("retention.ms", "", AlterConfigOpType.DELETE))
    read("deleted-is-default", lambda: not _overridden(admin, topic, "retention.ms"))
    # The legacy AlterConfigs replaces the topic's whole override set.
    _incremental(admin, change("retention.ms", "99000", AlterConfigOpType.SET))
    [legacy] = admin.alter_configs(
        [ConfigResource("topic", topic, set_config={"retention.bytes": "1000000"})]
    ).values()
    out["legacy-alter"] = _error_name(legacy)
    read("legacy-alter-reset-the-rest", lambda: not _overridden(admin, topic, "retention.ms"))
    read("legacy-alter-set", lambda: _topic_configs(admin, topic)["retention.bytes"].value)
    [unknown] = admin.incremental_alter_configs(
        [
            ConfigResource(
                "topic",
                f"no-such-{suffix}",
                incremental_configs=[
                    ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)
                ],
            )
        ]
    ).values()
    out["unknown-topic"] = _error_name(unknown)

    [grown] = admin.create_partitions([NewPartitions(topic, 3)]).values()
    out["create-partitions"] = _error_name(grown)
    read("partitions", lambda: len(admin.list_topics(topic, timeout=STEP_TIMEOUT_S).topics[topic].partitions))
    [same] = admin.create_partitions([NewPartitions(topic, 3)]).values()
    out["same-count"] = _error_name(same)
    [shrink] = admin.create_partitions([NewPartitions(topic, 2)]).values()
    out["shrink"] = _error_name(shrink)

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(10):
        producer.produce(topic, value=b"v%d" % i, partition=0)
        producer.flush(STEP_TIMEOUT_S)  # one batch per record: the cut falls between batches
    tp0 = TopicPartition(topic, 0)
    [deleted] = admin.delete_records([TopicPartition(topic, 0, 4)]).values()
    out["low-watermark"] = deleted.result(timeout=STEP_TIMEOUT_S).low_watermark
    [earliest] = admin.list_offsets({tp0: OffsetSpec.earliest()}).values()
    out["earliest"] = earliest.result(timeout=STEP_TIMEOUT_S).offset
    [beyond] = admin.delete_records([TopicPartition(topic, 0, 100)]).values()
    out["delete-beyond-end"] = _error_name(beyond)

    def alter() -> list[str]:
        """'ok' or the error name per partition of committing offset 5 for the new group."""
        [altered] = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 5)])]
        ).values()
        try:
            done = altered.result(timeout=STEP_TIMEOUT_S)
        except KafkaException as exc:
            return [exc.args[0].name()]
        return [tp.error.name() if tp.error is not None else "ok" for tp in done.topic_partitions]

    # Apache Kafka may answer a group's first commit with a partition error while its
    # offsets topic is still being set up; the control commits again (bounded).
    read("alter-offsets", alter)

    def committed() -> list[int]:
        [listed] = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [tp0])]).values()
        return [tp.offset for tp in listed.result(timeout=STEP_TIMEOUT_S).topic_partitions]

    out["offset-committed"] = committed()
    deadline = time.monotonic() + (SETTLE_S if settle else 0)
    recommit_at = time.monotonic() + 2.0
    while out["offset-committed"] != [5] and time.monotonic() < deadline:
        time.sleep(0.1)
        if time.monotonic() >= recommit_at:
            # The control only: a commit Kafka answered but does not show after 2 s is
            # made again (seen once in five runs on a loaded machine).
            alter()
            recommit_at = time.monotonic() + 2.0
        out["offset-committed"] = committed()
    [gone] = admin.delete_consumer_groups([group]).values()
    out["delete-group"] = _error_name(gone)
    [again] = admin.delete_consumer_groups([group]).values()
    out["delete-group-again"] = _error_name(again)
    out["offset-after-delete"] = committed()

    consumer = _join(bootstrap, busy, topic)
    try:
        [refused] = admin.delete_consumer_groups([busy]).values()
        out["delete-non-empty-group"] = _error_name(refused)
    finally:
        consumer.close()
    return out


EXPECTED = {
    "set": "ok",
    "retention.ms": "123000",
    "append-to-non-list": "INVALID_CONFIG",
    "unknown-config": "INVALID_CONFIG",
    "bad-value": "INVALID_CONFIG",
    "validate-only": "ok",
    "validate-only-changed-nothing": True,
    "delete": "ok",
    "deleted-is-default": True,
    "legacy-alter": "ok",
    "legacy-alter-reset-the-rest": True,
    "legacy-alter-set": "1000000",
    "unknown-topic": "UNKNOWN_TOPIC_OR_PART",
    "create-partitions": "ok",
    "partitions": 3,
    "same-count": "INVALID_PARTITIONS",
    "shrink": "INVALID_PARTITIONS",
    "low-watermark": 4,
    "earliest": 4,
    "delete-beyond-end": "OFFSET_OUT_OF_RANGE",
    "alter-offsets": ["ok"],
    "offset-committed": [5],
    "delete-group": "ok",
    "delete-group-again": "GROUP_ID_NOT_FOUND",
    "offset-after-delete": [-1001],
    "delete-non-empty-group": "NON_EMPTY_GROUP",
}


def test_confluent_admin_client_against_apache_kafka_is_the_control(apache_kafka_bootstrap: str) -> None:
    assert confluent_admin_steps(apache_kafka_bootstrap, settle=True) == EXPECTED


def test_confluent_admin_client_against_streamcore(interop_broker: Broker) -> None:
    assert confluent_admin_steps(interop_broker.bootstrap_servers) == EXPECTED


def test_a_static_broker_config_is_refused_like_kafka_refuses_one(
    interop_broker: Broker, apache_kafka_bootstrap: str
) -> None:
    """log.dirs cannot change at run time in Kafka either: both refuse it with the same code."""

    def change_log_dirs(bootstrap: str) -> str:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        node = admin.describe_cluster().result(timeout=STEP_TIMEOUT_S).nodes[0].id
        resource = ConfigResource(
            "broker",
            str(node),
            incremental_configs=[
                ConfigEntry("log.dirs", "/elsewhere", incremental_operation=AlterConfigOpType.SET)
            ],
        )
        [future] = admin.incremental_alter_configs([resource]).values()
        return _error_name(future)

    assert change_log_dirs(interop_broker.bootstrap_servers) == change_log_dirs(apache_kafka_bootstrap)


# ---------------------------------------------------------------- transactions


def transaction_offsets(bootstrap: str) -> list[tuple[str, int, int]]:
    """(step, latest offset read_uncommitted, latest offset read_committed) of a one-partition
    topic through an open, a committed and an aborted transaction."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"txo-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(STEP_TIMEOUT_S)
    tp = TopicPartition(topic, 0)

    def latest(step: str, settled: bool = False) -> tuple[str, int, int]:
        """The two latest offsets; ``settled``: once the transaction's marker is written
        (Kafka answers EndTxn before its markers are, so the offsets may lag it a moment)."""
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            ends = []
            for level in (IsolationLevel.READ_UNCOMMITTED, IsolationLevel.READ_COMMITTED):
                [future] = admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level).values()
                ends.append(future.result(STEP_TIMEOUT_S).offset)
            if not settled or ends[0] == ends[1] or time.monotonic() > deadline:
                return step, ends[0], ends[1]
            time.sleep(0.1)

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}"})
    producer.init_transactions(STEP_TIMEOUT_S)
    steps = []
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=b"%d" % i, partition=0)
    producer.flush(STEP_TIMEOUT_S)
    steps.append(latest("open"))
    producer.commit_transaction(STEP_TIMEOUT_S)
    steps.append(latest("committed", settled=True))
    producer.begin_transaction()
    producer.produce(topic, value=b"dropped", partition=0)
    producer.flush(STEP_TIMEOUT_S)
    steps.append(latest("open again"))
    producer.abort_transaction(STEP_TIMEOUT_S)
    steps.append(latest("aborted", settled=True))
    return steps


def test_transaction_offsets_match_apache_kafka(interop_broker: Broker, apache_kafka_bootstrap: str) -> None:
    ours = transaction_offsets(interop_broker.bootstrap_servers)
    # 3 records, the COMMIT marker, 1 record, the ABORT marker; read_committed stops at
    # the first offset of the open transaction.
    assert ours == [("open", 3, 0), ("committed", 4, 4), ("open again", 5, 4), ("aborted", 6, 6)]
    assert ours == transaction_offsets(apache_kafka_bootstrap)


def test_a_second_confluent_producer_fences_the_first(interop_broker: Broker) -> None:
    bootstrap = interop_broker.bootstrap_servers
    first = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-c"})
    first.init_transactions(STEP_TIMEOUT_S)
    first.begin_transaction()
    first.produce("fenced", value=b"zombie")
    first.flush(STEP_TIMEOUT_S)
    second = Producer({"bootstrap.servers": bootstrap, "transactional.id": "tx-c"})
    second.init_transactions(STEP_TIMEOUT_S)  # aborts the first's transaction
    with pytest.raises(KafkaException) as info:
        first.commit_transaction(STEP_TIMEOUT_S)
    error = info.value.args[0]
    assert error.fatal(), error
    assert error.name() in ("_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"), error


def test_kafka_python_init_transactions_succeeds(interop_broker: Broker) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=interop_broker.bootstrap_servers, transactional_id="tx-kp", max_block_ms=30_000
    )
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("kp-txn", b"v").get(timeout=STEP_TIMEOUT_S)
        producer.commit_transaction()
    finally:
        producer.close(timeout=0)


# ---------------------------------------------------------------- the Java Admin client


def admin_check(classpath: str, bootstrap: str, txn: bool) -> list[str]:
    """Run AdminCheck; returns its stdout lines (the test fails on a non-zero exit)."""
    suffix = uuid.uuid4().hex[:8]
    cmd = [
        "java", *JVM_FLAGS, "-cp", classpath, "streamcore.interop.AdminCheck",
        "admin", bootstrap, f"jadm-{suffix}", f"jadm-g-{suffix}", str(txn).lower(),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=JVM_TIMEOUT_S)
    assert proc.returncode == 0, f"AdminCheck exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc.stdout.splitlines()


JAVA_EXPECTED = [
    "retention.ms 123000",
    "append-to-non-list InvalidConfigurationException",
    "unknown-config InvalidConfigurationException",
    "retention.ms-default true",
    "partitions 3",
    "shrink InvalidPartitionsException",
    "low-watermark 4",
    "earliest 4",
    "producers 1 last-sequence 9",
    "logdir-size-positive true",
    "offsets-after-offset-delete [0]",
    "delete-group-again GroupIdNotFoundException",
]


def test_java_admin_client_against_apache_kafka_is_the_control(
    apache_kafka_bootstrap: str, java_builds: JavaBuilds
) -> None:
    assert (
        admin_check(java_builds.classpath(JAVA_VERSIONS[-1]), apache_kafka_bootstrap, False) == JAVA_EXPECTED
    )


@pytest.mark.parametrize("version", JAVA_VERSIONS)
def test_java_admin_client_against_streamcore(
    interop_broker: Broker, java_builds: JavaBuilds, version: str
) -> None:
    lines = admin_check(java_builds.classpath(version), interop_broker.bootstrap_servers, True)
    assert lines[:-1] == JAVA_EXPECTED
    # A transactional producer starts.
    assert lines[-1].startswith("init-transactions ok "), lines[-1]
