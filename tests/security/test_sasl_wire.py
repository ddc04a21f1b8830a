"""SASL on the wire: the handshake, SaslAuthenticate v0-2, the raw-token framing of a v0
handshake, what is served before authentication, failures (error, close, count, delay)
and KIP-368 re-authentication."""

from __future__ import annotations

import contextlib
import random
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.wire_client import ConnectionClosed, WireClient, batch, create_topic, produce, request_frame
from streamcore import Broker
from streamcore.broker.security.credentials import SCRAM_MECHANISMS, CredentialStore, ScramCredential
from streamcore.errors import ConfigError, ErrorCode
from streamcore.protocol import messages as m
from streamcore.protocol.api_versions import ADVERTISED

from .certs import (
    authenticated,
    client_context,
    make_pki,
    sasl_login,
    sasl_login_raw,
    tls_wire_client,
    unsecured_jwt,
)

AUTH_FAILED = ErrorCode.SASL_AUTHENTICATION_FAILED.code
USERS = {"alice": "alice-pw", "carol": "carol-pw"}


def add_scram_users(data_dir: Path, users: dict[str, str] = USERS) -> None:
    store = CredentialStore(data_dir)
    store.apply(
        upsertions=[
            (user, name, ScramCredential.from_password(mechanism, password))
            for user, password in users.items()
            for name, mechanism in SCRAM_MECHANISMS.items()
        ]
    )


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[Broker]:
    add_scram_users(tmp_path)
    with Broker(
        str(tmp_path),
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_plain_users="bob:bob-pw",
        # No waits: these tests fail on purpose many times in a row.
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        yield broker


def metric(broker: Broker, name: str) -> int:
    for line in broker.state.metrics.registry.render().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} is not exposed")


