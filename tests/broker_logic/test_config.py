"""Configuration tree: precedence, sources, parsing and error messages."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from streamcore.broker.config import (
    CLI_FLAGS,
    SETTINGS,
    BrokerConfig,
    config_show,
    load_config,
    load_or_create_cluster_id,
    parse_duration_ms,
    parse_size_bytes,
)
from streamcore.errors import ConfigError
from streamcore.retry import parse_duration

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamcore.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_the_documented_values():
    cfg = load_config(env={})
    assert cfg.data_dir == "./streamcore-data"
    assert cfg.node_id == 0
    assert cfg.storage.retention_ms == 7 * 24 * 3600 * 1000
    assert cfg.storage.retention_bytes == -1
    assert cfg.topics.auto_create is True
    assert cfg.topics.default_partitions == 1
    assert cfg.limits.max_request_bytes == 100 * 1024 * 1024
    assert cfg.limits.max_message_bytes > 1024 * 1024
    assert cfg.groups.initial_rebalance_delay_ms == 0
    assert cfg.groups.min_session_timeout_ms == 6000
    assert cfg.groups.max_session_timeout_ms == 30 * 60 * 1000
    assert cfg.fetch_sessions.max_cache_slots == 1000
    assert cfg.metrics.http_port is None
    assert all(cfg.source(s.name) == "default" for s in SETTINGS)


@pytest.mark.parametrize(
    ("raw", "ms"),
    [(250, 250), ("100ms", 100), ("30s", 30_000), ("5m", 300_000), ("1h", 3_600_000), ("2d", 172_800_000),
     ("42", 42), (" 7s ", 7000), ("30S", 30_000), ("7D", 604_800_000), ("1Ms", 1), ("5 M", 300_000)],
)  # fmt: skip
def test_duration_strings_parse_to_milliseconds(raw, ms):
    assert parse_duration_ms(raw) == ms


@pytest.mark.parametrize("raw", ["10 parsecs", "1.5s", "s", "", "5 m s", True, 1.5, None, "1\u0663s", "1w"])
def test_malformed_duration_names_the_setting(raw):
    with pytest.raises(ConfigError, match="storage.segment_ms"):
        parse_duration_ms(raw, "storage.segment_ms")


def test_the_broker_and_the_retry_module_share_one_duration_rule_set():
    # One parser (streamcore._units): what one caller accepts, the other does too.
    for raw in ("30S", "7d", " 5 m ", "1500", 1500, "0ms"):
        assert parse_duration_ms(raw) == parse_duration(raw)
    for raw in ("-1", -1, "1.5s", "1w", "-5"):
        with pytest.raises(ConfigError):
            parse_duration_ms(raw)
        with pytest.raises(ConfigError):
            parse_duration(raw)


@pytest.mark.parametrize("raw", [-1, "-1", " -1 "])
def test_minus_one_means_forever_only_where_allowed(raw):
    assert parse_duration_ms(raw, "storage.retention_ms", allow_forever=True) == -1
    assert parse_size_bytes(raw, "storage.retention_bytes", allow_forever=True) == -1
    with pytest.raises(ConfigError, match=r"^storage\.segment_ms: .*-1"):
        parse_duration_ms(raw, "storage.segment_ms")
    with pytest.raises(ConfigError, match=r"^limits\.max_message_bytes: .*-1"):
        parse_size_bytes(raw, "limits.max_message_bytes")


@pytest.mark.parametrize("raw", [-2, "-5", "-1s", "-1MiB", 2**63])
def test_other_negative_or_oversized_values_are_refused_even_where_forever_is_allowed(raw):
    with pytest.raises(ConfigError, match="storage.retention_ms"):
        parse_duration_ms(raw, "storage.retention_ms", allow_forever=True)


def test_settings_whose_minimum_is_minus_one_accept_forever():
    cfg = load_config(
        env={"STREAMCORE_STORAGE_RETENTION_MS": "-1", "STREAMCORE_STORAGE_RETENTION_BYTES": "-1"}
    )
    assert (cfg.storage.retention_ms, cfg.storage.retention_bytes) == (-1, -1)
    with pytest.raises(ConfigError, match="storage.segment_ms"):
        load_config(env={"STREAMCORE_STORAGE_SEGMENT_MS": "-1"})
    with pytest.raises(ConfigError, match="storage.segment_bytes"):
        load_config(env={"STREAMCORE_STORAGE_SEGMENT_BYTES": "-1"})


def test_sizes_accept_binary_and_decimal_units():
    assert parse_size_bytes("64MiB") == 64 * 1024 * 1024
    assert parse_size_bytes("64MIB") == 64 * 1024 * 1024
    assert parse_size_bytes("1GB") == 1_000_000_000
    assert parse_size_bytes("1g") == 1 << 30
    assert parse_size_bytes("2 kb") == 2000
    assert parse_size_bytes("1TiB") == 1 << 40
    assert parse_size_bytes("10B") == 10
    assert parse_size_bytes(512) == 512
    with pytest.raises(ConfigError, match="limits.max_message_bytes"):
        parse_size_bytes("lots", "limits.max_message_bytes")


@pytest.mark.parametrize("raw", ["1.5MiB", "1PB", "MiB", "", True, 1.0, None, b"1"])
def test_malformed_size_names_the_setting_and_the_forms(raw):
    with pytest.raises(ConfigError) as info:
        parse_size_bytes(raw, "storage.segment_bytes")
    text = str(info.value)
    assert text.startswith("storage.segment_bytes: ") and "64MiB" in text and "\n" not in text


def test_cli_beats_env_beats_file_beats_default(tmp_path):
    toml = write_toml(
        tmp_path,
        '[storage]\nfsync = "never"\nsegment_ms = "1h"\nretention_ms = "2h"\n[topics]\ndefault_partitions = 2\n',
    )
    env = {"STREAMCORE_STORAGE_FSYNC": "always", "STREAMCORE_STORAGE_SEGMENT_MS": "5m"}
    cfg = load_config(toml, env=env, cli={"--fsync": "interval"})
    assert cfg.storage.fsync == "interval"
    assert cfg.source("storage.fsync") == "cli --fsync"
    assert cfg.storage.segment_ms == 300_000
    assert cfg.source("storage.segment_ms") == "env STREAMCORE_STORAGE_SEGMENT_MS"
    assert cfg.storage.retention_ms == 7_200_000
    assert cfg.source("storage.retention_ms") == f"file {toml}"
    assert cfg.topics.default_partitions == 2
    assert cfg.storage.fsync_interval_ms == 1000
    assert cfg.source("storage.fsync_interval_ms") == "default"


def test_default_partitions_env_overrides_file(tmp_path):
    toml = write_toml(tmp_path, "[topics]\ndefault_partitions = 2\n")
    cfg = load_config(toml, env={"STREAMCORE_DEFAULT_PARTITIONS": "6"})
    assert cfg.topics.default_partitions == 6
    assert cfg.source("topics.default_partitions") == "env STREAMCORE_DEFAULT_PARTITIONS"


def test_cli_accepts_setting_names_and_skips_none_values():
    cfg = load_config(env={}, cli={"storage.profile": "high", "--port": "19092", "--host": None})
    assert cfg.storage.profile == "high"
    assert cfg.listeners.port == 19092
    assert cfg.listeners.host == "127.0.0.1"
    assert cfg.source("listeners.host") == "default"


def test_config_file_named_by_environment_is_read(tmp_path):
    toml = write_toml(tmp_path, 'data_dir = "/srv/sc"\nnode_id = 3\n')
    cfg = load_config(env={"STREAMCORE_CONFIG": str(toml)})
    assert cfg.data_dir == "/srv/sc"
    assert cfg.node_id == 3


def test_unknown_toml_key_lists_valid_settings(tmp_path):
    toml = write_toml(tmp_path, "[storage]\nfsinc = 'always'\n")
    with pytest.raises(ConfigError, match=r"storage\.fsinc.*storage\.fsync"):
        load_config(toml, env={})


def test_unknown_toml_section_is_an_error(tmp_path):
    toml = write_toml(tmp_path, "[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match="nonsense.x"):
        load_config(toml, env={})


def test_bad_choice_lists_the_choices(tmp_path):
    toml = write_toml(tmp_path, "[storage]\nfsync = 'sometimes'\n")
    with pytest.raises(ConfigError, match="always, interval, never"):
        load_config(toml, env={})


def test_bad_type_in_toml_names_the_setting(tmp_path):
    toml = write_toml(tmp_path, "[topics]\nauto_create = 'perhaps'\n")
    with pytest.raises(ConfigError, match="topics.auto_create"):
        load_config(toml, env={})
    toml = write_toml(tmp_path, "[limits]\nmax_connections = 'many'\n")
    with pytest.raises(ConfigError, match="limits.max_connections"):
        load_config(toml, env={})


def test_invalid_toml_syntax_is_a_config_error(tmp_path):
    toml = write_toml(tmp_path, "[storage\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(toml, env={})


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file"):
        load_config(tmp_path / "absent.toml", env={})


def test_unknown_streamcore_env_var_is_a_warning_naming_the_closest_valid_one(caplog):
    with caplog.at_level(logging.WARNING, logger="streamcore.config"):
        cfg = load_config(env={"STREAMCORE_STORAGE_FSINC": "always", "STREAMCORE_BIN": "/usr/bin/x"})
    assert cfg == BrokerConfig()
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2
    assert any(
        "STREAMCORE_STORAGE_FSINC" in m and "did you mean STREAMCORE_STORAGE_FSYNC?" in m for m in messages
    )
    assert any("STREAMCORE_BIN" in m and "did you mean STREAMCORE_" in m for m in messages)


def test_client_and_tool_variables_are_known_and_not_even_a_warning(caplog):
    env = {
        "STREAMCORE_RETRY_STRATEGY": "fixed",
        "STREAMCORE_RETRY_INTERVAL": "250ms",
        "STREAMCORE_RETRY_MULTIPLIER": "2",
        "STREAMCORE_RETRY_MAX_DELAY": "5s",
        "STREAMCORE_BOOTSTRAP": "kafka:9092",
        "STREAMCORE_TEST_SEED": "1",
    }
    with caplog.at_level(logging.DEBUG, logger="streamcore.config"):
        cfg = load_config(env=env)
    assert cfg == BrokerConfig()
    assert caplog.records == []


def test_unknown_toml_key_suggests_the_closest_valid_one_in_one_line(tmp_path):
    toml = write_toml(tmp_path, "[limits]\nmax_conections = 5\n")
    with pytest.raises(ConfigError) as info:
        load_config(toml, env={})
    text = str(info.value)
    assert "'limits.max_conections'; did you mean 'limits.max_connections'?" in text
    assert "\n" not in text


@pytest.mark.parametrize("name", ["listeners.port", "listeners.advertised_port", "metrics.http_port"])
def test_ports_above_65535_are_refused(name):
    with pytest.raises(ConfigError, match=rf"^{re.escape(name)}: 70000 is above the maximum 65535$"):
        load_config(env={}, cli={name: "70000"})
    assert load_config(env={}, cli={name: "65535"}).get(name) == 65535


def test_log_level_and_format_are_settings_with_choices():
    cfg = load_config(env={"STREAMCORE_LOG_LEVEL": "INFO", "STREAMCORE_LOG_FORMAT": "json"})
    assert (cfg.log.level, cfg.log.format) == ("info", "json")
    assert cfg.source("log.level") == "env STREAMCORE_LOG_LEVEL"
    assert load_config(env={}, cli={"--log-level": "debug"}).log.level == "debug"
    with pytest.raises(ConfigError, match="^log.level: 'chatty' is not one of debug, info, warning, error$"):
        load_config(env={"STREAMCORE_LOG_LEVEL": "chatty"})
    with pytest.raises(ConfigError, match="log.format"):
        load_config(env={}, cli={"--log-format": "xml"})


def test_meta_properties_is_written_by_the_atomic_file_helper(tmp_path, monkeypatch):
    import streamcore.broker.cluster_meta as meta_module

    written: list[str] = []
    real = meta_module.write_atomic

    def spy(path, data):
        written.append(str(path))
        real(path, data)

    monkeypatch.setattr(meta_module, "write_atomic", spy)
    load_or_create_cluster_id(tmp_path, 0)
    assert written == [str(tmp_path / "meta.properties")]
    assert not hasattr(meta_module, "_fsync_dir")


def test_build_and_test_switches_in_env_are_not_settings():
    cfg = load_config(env={"STREAMCORE_NO_EXTENSIONS": "1", "STREAMCORE_FUZZ_EXAMPLES": "10", "HOME": "/x"})
    assert cfg == BrokerConfig()


def test_bad_env_value_names_the_setting():
    with pytest.raises(ConfigError, match="groups.initial_rebalance_delay_ms"):
        load_config(env={"STREAMCORE_GROUPS_INITIAL_REBALANCE_DELAY_MS": "soon"})


def test_values_below_minimum_are_refused():
    with pytest.raises(ConfigError, match="topics.default_partitions"):
        load_config(env={"STREAMCORE_DEFAULT_PARTITIONS": "0"})


def test_unknown_cli_setting_is_refused_naming_the_closest_flag():
    with pytest.raises(ConfigError, match="'--fsnyc'; did you mean '--fsync'"):
        load_config(env={}, cli={"--fsnyc": "always"})
    with pytest.raises(ConfigError, match="'storage.fsinc'; did you mean 'storage.fsync'"):
        load_config(env={}, cli={"storage.fsinc": "always"})


def test_inconsistent_session_timeouts_are_refused():
    with pytest.raises(ConfigError, match="min_session_timeout_ms"):
        load_config(
            env={
                "STREAMCORE_GROUPS_MIN_SESSION_TIMEOUT_MS": "1h",
                "STREAMCORE_GROUPS_MAX_SESSION_TIMEOUT_MS": "1m",
            }
        )


def test_optional_settings_accept_none():
    cfg = load_config(env={"STREAMCORE_METRICS_HTTP_PORT": "9100"})
    assert cfg.metrics.http_port == 9100
    cfg = load_config(env={"STREAMCORE_METRICS_HTTP_PORT": "none"})
    assert cfg.metrics.http_port is None


def test_config_show_lists_every_setting_with_its_source(tmp_path):
    toml = write_toml(tmp_path, "[storage]\nfsync = 'always'\n")
    cfg = load_config(toml, env={"STREAMCORE_PORT": "19000"})
    shown = config_show(cfg)
    lines = shown.splitlines()
    assert len(lines) == len(SETTINGS)
    for setting in SETTINGS:
        assert any(line.startswith(setting.name + " ") for line in lines), setting.name
    assert re.search(r"^storage\.fsync\s+= always  # file ", shown, re.M)
    assert re.search(r"^listeners\.port\s+= 19000  # env STREAMCORE_PORT$", shown, re.M)
    assert re.search(r"^metrics\.http_port\s+= none  # default$", shown, re.M)


def test_advertised_address_defaults():
    cfg = load_config(env={"STREAMCORE_HOST": "0.0.0.0"})
    assert cfg.listeners.effective_advertised_host() == "localhost"
    assert cfg.listeners.effective_advertised_port() == 9092
    cfg = load_config(env={}, cli={"--advertised-host": "kafka.local", "--advertised-port": "29092"})
    assert cfg.listeners.effective_advertised_host() == "kafka.local"
    assert cfg.listeners.effective_advertised_port() == 29092


def test_cluster_id_is_generated_once_and_kept(tmp_path):
    first = load_or_create_cluster_id(tmp_path, 0)
    assert len(first) == 22
    assert load_or_create_cluster_id(tmp_path, 0) == first
    assert load_or_create_cluster_id(tmp_path, 0, configured=first) == first
    with pytest.raises(ConfigError, match="another cluster"):
        load_or_create_cluster_id(tmp_path, 0, configured="something-else")


def test_configured_cluster_id_is_persisted(tmp_path):
    assert load_or_create_cluster_id(tmp_path / "d", 1, configured="abc") == "abc"
    assert load_or_create_cluster_id(tmp_path / "d", 1) == "abc"


def test_every_setting_env_var_and_flag_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for setting in SETTINGS:
        assert f"`{setting.name}`" in text, setting.name
        assert setting.env in text, setting.env
    for flag in CLI_FLAGS:
        assert flag in text, flag
