"""TopicManager: catalogue persistence, name rules, configs, logs, retention, deletion."""

from __future__ import annotations

import json
import uuid

import pytest

from streamcore.broker.config import load_config
from streamcore.broker.topics import (
    CONFIG_SOURCE_DEFAULT,
    CONFIG_SOURCE_STATIC_BROKER,
    CONFIG_SOURCE_TOPIC,
    OFFSETS_TOPIC,
    TRANSACTION_STATE_TOPIC,
    TopicError,
    TopicManager,
    validate_topic_name,
)
from streamcore.codec import decode_batches, encode_batch
from streamcore.errors import ErrorCode

E = ErrorCode


def manager(tmp_path, env=None, **cli):
    cfg = load_config(env=env or {"STREAMCORE_STORAGE_FSYNC": "never"}, cli=cli)
    return TopicManager(tmp_path / "data", cfg)


@pytest.mark.parametrize("name", ["orders", "a.b_c-D9", "x" * 249, "__private"])
def test_legal_topic_names(name):
    validate_topic_name(name)


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 250, "with space", "slash/y", "ü", "a:b"])
def test_illegal_topic_names_are_invalid_topic(name):
    with pytest.raises(TopicError) as info:
        validate_topic_name(name)
    assert info.value.error_code == E.INVALID_TOPIC.code


def test_create_list_and_reopen_keep_topics_ids_and_configs(tmp_path):
    with manager(tmp_path) as tm:
        a = tm.create_topic("alpha", 3, configs={"retention.ms": "60000"})
        b = tm.create_topic("beta")
        assert (a.partitions, b.partitions) == (3, 1)
        assert isinstance(a.topic_id, uuid.UUID) and a.topic_id != b.topic_id
        assert [t.name for t in tm.list_topics()] == ["alpha", "beta"]
    with manager(tmp_path) as tm:
        again = tm.get("alpha")
        assert again is not None
        assert (again.topic_id, again.partitions, dict(again.configs)) == (
            a.topic_id,
            3,
            {"retention.ms": "60000"},
        )
        assert tm.get_by_id(b.topic_id).name == "beta"
        assert tm.topic_config("alpha").retention_ms == 60000


