"""Client settings: keywords, dotted properties, and errors that list the valid choices."""

from __future__ import annotations

import pytest

from streamcore.client.config import build_config
from streamcore.errors import ConfigError


def test_unknown_setting_raises_config_error_listing_valid_settings() -> None:
    with pytest.raises(ConfigError) as info:
        build_config("producer", "h:1", None, {"lingr_ms": 5})
    msg = str(info.value)
    assert "lingr_ms" in msg and "linger_ms" in msg and "batch_size" in msg


def test_dotted_properties_and_keywords_spell_the_same_settings() -> None:
    cfg = build_config(
        "producer", None, {"bootstrap.servers": "a:1,b:2", "linger.ms": 7}, {"batch_size": 100}
    )
    assert cfg.linger_ms == 7 and cfg.batch_size == 100
    assert cfg.bootstrap_servers == [("a", 1), ("b", 2)]


def test_ill_typed_value_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="linger_ms"):
        build_config("producer", "h:1", None, {"linger_ms": "soon"})
    with pytest.raises(ConfigError, match="enable_idempotence"):
        build_config("producer", "h:1", None, {"enable_idempotence": 3})


def test_choice_outside_its_values_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="zstd"):
        build_config("producer", "h:1", None, {"compression_type": "brotli"})
    with pytest.raises(ConfigError, match="earliest"):
        build_config("consumer", "h:1", None, {"auto_offset_reset": "start"})


def test_setting_of_another_role_is_rejected() -> None:
    with pytest.raises(ConfigError, match="not a consumer setting"):
        build_config("consumer", "h:1", None, {"linger_ms": 5})


def test_acks_all_and_durations_are_normalised() -> None:
    cfg = build_config(
        "producer", "h:1", None, {"acks": "all", "linger_ms": "20ms", "delivery_timeout_ms": "2s"}
    )
    assert cfg.acks == -1 and cfg.linger_ms == 20 and cfg.delivery_timeout_ms == 2000


def test_idempotence_is_on_by_default_and_off_for_acks_1_unless_asked() -> None:
    assert build_config("producer", "h:1", None, {}).enable_idempotence is True
    assert build_config("producer", "h:1", None, {"acks": 1}).enable_idempotence is False
    with pytest.raises(ConfigError, match="acks"):
        build_config("producer", "h:1", None, {"acks": 1, "enable_idempotence": True})


def test_missing_bootstrap_servers_raises() -> None:
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        build_config("admin", None, None, {})


def test_blocking_constructors_validate_before_connecting() -> None:
    from streamcore.client import Consumer, Producer

    with pytest.raises(ConfigError):
        Producer("127.0.0.1:1", no_such_setting=1)
    with pytest.raises(ConfigError):
        Consumer("127.0.0.1:1", {"fetch.max.wait": 5})


def test_millisecond_settings_accept_duration_strings_and_other_ints_do_not() -> None:
    from streamcore.aio import Producer

    p = Producer("127.0.0.1:1", linger_ms="30s", request_timeout_ms="2m", batch_size="1000")
    assert (p.config.linger_ms, p.config.request_timeout_ms, p.config.batch_size) == (30_000, 120_000, 1000)
    with pytest.raises(ConfigError, match="linger_ms"):
        Producer("127.0.0.1:1", linger_ms="5 weeks")
    with pytest.raises(ConfigError, match="batch_size"):
        Producer("127.0.0.1:1", batch_size="16kb")


def test_librdkafka_names_with_the_same_meaning_are_accepted() -> None:
    cfg = build_config(
        "producer",
        None,
        {
            "metadata.broker.list": "h:1",
            "security.protocol": "plaintext",
            "queue.buffering.max.ms": 12,
            "message.timeout.ms": "30s",
            "message.send.max.retries": 7,
            "request.required.acks": "all",
            "compression.codec": "lz4",
            "max.in.flight": 3,
        },
        {},
        environ={},
    )
    assert cfg.bootstrap_servers == [("h", 1)] and cfg.security_protocol == "PLAINTEXT"
    assert (cfg.linger_ms, cfg.delivery_timeout_ms, cfg.retries) == (12, 30_000, 7)
    assert (cfg.acks, cfg.compression_type, cfg.max_in_flight_requests_per_connection) == (-1, "lz4", 3)
    cons = build_config(
        "consumer",
        "h:1",
        {"fetch.wait.max.ms": 250, "fetch.message.max.bytes": 4096, "auto.offset.reset": "smallest"},
        {},
        environ={},
    )
    assert (cons.fetch_max_wait_ms, cons.max_partition_fetch_bytes, cons.auto_offset_reset) == (
        250,
        4096,
        "earliest",
    )


def test_security_protocols_and_mechanisms_not_implemented_are_refused_by_name() -> None:
    with pytest.raises(
        ConfigError, match="'TLS' is not supported; supported: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    ):
        build_config("producer", "h:1", {"security.protocol": "TLS"}, {}, environ={})
    with pytest.raises(ConfigError, match="'GSSAPI' is not supported; supported: PLAIN, SCRAM-SHA-256"):
        build_config(
            "producer", "h:1", {"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI"}, {}, environ={}
        )


@pytest.mark.parametrize(
    ("name", "instead"),
    [
        ("queue.buffering.max.kbytes", "buffer_memory (in bytes"),
        ("batch.num.messages", "batch_size"),
        ("message.max.bytes", "max_request_size"),
        ("socket.timeout.ms", "request_timeout_ms"),
    ],
)
def test_librdkafka_names_without_an_exact_equivalent_are_refused_naming_what_to_use(
    name: str, instead: str
) -> None:
    with pytest.raises(ConfigError, match="no exact equivalent") as info:
        build_config("producer", "h:1", {name: 1}, {}, environ={})
    assert name in str(info.value) and instead in str(info.value)


def test_unknown_librdkafka_name_suggests_the_closest_spelling() -> None:
    with pytest.raises(ConfigError, match=r"queue_buffering_max_ms \(= linger_ms\)"):
        build_config("producer", "h:1", {"queue.buffering.max.mss": 5}, {}, environ={})
    with pytest.raises(ConfigError, match="enable.partition.eof"):
        build_config("consumer", "h:1", {"enable.partition.eof": True}, {}, environ={})


def test_one_setting_given_twice_under_two_names_is_refused() -> None:
    with pytest.raises(ConfigError, match="given twice, as 'linger.ms' and 'queue.buffering.max.ms'"):
        build_config("producer", "h:1", {"linger.ms": 5, "queue.buffering.max.ms": 6}, {}, environ={})


def test_retry_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="retry_jitter"):
        build_config("producer", "h:1", None, {"retry_jitter": 1.5}, environ={})
    with pytest.raises(ConfigError, match="retry_multiplier"):
        build_config("producer", "h:1", {"retry.multiplier": "fast"}, {}, environ={})
    with pytest.raises(ConfigError, match="exponential, fixed, linear"):
        build_config("producer", "h:1", {"retry.strategy": "random"}, {}, environ={})
    cfg = build_config("admin", "h:1", {"retry.interval": "250ms", "retry.max.delay": "4s"}, {}, environ={})
    assert (cfg.retry_backoff_ms, cfg.retry_backoff_max_ms) == (250, 4000)
