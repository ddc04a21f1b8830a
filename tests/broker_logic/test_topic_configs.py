"""The one table of topic configs (Kafka 4.1's names, types, defaults, validators and messages),
what the broker does with cleanup.policy, and the record rules a topic's configs impose."""

from __future__ import annotations

import dataclasses
import time

import pytest

from streamcore.broker.config import load_config
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import describe_configs
from streamcore.broker.record_policy import PolicyRefusal, apply_record_policy
from streamcore.broker.topic_configs import (
    ALL_TOPIC_CONFIGS,
    CONFIG_SOURCE_DEFAULT,
    CONFIG_SOURCE_STATIC_BROKER,
    CONFIG_SOURCE_TOPIC,
    DESCRIBED_CONFIG_NAMES,
    OP_APPEND,
    OP_DELETE,
    OP_SET,
    OP_SUBTRACT,
    STREAMCORE_TOPIC_CONFIGS,
    TOPIC_CONFIGS,
    ConfigType,
    TopicConfig,
    TopicError,
    check_topic_configs,
    incremental_change,
)
from streamcore.broker.topics import TopicManager
from streamcore.codec import decode_batch, encode_batch, validate_batch
from streamcore.codec.batch_header import LOG_APPEND_TIME_FLAG
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeConfigsRequest,
    DescribeConfigsRequest_DescribeConfigsResource,
)

# Kafka 4.1.1's public topic configs with their DescribeConfigs types, as
# `org.apache.kafka.storage.internals.log.LogConfig` documents them.
KAFKA_4_1_TOPIC_CONFIGS = {
    "cleanup.policy": "LIST",
    "compression.gzip.level": "INT",
    "compression.lz4.level": "INT",
    "compression.type": "STRING",
    "compression.zstd.level": "INT",
    "delete.retention.ms": "LONG",
    "file.delete.delay.ms": "LONG",
    "flush.messages": "LONG",
    "flush.ms": "LONG",
    "follower.replication.throttled.replicas": "LIST",
    "index.interval.bytes": "INT",
    "leader.replication.throttled.replicas": "LIST",
    "local.retention.bytes": "LONG",
    "local.retention.ms": "LONG",
    "max.compaction.lag.ms": "LONG",
    "max.message.bytes": "INT",
    "message.timestamp.after.max.ms": "LONG",
    "message.timestamp.before.max.ms": "LONG",
    "message.timestamp.type": "STRING",
    "min.cleanable.dirty.ratio": "DOUBLE",
    "min.compaction.lag.ms": "LONG",
    "min.insync.replicas": "INT",
    "preallocate": "BOOLEAN",
    "remote.log.copy.disable": "BOOLEAN",
    "remote.log.delete.on.disable": "BOOLEAN",
    "remote.storage.enable": "BOOLEAN",
    "retention.bytes": "LONG",
    "retention.ms": "LONG",
    "segment.bytes": "INT",
    "segment.index.bytes": "INT",
    "segment.jitter.ms": "LONG",
    "segment.ms": "LONG",
    "unclean.leader.election.enable": "BOOLEAN",
}


def manager(tmp_path, **cli):
    return TopicManager(tmp_path, load_config(None, env={}, cli={"data_dir": str(tmp_path), **cli}))


def test_the_table_holds_kafkas_topic_configs_with_their_types():
    assert {n: TOPIC_CONFIGS[n].config_type.name for n in DESCRIBED_CONFIG_NAMES} == KAFKA_4_1_TOPIC_CONFIGS
    assert list(DESCRIBED_CONFIG_NAMES) == sorted(KAFKA_4_1_TOPIC_CONFIGS)
    # Kafka's internal test-only segment size is accepted but never described.
    assert set(TOPIC_CONFIGS) - set(DESCRIBED_CONFIG_NAMES) == {"internal.segment.bytes"}


