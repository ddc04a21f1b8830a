"""Client security settings: spellings, consistency checks, TLS contexts, JAAS entries,
token providers, and the SASL mechanisms' messages (SCRAM against RFC 7677's vector)."""

from __future__ import annotations

import base64
import ssl
import time
from pathlib import Path

import pytest

from streamcore.client.config import build_config
from streamcore.client.retrying import is_retriable
from streamcore.client.security import (
    OAuthBearerClient,
    PlainClient,
    ScramClient,
    Security,
    call_token_provider,
    parse_jaas_config,
)
from streamcore.errors import AuthenticationError, ConfigError, ErrorCode

from .tls_certs import TestCA


def _cfg(role: str = "producer", properties: dict | None = None, **kw: object):
    return build_config(role, "h:1", properties, kw, environ={})


# ---------------------------------------------------------------------- settings


def test_defaults_are_plaintext_without_credentials() -> None:
    cfg = _cfg("consumer")
    assert cfg.security_protocol == "PLAINTEXT"
    assert (cfg.sasl_mechanism, cfg.sasl_username, cfg.ssl_cafile, cfg.ssl_check_hostname) == (
        "PLAIN",
        None,
        None,
        True,
    )
    assert Security.from_config(cfg) == Security()


@pytest.mark.parametrize("role", ["producer", "consumer", "admin"])
def test_java_and_librdkafka_spellings_mean_the_same_settings(role: str, tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    librdkafka = _cfg(
        role,
        {
            "security.protocol": "sasl_ssl",
            "sasl.mechanisms": "scram-sha-512",
            "sasl.username": "alice",
            "sasl.password": "s3cret",
            "ssl.ca.location": str(ca.ca_file),
            "ssl.endpoint.identification.algorithm": "none",
        },
    )
    java = _cfg(
        role,
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
            'username="alice" password="s3cret";',
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(ca.ca_file),
            "ssl.endpoint.identification.algorithm": "",
        },
    )
    kafka_python = _cfg(
        role,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="alice",
        sasl_plain_password="s3cret",
        ssl_cafile=str(ca.ca_file),
        ssl_check_hostname=False,
    )
    for cfg in (librdkafka, java, kafka_python):
        assert (cfg.security_protocol, cfg.sasl_mechanism, cfg.sasl_username, cfg.sasl_password) == (
            "SASL_SSL",
            "SCRAM-SHA-512",
            "alice",
            "s3cret",
        )
        assert (cfg.ssl_cafile, cfg.ssl_check_hostname) == (str(ca.ca_file), False)


def test_endpoint_identification_https_checks_host_names() -> None:
    cfg = _cfg(properties={"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "HTTPS"})
    assert cfg.ssl_check_hostname is True


def test_java_pem_key_store_is_the_certificate_file_and_other_store_types_are_refused(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    client = ca.issue("client", "alice", server=False, key_password="kp")
    cfg = _cfg(
        properties={
            "security.protocol": "SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(client.both),
            "ssl.key.password": "kp",
        }
    )
    assert (cfg.ssl_certfile, cfg.ssl_keyfile, cfg.ssl_password) == (str(client.both), None, "kp")
    # key and chain in one file load as one ssl_certfile
    assert Security.from_config(cfg).ssl_context is not None
    with pytest.raises(ConfigError, match="'ssl.truststore.type' is JKS: only PEM files are read"):
        _cfg(properties={"security.protocol": "SSL", "ssl.truststore.type": "JKS"})
    with pytest.raises(ConfigError, match="no exact equivalent here; use ssl_cafile"):
        _cfg(properties={"security.protocol": "SSL", "ssl.truststore.location": "/x.jks"})
    with pytest.raises(ConfigError, match="no exact equivalent here; use ssl_context"):
        _cfg(properties={"enable.ssl.certificate.verification": "false"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"ssl_cafile": "/ca.pem"},
            "ssl_cafile given but security_protocol is PLAINTEXT: use SSL or SASL_SSL",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "ssl_certfile": "/c.pem"},
            "ssl_certfile given but security_protocol is SASL_PLAINTEXT",
        ),
        (
            {"security_protocol": "SSL", "sasl_username": "alice"},
            "sasl_username given but security_protocol is SSL: use SASL_PLAINTEXT or SASL_SSL",
        ),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism PLAIN needs sasl_username and sasl_password"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "a"},
            "sasl_mechanism SCRAM-SHA-256 needs sasl_username and sasl_password",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER needs sasl_oauth_token_provider",
        ),
        (
            {
                "security_protocol": "SSL",
                "ssl_context": ssl.create_default_context(),
                "ssl_cafile": "/ca.pem",
            },
            "ssl_context is used as is",
        ),
        ({"security_protocol": "SSL", "ssl_context": "ctx"}, "expected an ssl.SSLContext or None"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauth_token_provider": 5,
            },
            "expected a callable or an object with a token\\(\\) method",
        ),
        ({"sasl_mechanism": "GSSAPI"}, "'GSSAPI' is not supported"),
    ],
)
def test_inconsistent_security_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _cfg(**settings)


