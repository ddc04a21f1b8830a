"""streamcore's client over secured listeners of a real broker: SASL_PLAINTEXT (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER), SSL with a client certificate, SASL_SSL
(PLAIN, SCRAM-SHA-512); blocking and asyncio producer, consumer and admin client, and
the command-line tools' --command-config. Wrong credentials raise AuthenticationError
instead of being retried until a timeout.

Each case runs against both broker kinds, configured alike: ``apache-kafka`` (a real
Apache Kafka 4.1.1; java and mvn, one JVM for the module; its test ids name it, so
these run once, in the native pass, like every Apache Kafka control) and
``streamcore`` (the embedded broker, SCRAM users added offline with ``streamcore users
add`` before it starts). OAUTHBEARER tokens are unsecured JWS, which both brokers'
development validators accept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamcore import aio
from streamcore.client import AdminClient, Consumer, Producer
from streamcore.client.errors import ConnectionLostError
from streamcore.errors import AuthenticationError, ErrorCode

from .helpers import consume_n
from .tls_certs import CertFiles, TestCA

PASSWORD = "alice-secret"
#: The one listener and mechanism whose SASL sessions the broker limits (KIP-368).
REAUTH_CASE, REAUTH_MS = "SASL_PLAINTEXT-SCRAM-SHA-256", 2000


def unsecured_jws(subject: str, lifetime_s: int = 3600) -> tuple[str, float]:
    """An unsigned JWT (``alg: none``) for ``subject`` and its expiry (seconds since the
    epoch): what Kafka's development OAUTHBEARER validator accepts."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + lifetime_s}
    return f"{part({'alg': 'none'})}.{part(claims)}.", float(claims["exp"])


@dataclass
class SecuredBroker:
    """A broker with secured listeners and what a client needs to reach them."""

    kind: str
    addresses: dict[str, str]  # security protocol -> host:port
    ca: TestCA
    client_cert: CertFiles  # signed by ``ca``, key encrypted with ``key_password``

    def settings(self, case: str, password: str = PASSWORD, user: str = "alice") -> dict[str, Any]:
        """Client settings for ``case`` ("SASL_SSL-PLAIN", "SSL" ...), bootstrap included."""
        protocol, _, mechanism = case.partition("-")
        out: dict[str, Any] = {"bootstrap_servers": self.addresses[protocol], "security_protocol": protocol}
        if protocol in ("SSL", "SASL_SSL"):
            out["ssl_cafile"] = str(self.ca.ca_file)
        if protocol == "SSL":
            out.update(
                ssl_certfile=str(self.client_cert.cert),
                ssl_keyfile=str(self.client_cert.key),
                ssl_password=self.client_cert.key_password,
            )
        if mechanism == "OAUTHBEARER":
            out.update(sasl_mechanism=mechanism, sasl_oauth_token_provider=lambda: unsecured_jws(user))
        elif mechanism:
            out.update(sasl_mechanism=mechanism, sasl_username=user, sasl_password=password)
        return out


CASES = [
    "SASL_PLAINTEXT-PLAIN",
    "SASL_PLAINTEXT-SCRAM-SHA-256",
    "SASL_PLAINTEXT-SCRAM-SHA-512",
    "SASL_PLAINTEXT-OAUTHBEARER",
    "SSL",
    "SASL_SSL-PLAIN",
    "SASL_SSL-SCRAM-SHA-512",
]
#: The broker kinds, each configured alike.
KINDS = ["apache-kafka", "streamcore"]


def _apache_kafka(workdir: Path, ca: TestCA, server: CertFiles) -> Iterator[dict[str, str]]:
    from apache_kafka import ApacheKafka, BrokerSecurity

    security = BrokerSecurity(
        keystore_pem=server.both,
        truststore_pem=ca.ca_file,
        plain_users={"alice": PASSWORD},
        scram_users={"alice": PASSWORD},
        max_reauth_ms={REAUTH_CASE: REAUTH_MS},
    )
    broker = ApacheKafka(workdir, security=security).start()
    try:
        yield {p: broker.bootstrap(p) for p in security.protocols}
    finally:
        broker.stop()


def _streamcore(workdir: Path, ca: TestCA, server: CertFiles) -> Iterator[dict[str, str]]:
    from streamcore.broker.embedded import Broker
    from tools.helpers import ok, run_cli

    data = workdir / "data"
    for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):  # offline, before the broker starts
        ok(
            run_cli(
                "users",
                "add",
                "alice",
                "--password",
                PASSWORD,
                "--mechanism",
                mechanism,
                "--data-dir",
                str(data),
            )
        )
    with Broker(
        str(data),
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(server.cert),
        ssl_keyfile=str(server.key),
        ssl_cafile=str(ca.ca_file),
        ssl_client_auth="required",
        # OAUTHBEARER with the development validator of unsecured JWS tokens, as Kafka's default
        sasl_mechanisms="PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
        sasl_plain_users=f"alice:{PASSWORD}",
        # one limit for every SASL session here (Apache Kafka's is per listener and mechanism)
        sasl_connections_max_reauth_ms=REAUTH_MS,
        # The growing delay after failed attempts is the broker tests' subject; here it
        # would only stretch the wrong-password cases to the 5 s cap.
        sasl_failed_authentication_delay_ms=0,
    ) as broker:
        yield dict(broker.listeners)