def test_every_acted_on_setting_has_exactly_one_row_and_defaults_pass_their_own_validators():
    fields = [d.field for d in TOPIC_CONFIGS.values() if d.field]
    assert sorted(fields) == sorted(f.name for f in dataclasses.fields(TopicConfig))
    for d in TOPIC_CONFIGS.values():
        assert d.broker_setting is None or d.default is None, d.name
        if d.default is not None:
            d.parse(d.default)


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        ({"foo.bar": "1"}, "Unknown topic config name: foo.bar"),
        (
            {"retention.ms": "abc"},
            "Invalid value abc for configuration retention.ms: Not a number of type LONG",
        ),
        (
            {"retention.ms": "1e3"},
            "Invalid value 1e3 for configuration retention.ms: Not a number of type LONG",
        ),
        (
            {"retention.ms": "-2"},
            "Invalid value -2 for configuration retention.ms: Value must be at least -1",
        ),
        (
            {"segment.bytes": "1000"},
            "Invalid value 1000 for configuration segment.bytes: Value must be at least 1048576",
        ),
        (
            {"max.message.bytes": "2147483648"},
            "Invalid value 2147483648 for configuration max.message.bytes: Not a number of type INT",
        ),
        (
            {"cleanup.policy": "compact,foo"},
            "Invalid value foo for configuration cleanup.policy: String must be one of: compact, delete",
        ),
        (
            {"cleanup.policy": "Compact"},
            "Invalid value Compact for configuration cleanup.policy: String must be one of: compact, delete",
        ),
        (
            {"message.timestamp.type": "logappendtime"},
            "Invalid value logappendtime for configuration message.timestamp.type: "
            "String must be one of: CreateTime, LogAppendTime",
        ),
        (
            {"min.cleanable.dirty.ratio": "1.5"},
            "Invalid value 1.5 for configuration min.cleanable.dirty.ratio: Value must be no more than 1",
        ),
        (
            {"min.cleanable.dirty.ratio": "x"},
            "Invalid value x for configuration min.cleanable.dirty.ratio: Not a number of type DOUBLE",
        ),
        (
            {"preallocate": "yes"},
            "Invalid value yes for configuration preallocate: Expected value to be either true or false",
        ),
        (
            {"compression.type": "brotli"},
            "Invalid value brotli for configuration compression.type: "
            "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer",
        ),
        (
            {"compression.gzip.level": "0"},
            "Invalid value 0 for configuration compression.gzip.level: Value must be between 1 and 9 or equal to -1",
        ),
        (
            {"compression.zstd.level": "23"},
            "Invalid value 23 for configuration compression.zstd.level: Value must be no more than 22",
        ),
        (
            {"local.retention.ms": "-3"},
            "Invalid value -3 for configuration local.retention.ms: Value must be at least -2",
        ),
        ({"segment.ms": "0"}, "Invalid value 0 for configuration segment.ms: Value must be at least 1"),
        (
            {"min.compaction.lag.ms": "10", "max.compaction.lag.ms": "5"},
            "conflict topic config setting min.compaction.lag.ms (10) > max.compaction.lag.ms (5)",
        ),
        (
            {"leader.replication.throttled.replicas": "x"},
            "Invalid value [x] for configuration leader.replication.throttled.replicas: "
            "leader.replication.throttled.replicas must be the literal '*' or a list of replicas in the "
            "following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...",
        ),
        (
            {"remote.storage.enable": "true"},
            "Tiered Storage functionality is disabled in the broker. "
            "Topic cannot be configured with remote log storage.",
        ),
        ({"retention.ms": None}, "Null value not supported for topic configs: retention.ms"),
    ],
)
def test_bad_values_are_invalid_config_with_kafkas_message(configs, message):
    with pytest.raises(TopicError) as info:
        check_topic_configs(configs)
    assert (info.value.error_code, info.value.message) == (ErrorCode.INVALID_CONFIG.code, message)


@pytest.mark.parametrize(
    "configs",
    [
        {"cleanup.policy": "compact, delete"},
        {"cleanup.policy": ""},
        {"cleanup.policy": "delete,delete"},
        {"preallocate": "TRUE"},
        {"retention.bytes": "-5"},
        {"min.insync.replicas": "2"},
        {"leader.replication.throttled.replicas": "*"},
        {"follower.replication.throttled.replicas": "0:1, 1:1"},
        {"message.timestamp.type": " CreateTime "},
        {"unclean.leader.election.enable": "true"},
        {"internal.segment.bytes": "1000"},
    ],
)
def test_values_kafka_accepts_are_accepted_stripped(configs):
    assert check_topic_configs(configs) == {k: v.strip() for k, v in configs.items()}


