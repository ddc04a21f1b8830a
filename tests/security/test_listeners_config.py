"""The ``listeners`` and ``advertised_listeners`` settings and the security settings beside them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamcore.broker.config import ListenerSpec, config_show, load_config, parse_listener
from streamcore.broker.runtime import _warn_unauthenticated
from streamcore.broker.server import Listener
from streamcore.cli import main
from streamcore.errors import ConfigError


def specs(**cli: object) -> list[tuple[str, str, int, str | None, int | None]]:
    cfg = load_config(env={}, cli=cli)
    return [(s.protocol, s.host, s.port, s.advertised_host, s.advertised_port) for s in cfg.listener_specs()]


def test_the_default_is_one_plaintext_listener_on_host_and_port():
    assert specs() == [("PLAINTEXT", "127.0.0.1", 9092, None, None)]
    assert specs(**{"--host": "127.0.0.2", "--port": "19092", "--advertised-host": "kafka.local"}) == [
        ("PLAINTEXT", "127.0.0.2", 19092, "kafka.local", None)
    ]


def test_a_toml_list_an_environment_string_and_repeated_flags_give_the_same_listeners(tmp_path: Path):
    want = [("SASL_SSL", "0.0.0.0", 9093, None, None), ("PLAINTEXT", "127.0.0.1", 9092, None, None)]
    toml = tmp_path / "b.toml"
    toml.write_text(
        'listeners = ["SASL_SSL://0.0.0.0:9093", "PLAINTEXT://127.0.0.1:9092"]\n[ssl]\ncertfile = "c"\n'
    )
    from_file = load_config(toml, env={})
    from_env = load_config(
        env={
            "STREAMCORE_LISTENERS": "sasl_ssl://0.0.0.0:9093, PLAINTEXT://127.0.0.1:9092",
            "STREAMCORE_SSL_CERTFILE": "c",
        }
    )
    from_cli = load_config(
        env={},
        cli={"--listener": ["SASL_SSL://0.0.0.0:9093", "PLAINTEXT://127.0.0.1:9092"], "--ssl-certfile": "c"},
    )
    for cfg in (from_file, from_env, from_cli):
        assert [
            (s.protocol, s.host, s.port, s.advertised_host, s.advertised_port) for s in cfg.listener_specs()
        ] == want
    assert from_cli.source("listeners") == "cli --listener"


def test_host_and_port_beside_listeners_name_the_first_listeners_address(tmp_path: Path):
    got = specs(
        **{"--listener": ["SASL_PLAINTEXT://127.0.0.1:9093", "PLAINTEXT://127.0.0.1:9092"], "--port": "0"}
    )
    assert got[0] == ("SASL_PLAINTEXT", "127.0.0.1", 0, None, None)
    assert got[1] == ("PLAINTEXT", "127.0.0.1", 9092, None, None)
    # A lower-precedence port (environment) does not override listeners given on the command line...
    cfg = load_config(env={"STREAMCORE_PORT": "5"}, cli={"--listener": "PLAINTEXT://127.0.0.1:9092"})
    assert cfg.listener_specs()[0].port == 9092
    # ...but the environment beats listeners from the file.
    toml = tmp_path / "b.toml"
    toml.write_text('listeners = ["PLAINTEXT://127.0.0.1:9092"]\n')
    assert load_config(toml, env={"STREAMCORE_PORT": "5"}).listener_specs()[0].port == 5


def test_advertised_listeners_are_per_listener():
    got = specs(
        **{
            "--listener": ["PLAINTEXT://0.0.0.0:9092", "SASL_PLAINTEXT://0.0.0.0:9093"],
            "--advertised-listener": ["SASL_PLAINTEXT://kafka.example.com:19093", "PLAINTEXT://10.0.0.7:0"],
        }
    )
    assert got == [
        ("PLAINTEXT", "0.0.0.0", 9092, "10.0.0.7", None),
        ("SASL_PLAINTEXT", "0.0.0.0", 9093, "kafka.example.com", 19093),
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("127.0.0.1:9092", "is not PROTOCOL://HOST:PORT"),
        ("HTTP://127.0.0.1:9092", "is not a security protocol"),
        ("PLAINTEXT://127.0.0.1", "has no port"),
        ("PLAINTEXT://127.0.0.1:x", "is not a number"),
        ("PLAINTEXT://127.0.0.1:70000", "outside 0-65535"),
        ("PLAINTEXT://::1:9092", "in brackets"),
    ],
)
def test_malformed_listener_entries_are_refused_in_one_line_naming_the_setting(entry: str, message: str):
    with pytest.raises(ConfigError, match=r"^listeners: .*" + message) as info:
        load_config(env={}, cli={"--listener": entry})
    assert "\n" not in str(info.value)


def test_ipv6_and_empty_hosts_parse():
    assert parse_listener("SSL://[::1]:9093") == ListenerSpec("SSL", "SSL", "::1", 9093)
    assert parse_listener("plaintext://:9092") == ListenerSpec("PLAINTEXT", "PLAINTEXT", "", 9092)
    assert str(parse_listener("SSL://[::1]:9093")) == "SSL://[::1]:9093"


def test_inconsistent_listener_settings_are_refused():
    with pytest.raises(ConfigError, match="two PLAINTEXT listeners"):
        specs(**{"--listener": "PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2"})
    with pytest.raises(ConfigError, match="names no listener"):
        specs(**{"--listener": "PLAINTEXT://127.0.0.1:1", "--advertised-listener": "SSL://h:1"})
    with pytest.raises(ConfigError, match="must name a host"):
        specs(**{"--listener": "PLAINTEXT://127.0.0.1:1", "--advertised-listener": "PLAINTEXT://0.0.0.0:1"})
    with pytest.raises(
        ConfigError, match=r"^ssl\.certfile: the TLS listener SSL://127.0.0.1:1 needs a certificate"
    ):
        load_config(env={}, cli={"--listener": "SSL://127.0.0.1:1"})
    with pytest.raises(ConfigError, match=r"^ssl\.client_auth required: .*ssl\.cafile"):
        load_config(
            env={},
            cli={"--listener": "SSL://127.0.0.1:1", "--ssl-certfile": "c", "--ssl-client-auth": "required"},
        )
    with pytest.raises(ConfigError, match="needs at least one mechanism"):
        load_config(env={}, cli={"--listener": "SASL_PLAINTEXT://127.0.0.1:1", "sasl.mechanisms": ""})


def test_sasl_mechanisms_are_case_insensitive_and_checked():
    cfg = load_config(env={"STREAMCORE_SASL_MECHANISMS": "plain, scram-sha-512"})
    assert cfg.sasl.mechanisms == ("PLAIN", "SCRAM-SHA-512")
    assert load_config(env={}).sasl.mechanisms == ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
    with pytest.raises(
        ConfigError, match="'GSSAPI' is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN, OAUTHBEARER"
    ):
        load_config(env={}, cli={"--sasl-mechanisms": "GSSAPI"})


def test_super_users_keep_certificate_subjects_whole(tmp_path: Path):
    cfg = load_config(env={"STREAMCORE_SUPER_USERS": "User:admin;User:CN=ops,O=Acme,C=DE, User:bob"})
    assert cfg.super_users == ("User:admin", "User:CN=ops,O=Acme,C=DE", "User:bob")
    cfg = load_config(env={}, cli={"--super-user": ["User:a", "User:CN=x,O=y"]})
    assert cfg.super_users == ("User:a", "User:CN=x,O=y")
    toml = tmp_path / "b.toml"
    toml.write_text('super_users = ["User:CN=x,O=y", "User:z"]\nauthorizer = "acl"\n')
    cfg = load_config(toml, env={})
    assert (cfg.authorizer, cfg.super_users, cfg.allow_everyone_if_no_acl_found) == (
        "acl",
        ("User:CN=x,O=y", "User:z"),
        False,
    )
    with pytest.raises(ConfigError, match="not a principal"):
        load_config(env={}, cli={"--super-user": "admin"})


def test_config_show_masks_passwords():
    cfg = load_config(
        env={"STREAMCORE_SASL_PLAIN_USERS": "alice:s3cret,bob:hunter2", "STREAMCORE_SSL_KEY_PASSWORD": "pw"}
    )
    shown = config_show(cfg)
    assert "s3cret" not in shown and "hunter2" not in shown and "= pw " not in shown
    assert "sasl.plain_users" in shown and "alice:***,bob:***" in shown
    with pytest.raises(ConfigError, match=r"^sasl\.plain_users: entry 2 is not user:password$"):
        load_config(env={"STREAMCORE_SASL_PLAIN_USERS": "alice:x,justapassword"})


def test_the_config_command_takes_repeated_listener_flags(capsys: pytest.CaptureFixture[str]):
    code = main(
        [
            "config",
            "--show",
            "--listener",
            "SASL_PLAINTEXT://127.0.0.1:9093",
            "--listener",
            "PLAINTEXT://127.0.0.1:9092",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "listeners " in out
        and "SASL_PLAINTEXT://127.0.0.1:9093,PLAINTEXT://127.0.0.1:9092  # cli --listener" in out
    )


def _listener(entry: str) -> Listener:
    return Listener(parse_listener(entry))


def test_a_non_loopback_listener_without_authentication_is_warned_about(caplog: pytest.LogCaptureFixture):
    cfg = load_config(env={})
    with caplog.at_level(logging.WARNING, logger="streamcore.broker"):
        _warn_unauthenticated(
            [
                _listener("PLAINTEXT://0.0.0.0:9092"),
                _listener("SSL://10.1.2.3:9093"),
                _listener("SASL_SSL://0.0.0.0:9094"),
                _listener("PLAINTEXT://127.0.0.1:9095"),
                _listener("PLAINTEXT://[::1]:9096"),
                _listener("PLAINTEXT://localhost:9097"),
            ],
            cfg,
        )
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2, warned
    assert "PLAINTEXT://0.0.0.0:9092 is reachable beyond this machine without authentication" in warned[0]
    assert "SSL://10.1.2.3:9093" in warned[1]
    caplog.clear()
    required = load_config(
        env={}, cli={"--ssl-certfile": "c", "--ssl-cafile": "ca", "--ssl-client-auth": "required"}
    )
    with caplog.at_level(logging.WARNING, logger="streamcore.broker"):
        _warn_unauthenticated([_listener("SSL://10.1.2.3:9093")], required)
    assert caplog.records == []