def test_catalogue_file_is_valid_json_and_no_temp_file_remains(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t")
    data = json.loads((tmp_path / "data" / "topics.json").read_text())
    assert "t" in data["topics"]
    assert not (tmp_path / "data" / "topics.json.tmp").exists()


def test_internal_topics_exist_but_are_hidden(tmp_path):
    with manager(tmp_path) as tm:
        assert tm.list_topics() == []
        internal = tm.list_topics(include_internal=True)
        assert [(t.name, t.partitions, t.internal) for t in internal] == [
            (OFFSETS_TOPIC, 1, True),
            (TRANSACTION_STATE_TOPIC, 1, True),
        ]
        for name in (OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC):
            with pytest.raises(TopicError) as info:
                tm.create_topic(name)
            assert info.value.error_code == E.TOPIC_ALREADY_EXISTS.code
            with pytest.raises(TopicError) as info:
                tm.delete_topic(name)
            assert info.value.error_code == E.INVALID_TOPIC.code
            with pytest.raises(TopicError) as info:
                tm.create_partitions(name, 2)
            assert info.value.error_code == E.INVALID_PARTITIONS.code


def test_transaction_state_topic_is_compacted_and_kept(tmp_path):
    with manager(tmp_path) as tm:
        configs = tm.get(TRANSACTION_STATE_TOPIC).configs
        assert configs["cleanup.policy"] == "compact"
        assert configs["retention.ms"] == configs["retention.bytes"] == "-1"
        cfg = tm.topic_config(TRANSACTION_STATE_TOPIC)
        assert cfg.cleanup_policy == ("compact",)
    # Created once: a reopened data directory keeps the same topic (and id).
    with manager(tmp_path) as tm:
        first = tm.get(TRANSACTION_STATE_TOPIC)
    with manager(tmp_path) as tm:
        assert tm.get(TRANSACTION_STATE_TOPIC).topic_id == first.topic_id


@pytest.mark.parametrize("rf", [0, 2, 3, -2])
def test_replication_factor_other_than_one_is_refused(tmp_path, rf):
    with manager(tmp_path) as tm, pytest.raises(TopicError, match="single broker") as info:
        tm.create_topic("t", 1, rf)
    assert info.value.error_code == E.INVALID_REPLICATION_FACTOR.code == 38


def test_replication_factor_one_or_default_is_accepted(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("a", 1, 1)
        tm.create_topic("b", 1, -1)


def test_create_errors(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t")
        cases = [
            (lambda: tm.create_topic("t"), E.TOPIC_ALREADY_EXISTS),
            (lambda: tm.create_topic("bad name"), E.INVALID_TOPIC),
            (lambda: tm.create_topic("u", 0), E.INVALID_PARTITIONS),
            (lambda: tm.create_topic("u", configs={"retention.ms": "soon"}), E.INVALID_CONFIG),
            (lambda: tm.create_topic("u", configs={"compression.type": "brotli"}), E.INVALID_CONFIG),
            (lambda: tm.create_topic("u", configs={"cleanup.policy": "shrink"}), E.INVALID_CONFIG),
            (lambda: tm.create_topic("u", configs={"no.such.config": "1"}), E.INVALID_CONFIG),
            (lambda: tm.create_topic("u", configs={"segment.bytes": "1"}), E.INVALID_CONFIG),
        ]
        for call, code in cases:
            with pytest.raises(TopicError) as info:
                call()
            assert info.value.error_code == code.code, info.value.message
        assert tm.get("u") is None


def test_dot_underscore_collision_is_refused(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("a.b")
        with pytest.raises(TopicError, match="collides") as info:
            tm.create_topic("a_b")
        assert info.value.error_code == E.INVALID_TOPIC.code


def test_validate_only_creates_nothing(tmp_path):
    with manager(tmp_path) as tm:
        info = tm.create_topic("t", 4, validate_only=True)
        assert info.partitions == 4
        assert tm.get("t") is None


def test_default_partitions_come_from_config(tmp_path):
    env = {"STREAMCORE_DEFAULT_PARTITIONS": "5", "STREAMCORE_STORAGE_FSYNC": "never"}
    with manager(tmp_path, env=env) as tm:
        assert tm.create_topic("t").partitions == 5
        assert tm.ensure_topic("auto").partitions == 5


def test_auto_create_policy(tmp_path):
    with manager(tmp_path) as tm:
        assert tm.ensure_topic("fresh").name == "fresh"
        assert tm.ensure_topic("fresh").topic_id == tm.get("fresh").topic_id
        with pytest.raises(TopicError) as info:
            tm.ensure_topic("no good")
        assert info.value.error_code == E.INVALID_TOPIC.code
    env = {"STREAMCORE_AUTO_CREATE_TOPICS": "false", "STREAMCORE_STORAGE_FSYNC": "never"}
    with manager(tmp_path / "other", env=env) as tm:
        with pytest.raises(TopicError) as info:
            tm.ensure_topic("missing")
        assert info.value.error_code == E.UNKNOWN_TOPIC_OR_PARTITION.code


def test_describe_configs_reports_values_and_sources(tmp_path):
    env = {"STREAMCORE_STORAGE_FSYNC": "never", "STREAMCORE_STORAGE_RETENTION_BYTES": "1GiB"}
    with manager(tmp_path, env=env) as tm:
        tm.create_topic("t", configs={"retention.ms": "1000"})
        d = tm.describe_configs("t")
        # Every Kafka topic config is described; these are the ones this test sets or checks.
        assert set(d) >= {"retention.ms", "retention.bytes", "segment.bytes", "segment.ms", "cleanup.policy",
                          "max.message.bytes", "message.timestamp.type"}  # fmt: skip
        assert d["retention.ms"][:4] == ("1000", False, False, CONFIG_SOURCE_TOPIC)
        assert d["retention.bytes"][:4] == (str(1 << 30), False, False, CONFIG_SOURCE_STATIC_BROKER)
        assert d["cleanup.policy"][:4] == ("delete", True, False, CONFIG_SOURCE_DEFAULT)
        assert d["segment.bytes"].is_default
        assert set(tm.describe_configs("t", ["segment.ms", "nonsense"])) == {"segment.ms"}
        with pytest.raises(TopicError) as info:
            tm.describe_configs("nope")
        assert info.value.error_code == E.UNKNOWN_TOPIC_OR_PARTITION.code


def test_alter_configs_incremental_and_replace(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t", configs={"retention.ms": "1000", "segment.ms": "5000"})
        tm.alter_configs("t", {"retention.bytes": "4096"}, ["segment.ms"])
        assert dict(tm.get("t").configs) == {"retention.ms": "1000", "retention.bytes": "4096"}
        tm.alter_configs("t", {"max.message.bytes": "2048"}, replace=True)
        assert dict(tm.get("t").configs) == {"max.message.bytes": "2048"}
        with pytest.raises(TopicError) as info:
            tm.alter_configs("t", {"cleanup.policy": "shrink"})
        assert info.value.error_code == E.INVALID_CONFIG.code


def test_partition_logs_are_opened_lazily_in_their_directories(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t", 2)
        assert tm.open_logs() == []
        log = tm.log("t", 1)
        assert tm.log("t", 1) is log
        result = log.append(encode_batch([b"x", b"y"]))
        assert (result.base_offset, result.last_offset) == (0, 1)
        assert (tmp_path / "data" / "t-1").is_dir()
        assert [k for k, _ in tm.open_logs()] == [("t", 1)]
        for topic, partition, code in [
            ("t", 2, E.UNKNOWN_TOPIC_OR_PARTITION),
            ("zz", 0, E.UNKNOWN_TOPIC_OR_PARTITION),
        ]:
            with pytest.raises(TopicError) as info:
                tm.log(topic, partition)
            assert info.value.error_code == code.code
    with manager(tmp_path) as tm:
        log = tm.log("t", 1)
        assert log.high_watermark == 2
        assert [r.value for b in decode_batches(log.read(0, 1 << 20)) for r in b.records] == [b"x", b"y"]


def test_open_all_opens_every_partition(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("a", 2)
        tm.create_topic("b", 1)
        assert tm.open_all() == 5  # the offsets and transaction state topics included


def test_delete_topic_removes_data_and_allows_recreation(tmp_path):
    with manager(tmp_path) as tm:
        old = tm.create_topic("t", 2)
        tm.log("t", 0).append(encode_batch([b"old"]))
        deleted = tm.delete_topic("t")
        assert deleted.topic_id == old.topic_id
        assert tm.get("t") is None and tm.get_by_id(old.topic_id) is None
        assert not (tmp_path / "data" / "t-0").exists()
        assert not any(p.name.endswith("-delete") for p in (tmp_path / "data").iterdir())
        new = tm.create_topic("t", 1)
        assert new.topic_id != old.topic_id
        assert tm.log("t", 0).high_watermark == 0
        with pytest.raises(TopicError) as info:
            tm.delete_topic("absent")
        assert info.value.error_code == E.UNKNOWN_TOPIC_OR_PARTITION.code
        with pytest.raises(TopicError) as info:
            tm.delete_topic_by_id(uuid.uuid4())
        assert info.value.error_code == E.UNKNOWN_TOPIC_ID.code
        tm.delete_topic_by_id(new.topic_id)
        assert tm.get("t") is None


def test_leftover_deletion_directories_are_removed_at_start(tmp_path):
    with manager(tmp_path):
        pass
    leftover = tmp_path / "data" / "gone-0.abc-delete"
    leftover.mkdir()
    (leftover / "00000000000000000000.log").write_bytes(b"x")
    with manager(tmp_path):
        assert not leftover.exists()


def test_create_partitions_grows_only(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t", 2)
        assert tm.create_partitions("t", 4).partitions == 4
        tm.log("t", 3)
        for total in (4, 3):
            with pytest.raises(TopicError) as info:
                tm.create_partitions("t", total)
            assert info.value.error_code == E.INVALID_PARTITIONS.code


def test_retention_applies_topic_settings_to_open_logs(tmp_path):
    with manager(tmp_path) as tm:
        tm.create_topic("t", 1, configs={"internal.segment.bytes": "1024", "retention.ms": "1000"})
        tm.create_topic("keep", 1, configs={"internal.segment.bytes": "1024", "retention.ms": "-1"})
        old_ts = 1_000_000
        for topic in ("t", "keep"):
            log = tm.log(topic, 0)
            for i in range(6):
                log.append(encode_batch([bytes(400)], timestamps_ms=[old_ts + i]))
        before = tm.log("t", 0).segment_count
        assert before > 1
        deleted = tm.apply_retention(now_ms=old_ts + 10_000_000)
        assert deleted == before - 1
        assert tm.log("t", 0).log_start_offset > 0
        assert tm.log("keep", 0).log_start_offset == 0
        # turning retention on for "keep" takes effect on the open log
        tm.alter_configs("keep", {"retention.ms": "1000"})
        assert tm.apply_retention(now_ms=old_ts + 10_000_000) > 0
        assert tm.log("keep", 0).log_start_offset > 0


def test_operations_after_close_are_refused(tmp_path):
    tm = manager(tmp_path)
    tm.close()
    tm.close()
    with pytest.raises(TopicError) as info:
        tm.create_topic("t")
    assert info.value.error_code == E.KAFKA_STORAGE_ERROR.code


def test_topic_creation_and_deletion_are_logged(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="streamcore.broker")
    with manager(tmp_path) as tm:
        tm.create_topic("logged", 2)
        tm.delete_topic("logged")
    messages = [r.getMessage() for r in caplog.records]
    assert "created topic logged (2 partitions)" in messages
    assert "deleted topic logged (2 partitions)" in messages