@pytest.fixture(scope="module", params=KINDS)
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredBroker]:
    """A broker of each kind with SASL_PLAINTEXT, SSL (client certificates required) and
    SASL_SSL listeners; user alice for PLAIN and SCRAM."""
    workdir = tmp_path_factory.mktemp(f"secured-{request.param}")
    ca = TestCA(workdir / "certs")
    server = ca.issue("broker", "localhost", server=True)
    client = ca.issue("client", "alice", server=False, key_password="client-key-pass")
    start = _apache_kafka if request.param == "apache-kafka" else _streamcore
    for addresses in start(workdir, ca, server):
        yield SecuredBroker(request.param, addresses, ca, client)


_counter = iter(range(1_000_000))


def _name(case: str, what: str) -> str:
    return f"sec-{what}-{case.lower()}-{next(_counter)}"


@pytest.mark.parametrize("case", CASES)
def test_blocking_clients_produce_and_consume(secured: SecuredBroker, case: str) -> None:
    settings = secured.settings(case)
    topic = _name(case, "blocking")
    with AdminClient(**settings) as admin:
        admin.create_topic(topic, num_partitions=2)
        assert admin.wait_for_topic(topic) is not None
    with Producer(**settings) as producer:
        sent = [producer.send(topic, f"v{i}".encode(), key=f"k{i}".encode()) for i in range(10)]
        offsets = {(md.partition, md.offset) for md in (f.result(30) for f in sent)}
    assert len(offsets) == 10
    with Consumer(**settings, group_id=_name(case, "group"), auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while len(got) < 10 and time.monotonic() < deadline:
            got += consumer.poll(timeout_ms=500)
        consumer.commit()
    assert sorted(r.value for r in got) == sorted(f"v{i}".encode() for i in range(10))


@pytest.mark.parametrize("case", CASES)
def test_asyncio_clients_produce_and_consume(secured: SecuredBroker, case: str) -> None:
    settings = secured.settings(case)
    topic = _name(case, "aio")

    async def main() -> list[bytes]:
        async with aio.AdminClient(**settings) as admin:
            await admin.create_topic(topic, num_partitions=1)
            await admin.wait_for_topic(topic)
        async with aio.Producer(**settings) as producer:
            for i in range(5):
                await producer.send(topic, f"a{i}".encode())
            await producer.flush()
        async with aio.Consumer(**settings, auto_offset_reset="earliest") as consumer:
            consumer.assign([(topic, 0)])
            records = await consume_n(consumer, 5, timeout_s=60)
        return [r.value for r in records]

    assert asyncio.run(main()) == [f"a{i}".encode() for i in range(5)]


def test_connections_are_replaced_before_the_brokers_sasl_session_limit(secured: SecuredBroker) -> None:
    settings = secured.settings(REAUTH_CASE)
    topic = _name(REAUTH_CASE, "reauth")
    seen: list[Any] = []  # every broker connection the producer used, in order of appearance
    sent = 0
    with Producer(**settings) as producer:
        cluster = producer._core.cluster
        deadline = time.monotonic() + 60  # bound only: the loop ends on the third connection
        while len(seen) < 3 and time.monotonic() < deadline:
            producer.send(topic, b"r%d" % sent).result(30)
            sent += 1
            for node in list(cluster.brokers):
                for conn in cluster.pool.bundle(node).connections:
                    if all(conn is not c for c in seen):
                        seen.append(conn)
            time.sleep(0.05)
        # each earlier one retired (or is still answering what it had): none was cut off by the broker
        ends = [c._closed_exc for c in seen[:-1]]
    assert all(e is None or "retired" in str(e) for e in ends), ends
    assert len(seen) >= 3, f"{len(seen)} connection(s) in {sent} sends"
    assert all(0 < c.session_lifetime_ms <= REAUTH_MS and c.sasl_mechanism == "SCRAM-SHA-256" for c in seen)
    # a group consumer reads them all while its own connections are replaced in turn
    with Consumer(**settings, group_id=_name(REAUTH_CASE, "g"), auto_offset_reset="earliest") as consumer:
        consumer.subscribe([topic])
        got: list[Any] = []
        deadline = time.monotonic() + 60
        while len(got) < sent and time.monotonic() < deadline:
            got += consumer.poll(timeout_ms=300)
    assert [r.value for r in got] == [b"r%d" % i for i in range(sent)]


WRONG = ["SASL_PLAINTEXT-PLAIN", "SASL_PLAINTEXT-SCRAM-SHA-512", "SASL_SSL-PLAIN", "SASL_SSL-SCRAM-SHA-256"]


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_password_raises_authentication_error_from_every_client(
    secured: SecuredBroker, case: str
) -> None:
    # Generous timeouts: a client that retried would end in a timeout, not this error.
    settings = {**secured.settings(case, password="not-the-password"), "request_timeout_ms": 60_000}
    with pytest.raises(AuthenticationError) as info:
        Producer(**settings, max_block_ms=60_000)
    assert info.value.error is ErrorCode.SASL_AUTHENTICATION_FAILED
    assert not info.value.retriable
    with AdminClient(**settings) as admin, pytest.raises(AuthenticationError):
        admin.list_topics()
    with Consumer(**settings, group_id=_name(case, "wrong")) as consumer:
        consumer.subscribe(["anything"])
        with pytest.raises(AuthenticationError):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                consumer.poll(timeout_ms=500)

    async def aio_admin() -> None:
        async with aio.AdminClient(**settings) as admin:
            await admin.list_topics()

    with pytest.raises(AuthenticationError, match="SASL_AUTHENTICATION_FAILED"):
        asyncio.run(aio_admin())


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "PLAIN"])
def test_an_unknown_user_is_an_authentication_error(secured: SecuredBroker, mechanism: str) -> None:
    settings = secured.settings(f"SASL_PLAINTEXT-{mechanism}", user="mallory")
    with pytest.raises(AuthenticationError) as info:
        Producer(**settings)
    assert info.value.error is ErrorCode.SASL_AUTHENTICATION_FAILED


