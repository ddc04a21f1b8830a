"""Real clients over real handshakes: confluent-kafka, kafka-python, aiokafka, kcat (Debian's
librdkafka 2.0) and the Java client each produce and consume over SSL, SASL_PLAINTEXT with
SCRAM-SHA-512, SASL_SSL with PLAIN and SASL_SSL with OAUTHBEARER (unsecured tokens); a wrong
password and an unknown user fail with the authentication error; the Java Admin and
confluent-kafka's AdminClient manage SCRAM users.

Marked ``interop`` (third-party clients and JVMs), like tests/interop: run once, native build.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from interop.conftest import JAVA_VERSIONS, JavaBuilds
from streamcore import Broker
from streamcore.broker.security.credentials import SCRAM_MECHANISMS, CredentialStore, ScramCredential

from .certs import Pki, make_pki, unsecured_jwt

pytestmark = pytest.mark.interop

COUNT = 20
WAIT_S = 60.0
PROCESS_TIMEOUT_S = 180
JVM_FLAGS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m"]


@dataclass(frozen=True)
class Case:
    """How a client reaches one listener."""

    protocol: str
    bootstrap: str
    ca_file: str | None = None
    mechanism: str | None = None
    user: str | None = None
    password: str | None = None

    @property
    def id(self) -> str:
        return self.protocol + (f"-{self.mechanism}" if self.mechanism else "")

    def wrong(self, user: str, password: str) -> Case:
        return Case(self.protocol, self.bootstrap, self.ca_file, self.mechanism, user, password)


CASES = ("SSL", "SASL_PLAINTEXT-SCRAM-SHA-512", "SASL_SSL-PLAIN", "SASL_SSL-OAUTHBEARER")


def start_broker(data_dir: Path, pki: Pki, **settings: object) -> Broker:
    data_dir.mkdir(parents=True, exist_ok=True)
    CredentialStore(data_dir).apply(
        upsertions=[
            (
                "sam",
                "SCRAM-SHA-512",
                ScramCredential.from_password(SCRAM_MECHANISMS["SCRAM-SHA-512"], "sam-pw"),
            )
        ]
    )
    return Broker(
        str(data_dir),
        listeners="SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        sasl_plain_users="paul:paul-pw",
        sasl_mechanisms="SCRAM-SHA-512,SCRAM-SHA-256,PLAIN,OAUTHBEARER",
        **settings,
    ).start()


def cases_of(broker: Broker, pki: Pki) -> dict[str, Case]:
    ca = str(pki.ca_file)
    return {
        "SSL": Case("SSL", broker.bootstrap_for("SSL"), ca),
        "SASL_PLAINTEXT-SCRAM-SHA-512": Case(
            "SASL_PLAINTEXT", broker.bootstrap_for("SASL_PLAINTEXT"), None, "SCRAM-SHA-512", "sam", "sam-pw"
        ),
        "SASL_SSL-PLAIN": Case("SASL_SSL", broker.bootstrap_for("SASL_SSL"), ca, "PLAIN", "paul", "paul-pw"),
        # The user is the token's subject; unsecured tokens need no password.
        "SASL_SSL-OAUTHBEARER": Case(
            "SASL_SSL", broker.bootstrap_for("SASL_SSL"), ca, "OAUTHBEARER", "olivia"
        ),
    }


@pytest.fixture(scope="module")
def java_builds() -> JavaBuilds:
    """tests/interop's Maven build of interop/java, once per module."""
    return JavaBuilds()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[dict[str, Case]]:
    broker = start_broker(tmp_path_factory.mktemp("data"), pki)
    try:
        yield cases_of(broker, pki)
    finally:
        broker.stop()


@pytest.fixture
def failing(tmp_path: Path, pki: Pki) -> Iterator[dict[str, Case]]:
    """A broker of its own per failure test, so that one test's failures do not delay the next's."""
    broker = start_broker(tmp_path / "data", pki)
    try:
        yield cases_of(broker, pki)
    finally:
        broker.stop()


def expected(topic: str) -> list[tuple[bytes, bytes]]:
    return [(f"k-{i}".encode(), f"{topic}-{i}".encode()) for i in range(COUNT)]


WRONG = [("sam", "wrong-pw"), ("nobody", "sam-pw")]


# -- confluent-kafka ---------------------------------------------------------------------------


def confluent_conf(case: Case) -> dict[str, object]:
    conf: dict[str, object] = {"bootstrap.servers": case.bootstrap, "security.protocol": case.protocol}
    if case.ca_file:
        conf["ssl.ca.location"] = case.ca_file
    if case.mechanism == "OAUTHBEARER":
        conf.update(
            {
                "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": f"principal={case.user}",
            }
        )
    elif case.mechanism:
        conf.update(
            {"sasl.mechanism": case.mechanism, "sasl.username": case.user, "sasl.password": case.password}
        )
    return conf