def test_jaas_entries_give_credentials_and_other_modules_are_refused() -> None:
    module, options = parse_jaas_config(
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" '
        'password="p\\"w;d" serviceName=kafka;'
    )
    assert module == "org.apache.kafka.common.security.plain.PlainLoginModule"
    assert options == {"username": "bob", "password": 'p"w;d', "serviceName": "kafka"}
    cfg = _cfg(
        properties={
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="bob" password="pw";',
        }
    )
    assert (cfg.sasl_mechanism, cfg.sasl_username, cfg.sasl_password) == ("PLAIN", "bob", "pw")
    with pytest.raises(ConfigError, match="ScramLoginModule does not serve PLAIN"):
        _cfg(
            security_protocol="SASL_PLAINTEXT",
            sasl_jaas_config='org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";',
        )
    with pytest.raises(ConfigError, match="login module .*OAuthBearerLoginModule is not supported"):
        _cfg(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=lambda: "t",
            sasl_jaas_config="org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
        )
    with pytest.raises(ConfigError, match="not a JAAS login module entry"):
        _cfg(security_protocol="SASL_PLAINTEXT", sasl_jaas_config="username=alice")


def test_repr_hides_passwords() -> None:
    cfg = _cfg(security_protocol="SASL_PLAINTEXT", sasl_username="alice", sasl_password="hunter2")
    assert "hunter2" not in repr(cfg) and "'sasl_password': '***'" in repr(cfg)
    assert "'sasl_username': 'alice'" in repr(cfg)


def test_tls_context_verifies_brokers_with_tls12_or_newer(tmp_path: Path) -> None:
    ca = TestCA(tmp_path)
    client = ca.issue("client", "alice", server=False, key_password="kp")
    cfg = _cfg(
        security_protocol="SSL",
        ssl_cafile=str(ca.ca_file),
        ssl_certfile=str(client.cert),
        ssl_keyfile=str(client.key),
        ssl_password="kp",
    )
    ctx = Security.from_config(cfg).ssl_context
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in ctx.get_ca_certs()] == [
        ((("organizationName", "streamcore tests"),), (("commonName", "streamcore test CA"),))
    ]
    mine = ssl.create_default_context()
    assert Security.from_config(_cfg(security_protocol="SSL", ssl_context=mine)).ssl_context is mine


def test_unreadable_certificate_files_fail_when_the_client_is_built(tmp_path: Path) -> None:
    from streamcore.aio import AdminClient

    ca = TestCA(tmp_path)
    client = ca.issue("client", "alice", server=False, key_password="kp")
    with pytest.raises(ConfigError, match="ssl_cafile .*missing.pem.*cannot load CA certificates"):
        AdminClient("h:1", security_protocol="SSL", ssl_cafile=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="ssl_certfile .* cannot load the certificate and key"):
        AdminClient(
            "h:1",
            security_protocol="SSL",
            ssl_certfile=str(client.cert),
            ssl_keyfile=str(client.key),
            ssl_password="wrong",
        )
    with pytest.raises(ConfigError, match="ssl_keyfile is set without ssl_certfile"):
        AdminClient("h:1", security_protocol="SSL", ssl_keyfile=str(client.key))


