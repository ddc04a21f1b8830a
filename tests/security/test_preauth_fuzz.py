"""The malformed-frame and fuzz cases of tests/broker, run against a SASL_SSL listener over TLS
before authentication, and valid requests other than ApiVersions and the SASL exchange sent
before authentication: the connection is closed without an answer, nothing is served (no
topic created, deleted or written, no group, no SCRAM user), the broker stays up, and an
authenticated client keeps working during and after.

The frames are tests/broker's own (``MALFORMED`` and the fuzzer's seeds and mutations),
imported rather than copied, so both listeners see the same cases.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.test_malformed_frames import MALFORMED
from broker.wire_client import WireClient, batch, create_topic, fetch_request, produce, request_frame
from streamcore import Broker
from streamcore.protocol import messages as m

from .certs import Pki, authenticated, client_context, make_pki, sasl_login, tls_wire_client

USER, PASSWORD = "bob", "bob-pw"
VICTIM = "preauth-victim"  # a topic that exists, holding VICTIM_RECORDS records
VICTIM_RECORDS = 3
FUZZ_FRAMES = 10_000
FUZZ_DEADLINE_S = 240.0
SEED = 20250613


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def start_broker(data_dir: Path, pki: Pki) -> Broker:
    broker = Broker(
        str(data_dir),
        listeners="SASL_SSL://127.0.0.1:0",
        ssl_certfile=str(pki.server_cert),
        ssl_keyfile=str(pki.server_key),
        sasl_mechanisms="PLAIN,SCRAM-SHA-512",
        sasl_plain_users=f"{USER}:{PASSWORD}",
        sasl_failed_authentication_delay_ms=0,
    ).start()
    with authenticated(broker.bootstrap_servers, "PLAIN", USER, PASSWORD, client_context(pki.ca_file)) as c:
        create_topic(c, VICTIM)
        assert produce(c, VICTIM, 0, batch([b"v%d" % i for i in range(VICTIM_RECORDS)])).error_code == 0
    return broker


@pytest.fixture(scope="module")
def sasl_ssl(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Broker]:
    broker = start_broker(tmp_path_factory.mktemp("data"), pki)
    try:
        yield broker
    finally:
        broker.stop()


def good(broker: Broker, pki: Pki) -> WireClient:
    return authenticated(broker.bootstrap_servers, "PLAIN", USER, PASSWORD, client_context(pki.ca_file))


def read_until_closed(c: WireClient, timeout_s: float = 10.0) -> tuple[bool, bytes]:
    """(closed by the broker within ``timeout_s``, every byte read meanwhile) on a TLS socket."""
    data = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = c.sock.recv(65536)
        except TimeoutError:
            return False, data
        except (ConnectionError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True, data
        if not chunk:
            return True, data
        data += chunk
    return False, data


def assert_nothing_served(broker: Broker, pki: Pki) -> None:
    """No topic but the victim, the victim unchanged, no group, no SCRAM user."""
    with good(broker, pki) as c:
        meta = c.request(m.MetadataRequest(topics=None), 12)
        assert sorted(t.name for t in meta.topics) == [VICTIM]
        listed = c.request(
            m.ListOffsetsRequest(
                replica_id=-1,
                topics=[
                    m.ListOffsetsRequest_ListOffsetsTopic(
                        name=VICTIM,
                        partitions=[
                            m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=-1)
                        ],
                    )
                ],
            ),
            7,
        )
        assert listed.topics[0].partitions[0].offset == VICTIM_RECORDS
        assert c.request(m.ListGroupsRequest(), 4).groups == []
        users = c.request(m.DescribeUserScramCredentialsRequest(users=None), 0)
        assert (users.error_code, users.results) == (0, [])


# -- valid requests before authentication ----------------------------------------------------------


def _scram_upsertion() -> m.AlterUserScramCredentialsRequest:
    return m.AlterUserScramCredentialsRequest(
        upsertions=[
            m.AlterUserScramCredentialsRequest_ScramCredentialUpsertion(
                name="mallory", mechanism=2, iterations=4096, salt=b"s" * 16, salted_password=b"p" * 64
            )
        ]
    )


#: Requests a client could send by mistake or malice before authenticating; each would
#: change something (or read data) if it were served.
VALID_REQUESTS: dict[str, tuple[Any, int]] = {
    "Metadata-auto-create": (
        m.MetadataRequest(
            topics=[m.MetadataRequest_MetadataRequestTopic(name="preauth-created")],
            allow_auto_topic_creation=True,
        ),
        12,
    ),
    "CreateTopics": (
        m.CreateTopicsRequest(
            topics=[m.CreateTopicsRequest_CreatableTopic(name="preauth-new", num_partitions=1, replication_factor=1)],
            timeout_ms=1000,
        ),
        5,
    ),
    "DeleteTopics": (m.DeleteTopicsRequest(topic_names=[VICTIM], timeout_ms=1000), 4),
    "Produce": (
        m.ProduceRequest(
            acks=1,
            timeout_ms=1000,
            topic_data=[
                m.ProduceRequest_TopicProduceData(
                    name=VICTIM,
                    partition_data=[m.ProduceRequest_PartitionProduceData(index=0, records=batch([b"intruder"]))],
                )
            ],
        ),
        9,
    ),
    "Fetch": (fetch_request(VICTIM, 0, 0), 12),
    "FindCoordinator": (m.FindCoordinatorRequest(key="preauth-group", key_type=0), 3),
    "JoinGroup": (
        m.JoinGroupRequest(
            group_id="preauth-group",
            session_timeout_ms=6000,
            rebalance_timeout_ms=1000,
            member_id="",
            protocol_type="consumer",
            protocols=[m.JoinGroupRequest_JoinGroupRequestProtocol(name="range", metadata=b"\0" * 6)],
        ),
        5,
    ),
    "InitProducerId": (m.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=1000), 4),
    "AlterUserScramCredentials": (_scram_upsertion(), 0),
    "DescribeUserScramCredentials": (m.DescribeUserScramCredentialsRequest(users=None), 0),
    "SaslAuthenticate-before-handshake": (m.SaslAuthenticateRequest(auth_bytes=f"\0{USER}\0{PASSWORD}".encode()), 2),
}  # fmt: skip

#: How far the connection got before the request: none, ApiVersions, or SaslHandshake too.
STAGES = ("first", "after-api-versions", "after-handshake")
#: Every request at every stage, except SaslAuthenticate after a handshake (the expected next step).
CASES = [
    (name, stage)
    for name in VALID_REQUESTS
    for stage in STAGES
    if not (stage == "after-handshake" and name.startswith("SaslAuthenticate"))
]


@pytest.mark.parametrize(("name", "stage"), CASES, ids=[f"{n}-{s}" for n, s in CASES])
def test_a_valid_request_before_authentication_is_closed_unanswered(
    sasl_ssl: Broker, pki: Pki, name: str, stage: str
) -> None:
    request, version = VALID_REQUESTS[name]
    with (
        good(sasl_ssl, pki) as bystander,
        tls_wire_client(sasl_ssl.bootstrap_servers, client_context(pki.ca_file)) as c,
    ):
        if stage != "first":
            assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        if stage == "after-handshake":
            assert c.request(m.SaslHandshakeRequest(mechanism="PLAIN"), 1).error_code == 0
        c.send_raw(request_frame(request, version, 4242))
        closed, answer = read_until_closed(c)
        assert closed, f"{name} before authentication left the connection open"
        assert answer == b"", f"{name} before authentication was answered: {answer[:64]!r}"
        # The authenticated connection opened before is untouched.
        assert bystander.request(m.MetadataRequest(topics=None), 12).brokers
    assert_nothing_served(sasl_ssl, pki)


# -- tests/broker's malformed frames, over TLS, before authentication ------------------------------


@pytest.mark.parametrize("payload", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_frame_before_authentication_closes_only_its_connection(
    sasl_ssl: Broker, pki: Pki, payload: bytes
) -> None:
    ctx = client_context(pki.ca_file)
    with good(sasl_ssl, pki) as bystander, tls_wire_client(sasl_ssl.bootstrap_servers, ctx) as bad:
        bad.send_raw(payload)
        closed, answer = read_until_closed(bad)
        assert closed, "the broker kept a connection that sent a malformed frame before authenticating"
        assert answer == b""
        assert bystander.request(m.MetadataRequest(topics=None), 12).brokers
    with good(sasl_ssl, pki) as fresh:
        assert fresh.request(m.ApiVersionsRequest(), 3).error_code == 0
    assert_nothing_served(sasl_ssl, pki)


@pytest.mark.parametrize(
    "payload",
    [request_frame(m.ApiVersionsRequest(), 3, 1), MALFORMED["http_garbage"], b"\x16\x03\x01\x00\x05hello"],
    ids=["kafka-frame", "http", "bad-client-hello"],
)
def test_cleartext_to_the_tls_port_gets_no_kafka_answer(sasl_ssl: Broker, pki: Pki, payload: bytes) -> None:
    host, port = sasl_ssl.bootstrap_servers.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10.0) as s:
        s.sendall(payload)
        data = b""
        with contextlib.suppress(ConnectionError):
            while chunk := s.recv(65536):
                data += chunk
    # At most a TLS alert record (content type 21), never a Kafka response frame.
    assert data == b"" or data[0] == 21, data[:32]
    with good(sasl_ssl, pki) as c:
        assert c.request(m.MetadataRequest(topics=None), 12).brokers


# -- tests/broker's fuzzer, over TLS, before authentication ----------------------------------------


def _fuzz_connection(address: tuple[str, int], ctx: ssl.SSLContext, frames: list[bytes]) -> None:
    with socket.create_connection(address, timeout=5.0) as raw:
        try:
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
        except (OSError, ssl.SSLError):
            return
        with tls:
            try:
                tls.sendall(b"".join(frames))
            except (OSError, ssl.SSLError):
                return  # closed on an earlier frame: that is the point
            tls.settimeout(0.05)
            with contextlib.suppress(OSError, ssl.SSLError):
                tls.recv(65536)


def test_fuzzed_frames_before_authentication_serve_nothing_and_disturb_no_one(
    tmp_path: Path, pki: Pki
) -> None:
    from broker.test_fuzz_live import _mutate, _seed_frames

    broker = start_broker(tmp_path / "data", pki)
    try:
        host, port = broker.bootstrap_servers.rsplit(":", 1)
        ctx = client_context(pki.ca_file)
        rng = random.Random(SEED)
        seeds = _seed_frames()
        sent = connections = 0
        started = time.monotonic()
        with good(broker, pki) as bystander:
            while sent < FUZZ_FRAMES and time.monotonic() - started < FUZZ_DEADLINE_S:
                frames = [_mutate(rng, seeds) for _ in range(rng.randint(1, 12))]
                _fuzz_connection((host, int(port)), ctx, frames)
                sent += len(frames)
                connections += 1
                if connections % 25 == 0:
                    assert bystander.request(m.MetadataRequest(topics=None), 12).brokers
        print(f"pre-auth fuzz: {sent} frames over {connections} TLS connections (seed {SEED})")
        assert sent >= FUZZ_FRAMES, f"only {sent} frames sent in {FUZZ_DEADLINE_S} s"
        # The seeds name topic "fz" and group "fz-group" (Metadata with auto-create, Produce,
        # JoinGroup...): served, any of them would have left a trace.
        assert_nothing_served(broker, pki)
        with good(broker, pki) as c:
            assert sasl_login(c, "PLAIN", USER, PASSWORD).error_code == 0  # re-authentication works too
    finally:
        broker.stop()


@pytest.mark.interop
def test_a_confluent_kafka_client_over_sasl_ssl_works_while_the_fuzzer_runs(tmp_path: Path, pki: Pki) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    from broker.test_fuzz_live import _mutate, _seed_frames

    broker = start_broker(tmp_path / "data", pki)
    conf = {
        "bootstrap.servers": broker.bootstrap_servers,
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": str(pki.ca_file),
        "sasl.mechanism": "PLAIN",
        "sasl.username": USER,
        "sasl.password": PASSWORD,
        "log_level": 3,
    }
    errors: list[str] = []
    stop = threading.Event()
    host, port = broker.bootstrap_servers.rsplit(":", 1)

    def fuzz() -> None:
        rng = random.Random(SEED + 1)
        seeds = _seed_frames()
        ctx = client_context(pki.ca_file)
        deadline = time.monotonic() + FUZZ_DEADLINE_S
        while not stop.is_set() and time.monotonic() < deadline:
            _fuzz_connection((host, int(port)), ctx, [_mutate(rng, seeds) for _ in range(rng.randint(1, 12))])

    fuzzer = threading.Thread(target=fuzz)
    fuzzer.start()
    try:
        producer = confluent_kafka.Producer(
            {**conf, "linger.ms": 5, "error_cb": lambda e: errors.append(str(e))}
        )
        for i in range(500):
            producer.produce("good", key=b"k-%d" % i, value=b"v-%d" % i)
            producer.poll(0)
            time.sleep(0.002)  # spread over a second or two of fuzzing
        assert producer.flush(60) == 0
        del producer  # its connections close now, not when the broker stops
        consumer = confluent_kafka.Consumer(
            {**conf, "group.id": "good-group", "auto.offset.reset": "earliest", "enable.auto.commit": False}
        )
        consumer.subscribe(["good"])
        got: list[bytes] = []
        deadline = time.monotonic() + 60
        try:
            while len(got) < 500 and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got.append(msg.value())
        finally:
            consumer.close()
    finally:
        stop.set()
        fuzzer.join(FUZZ_DEADLINE_S + 30)
        broker.stop()
    assert not fuzzer.is_alive()
    assert errors == []
    assert got == [b"v-%d" % i for i in range(500)]
