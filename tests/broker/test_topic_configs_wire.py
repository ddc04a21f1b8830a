"""Kafka's topic configs on the wire: CreateTopics, DescribeConfigs, IncrementalAlterConfigs and
what compacted and LogAppendTime topics do to Produce and Fetch."""

from __future__ import annotations

import time
from typing import Any

from streamcore.broker.topic_configs import DESCRIBED_CONFIG_NAMES
from streamcore.codec import decode_batches
from streamcore.codec.batch_header import LOG_APPEND_TIME_FLAG
from streamcore.errors import ErrorCode as E
from streamcore.protocol import messages as m

from .wire_client import WireClient, batch, fetch_request, fetched_partition, produce, records_of


def _create(c: WireClient, name: str, configs: dict[str, str]) -> Any:
    resp = c.request(
        m.CreateTopicsRequest(
            topics=[
                m.CreateTopicsRequest_CreatableTopic(
                    name=name,
                    num_partitions=1,
                    replication_factor=1,
                    configs=[
                        m.CreateTopicsRequest_CreatableTopicConfig(name=k, value=v)
                        for k, v in configs.items()
                    ],
                )
            ],
            timeout_ms=10_000,
        ),
        7,
    )
    [topic] = resp.topics
    return topic


def _describe(c: WireClient, name: str) -> dict[str, Any]:
    resp = c.request(
        m.DescribeConfigsRequest(
            resources=[m.DescribeConfigsRequest_DescribeConfigsResource(resource_type=2, resource_name=name)],
            include_synonyms=True,
        ),
        4,
    )
    [result] = resp.results
    assert result.error_code == 0, result
    return {cfg.name: cfg for cfg in result.configs}


def test_streams_changelog_configs_are_accepted_and_described_with_kafkas_types(client):
    # What Kafka Streams sends for a changelog topic.
    created = _create(
        client,
        "app-store-changelog",
        {"cleanup.policy": "compact", "message.timestamp.type": "CreateTime", "min.compaction.lag.ms": "0"},
    )
    assert (created.error_code, created.error_message) == (0, None)
    assert [c.name for c in created.configs] == list(DESCRIBED_CONFIG_NAMES)
    configs = _describe(client, "app-store-changelog")
    policy = configs["cleanup.policy"]
    assert (policy.value, policy.config_source, policy.config_type) == ("compact", 1, 7)
    assert [(s.name, s.value, s.source) for s in policy.synonyms] == [
        ("cleanup.policy", "compact", 1),
        ("log.cleanup.policy", "delete", 5),
    ]
    assert configs["message.timestamp.type"].config_type == 2
    assert configs["min.cleanable.dirty.ratio"].config_type == 6
    # Connect and Streams create their topics at every start: an existing topic is
    # TOPIC_ALREADY_EXISTS whatever configs come with it.
    again = _create(client, "app-store-changelog", {"no.such.config": "1", "retention.ms": "x"})
    assert again.error_code == E.TOPIC_ALREADY_EXISTS.code
    refused = _create(client, "other", {"no.such.config": "1"})
    assert (refused.error_code, refused.error_message) == (
        E.INVALID_CONFIG.code,
        "Unknown topic config name: no.such.config",
    )


def test_a_compacted_topic_refuses_keyless_records_and_keeps_every_keyed_one(client):
    assert _create(client, "compacted", {"cleanup.policy": "compact"}).error_code == 0
    now = int(time.time() * 1000)
    keyless = batch([b"a", b"b"], keys=[b"k", None], timestamps_ms=[now, now])
    p = produce(client, "compacted", 0, keyless, version=9)
    assert p.error_code == E.INVALID_RECORD.code == 87
    assert [(e.batch_index, e.batch_index_error_message) for e in p.record_errors] == [
        (1, "Compacted topic cannot accept message without key in topic partition compacted-0")
    ]
    # Before v8 there is no room for record errors; the code alone tells the client.
    assert produce(client, "compacted", 0, keyless, version=7).error_code == E.INVALID_RECORD.code
    sent = [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", b"v3"), (b"k1", None)]
    for key, value in sent:
        p = produce(client, "compacted", 0, batch([value], keys=[key], timestamps_ms=[now]), version=9)
        assert p.error_code == 0, p
    fetched = fetched_partition(client.request(fetch_request("compacted", 0, 0), 12), "compacted", 0)
    # Nothing is removed before the cleaner runs: every record, offsets unchanged.
    assert records_of(fetched.records) == [(i, k, v) for i, (k, v) in enumerate(sent)]


def test_log_append_time_topics_carry_the_brokers_time(client):
    assert _create(client, "appended", {"message.timestamp.type": "LogAppendTime"}).error_code == 0
    before = int(time.time() * 1000)
    p = produce(client, "appended", 0, batch([b"a", b"b"], timestamps_ms=[1000, 2000]), version=9)
    after = int(time.time() * 1000)
    assert p.error_code == 0 and before <= p.log_append_time_ms <= after
    fetched = fetched_partition(client.request(fetch_request("appended", 0, 0), 12), "appended", 0)
    [got] = decode_batches(fetched.records)
    assert got.attributes & LOG_APPEND_TIME_FLAG
    assert [r.timestamp_ms for r in got.records] == [p.log_append_time_ms] * 2


def test_incremental_alter_appends_compact_to_the_policy_list(client):
    assert _create(client, "grows", {}).error_code == 0
    resp = client.request(
        m.IncrementalAlterConfigsRequest(
            resources=[
                m.IncrementalAlterConfigsRequest_AlterConfigsResource(
                    resource_type=2,
                    resource_name="grows",
                    configs=[
                        m.IncrementalAlterConfigsRequest_AlterableConfig(
                            name="cleanup.policy", config_operation=2, value="compact"
                        )
                    ],
                )
            ]
        ),
        1,
    )
    assert resp.responses[0].error_code == 0, resp
    assert _describe(client, "grows")["cleanup.policy"].value == "delete,compact"
    p = produce(client, "grows", 0, batch([b"x"]), version=9)
    assert p.error_code == E.INVALID_RECORD.code
