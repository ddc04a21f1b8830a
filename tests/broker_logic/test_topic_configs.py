"""The one table of topic configs: validation, effective values and DescribeConfigs rows come from it."""

from __future__ import annotations

import dataclasses

import pytest

from streamcore.broker.config import load_config
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import describe_configs
from streamcore.broker.topic_configs import (
    TOPIC_CONFIG_NAMES,
    TOPIC_CONFIGS,
    ConfigType,
    TopicConfig,
    TopicError,
    check_topic_configs,
)
from streamcore.broker.topics import TopicManager
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    DescribeConfigsRequest,
    DescribeConfigsRequest_DescribeConfigsResource,
)


def test_every_effective_setting_has_exactly_one_row():
    assert sorted(d.field for d in TOPIC_CONFIGS.values()) == sorted(
        f.name for f in dataclasses.fields(TopicConfig)
    )
    assert TOPIC_CONFIG_NAMES == tuple(TOPIC_CONFIGS)
    for d in TOPIC_CONFIGS.values():
        assert (d.broker_setting is None) != (d.default is None), d.name


def test_check_topic_configs_refuses_unknown_names_missing_and_bad_values():
    assert check_topic_configs({"retention.ms": " 100 "}) == {"retention.ms": "100"}
    for bad in (
        {"no.such": "1"},
        {"retention.ms": None},
        {"segment.bytes": "10"},
        {"cleanup.policy": "compact"},
    ):
        with pytest.raises(TopicError) as info:
            check_topic_configs(bad)
        assert info.value.error_code == ErrorCode.INVALID_CONFIG.code


class _State:
    def __init__(self, topics: TopicManager) -> None:
        self.topics = topics
        self.node_id = 0


def test_describe_configs_lists_every_row_with_its_type(tmp_path):
    cfg = load_config(None, cli={"data_dir": str(tmp_path)})
    with TopicManager(tmp_path, cfg) as topics:
        topics.create_topic("t", 1, configs={"retention.ms": "5000"})
        request = DescribeConfigsRequest(
            resources=[DescribeConfigsRequest_DescribeConfigsResource(resource_type=2, resource_name="t")]
        )
        ctx = RequestContext(32, 4, 1, "test", "127.0.0.1:1")
        response = describe_configs.handle(_State(topics), ctx, request)  # type: ignore[arg-type]
    rows = {c.name: c for c in response.results[0].configs}
    assert list(rows) == list(TOPIC_CONFIGS)
    assert {name: c.config_type for name, c in rows.items()} == {
        name: int(d.config_type) for name, d in TOPIC_CONFIGS.items()
    }
    assert rows["retention.ms"].value == "5000"
    assert rows["cleanup.policy"].config_type == ConfigType.STRING
