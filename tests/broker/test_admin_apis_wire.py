"""The admin APIs tools call, on the wire: AlterConfigs, IncrementalAlterConfigs, CreatePartitions,
DeleteGroups, OffsetDelete, DeleteRecords, DescribeLogDirs, DescribeProducers, and the
transaction coordinator's FindCoordinator and InitProducerId answers."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamcore.codec import decode_batches
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as a
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import ADVERTISED

from .wire_client import WireClient, batch, create_topic, fetch_request, fetched_partition, produce

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
E = ErrorCode

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- helpers


def _incremental(
    c: WireClient,
    topic: str,
    changes: list[tuple[str, int, str | None]],
    *,
    resource_type: int = TOPIC,
    validate_only: bool = False,
    version: int = 1,
) -> tuple[int, str | None]:
    resp = c.request(
        a.IncrementalAlterConfigsRequest(
            resources=[
                a.IncrementalAlterConfigsRequest_AlterConfigsResource(
                    resource_type=resource_type,
                    resource_name=topic,
                    configs=[
                        a.IncrementalAlterConfigsRequest_AlterableConfig(name=n, config_operation=op, value=v)
                        for n, op, v in changes
                    ],
                )
            ],
            validate_only=validate_only,
        ),
        version,
    )
    [r] = resp.responses
    assert (r.resource_type, r.resource_name) == (resource_type, topic)
    return r.error_code, r.error_message


def _alter(c: WireClient, topic: str, configs: dict[str, str], *, resource_type: int = TOPIC) -> int:
    resp = c.request(
        a.AlterConfigsRequest(
            resources=[
                a.AlterConfigsRequest_AlterConfigsResource(
                    resource_type=resource_type,
                    resource_name=topic,
                    configs=[
                        a.AlterConfigsRequest_AlterableConfig(name=k, value=v) for k, v in configs.items()
                    ],
                )
            ]
        ),
        2,
    )
    [r] = resp.responses
    return r.error_code


def _configs(c: WireClient, topic: str) -> dict[str, tuple[str, int]]:
    """name -> (value, config source) from DescribeConfigs v4."""
    resp = c.request(
        m.DescribeConfigsRequest(
            resources=[
                m.DescribeConfigsRequest_DescribeConfigsResource(
                    resource_type=TOPIC, resource_name=topic, configuration_keys=None
                )
            ]
        ),
        4,
    )
    [r] = resp.results
    assert r.error_code == 0, r
    return {e.name: (e.value, e.config_source) for e in r.configs}


def _partition_count(c: WireClient, topic: str) -> int:
    resp = c.request(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name=topic)]), 9)
    [t] = resp.topics
    assert t.error_code == 0
    return len(t.partitions)


def _create_partitions(
    c: WireClient, topic: str, count: int, *, assignments: list[list[int]] | None = None, validate_only=False
) -> tuple[int, str | None]:
    resp = c.request(
        a.CreatePartitionsRequest(
            topics=[
                a.CreatePartitionsRequest_CreatePartitionsTopic(
                    name=topic,
                    count=count,
                    assignments=None
                    if assignments is None
                    else [
                        a.CreatePartitionsRequest_CreatePartitionsAssignment(broker_ids=b)
                        for b in assignments
                    ],
                )
            ],
            timeout_ms=10_000,
            validate_only=validate_only,
        ),
        3,
    )
    [r] = resp.results
    assert r.name == topic
    return r.error_code, r.error_message


def _commit(c: WireClient, group: str, topic: str, partition: int, offset: int) -> int:
    resp = c.request(
        m.OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                m.OffsetCommitRequest_OffsetCommitRequestTopic(
                    name=topic,
                    partitions=[
                        m.OffsetCommitRequest_OffsetCommitRequestPartition(
                            partition_index=partition, committed_offset=offset, committed_metadata=""
                        )
                    ],
                )
            ],
        ),
        8,
    )
    return resp.topics[0].partitions[0].error_code


def _committed(c: WireClient, group: str, topic: str, partition: int = 0) -> int:
    resp = c.request(
        m.OffsetFetchRequest(
            group_id=group,
            topics=[m.OffsetFetchRequest_OffsetFetchRequestTopic(name=topic, partition_indexes=[partition])],
        ),
        7,
    )
    assert resp.error_code == 0
    return resp.topics[0].partitions[0].committed_offset


def _subscription(topics: list[str]) -> bytes:
    """ConsumerProtocolSubscription v1 as consumers send it: int16 version, then the struct."""
    return struct.pack(">h", 1) + m.ConsumerProtocolSubscription(topics=topics).encode(1)


def _join(c: WireClient, group: str, topics: list[str]) -> str:
    """Join ``group`` as the only member subscribed to ``topics``; returns the member id."""
    member_id = ""
    for _ in range(2):  # v4+: the first join hands out a member id (MEMBER_ID_REQUIRED)
        resp = c.request(
            m.JoinGroupRequest(
                group_id=group,
                session_timeout_ms=30_000,
                rebalance_timeout_ms=30_000,
                member_id=member_id,
                protocol_type="consumer",
                protocols=[
                    m.JoinGroupRequest_JoinGroupRequestProtocol(name="range", metadata=_subscription(topics))
                ],
            ),
            5,
        )
        member_id = resp.member_id
        if resp.error_code == 0:
            return member_id
        assert resp.error_code == E.MEMBER_ID_REQUIRED.code
    raise AssertionError("join did not complete")


def _delete_groups(c: WireClient, groups: list[str]) -> dict[str, int]:
    resp = c.request(a.DeleteGroupsRequest(groups_names=groups), 2)
    return {r.group_id: r.error_code for r in resp.results}


def _offset_delete(
    c: WireClient, group: str, parts: dict[str, list[int]]
) -> tuple[int, dict[tuple[str, int], int]]:
    resp = c.request(
        a.OffsetDeleteRequest(
            group_id=group,
            topics=[
                a.OffsetDeleteRequest_OffsetDeleteRequestTopic(
                    name=t,
                    partitions=[
                        a.OffsetDeleteRequest_OffsetDeleteRequestPartition(partition_index=p) for p in ps
                    ],
                )
                for t, ps in parts.items()
            ],
        ),
        0,
    )
    return resp.error_code, {
        (t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions
    }


def _delete_records(c: WireClient, topic: str, partition: int, offset: int) -> tuple[int, int]:
    resp = c.request(
        a.DeleteRecordsRequest(
            topics=[
                a.DeleteRecordsRequest_DeleteRecordsTopic(
                    name=topic,
                    partitions=[
                        a.DeleteRecordsRequest_DeleteRecordsPartition(
                            partition_index=partition, offset=offset
                        )
                    ],
                )
            ],
            timeout_ms=10_000,
        ),
        2,
    )
    [t] = resp.topics
    [p] = t.partitions
    return p.error_code, p.low_watermark


def _earliest(c: WireClient, topic: str) -> int:
    resp = c.request(
        m.ListOffsetsRequest(
            replica_id=-1,
            topics=[
                m.ListOffsetsRequest_ListOffsetsTopic(
                    name=topic,
                    partitions=[m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=-2)],
                )
            ],
        ),
        7,
    )
    p = resp.topics[0].partitions[0]
    assert p.error_code == 0
    return p.offset


def _fill(c: WireClient, topic: str, batches: int) -> None:
    for i in range(batches):
        assert produce(c, topic, 0, batch([b"a%d" % i, b"b%d" % i])).error_code == 0


# ---------------------------------------------------------------- advertised versions and the generated classes


def test_the_admin_apis_are_advertised_over_kafkas_version_ranges(client: WireClient) -> None:
    resp = client.request(m.ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
    ranges = {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys}
    assert {k: ranges[k] for k in (21, 33, 35, 37, 42, 44, 47, 61)} == {
        21: (0, 2),
        33: (0, 2),
        35: (1, 4),
        37: (0, 3),
        42: (0, 2),
        44: (0, 1),
        47: (0, 0),
        61: (0, 0),
    }
    assert all(ranges[k] == v for k, v in ADVERTISED.items())


def test_incremental_alter_configs_set_and_delete_show_in_describe_configs(client: WireClient) -> None:
    create_topic(client, "ic")
    assert _incremental(
        client, "ic", [("retention.ms", SET, "60000"), ("segment.bytes", SET, "2097152")]
    ) == (
        0,
        None,
    )
    configs = _configs(client, "ic")
    assert configs["retention.ms"] == ("60000", 1)
    assert configs["segment.bytes"] == ("2097152", 1)
    assert _incremental(client, "ic", [("retention.ms", DELETE, None)])[0] == 0
    configs = _configs(client, "ic")
    assert configs["retention.ms"][1] in (4, 5)  # back to the broker's setting or default
    assert configs["segment.bytes"] == ("2097152", 1)


def test_incremental_alter_configs_refuses_bad_changes_with_kafkas_codes(client: WireClient) -> None:
    create_topic(client, "icbad")
    assert _incremental(client, "icbad", [("retention.ms", SET, "soon")])[0] == E.INVALID_CONFIG.code
    assert _incremental(client, "icbad", [("no.such.config", SET, "1")])[0] == E.INVALID_CONFIG.code
    # APPEND/SUBTRACT are for list configs only.
    code, message = _incremental(client, "icbad", [("retention.ms", APPEND, "5")])
    assert code == E.INVALID_CONFIG.code and "list" in message.lower()
    assert _incremental(client, "icbad", [("cleanup.policy", APPEND, "bogus")])[0] == E.INVALID_CONFIG.code
    # Appending what the list holds already changes nothing.
    assert _incremental(client, "icbad", [("cleanup.policy", APPEND, "delete")])[0] == 0
    assert _configs(client, "icbad")["cleanup.policy"][0] == "delete"
    dup = [("retention.ms", SET, "1000"), ("retention.ms", SET, "2000")]
    assert _incremental(client, "icbad", dup)[0] == E.INVALID_REQUEST.code
    assert _incremental(client, "no-such-topic-ic", [("retention.ms", SET, "1")])[0] == (
        E.UNKNOWN_TOPIC_OR_PARTITION.code
    )
    assert _incremental(client, "x", [("level", SET, "DEBUG")], resource_type=BROKER_LOGGER)[0] == (
        E.INVALID_REQUEST.code
    )
    # Nothing refused above was applied.
    assert _configs(client, "icbad")["retention.ms"][1] in (4, 5)


def test_validate_only_checks_without_changing(client: WireClient) -> None:
    create_topic(client, "vo")
    assert _incremental(client, "vo", [("retention.ms", SET, "5000")], validate_only=True) == (0, None)
    assert _configs(client, "vo")["retention.ms"][1] in (4, 5)
    assert (
        _incremental(client, "vo", [("retention.ms", SET, "-7")], validate_only=True)[0]
        == E.INVALID_CONFIG.code
    )


def test_broker_configs_are_static_and_refused_with_a_message(client: WireClient) -> None:
    code, message = _incremental(client, "0", [("log.retention.ms", SET, "1000")], resource_type=BROKER)
    assert code == E.INVALID_REQUEST.code
    assert "log.retention.ms" in message and "static" in message
    assert _alter(client, "0", {"log.retention.ms": "1000"}, resource_type=BROKER) == E.INVALID_REQUEST.code
    code, message = _incremental(client, "7", [("log.retention.ms", SET, "1")], resource_type=BROKER)
    assert code == E.INVALID_REQUEST.code and "broker 0" in message


def test_alter_configs_replaces_every_override(client: WireClient) -> None:
    create_topic(client, "ac")
    assert _alter(client, "ac", {"retention.ms": "70000", "retention.bytes": "1000000"}) == 0
    assert _configs(client, "ac")["retention.bytes"] == ("1000000", 1)
    # Kafka's AlterConfigs sets the whole override set: what is not named returns to its default.
    assert _alter(client, "ac", {"retention.bytes": "2000000"}) == 0
    configs = _configs(client, "ac")
    assert configs["retention.bytes"] == ("2000000", 1)
    assert configs["retention.ms"][1] in (4, 5)
    assert _alter(client, "ac", {"segment.bytes": "12"}) == E.INVALID_CONFIG.code
    assert _alter(client, "no-such-topic-ac", {"retention.ms": "1"}) == E.UNKNOWN_TOPIC_OR_PARTITION.code


def test_config_changes_and_new_partitions_survive_a_restart(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    first = streamcore_broker_factory()
    data_dir = first.config.data_dir
    with WireClient(first.bootstrap_servers) as c:
        create_topic(c, "keep")
        assert _incremental(c, "keep", [("retention.ms", SET, "123000")])[0] == 0
        assert _create_partitions(c, "keep", 4) == (0, None)
    first.stop()
    second = streamcore_broker_factory(data_dir=data_dir)
    with WireClient(second.bootstrap_servers) as c:
        assert _configs(c, "keep")["retention.ms"] == ("123000", 1)
        assert _partition_count(c, "keep") == 4


# ---------------------------------------------------------------- CreatePartitions


def test_create_partitions_grows_a_topic_that_then_takes_records(client: WireClient) -> None:
    create_topic(client, "cp")
    assert _create_partitions(client, "cp", 3) == (0, None)
    assert _partition_count(client, "cp") == 3
    assert produce(client, "cp", 2, batch([b"new"])).error_code == 0


def test_create_partitions_refusals(client: WireClient) -> None:
    create_topic(client, "cpr", partitions=2)
    assert _create_partitions(client, "cpr", 2)[0] == E.INVALID_PARTITIONS.code
    assert _create_partitions(client, "cpr", 1)[0] == E.INVALID_PARTITIONS.code
    assert _create_partitions(client, "no-such-topic-cp", 3)[0] == E.UNKNOWN_TOPIC_OR_PARTITION.code
    assert (
        _create_partitions(client, "cpr", 4, assignments=[[0], [1]])[0] == E.INVALID_REPLICA_ASSIGNMENT.code
    )
    assert _create_partitions(client, "cpr", 4, assignments=[[0]])[0] == E.INVALID_REPLICA_ASSIGNMENT.code
    assert _create_partitions(client, "cpr", 4, validate_only=True) == (0, None)
    assert _partition_count(client, "cpr") == 2
    assert _create_partitions(client, "cpr", 4, assignments=[[0], [0]]) == (0, None)
    assert _partition_count(client, "cpr") == 4


# ---------------------------------------------------------------- DeleteGroups and OffsetDelete


def test_delete_groups_removes_offsets_for_good(streamcore_broker_factory: Callable[..., Any]) -> None:
    first = streamcore_broker_factory()
    data_dir = first.config.data_dir
    with WireClient(first.bootstrap_servers) as c:
        create_topic(c, "dg")
        assert _commit(c, "gone", "dg", 0, 7) == 0
        assert _commit(c, "kept", "dg", 0, 9) == 0
        assert _delete_groups(c, ["gone", "never-seen"]) == {
            "gone": 0,
            "never-seen": E.GROUP_ID_NOT_FOUND.code,
        }
        assert _committed(c, "gone", "dg") == -1
    first.stop()
    # The tombstones in __consumer_offsets keep the deletion across a restart.
    second = streamcore_broker_factory(data_dir=data_dir)
    with WireClient(second.bootstrap_servers) as c:
        assert _committed(c, "gone", "dg") == -1
        assert _committed(c, "kept", "dg") == 9


def test_delete_groups_refuses_a_group_with_members(client: WireClient) -> None:
    create_topic(client, "dgm")
    _join(client, "busy", ["dgm"])
    assert _delete_groups(client, ["busy"]) == {"busy": E.NON_EMPTY_GROUP.code}


def test_offset_delete_spares_subscribed_topics(client: WireClient) -> None:
    create_topic(client, "subbed")
    create_topic(client, "other")
    assert _commit(client, "od", "subbed", 0, 3) == 0
    assert _commit(client, "od", "other", 0, 4) == 0
    _join(client, "od", ["subbed"])
    code, parts = _offset_delete(client, "od", {"subbed": [0], "other": [0], "no-such-topic-od": [0]})
    assert code == 0
    assert parts == {
        ("subbed", 0): E.GROUP_SUBSCRIBED_TO_TOPIC.code,
        ("other", 0): 0,
        ("no-such-topic-od", 0): E.UNKNOWN_TOPIC_OR_PARTITION.code,
    }
    assert _committed(client, "od", "subbed") == 3
    assert _committed(client, "od", "other") == -1
    assert _offset_delete(client, "no-such-group", {"other": [0]})[0] == E.GROUP_ID_NOT_FOUND.code


# ---------------------------------------------------------------- DeleteRecords


def test_delete_records_moves_the_log_start_for_fetch_and_list_offsets(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    first = streamcore_broker_factory()
    data_dir = first.config.data_dir
    with WireClient(first.bootstrap_servers) as c:
        create_topic(c, "dr")
        _fill(c, "dr", 5)  # offsets 0..9
        assert _delete_records(c, "dr", 0, 4) == (0, 4)
        assert _earliest(c, "dr") == 4
        below = fetched_partition(c.request(fetch_request("dr", 0, 2), 12), "dr", 0)
        assert below.error_code == E.OFFSET_OUT_OF_RANGE.code
        at = fetched_partition(c.request(fetch_request("dr", 0, 4), 12), "dr", 0)
        assert at.error_code == 0 and at.log_start_offset == 4
        # Below the log start: nothing changes, the answer is the current start.
        assert _delete_records(c, "dr", 0, 1) == (0, 4)
        assert _delete_records(c, "dr", 0, 11)[0] == E.OFFSET_OUT_OF_RANGE.code
        assert _delete_records(c, "dr", 3, 1)[0] == E.UNKNOWN_TOPIC_OR_PARTITION.code
        assert _delete_records(c, "__consumer_offsets", 0, 0)[0] == E.INVALID_TOPIC_EXCEPTION.code
    first.stop()
    second = streamcore_broker_factory(data_dir=data_dir)
    with WireClient(second.bootstrap_servers) as c:
        assert _earliest(c, "dr") == 4
        # -1 means the high watermark: everything goes.
        assert _delete_records(c, "dr", 0, -1) == (0, 10)
        assert _earliest(c, "dr") == 10


def test_delete_records_on_a_compact_only_topic_is_a_policy_violation(client: WireClient) -> None:
    create_topic(client, "drc")
    _fill(client, "drc", 3)
    assert _alter(client, "drc", {"cleanup.policy": "compact"}) == 0
    assert _delete_records(client, "drc", 0, 2) == (E.POLICY_VIOLATION.code, -1)
    assert _earliest(client, "drc") == 0
    # With delete in the policy as well, Kafka allows it again.
    assert _alter(client, "drc", {"cleanup.policy": "compact,delete"}) == 0
    assert _delete_records(client, "drc", 0, 2) == (0, 2)


# ---------------------------------------------------------------- DescribeLogDirs and DescribeProducers


def test_describe_log_dirs_lists_the_data_directory_and_partition_sizes(
    broker: Any, client: WireClient
) -> None:
    create_topic(client, "ld", partitions=2)
    _fill(client, "ld", 3)
    resp = client.request(a.DescribeLogDirsRequest(topics=None), 4)
    assert resp.error_code == 0
    [result] = resp.results
    assert result.error_code == 0
    assert result.log_dir == os.path.abspath(broker.config.data_dir)
    assert result.total_bytes > 0 and 0 <= result.usable_bytes <= result.total_bytes
    topics = {t.name: {p.partition_index: p for p in t.partitions} for t in result.topics}
    assert set(topics["ld"]) == {0, 1}
    assert topics["ld"][0].partition_size > 0 and topics["ld"][1].partition_size == 0
    assert all(p.offset_lag == 0 and not p.is_future_key for p in topics["ld"].values())
    assert "__consumer_offsets" in topics
    # Named topics narrow the answer; unknown ones are left out.
    resp = client.request(
        a.DescribeLogDirsRequest(
            topics=[
                a.DescribeLogDirsRequest_DescribableLogDirTopic(topic="ld", partitions=[1]),
                a.DescribeLogDirsRequest_DescribableLogDirTopic(topic="no-such-topic-ld", partitions=[0]),
            ]
        ),
        1,
    )
    [result] = resp.results
    assert [(t.name, [p.partition_index for p in t.partitions]) for t in result.topics] == [("ld", [1])]


def test_describe_producers_lists_idempotent_producers(client: WireClient) -> None:
    create_topic(client, "dp")
    init = client.request(m.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000), 4)
    assert init.error_code == 0
    pid, epoch = init.producer_id, init.producer_epoch
    assert (
        produce(
            client, "dp", 0, batch([b"x", b"y"], producer_id=pid, producer_epoch=epoch, base_sequence=0)
        ).error_code
        == 0
    )
    assert (
        produce(
            client, "dp", 0, batch([b"z"], producer_id=pid, producer_epoch=epoch, base_sequence=2)
        ).error_code
        == 0
    )
    resp = client.request(
        a.DescribeProducersRequest(
            topics=[a.DescribeProducersRequest_TopicRequest(name="dp", partition_indexes=[0, 5])]
        ),
        0,
    )
    [t] = resp.topics
    known, unknown = t.partitions
    assert known.error_code == 0
    [state] = known.active_producers
    assert (state.producer_id, state.producer_epoch, state.last_sequence) == (pid, epoch, 2)
    assert state.last_timestamp > 0
    assert (state.coordinator_epoch, state.current_txn_start_offset) == (-1, -1)
    assert unknown.error_code == E.UNKNOWN_TOPIC_OR_PARTITION.code


# ---------------------------------------------------------------- transaction coordinator


@pytest.mark.parametrize("version", [1, 3, 4])
def test_find_coordinator_for_a_transactional_id_answers_this_broker(
    broker: Any, client: WireClient, version: int
) -> None:
    if version >= 4:
        req = m.FindCoordinatorRequest(key_type=1, coordinator_keys=["txn"])
    else:
        req = m.FindCoordinatorRequest(key="txn", key_type=1)
    resp = client.request(req, version)
    entry = resp.coordinators[0] if version >= 4 else resp
    assert entry.error_code == 0
    assert entry.node_id == broker.config.node_id
    assert f"{entry.host}:{entry.port}" == broker.bootstrap_servers


def test_find_coordinator_for_an_unknown_key_type_is_an_invalid_request(client: WireClient) -> None:
    resp = client.request(m.FindCoordinatorRequest(key_type=2, coordinator_keys=["share"]), 4)
    assert resp.coordinators[0].error_code == E.INVALID_REQUEST.code
    assert resp.coordinators[0].node_id == -1


def test_init_producer_id_with_a_transactional_id_bumps_the_epoch(client: WireClient) -> None:
    first = client.request(m.InitProducerIdRequest(transactional_id="txn", transaction_timeout_ms=60_000), 4)
    assert first.error_code == 0
    assert first.producer_id >= 0 and first.producer_epoch == 0
    # A second producer of the same id gets the same producer id, the next epoch (fencing
    # the first).
    again = client.request(m.InitProducerIdRequest(transactional_id="txn", transaction_timeout_ms=60_000), 4)
    assert (again.error_code, again.producer_id, again.producer_epoch) == (0, first.producer_id, 1)
    # The first producer, naming its old epoch (KIP-360), is fenced.
    stale = client.request(
        m.InitProducerIdRequest(
            transactional_id="txn",
            transaction_timeout_ms=60_000,
            producer_id=first.producer_id,
            producer_epoch=0,
        ),
        4,
    )
    assert stale.error_code == E.PRODUCER_FENCED.code
    stale = client.request(
        m.InitProducerIdRequest(
            transactional_id="txn",
            transaction_timeout_ms=60_000,
            producer_id=first.producer_id,
            producer_epoch=0,
        ),
        3,
    )
    assert stale.error_code == E.INVALID_PRODUCER_EPOCH.code


def test_init_producer_id_refuses_a_timeout_above_the_maximum(client: WireClient) -> None:
    resp = client.request(
        m.InitProducerIdRequest(transactional_id="txn", transaction_timeout_ms=15 * 60 * 1000 + 1), 4
    )
    assert resp.error_code == E.INVALID_TRANSACTION_TIMEOUT.code
    assert resp.producer_id == -1


def test_compression_type_makes_the_broker_store_its_codec(client: WireClient) -> None:
    create_topic(client, "cz")
    assert _alter(client, "cz", {"compression.type": "zstd"}) == 0
    sent = batch([b"a" * 100, b"b" * 100], keys=[b"k1", b"k2"], compression="gzip")
    assert produce(client, "cz", 0, sent).error_code == 0
    stored = fetched_partition(client.request(fetch_request("cz", 0, 0), 12), "cz", 0)
    [got] = decode_batches(bytes(stored.records))
    assert got.compression == "zstd"
    assert [(r.key, r.value) for r in got.records] == [(b"k1", b"a" * 100), (b"k2", b"b" * 100)]
    # Back to producer: the producer's codec is kept as sent.
    assert _alter(client, "cz", {"compression.type": "producer"}) == 0
    assert produce(client, "cz", 0, sent).error_code == 0
    later = fetched_partition(client.request(fetch_request("cz", 0, 2), 12), "cz", 0)
    assert decode_batches(bytes(later.records))[0].compression == "gzip"