def connections(broker: Broker) -> list[Any]:
    return broker.runtime._server.connections


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [
        ("SCRAM-SHA-512", "alice", "alice-pw"),
        ("SCRAM-SHA-256", "carol", "carol-pw"),
        ("PLAIN", "bob", "bob-pw"),
    ],
)
@pytest.mark.parametrize("authenticate_version", [0, 1, 2])
def test_each_mechanism_authenticates_and_then_everything_is_served(
    sasl_broker: Broker, mechanism: str, user: str, password: str, authenticate_version: int
) -> None:
    with WireClient(sasl_broker.bootstrap_servers) as c:
        versions = c.request(m.ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
        assert {(k.api_key, k.min_version, k.max_version) for k in versions.api_keys} >= {
            (17, 0, 1), (36, 0, 2), (50, 0, 0), (51, 0, 0),
        }  # fmt: skip
        response = sasl_login(c, mechanism, user, password, authenticate_version=authenticate_version)
        assert response.error_code == 0, response
        assert response.session_lifetime_ms == 0
        create_topic(c, f"t-{authenticate_version}")
        assert produce(c, f"t-{authenticate_version}", 0, batch([b"x"])).error_code == 0
        assert [conn.principal for conn in connections(sasl_broker)] == [f"User:{user}"]
    assert metric(sasl_broker, "streamcore_authentications_total") == 1
    assert metric(sasl_broker, "streamcore_authentication_failures_total") == 0


def test_the_handshake_lists_the_enabled_mechanisms_in_order(tmp_path: Path) -> None:
    with Broker(listeners="SASL_PLAINTEXT://127.0.0.1:0", sasl_mechanisms="PLAIN,SCRAM-SHA-256") as broker:
        with WireClient(broker.bootstrap_servers) as c:
            hs = c.request(m.SaslHandshakeRequest(mechanism="PLAIN"), 1)
            assert (hs.error_code, hs.mechanisms) == (0, ["PLAIN", "SCRAM-SHA-256"])
        with WireClient(broker.bootstrap_servers) as c:
            hs = c.request(m.SaslHandshakeRequest(mechanism="SCRAM-SHA-512"), 1)
            assert (hs.error_code, hs.mechanisms) == (
                ErrorCode.UNSUPPORTED_SASL_MECHANISM.code,
                ["PLAIN", "SCRAM-SHA-256"],
            )
            assert c.is_closed_by_peer()
        assert metric(broker, "streamcore_authentication_failures_total") == 1


@pytest.mark.parametrize(
    ("mechanism", "user", "password"),
    [
        ("SCRAM-SHA-512", "alice", "wrong"),
        ("SCRAM-SHA-512", "mallory", "alice-pw"),
        ("SCRAM-SHA-256", "alice", "carol-pw"),
        ("PLAIN", "bob", "wrong"),
        ("PLAIN", "alice", "alice-pw"),  # a SCRAM user is not a PLAIN user
    ],
)
def test_a_failed_authentication_is_answered_counted_and_closed(
    sasl_broker: Broker, mechanism: str, user: str, password: str
) -> None:
    with WireClient(sasl_broker.bootstrap_servers) as c:
        response = sasl_login(c, mechanism, user, password)
        assert response.error_code == AUTH_FAILED
        assert "Authentication failed" in response.error_message
        assert c.is_closed_by_peer()
    assert metric(sasl_broker, "streamcore_authentication_failures_total") == 1
    assert sasl_broker.state.sasl.throttle.failures("127.0.0.1") == 1


def test_repeated_failures_from_one_address_are_delayed_and_a_success_resets_them(tmp_path: Path) -> None:
    add_scram_users(tmp_path)
    with Broker(
        str(tmp_path), listeners="SASL_PLAINTEXT://127.0.0.1:0", sasl_failed_authentication_delay_ms=1
    ) as broker:
        throttle = broker.state.sasl.throttle
        for n in range(1, 4):
            with WireClient(broker.bootstrap_servers) as c:
                assert sasl_login(c, "SCRAM-SHA-512", "alice", "wrong").error_code == AUTH_FAILED
            assert throttle.failures("127.0.0.1") == n
        # The next failure would wait min(2^4 x 1 ms, 5 s).
        assert throttle.base_s == 0.001
        with authenticated(broker.bootstrap_servers, "SCRAM-SHA-512", "alice", "alice-pw"):
            assert throttle.failures("127.0.0.1") == 0
        assert metric(broker, "streamcore_authentication_failures_total") == 3


REQUESTS_BEFORE_AUTH = [
    (m.MetadataRequest(topics=None), 1),
    (m.ProduceRequest(acks=1, timeout_ms=1000, topic_data=[]), 9),
    (m.FindCoordinatorRequest(key="g", key_type=0), 2),
    (m.SaslAuthenticateRequest(auth_bytes=b"\0bob\0bob-pw"), 1),  # before any handshake
    (m.DescribeUserScramCredentialsRequest(users=None), 0),
    (m.CreateTopicsRequest(topics=[], timeout_ms=1000), 5),
]


@pytest.mark.parametrize(("request_", "version"), REQUESTS_BEFORE_AUTH, ids=lambda r: type(r).__name__)
def test_before_authentication_only_api_versions_and_the_sasl_apis_are_served(
    sasl_broker: Broker, request_: Any, version: int
) -> None:
    with WireClient(sasl_broker.bootstrap_servers) as c:
        assert c.request(m.ApiVersionsRequest(), 0).error_code == 0
        c.send(request_, version)
        assert c.is_closed_by_peer()
    # After the handshake only SaslAuthenticate is.
    with WireClient(sasl_broker.bootstrap_servers) as c:
        assert c.request(m.SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
        c.send(m.MetadataRequest(topics=None), 1)
        assert c.is_closed_by_peer()
    assert sasl_broker.state.sasl.throttle.failures("127.0.0.1") == 0


def test_random_frames_before_authentication_are_never_served(sasl_broker: Broker) -> None:
    rng = random.Random(1368)
    allowed = {17, 18, 36}
    for _ in range(60):
        api_key = rng.choice([k for k in ADVERTISED if k not in allowed] + [rng.randrange(-5, 200)])
        body = rng.randbytes(rng.randrange(0, 64))
        header = struct.pack(">hhi", api_key, rng.randrange(0, 13), rng.randrange(1 << 31)) + b"\xff\xff"
        frame = header + body
        with WireClient(sasl_broker.bootstrap_servers) as c:
            c.send_raw(struct.pack(">i", len(frame)) + frame)
            assert c.is_closed_by_peer(), api_key
    # A frame too large to be a SASL exchange is refused before it completes.
    with WireClient(sasl_broker.bootstrap_servers) as c:
        c.send_raw(struct.pack(">i", 4 << 20) + b"\0" * (600 * 1024))
        assert c.is_closed_by_peer()
    with authenticated(sasl_broker.bootstrap_servers, "PLAIN", "bob", "bob-pw") as c:
        assert c.request(m.MetadataRequest(topics=None), 1).brokers


@pytest.mark.parametrize(
    ("mechanism", "user", "password"), [("PLAIN", "bob", "bob-pw"), ("SCRAM-SHA-512", "alice", "alice-pw")]
)
def test_a_v0_handshake_is_followed_by_raw_tokens(
    sasl_broker: Broker, mechanism: str, user: str, password: str
) -> None:
    with WireClient(sasl_broker.bootstrap_servers) as c:
        last = sasl_login_raw(c, mechanism, user, password)
        # PLAIN's success is an empty token; SCRAM's the server signature.
        assert last == b"" if mechanism == "PLAIN" else last.startswith(b"v=")
        assert c.request(m.MetadataRequest(topics=None), 1).brokers
        assert [conn.principal for conn in connections(sasl_broker)] == [f"User:{user}"]


def test_a_failed_raw_exchange_just_closes(sasl_broker: Broker) -> None:
    with WireClient(sasl_broker.bootstrap_servers) as c:
        assert sasl_login_raw(c, "PLAIN", "bob", "nope") is None
    assert metric(sasl_broker, "streamcore_authentication_failures_total") == 1


def test_sasl_authenticate_on_a_listener_without_sasl_is_an_illegal_state() -> None:
    with Broker() as broker, WireClient(broker.bootstrap_servers) as c:
        hs = c.request(m.SaslHandshakeRequest(mechanism="PLAIN"), 1)
        assert (hs.error_code, hs.mechanisms) == (ErrorCode.UNSUPPORTED_SASL_MECHANISM.code, [])
        r = c.request(m.SaslAuthenticateRequest(auth_bytes=b"\0a\0b"), 1)
        assert r.error_code == ErrorCode.ILLEGAL_SASL_STATE.code
        assert c.request(m.MetadataRequest(topics=None), 1).brokers  # still open


def test_sasl_over_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with Broker(
        listeners="SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        sasl_plain_users="bob:bob-pw",
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        ctx = client_context(pki.ca_file)
        with authenticated(broker.bootstrap_servers, "PLAIN", "bob", "bob-pw", ctx) as c:
            assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
            assert c.request(m.MetadataRequest(topics=None), 1).brokers
        with tls_wire_client(broker.bootstrap_servers, ctx) as c:
            c.send(m.MetadataRequest(topics=None), 1)
            assert c.is_closed_by_peer()
        with tls_wire_client(broker.bootstrap_servers, ctx) as c:
            assert sasl_login(c, "PLAIN", "bob", "no").error_code == AUTH_FAILED


# -- KIP-368 --------------------------------------------------------------------------------


@pytest.fixture
def reauth_broker(tmp_path: Path) -> Iterator[Broker]:
    add_scram_users(tmp_path)
    with Broker(
        str(tmp_path),
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_plain_users="bob:bob-pw",
        sasl_connections_max_reauth_ms="10m",
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        yield broker


def _expire(broker: Broker) -> None:
    # The session's clock, moved past the session's end (the connection is the only one).
    [conn] = connections(broker)
    session = conn.sasl
    later = session.expires_at + 1.0
    session._clock = lambda: later


def test_the_session_lifetime_is_announced_and_re_authentication_renews_it(reauth_broker: Broker) -> None:
    with WireClient(reauth_broker.bootstrap_servers) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "alice", "alice-pw").session_lifetime_ms == 600_000
        # v0 of SaslAuthenticate cannot carry it: 0 there.
        assert c.request(m.MetadataRequest(topics=None), 1).brokers
        again = sasl_login(c, "SCRAM-SHA-512", "alice", "alice-pw", authenticate_version=1)
        assert (again.error_code, again.session_lifetime_ms) == (0, 600_000)
        _expire(reauth_broker)
        # An expired session may still re-authenticate...
        assert sasl_login(c, "SCRAM-SHA-512", "alice", "alice-pw").error_code == 0
        assert c.request(m.MetadataRequest(topics=None), 1).brokers
        # ...but any other request after the end closes the connection.
        _expire(reauth_broker)
        c.send(m.MetadataRequest(topics=None), 1)
        assert c.is_closed_by_peer()
    assert metric(reauth_broker, "streamcore_authentications_total") == 3


def test_re_authentication_keeps_the_principal_and_the_mechanism(reauth_broker: Broker) -> None:
    with WireClient(reauth_broker.bootstrap_servers) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "alice", "alice-pw").error_code == 0
        r = sasl_login(c, "SCRAM-SHA-512", "carol", "carol-pw")
        assert r.error_code == AUTH_FAILED
        assert (
            "Cannot change principals during re-authentication from User:alice: User:carol" in r.error_message
        )
        assert c.is_closed_by_peer()
    with WireClient(reauth_broker.bootstrap_servers) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "alice", "alice-pw").error_code == 0
        hs = c.request(m.SaslHandshakeRequest(mechanism="PLAIN"), 1)
        assert hs.error_code == ErrorCode.UNSUPPORTED_SASL_MECHANISM.code
        assert c.is_closed_by_peer()


def test_v0_authenticate_gets_no_lifetime_yet_the_session_still_ends(reauth_broker: Broker) -> None:
    with WireClient(reauth_broker.bootstrap_servers) as c:
        assert sasl_login(c, "PLAIN", "bob", "bob-pw", authenticate_version=0).session_lifetime_ms == 0
        _expire(reauth_broker)
        c.send(m.MetadataRequest(topics=None), 1)
        assert c.is_closed_by_peer()


def test_a_client_that_never_authenticates_is_closed_after_the_request_timeout(tmp_path: Path) -> None:
    with Broker(listeners="SASL_PLAINTEXT://127.0.0.1:0", request_timeout_ms=300) as broker:
        with WireClient(broker.bootstrap_servers) as c:
            assert c.request(m.ApiVersionsRequest(), 0).error_code == 0
            assert c.is_closed_by_peer(timeout_s=10.0)


def test_frames_are_never_half_read(sasl_broker: Broker) -> None:
    # Handshake and authenticate pipelined in one write are each answered in turn.
    with WireClient(sasl_broker.bootstrap_servers) as c:
        c.send_raw(
            request_frame(m.SaslHandshakeRequest(mechanism="PLAIN"), 1, 1)
            + request_frame(m.SaslAuthenticateRequest(auth_bytes=b"\0bob\0bob-pw"), 2, 2)
        )
        c.pending.extend([(1, 17, 1), (2, 36, 2)])
        assert c.recv()[1].error_code == 0
        assert c.recv()[1].error_code == 0
        assert c.request(m.MetadataRequest(topics=None), 1).brokers
    with pytest.raises(ConnectionClosed):
        with WireClient(sasl_broker.bootstrap_servers) as c:
            c.send_raw(request_frame(m.MetadataRequest(topics=None), 1, 1))
            c.recv_frame()


def test_the_plain_users_file_is_read_again_on_reload(tmp_path: Path) -> None:
    users_file = tmp_path / "plain-users"
    users_file.write_text("dave:old-pw\n")
    with Broker(
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_plain_users_file=str(users_file),
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        with authenticated(broker.bootstrap_servers, "PLAIN", "dave", "old-pw"):
            pass
        users_file.write_text("# rotated\ndave:new-pw\n")
        assert broker.state.sasl.reload_plain_users() == 1
        with WireClient(broker.bootstrap_servers) as c:
            assert sasl_login(c, "PLAIN", "dave", "old-pw").error_code == AUTH_FAILED
        with authenticated(broker.bootstrap_servers, "PLAIN", "dave", "new-pw"):
            pass
        users_file.write_text("dave\n")
        with pytest.raises(ConfigError, match="line 1 is not user:password"):
            broker.state.sasl.reload_plain_users()
        with authenticated(broker.bootstrap_servers, "PLAIN", "dave", "new-pw"):
            pass


def test_random_frames_before_authentication_on_a_sasl_ssl_listener_are_never_served(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with Broker(
        listeners="SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        sasl_plain_users="bob:bob-pw",
    ) as broker:
        ctx = client_context(pki.ca_file)
        rng = random.Random(9093)
        for _ in range(30):
            api_key = rng.choice([k for k in ADVERTISED if k not in (17, 18, 36)])
            header = struct.pack(">hhi", api_key, rng.randrange(0, 13), rng.randrange(1 << 31)) + b"\xff\xff"
            frame = header + rng.randbytes(rng.randrange(0, 64))
            with tls_wire_client(broker.bootstrap_servers, ctx) as c:
                c.send_raw(struct.pack(">i", len(frame)) + frame)
                assert c.is_closed_by_peer(), api_key
            # Garbage that is not even a frame header.
            with tls_wire_client(broker.bootstrap_servers, ctx) as c:
                c.send_raw(rng.randbytes(rng.randrange(1, 40)))
                c.sock.settimeout(0.05)
                with contextlib.suppress(TimeoutError, ssl.SSLError, ConnectionError):
                    assert c.sock.recv(1) == b""
        with authenticated(broker.bootstrap_servers, "PLAIN", "bob", "bob-pw", ctx) as c:
            assert c.request(m.MetadataRequest(topics=None), 1).brokers
            assert "User:bob" in [conn.principal for conn in connections(broker)]


# -- OAUTHBEARER ------------------------------------------------------------------------------


def test_oauthbearer_sessions_end_with_the_token(tmp_path: Path) -> None:
    with Broker(
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_mechanisms="OAUTHBEARER,SCRAM-SHA-512",
        sasl_connections_max_reauth_ms="10m",
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        hour = unsecured_jwt("svc-a", time.time() + 3600)
        with WireClient(broker.bootstrap_servers) as c:
            ok = sasl_login(c, "OAUTHBEARER", "", hour)
            # The shorter of connections.max.reauth.ms and the token's remaining life.
            assert (ok.error_code, ok.session_lifetime_ms) == (0, 600_000)
            assert [conn.principal for conn in connections(broker)] == ["User:svc-a"]
            started = time.time()
            soon = sasl_login(c, "OAUTHBEARER", "", unsecured_jwt("svc-a", started + 120))
            assert soon.error_code == 0 and 0 < soon.session_lifetime_ms <= 120_000
            # Re-authenticating with another principal's token is refused.
            other = sasl_login(c, "OAUTHBEARER", "", unsecured_jwt("svc-b", time.time() + 60))
            assert other.error_code == AUTH_FAILED and "Cannot change principals" in other.error_message
        with WireClient(broker.bootstrap_servers) as c:
            expired = sasl_login(c, "OAUTHBEARER", "", unsecured_jwt("svc-a", time.time() - 5))
            assert (expired.error_code, expired.error_message) == (AUTH_FAILED, '{"status":"invalid_token"}')
            assert c.is_closed_by_peer()
        assert metric(broker, "streamcore_authentication_failures_total") == 2