@pytest.mark.parametrize("case_id", CASES)
def test_confluent_kafka(secured: dict[str, Case], case_id: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    case = secured[case_id]
    topic = f"confluent-{case_id}".lower()
    producer = confluent_kafka.Producer({**confluent_conf(case), "linger.ms": 5})
    for k, v in expected(topic):
        producer.produce(topic, key=k, value=v)
    assert producer.flush(WAIT_S) == 0
    consumer = confluent_kafka.Consumer(
        {
            **confluent_conf(case),
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(got) < COUNT and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    assert got == expected(topic)


@pytest.mark.parametrize(("user", "password"), WRONG)
def test_confluent_kafka_authentication_errors(failing: dict[str, Case], user: str, password: str) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    errors: list[object] = []
    case = failing["SASL_PLAINTEXT-SCRAM-SHA-512"].wrong(user, password)
    producer = confluent_kafka.Producer({**confluent_conf(case), "error_cb": errors.append})
    producer.produce("never", b"x")
    deadline = time.monotonic() + WAIT_S
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    assert errors, "no error reported"
    first = errors[0]
    assert first.code() == confluent_kafka.KafkaError._AUTHENTICATION, first
    assert "Authentication failed" in first.str()
    producer.purge()


# -- kafka-python ------------------------------------------------------------------------------


def kafka_python_conf(case: Case) -> dict[str, object]:
    conf: dict[str, object] = {"bootstrap_servers": case.bootstrap, "security_protocol": case.protocol}
    if case.ca_file:
        conf["ssl_cafile"] = case.ca_file
    if case.mechanism == "OAUTHBEARER":
        from kafka.net.sasl.oauth import AbstractTokenProvider

        subject = case.user or ""

        class Tokens(AbstractTokenProvider):
            def token(self) -> str:
                return unsecured_jwt(subject, time.time() + 3600)

        conf.update({"sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Tokens()})
    elif case.mechanism:
        conf.update(
            {
                "sasl_mechanism": case.mechanism,
                "sasl_plain_username": case.user,
                "sasl_plain_password": case.password,
            }
        )
    return conf


@pytest.mark.parametrize("case_id", CASES)
def test_kafka_python(secured: dict[str, Case], case_id: str) -> None:
    kafka = pytest.importorskip("kafka")
    case = secured[case_id]
    topic = f"kafka-python-{case_id}".lower()
    producer = kafka.KafkaProducer(**kafka_python_conf(case), linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in expected(topic)]
        producer.flush(WAIT_S)
        for f in futures:
            f.get(timeout=WAIT_S)
    finally:
        producer.close()
    consumer = kafka.KafkaConsumer(
        topic,
        **kafka_python_conf(case),
        group_id=topic,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(WAIT_S * 1000),
    )
    got = []
    try:
        for msg in consumer:
            got.append((msg.key, msg.value))
            if len(got) == COUNT:
                break
    finally:
        consumer.close()
    assert got == expected(topic)


@pytest.mark.parametrize(("user", "password"), WRONG)
def test_kafka_python_authentication_errors(
    failing: dict[str, Case], user: str, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = pytest.importorskip("kafka")
    case = failing["SASL_PLAINTEXT-SCRAM-SHA-512"].wrong(user, password)
    with caplog.at_level(logging.ERROR, logger="kafka"), pytest.raises(kafka.errors.KafkaError):
        kafka.KafkaProducer(**kafka_python_conf(case), bootstrap_timeout_ms=5000)
    failures = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()]
    assert failures, [r.getMessage() for r in caplog.records]
    assert "Authentication failed" in failures[0]


# -- aiokafka ----------------------------------------------------------------------------------


def aiokafka_conf(case: Case) -> dict[str, object]:
    from aiokafka.helpers import create_ssl_context

    conf: dict[str, object] = {"bootstrap_servers": case.bootstrap, "security_protocol": case.protocol}
    if case.ca_file:
        conf["ssl_context"] = create_ssl_context(cafile=case.ca_file)
    if case.mechanism == "OAUTHBEARER":
        from aiokafka.abc import AbstractTokenProvider

        subject = case.user or ""

        class Tokens(AbstractTokenProvider):
            async def token(self) -> str:
                return unsecured_jwt(subject, time.time() + 3600)

        conf.update({"sasl_mechanism": "OAUTHBEARER", "sasl_oauth_token_provider": Tokens()})
    elif case.mechanism:
        conf.update(
            {
                "sasl_mechanism": case.mechanism,
                "sasl_plain_username": case.user,
                "sasl_plain_password": case.password,
            }
        )
    return conf


@pytest.mark.parametrize("case_id", CASES)
def test_aiokafka(secured: dict[str, Case], case_id: str) -> None:
    pytest.importorskip("aiokafka")
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    case = secured[case_id]
    topic = f"aiokafka-{case_id}".lower()

    async def run() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(**aiokafka_conf(case), linger_ms=5)
        await producer.start()
        try:
            for k, v in expected(topic):
                await producer.send_and_wait(topic, key=k, value=v)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, **aiokafka_conf(case), group_id=topic, auto_offset_reset="earliest"
        )
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []

        async def read() -> None:
            async for msg in consumer:
                got.append((msg.key, msg.value))
                if len(got) == COUNT:
                    return

        try:
            await asyncio.wait_for(read(), WAIT_S)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(run()) == expected(topic)


@pytest.mark.parametrize(("user", "password"), WRONG)
def test_aiokafka_authentication_errors(
    failing: dict[str, Case], user: str, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("aiokafka")
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    case = failing["SASL_PLAINTEXT-SCRAM-SHA-512"].wrong(user, password)

    async def run() -> None:
        producer = AIOKafkaProducer(**aiokafka_conf(case), request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaError):
        asyncio.run(run())
    failures = [r.getMessage() for r in caplog.records if "SaslAuthenticationFailed" in r.getMessage()]
    assert failures, [r.getMessage() for r in caplog.records]
    assert "Authentication failed" in failures[0]


# -- kcat --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat")
    if path is None:
        pytest.fail("`kcat` is not installed or not on PATH (Debian package kcat)", pytrace=False)
    return path


def kcat_args(kcat: str, case: Case) -> list[str]:
    args = [kcat, "-b", case.bootstrap, "-X", f"security.protocol={case.protocol}"]
    if case.ca_file:
        args += ["-X", f"ssl.ca.location={case.ca_file}"]
    if case.mechanism == "OAUTHBEARER":
        args += ["-X", "sasl.mechanisms=OAUTHBEARER", "-X", "enable.sasl.oauthbearer.unsecure.jwt=true",
                 "-X", f"sasl.oauthbearer.config=principal={case.user}"]  # fmt: skip
    elif case.mechanism:
        args += ["-X", f"sasl.mechanisms={case.mechanism}", "-X", f"sasl.username={case.user}",
                 "-X", f"sasl.password={case.password}"]  # fmt: skip
    return args


@pytest.mark.parametrize("case_id", CASES)
def test_kcat(secured: dict[str, Case], case_id: str, kcat: str) -> None:
    case = secured[case_id]
    topic = f"kcat-{case_id}".lower()
    lines = "".join(f"{k.decode()}:{v.decode()}\n" for k, v in expected(topic))
    produced = subprocess.run(
        [*kcat_args(kcat, case), "-P", "-t", topic, "-K", ":"],
        input=lines, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    consumed = subprocess.run(
        [*kcat_args(kcat, case), "-C", "-t", topic, "-o", "beginning", "-c", str(COUNT), "-q", "-f", "%k:%s\\n"],
        capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
    )  # fmt: skip
    assert consumed.returncode == 0, consumed.stderr
    got = [tuple(line.split(":", 1)) for line in consumed.stdout.splitlines()]
    assert got == [(k.decode(), v.decode()) for k, v in expected(topic)]


@pytest.mark.parametrize(("user", "password"), WRONG)
def test_kcat_authentication_errors(failing: dict[str, Case], user: str, password: str, kcat: str) -> None:
    case = failing["SASL_PLAINTEXT-SCRAM-SHA-512"].wrong(user, password)
    proc = subprocess.run(
        [*kcat_args(kcat, case), "-L", "-m", "10"], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S
    )
    assert proc.returncode != 0
    assert "SASL authentication error: Authentication failed" in proc.stderr, proc.stderr


# -- the Java client ---------------------------------------------------------------------------


def java_properties(case: Case, path: Path) -> str:
    lines = [f"security.protocol={case.protocol}"]
    if case.ca_file:
        # KIP-651: PEM trust stores, no keytool needed.
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={case.ca_file}"]
    if case.mechanism == "OAUTHBEARER":
        # The login module's default handler makes unsecured tokens with this subject.
        module = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
        lines += [
            "sasl.mechanism=OAUTHBEARER",
            f'sasl.jaas.config={module} required unsecuredLoginStringClaim_sub="{case.user}";',
        ]
    elif case.mechanism:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if case.mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        lines += [
            f"sasl.mechanism={case.mechanism}",
            f'sasl.jaas.config={module} required username="{case.user}" password="{case.password}";',
        ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def client_check(classpath: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["java", *JVM_FLAGS, "-cp", classpath, "streamcore.interop.ClientCheck", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    if check:
        assert proc.returncode == 0, f"ClientCheck {args[0]} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    return proc


# OAUTHBEARER's unsecured login handler needs jackson-databind, which interop/java's build
# does not bring: the Java client is run over the other three.
JAVA_CASES = tuple(c for c in CASES if not c.endswith("OAUTHBEARER"))


@pytest.mark.parametrize("version", JAVA_VERSIONS)
@pytest.mark.parametrize("case_id", JAVA_CASES)
def test_java_client(
    secured: dict[str, Case], case_id: str, version: str, java_builds: JavaBuilds, tmp_path: Path
) -> None:
    classpath = java_builds.classpath(version)
    case = secured[case_id]
    props = ["--command-config", java_properties(case, tmp_path / "client.properties")]
    topic = f"java-{version}-{case_id}".lower().replace(".", "-")
    assert client_check(classpath, "create", case.bootstrap, topic, "1", *props).stdout.split() == [
        "created",
        topic,
        "1",
    ]
    produced = client_check(classpath, "produce", case.bootstrap, topic, str(COUNT), "none", "true", *props)
    assert produced.stdout.splitlines()[-1] == f"produced {COUNT}"
    consumed = client_check(classpath, "consume", case.bootstrap, topic, topic, str(COUNT), "60000", *props)
    lines = consumed.stdout.splitlines()
    assert lines[-1] == f"consumed {COUNT}"
    assert [line.split(" ")[3:5] for line in lines if line.startswith("R ")] == [
        [f"k-{i}", f"v-{i}"] for i in range(COUNT)
    ]


@pytest.mark.parametrize(("user", "password"), WRONG)
def test_java_client_authentication_errors(
    failing: dict[str, Case], user: str, password: str, java_builds: JavaBuilds, tmp_path: Path
) -> None:
    classpath = java_builds.classpath(JAVA_VERSIONS[-1])
    case = failing["SASL_PLAINTEXT-SCRAM-SHA-512"].wrong(user, password)
    props = java_properties(case, tmp_path / "client.properties")
    proc = client_check(classpath, "topics", case.bootstrap, "--command-config", props, check=False)
    assert proc.returncode != 0
    assert "SaslAuthenticationException" in proc.stderr, proc.stderr[-4000:]
    assert "Authentication failed during authentication due to invalid credentials" in proc.stderr


def test_java_admin_manages_scram_users(
    secured: dict[str, Case], java_builds: JavaBuilds, tmp_path: Path
) -> None:
    classpath = java_builds.classpath(JAVA_VERSIONS[-1])
    case = secured["SASL_SSL-PLAIN"]
    props = ["--command-config", java_properties(case, tmp_path / "admin.properties")]
    set_ = client_check(classpath, "scram-set", case.bootstrap, "jenny", "jenny-pw", "SCRAM-SHA-256", *props)
    assert set_.stdout.split() == ["set", "jenny", "SCRAM-SHA-256"]
    listed = client_check(classpath, "scram-list", case.bootstrap, *props).stdout.splitlines()
    assert "U jenny SCRAM-SHA-256 4096" in listed and "U sam SCRAM-SHA-512 4096" in listed
    # The credential the Java Admin salted works for a login at once.
    scram = secured["SASL_PLAINTEXT-SCRAM-SHA-512"]
    jenny = Case(scram.protocol, scram.bootstrap, None, "SCRAM-SHA-256", "jenny", "jenny-pw")
    jenny_props = ["--command-config", java_properties(jenny, tmp_path / "jenny.properties")]
    assert client_check(classpath, "topics", jenny.bootstrap, *jenny_props).stdout.startswith("topics ")


def test_confluent_kafka_admin_manages_scram_users(secured: dict[str, Case]) -> None:
    pytest.importorskip("confluent_kafka")
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(confluent_conf(secured["SASL_SSL-PLAIN"]))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    for future in admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("kim", info, b"kim-pw")]
    ).values():
        assert future.result(WAIT_S) is None
    [description] = [f.result(WAIT_S) for f in admin.describe_user_scram_credentials(["kim"]).values()]
    assert [(i.mechanism, i.iterations) for i in description.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_256, 8192)
    ]
    login = secured["SASL_PLAINTEXT-SCRAM-SHA-512"]
    kim = Case(login.protocol, login.bootstrap, None, "SCRAM-SHA-256", "kim", "kim-pw")
    assert "kim" not in admin.list_topics(timeout=WAIT_S).topics  # a round trip as the admin
    import confluent_kafka

    producer = confluent_kafka.Producer(confluent_conf(kim))
    producer.produce("kim-topic", b"hello")
    assert producer.flush(WAIT_S) == 0
    deletion = UserScramCredentialDeletion("kim", ScramMechanism.SCRAM_SHA_256)
    for future in admin.alter_user_scram_credentials([deletion]).values():
        assert future.result(WAIT_S) is None