def test_incremental_changes_follow_kafka():
    assert incremental_change("cleanup.policy", OP_APPEND, "compact", "delete") == "delete,compact"
    assert incremental_change("cleanup.policy", OP_SUBTRACT, "delete", "delete,compact") == "compact"
    assert incremental_change("no.such", OP_DELETE, None, "") is None  # Kafka: a no-op
    for name, op, value, code, message in [
        (
            "retention.ms",
            OP_APPEND,
            "5",
            40,
            "Can't APPEND to key retention.ms because its type is not LIST.",
        ),
        (
            "retention.ms",
            OP_SUBTRACT,
            "5",
            40,
            "Can't SUBTRACT to key retention.ms because its type is not LIST.",
        ),
        ("foo", OP_SET, "1", 40, "Unknown topic config name: foo"),
        ("retention.ms", OP_SET, None, 42, "Null value not supported for : retention.ms"),
    ]:
        with pytest.raises(TopicError) as info:
            incremental_change(name, op, value, "1")
        assert (info.value.error_code, info.value.message) == (code, message)


def test_creating_an_existing_topic_is_topic_already_exists_whatever_its_configs(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t", 1, configs={"cleanup.policy": "compact"})
        for configs in ({"no.such": "1"}, {"retention.ms": "x"}, {"cleanup.policy": "compact"}):
            with pytest.raises(TopicError) as info:
                tm.create_topic("t", 3, 5, configs)
            assert info.value.error_code == ErrorCode.TOPIC_ALREADY_EXISTS.code


def test_describe_reports_sources_synonyms_and_list_type(tmp_path):
    with manager(tmp_path, **{"storage.retention_ms": "1h"}) as tm:
        tm.create_topic("t", 1, configs={"cleanup.policy": "compact,delete", "segment.ms": "60000"})
        d = tm.describe_configs("t")
    assert list(d) == list(DESCRIBED_CONFIG_NAMES)
    assert d["cleanup.policy"].value == "compact,delete"
    assert d["cleanup.policy"].synonyms == (
        ("cleanup.policy", "compact,delete", CONFIG_SOURCE_TOPIC),
        ("log.cleanup.policy", "delete", CONFIG_SOURCE_DEFAULT),
    )
    # A broker setting given on the command line is STATIC_BROKER_CONFIG under Kafka's name.
    assert d["retention.ms"][:4] == ("3600000", False, False, CONFIG_SOURCE_STATIC_BROKER)
    assert d["retention.ms"].synonyms == (("log.retention.ms", "3600000", CONFIG_SOURCE_STATIC_BROKER),)
    # Kafka lists no DEFAULT synonym for segment.ms (log.roll.ms has no default of its own).
    assert d["segment.ms"].synonyms == (("segment.ms", "60000", CONFIG_SOURCE_TOPIC),)
    assert d["max.message.bytes"].synonyms == (("message.max.bytes", "1048588", CONFIG_SOURCE_DEFAULT),)
    assert d["message.timestamp.type"][:4] == ("CreateTime", True, False, CONFIG_SOURCE_DEFAULT)
    assert d["leader.replication.throttled.replicas"].synonyms == ()


class _State:
    def __init__(self, topics: TopicManager) -> None:
        self.topics = topics
        self.node_id = 0


def test_describe_configs_handler_sends_types_and_synonyms_only_when_asked(tmp_path):
    with manager(tmp_path) as topics:
        topics.create_topic("t", 1, configs={"retention.ms": "5000"})
        ctx = RequestContext(32, 4, 1, "test", "127.0.0.1:1")
        rows = {}
        for synonyms in (False, True):
            request = DescribeConfigsRequest(
                resources=[
                    DescribeConfigsRequest_DescribeConfigsResource(resource_type=2, resource_name="t")
                ],
                include_synonyms=synonyms,
            )
            response = describe_configs.handle(_State(topics), ctx, request)  # type: ignore[arg-type]
            rows[synonyms] = {c.name: c for c in response.results[0].configs}
    # Kafka's configs in Kafka's order, then streamcore's own (search.index).
    assert list(rows[True]) == [*DESCRIBED_CONFIG_NAMES, *STREAMCORE_TOPIC_CONFIGS]
    assert {n: c.config_type for n, c in rows[True].items()} == {
        n: int(ALL_TOPIC_CONFIGS[n].config_type) for n in rows[True]
    }
    assert rows[True]["search.index"].value == "false"
    assert rows[True]["search.index"].config_type == ConfigType.BOOLEAN
    assert rows[True]["cleanup.policy"].config_type == ConfigType.LIST == 7
    assert rows[False]["retention.ms"].synonyms == []
    assert [(s.name, s.value, s.source) for s in rows[True]["retention.ms"].synonyms] == [
        ("retention.ms", "5000", CONFIG_SOURCE_TOPIC)
    ]


def _fill(tm, topic, old_ts):
    log = tm.log(topic, 0)
    for i in range(6):
        log.append(encode_batch([bytes(400)], [b"k%d" % i], timestamps_ms=[old_ts + i]))
    return log


def test_compact_only_topics_are_never_deleted_by_time_or_size_retention(tmp_path):
    old_ts = 1_000_000
    small = {"internal.segment.bytes": "1024", "retention.ms": "1000", "retention.bytes": "1"}
    with manager(tmp_path) as tm:
        tm.create_topic("c", 1, configs={**small, "cleanup.policy": "compact"})
        tm.create_topic("cd", 1, configs={**small, "cleanup.policy": "compact,delete"})
        compact, both = _fill(tm, "c", old_ts), _fill(tm, "cd", old_ts)
        assert compact.segment_count > 1 and both.segment_count > 1
        tm.apply_retention(now_ms=old_ts + 10_000_000)
        assert compact.log_start_offset == 0
        assert both.log_start_offset > 0
        assert tm.topic_config("c").retention_limits == (None, None)
        # Adding delete to the policy lets retention act on the open log at once.
        tm.incremental_alter_configs("c", [("cleanup.policy", OP_APPEND, "delete")])
        assert tm.topic_config("c").retention_limits == (1000, 1)
        assert tm.apply_retention(now_ms=old_ts + 10_000_000) > 0
        assert compact.log_start_offset > 0


def _cfg(**overrides) -> TopicConfig:
    base = {
        "retention_ms": -1,
        "retention_bytes": -1,
        "segment_bytes": 1 << 30,
        "segment_ms": 1 << 40,
        "cleanup_policy": ("delete",),
        "max_message_bytes": 1 << 20,
        "message_timestamp_type": "CreateTime",
        "message_timestamp_before_max_ms": (1 << 63) - 1,
        "message_timestamp_after_max_ms": 3_600_000,
        "internal_segment_bytes": None,
    }
    return TopicConfig(**{**base, **overrides})


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_keyless_records_on_a_compacted_topic_are_invalid_record_with_each_index(compression):
    now = int(time.time() * 1000)
    data = encode_batch(
        [b"a", b"b", b"c"], [b"k", None, None], timestamps_ms=[now] * 3, compression=compression
    )
    with pytest.raises(PolicyRefusal) as info:
        apply_record_policy(_cfg(cleanup_policy=("compact",)), "t", 2, data, validate_batch(data))
    message = "Compacted topic cannot accept message without key in topic partition t-2"
    assert info.value.code == ErrorCode.INVALID_RECORD.code == 87
    assert info.value.record_errors == [(1, message), (2, message)]
    assert info.value.message.startswith("One or more records have been rejected due to 2 record errors")
    # The same batch is fine under delete, and keyed records are fine under compact.
    assert apply_record_policy(_cfg(), "t", 2, data, validate_batch(data)).records is data
    keyed = encode_batch([b"a", None], [b"k", b"k2"], timestamps_ms=[now] * 2, compression=compression)
    assert (
        apply_record_policy(_cfg(cleanup_policy=("compact",)), "t", 2, keyed, validate_batch(keyed)).records
        is keyed
    )


def test_create_time_outside_the_allowed_range_is_invalid_timestamp_per_record():
    now = 10_000_000_000
    cfg = _cfg(message_timestamp_before_max_ms=10_000)
    data = encode_batch([b"a", b"b", b"c"], timestamps_ms=[now, now - 100_000, -1])
    with pytest.raises(PolicyRefusal) as info:
        apply_record_policy(cfg, "t", 0, data, validate_batch(data), now_ms=now)
    assert info.value.code == ErrorCode.INVALID_TIMESTAMP.code
    assert info.value.record_errors == [
        (
            1,
            f"Timestamp {now - 100_000} of message with offset 1 is out of range. "
            f"The timestamp should be within [{now - 10_000}, {now + 3_600_000}]",
        )
    ]
    future = encode_batch([b"a"], timestamps_ms=[now + 3_600_001])
    with pytest.raises(PolicyRefusal) as info:
        apply_record_policy(_cfg(), "t", 0, future, validate_batch(future), now_ms=now)
    assert [i for i, _ in info.value.record_errors] == [0]
    ok = encode_batch([b"a"], timestamps_ms=[now + 3_600_000])
    assert apply_record_policy(_cfg(), "t", 0, ok, validate_batch(ok), now_ms=now).log_append_time_ms == -1


@pytest.mark.parametrize("compression", ["none", "lz4"])
def test_log_append_time_stamps_the_batch_with_a_valid_crc(compression):
    now = 1_700_000_000_123
    data = encode_batch([b"a", b"b"], timestamps_ms=[1000, 2000], compression=compression)
    cfg = _cfg(message_timestamp_type="LogAppendTime", message_timestamp_after_max_ms=0)
    accepted = apply_record_policy(cfg, "t", 0, data, validate_batch(data), now_ms=now)
    assert accepted.log_append_time_ms == now
    info = validate_batch(accepted.records)  # the CRC was recomputed
    assert info == accepted.info
    assert info.attributes & LOG_APPEND_TIME_FLAG
    assert (info.first_timestamp, info.max_timestamp) == (1000, now)
    decoded = decode_batch(accepted.records)
    assert [(r.value, r.timestamp_ms) for r in decoded.records] == [(b"a", now), (b"b", now)]


@pytest.mark.parametrize(
    ("produced", "topic", "stored"),
    [
        ("gzip", "zstd", 4),
        ("none", "lz4", 3),
        ("snappy", "uncompressed", 0),
        ("lz4", "gzip", 1),
        ("zstd", "producer", 4),
        ("gzip", "gzip", 1),
    ],
)
def test_compression_type_re_encodes_batches_keeping_records_and_producer_fields(produced, topic, stored):
    now = 1_700_000_000_000
    data = encode_batch(
        [b"v1", None, b"v3" * 100],
        [b"k1", b"k2", None],
        headers=[[("h", b"x")], None, [("a", None), ("b", b"y")]],
        timestamps_ms=[now, now + 5, now + 2],
        compression=produced,
        producer_id=77,
        producer_epoch=3,
        base_sequence=41,
        partition_leader_epoch=9,
    )
    before = validate_batch(data)
    accepted = apply_record_policy(_cfg(compression_type=topic), "t", 0, data, before, now_ms=now)
    info = validate_batch(accepted.records)
    assert info == accepted.info
    assert info.attributes & 0x07 == stored
    if topic in ("producer", produced):
        assert accepted.records is data  # nothing to do: the producer's bytes are kept
    for name in ("producer_id", "producer_epoch", "base_sequence", "partition_leader_epoch", "record_count"):
        assert getattr(info, name) == getattr(before, name), name
    assert (info.first_timestamp, info.max_timestamp, info.last_offset_delta) == (now, now + 5, 2)
    got = [
        (r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in decode_batch(accepted.records).records
    ]
    want = [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in decode_batch(data).records]
    assert got == want


def test_recompression_then_log_append_time_stamps_the_re_encoded_batch():
    now = 1_700_000_000_999
    data = encode_batch([b"a", b"b"], timestamps_ms=[1000, 2000], compression="gzip")
    cfg = _cfg(compression_type="zstd", message_timestamp_type="LogAppendTime")
    accepted = apply_record_policy(cfg, "t", 0, data, validate_batch(data), now_ms=now)
    info = validate_batch(accepted.records)
    assert info.attributes & 0x07 == 4 and info.attributes & LOG_APPEND_TIME_FLAG
    assert info.max_timestamp == now and accepted.log_append_time_ms == now


def test_recompression_keeps_the_transactional_flag():
    data = encode_batch(
        [b"a"],
        timestamps_ms=[1],
        compression="gzip",
        producer_id=3,
        producer_epoch=0,
        base_sequence=0,
        transactional=True,
    )
    accepted = apply_record_policy(_cfg(compression_type="lz4"), "t", 0, data, validate_batch(data), now_ms=1)
    assert accepted.info.attributes & 0x07 == 3
    assert accepted.info.attributes & 0x10  # the transactional bit