# ---------------------------------------------------------------------- mechanisms


def test_plain_message_has_no_authorization_identity() -> None:
    c = PlainClient("alice", "pä ss")
    assert c.initial() == b"\x00alice\x00p\xc3\xa4 ss"
    assert c.evaluate(b"") is None


# RFC 7677 section 3, SCRAM-SHA-256 with user "user" and password "pencil".
_RFC7677 = {
    "nonce": "rOprNGfwEbeRWgbNEkqO",
    "server_first": b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "client_final": b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "server_final": b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
}


def test_scram_sha_256_follows_the_rfc_7677_example() -> None:
    c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=_RFC7677["nonce"])
    assert c.initial() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert c.evaluate(_RFC7677["server_first"]) == _RFC7677["client_final"]
    assert c.evaluate(_RFC7677["server_final"]) is None


def test_scram_refuses_a_server_signature_that_does_not_match() -> None:
    c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=_RFC7677["nonce"])
    c.initial()
    c.evaluate(_RFC7677["server_first"])
    forged = b"v=" + base64.b64encode(b"\x00" * 32)
    with pytest.raises(AuthenticationError, match="server signature does not match"):
        c.evaluate(forged)


@pytest.mark.parametrize(
    ("server_first", "message"),
    [
        (b"r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce does not extend ours"),
        (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce does not extend ours"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000", "asks for 1000 iterations"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,s=!!!,i=4096", "salt is not base64"),
        (b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", "lacks r, s or i"),
        (b"e=unknown-user", "the broker refused: unknown-user"),
        (b"garbage", "malformed SCRAM message"),
    ],
)
def test_scram_refuses_a_bad_server_first_message(server_first: bytes, message: str) -> None:
    c = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce=_RFC7677["nonce"])
    c.initial()
    with pytest.raises(AuthenticationError, match=message):
        c.evaluate(server_first)


def test_scram_escapes_user_names_and_uses_fresh_nonces() -> None:
    a, b = ScramClient("SCRAM-SHA-512", "a=b,c", "pw"), ScramClient("SCRAM-SHA-512", "a=b,c", "pw")
    assert a.initial().startswith(b"n,,n=a=3Db=2Cc,r=")
    assert a.nonce != b.nonce and len(a.nonce) >= 24


def test_oauthbearer_message_and_error_acknowledgement() -> None:
    c = OAuthBearerClient("tok.en.x")
    assert c.initial() == b"n,,\x01auth=Bearer tok.en.x\x01\x01"
    assert c.evaluate(b"") is None
    assert c.evaluate(b'{"status":"invalid_token"}') == b"\x01"
    assert c.error_detail == '{"status":"invalid_token"}'


def test_token_providers_of_each_shape() -> None:
    later = time.time() + 60

    class KafkaPythonStyle:
        def token(self) -> str:
            return "from-object"

    assert call_token_provider(lambda: "plain") == ("plain", None)
    assert call_token_provider(lambda: ("pair", later)) == ("pair", later)
    assert call_token_provider(KafkaPythonStyle()) == ("from-object", None)
    with pytest.raises(AuthenticationError, match="returned a token that expired"):
        call_token_provider(lambda: ("old", time.time() - 5))
    with pytest.raises(AuthenticationError, match="returned no token"):
        call_token_provider(lambda: "")

    def broken() -> str:
        raise RuntimeError("identity provider down")

    with pytest.raises(AuthenticationError, match="identity provider down"):
        call_token_provider(broken)


def test_authentication_errors_are_never_retried_and_survive_a_rebuild() -> None:
    exc = AuthenticationError("bad password", ErrorCode.SASL_AUTHENTICATION_FAILED)
    assert str(exc) == "[58] SASL_AUTHENTICATION_FAILED: bad password"
    again = type(exc)(*exc.args)  # what a connection does for each waiting request
    assert (str(again), again.error, again.retriable) == (str(exc), exc.error, False)
    assert not is_retriable(exc) and not isinstance(exc, OSError)
    assert str(AuthenticationError("TLS refused")) == "TLS refused"