def test_the_ssl_listener_refuses_a_client_without_a_certificate(secured: SecuredBroker) -> None:
    settings = secured.settings("SSL")
    for key in ("ssl_certfile", "ssl_keyfile", "ssl_password"):
        del settings[key]
    if secured.kind == "apache-kafka":
        # Kafka answers with a TLS alert (bad_certificate): an authentication failure.
        with pytest.raises(AuthenticationError, match="TLS"):
            Producer(**settings)
        return
    # streamcore's broker (asyncio's TLS server) drops the connection without an alert, so
    # the client can only see a closed connection; it still fails the call at once.
    with pytest.raises(ConnectionLostError, match="closed"):
        Producer(**settings)


def test_a_broker_certificate_from_another_ca_is_refused(secured: SecuredBroker, tmp_path: Path) -> None:
    other = TestCA(tmp_path, cn="another CA")
    settings = {**secured.settings("SASL_SSL-PLAIN"), "ssl_cafile": str(other.ca_file)}
    with (
        AdminClient(**settings) as admin,
        pytest.raises(AuthenticationError, match="certificate verify failed"),
    ):
        admin.list_topics()


def test_sasl_over_a_plaintext_client_of_the_ssl_listener_does_not_authenticate(
    secured: SecuredBroker,
) -> None:
    # SASL_PLAINTEXT settings pointed at the SASL_SSL port: the broker reads the
    # handshake as garbage and drops it; a lost connection, not an authentication error.
    settings = {
        **secured.settings("SASL_PLAINTEXT-PLAIN"),
        "bootstrap_servers": secured.addresses["SASL_SSL"],
    }
    with pytest.raises(Exception) as info:
        Producer(
            **settings, max_block_ms=3000, request_timeout_ms=3000, socket_connection_setup_timeout_ms=3000
        )
    assert not isinstance(info.value, AuthenticationError)


# ---------------------------------------------------------------------- tools


def _properties(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _java_style(secured: SecuredBroker, password: str = PASSWORD) -> list[str]:
    return [
        f"bootstrap.servers={secured.addresses['SASL_SSL']}",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="alice" password="{password}";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={secured.ca.ca_file}",
    ]


def _librdkafka_style(secured: SecuredBroker) -> list[str]:
    return [
        f"bootstrap.servers={secured.addresses['SASL_PLAINTEXT']}",
        "security.protocol=sasl_plaintext",
        "sasl.mechanisms=PLAIN",
        "sasl.username=alice",
        f"sasl.password={PASSWORD}",
    ]


@pytest.mark.parametrize("style", [_java_style, _librdkafka_style])
def test_tools_take_security_settings_from_command_config(
    secured: SecuredBroker, style: Callable[[SecuredBroker], list[str]], tmp_path: Path
) -> None:
    from tools.helpers import ok, run_cli

    props = _properties(tmp_path / "client.properties", style(secured))
    topic = _name(style.__name__, "tool")
    b = ("--command-config", props, "--timeout", "30")
    ok(run_cli("topics", "create", topic, *b))
    assert topic in ok(run_cli("topics", "list", *b)).splitlines()
    ok(run_cli("produce", topic, *b, input=b"one\ntwo\n"))
    # consume also opens an admin client to look the topic up: it gets the same settings
    assert ok(run_cli("consume", topic, "--from-beginning", "--max-messages", "2", *b)).splitlines() == [
        "one",
        "two",
    ]


def test_a_tool_with_a_wrong_password_fails_with_one_line(secured: SecuredBroker, tmp_path: Path) -> None:
    from tools.helpers import failed_with_one_line, run_cli

    props = _properties(tmp_path / "client.properties", _java_style(secured, password="wrong"))
    line = failed_with_one_line(run_cli("topics", "list", "--command-config", props, "--timeout", "60"))
    assert "SASL_AUTHENTICATION_FAILED" in line and "SCRAM-SHA-512 authentication" in line
