"""The Java client (3.9.1 and 4.1.1) over SASL_SSL with OAUTHBEARER and unsecured JWS tokens,
against streamcore's broker and a real Apache Kafka 4.1.1 configured alike.

The client's login module makes its own unsigned token (``unsecuredLoginStringClaim_sub``),
which needs jackson-databind on the classpath (interop/java's pom brings it). Both brokers
validate with their development validator of unsecured tokens and run an ACL authorizer
whose only super user is ``User:olivia``: olivia creates, produces and consumes; a token
for ``eve`` authenticates too but sees no topic, which shows that the principal is the
token's subject rather than anything else about the connection.

Marked ``interop`` (JVMs, Maven): run once, native build.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.conftest import JAVA_VERSIONS, JavaBuilds
from streamcore import Broker

from .certs import Pki, make_pki
from .test_sasl_clients import Case, client_check, java_properties

pytestmark = pytest.mark.interop

COUNT = 20
SUPER = "olivia"
KINDS = ("streamcore", "apache-kafka")


@pytest.fixture(scope="module")
def java_builds() -> JavaBuilds:
    """tests/interop's Maven build of interop/java, once per module."""
    return JavaBuilds()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _streamcore(workdir: Path, pki: Pki) -> Iterator[str]:
    with Broker(
        str(workdir / "data"),
        listeners="SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        sasl_mechanisms="OAUTHBEARER",
        authorizer="acl",
        super_users=f"User:{SUPER}",
    ) as broker:
        yield broker.bootstrap_servers


def _apache_kafka(workdir: Path, pki: Pki) -> Iterator[str]:
    from apache_kafka import ApacheKafka, BrokerSecurity

    class WithAuthorizer(BrokerSecurity):
        """The same secured listeners plus KRaft's ACL authorizer. The broker reaches its
        controller over PLAINTEXT as User:ANONYMOUS, which must stay a super user."""

        def properties(self, ports: dict[str, int]) -> list[str]:
            return [
                *super().properties(ports),
                "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                f"super.users=User:{SUPER};User:ANONYMOUS",
            ]

    # Kafka's PEM key store: the unencrypted PKCS#8 key, then the certificate chain.
    keystore = workdir / "broker-keystore.pem"
    keystore.write_bytes(
        pki.server_key.read_bytes() + pki.server_cert.read_bytes() + pki.ca_file.read_bytes()
    )
    security = WithAuthorizer(keystore_pem=keystore, ssl_client_auth="none", mechanisms=("OAUTHBEARER",))
    broker = ApacheKafka(workdir, security=security).start()
    try:
        yield broker.bootstrap("SASL_SSL")
    finally:
        broker.stop()


@pytest.fixture(scope="module", params=KINDS)
def bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, pki: Pki
) -> Iterator[str]:
    """The SASL_SSL address of one broker of each kind, for the module."""
    start = _streamcore if request.param == "streamcore" else _apache_kafka
    yield from start(tmp_path_factory.mktemp(request.param), pki)


def oauth_case(bootstrap: str, pki: Pki, subject: str) -> Case:
    # java_properties turns an OAUTHBEARER case into the unsecured login module with this subject.
    return Case("SASL_SSL", bootstrap, str(pki.ca_file), "OAUTHBEARER", subject)


@pytest.mark.parametrize("version", JAVA_VERSIONS)
def test_java_client_over_sasl_ssl_oauthbearer(
    bootstrap: str, pki: Pki, version: str, java_builds: JavaBuilds, tmp_path: Path
) -> None:
    classpath = java_builds.classpath(version)
    olivia = [
        "--command-config",
        java_properties(oauth_case(bootstrap, pki, SUPER), tmp_path / "olivia.properties"),
    ]
    topic = f"oauth-java-{version}".replace(".", "-")
    assert client_check(classpath, "create", bootstrap, topic, "1", *olivia).stdout.split() == [
        "created",
        topic,
        "1",
    ]
    produced = client_check(classpath, "produce", bootstrap, topic, str(COUNT), "none", "true", *olivia)
    assert produced.stdout.splitlines()[-1] == f"produced {COUNT}"
    consumed = client_check(classpath, "consume", bootstrap, topic, topic, str(COUNT), "60000", *olivia)
    lines = consumed.stdout.splitlines()
    assert lines[-1] == f"consumed {COUNT}"
    assert [line.split(" ")[3:5] for line in lines if line.startswith("R ")] == [
        [f"k-{i}", f"v-{i}"] for i in range(COUNT)
    ]
    # olivia (super user) sees the topic; eve authenticates with her own token and sees nothing.
    assert int(client_check(classpath, "topics", bootstrap, *olivia).stdout.split()[-1]) >= 1
    eve = [
        "--command-config",
        java_properties(oauth_case(bootstrap, pki, "eve"), tmp_path / "eve.properties"),
    ]
    assert client_check(classpath, "topics", bootstrap, *eve).stdout.split() == ["topics", "0"]
