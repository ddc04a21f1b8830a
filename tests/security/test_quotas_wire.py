"""Client quotas over the wire: DescribeClientQuotas/AlterClientQuotas on a live broker,
throttle_time_ms in the answers, the connection muted for the throttle, quotas that apply
without a restart and survive one, user quotas for SASL principals and the cluster
permissions the two APIs need."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from broker.wire_client import WireClient, batch, create_topic, fetch_request, produce_request, request_frame
from streamcore import Broker
from streamcore.protocol import messages as m

from .certs import authenticated

INVALID_REQUEST = 42
CLUSTER_DENIED = 31


def send_as(c: WireClient, request: Any, version: int, client_id: str) -> None:
    """Send ``request`` with ``client_id`` in its header; its answer is read with c.recv()."""
    cid = c._next_correlation
    c._next_correlation += 1
    c.sock.sendall(request_frame(request, version, cid, client_id))
    c.pending.append((cid, request.API_KEY, version))


def request_as(c: WireClient, request: Any, version: int, client_id: str) -> Any:
    send_as(c, request, version, client_id)
    return c.recv()[1]


def alter(c: WireClient, *entries: tuple[list[tuple[str, str | None]], list[tuple[str, float, bool]]], validate_only: bool = False, version: int = 1) -> list[tuple[int, str | None, list[tuple[str, str | None]]]]:  # fmt: skip
    request = m.AlterClientQuotasRequest(
        entries=[
            m.AlterClientQuotasRequest_EntryData(
                entity=[
                    m.AlterClientQuotasRequest_EntityData(entity_type=k, entity_name=n) for k, n in entity
                ],
                ops=[m.AlterClientQuotasRequest_OpData(key=k, value=v, remove=r) for k, v, r in ops],
            )
            for entity, ops in entries
        ],
        validate_only=validate_only,
    )
    response = c.request(request, version)
    return [
        (e.error_code, e.error_message, [(x.entity_type, x.entity_name) for x in e.entity])
        for e in response.entries
    ]


def describe(
    c: WireClient, *components: tuple[str, int, str | None], strict: bool = False, version: int = 1
) -> Any:
    request = m.DescribeClientQuotasRequest(
        components=[
            m.DescribeClientQuotasRequest_ComponentData(entity_type=t, match_type=mt, match=name)
            for t, mt, name in components
        ],
        strict=strict,
    )
    return c.request(request, version)


def quotas_of(response: Any) -> dict[tuple[tuple[str, str | None], ...], dict[str, float]]:
    assert response.error_code == 0, response
    return {
        tuple((x.entity_type, x.entity_name) for x in e.entity): {v.key: v.value for v in e.values}
        for e in response.entries
    }


def set_quota(c: WireClient, kind: str, name: str | None, key: str, value: float) -> None:
    assert alter(c, ([(kind, name)], [(key, value, False)])) == [(0, None, [(kind, name)])]


@pytest.fixture
def broker(streamcore_broker_factory: Any) -> Any:
    # 11 samples of 100 ms: a quota allows one second's worth at once.
    return streamcore_broker_factory(quotas_window_size_ms=100)


@pytest.mark.parametrize("version", [0, 1])
def test_alter_then_describe_round_trip(broker: Any, version: int) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        results = alter(
            c,
            ([("user", "alice")], [("producer_byte_rate", 1024, False)]),
            ([("user", "alice"), ("client-id", "app")], [("consumer_byte_rate", 2048, False), ("request_percentage", 12.5, False)]),
            ([("client-id", None)], [("producer_byte_rate", 300, False)]),
            ([("ip", "127.0.0.1")], [("connection_creation_rate", 50, False)]),
            ([("user", "x")], [("producer_byte_rate", 1.5, False)]),
            version=version,
        )  # fmt: skip
        assert results == [
            (0, None, [("user", "alice")]),
            (0, None, [("client-id", "app"), ("user", "alice")]),
            (0, None, [("client-id", None)]),
            (0, None, [("ip", "127.0.0.1")]),
            (INVALID_REQUEST, "producer_byte_rate cannot be a fractional value.", [("user", "x")]),
        ]
        assert quotas_of(describe(c, version=version)) == {
            (("user", "alice"),): {"producer_byte_rate": 1024.0},
            (("client-id", "app"), ("user", "alice")): {"consumer_byte_rate": 2048.0, "request_percentage": 12.5},
            (("client-id", None),): {"producer_byte_rate": 300.0},
            (("ip", "127.0.0.1"),): {"connection_creation_rate": 50.0},
        }  # fmt: skip
        assert quotas_of(describe(c, ("user", 0, "alice"), strict=True, version=version)) == {
            (("user", "alice"),): {"producer_byte_rate": 1024.0}
        }
        assert set(quotas_of(describe(c, ("client-id", 2, None), version=version))) == {
            (("client-id", "app"), ("user", "alice")),
            (("client-id", None),),
        }
        bad = describe(c, ("ip", 2, None), ("user", 2, None), version=version)
        assert (bad.error_code, bad.entries) == (INVALID_REQUEST, None)
        # validate_only checks and changes nothing.
        assert alter(c, ([("user", "vo")], [("producer_byte_rate", 5, False)]), validate_only=True)[0][0] == 0
        assert quotas_of(describe(c, ("user", 0, "vo"))) == {}
        assert alter(c, ([("user", "alice")], [("producer_byte_rate", 0, True)]))[0][0] == 0
        assert quotas_of(describe(c, ("user", 0, "alice"), strict=True)) == {}


def _produce_batch(size: int) -> m.ProduceRequest:
    return produce_request("quota-t", 0, batch([b"x" * size]))


def test_produce_over_its_quota_is_answered_with_a_throttle_time_and_others_are_not(broker: Any) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "quota-t")
        set_quota(c, "client-id", "limited", "producer_byte_rate", 2000)
        # About two seconds' worth in one request: accepted (the answer is normal) and throttled.
        r = request_as(c, _produce_batch(4000), 9, "limited")
        assert r.responses[0].partition_responses[0].error_code == 0
        assert r.throttle_time_ms > 0
    with WireClient(broker.bootstrap_servers) as other:
        r = request_as(other, _produce_batch(4000), 9, "free")
        assert (r.responses[0].partition_responses[0].error_code, r.throttle_time_ms) == (0, 0)
    quotas = broker.state.quotas
    assert quotas.throttled_total["produce"] == 1 and quotas.throttle_ms_total["produce"] > 0


def _connection_of(broker: Any, port: int) -> Any:
    [conn] = [c for c in broker.runtime._server.connections if c.peer.endswith(f":{port}")]
    return conn


def test_a_throttled_connection_reads_nothing_until_the_throttle_ends(broker: Any) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "quota-t")
        set_quota(c, "client-id", "muted", "producer_byte_rate", 100)
        # 40 seconds' worth in one request: a throttle of about 40 s.
        r = request_as(c, _produce_batch(4000), 9, "muted")
        assert r.throttle_time_ms > 20_000
        assert _connection_of(broker, c.sock.getsockname()[1]).throttled_until > time.monotonic()
        send_as(c, m.ApiVersionsRequest(), 3, "muted")
        c.sock.settimeout(1.0)
        with pytest.raises(socket.timeout):
            c.recv_frame()
    with WireClient(broker.bootstrap_servers) as c:
        set_quota(c, "client-id", "short", "producer_byte_rate", 4000)
        # About a second over: the next request is answered once the throttle ends.
        r = request_as(c, _produce_batch(8000), 9, "short")
        throttle_s = r.throttle_time_ms / 1000
        assert 0 < throttle_s < 10
        answered = time.monotonic()
        assert request_as(c, m.ApiVersionsRequest(), 3, "short").error_code == 0
        # The mute began before the throttled answer was sent, so at most a little less.
        assert time.monotonic() - answered >= 0.5 * throttle_s


def test_fetch_over_its_quota_is_answered_empty_with_a_throttle_time(broker: Any) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "quota-t")
        r = request_as(c, _produce_batch(8000), 9, "writer")
        assert r.responses[0].partition_responses[0].error_code == 0
        set_quota(c, "client-id", "reader", "consumer_byte_rate", 1000)
        # The quota caps the response at one second's worth (1000 B), but the first batch
        # (8 KB) is sent whole (KIP-74): over the quota, so not sent at all.
        r = request_as(c, fetch_request("quota-t", 0, 0), 12, "reader")
        assert (r.error_code, r.responses, r.throttle_time_ms > 0) == (0, [], True)
    with WireClient(broker.bootstrap_servers) as c:
        r = request_as(c, fetch_request("quota-t", 0, 0), 12, "unlimited")
        [part] = r.responses[0].partitions
        assert len(part.records) > 8000 and r.throttle_time_ms == 0
    assert broker.state.quotas.throttled_total["fetch"] == 1


def test_request_percentage_throttles_any_request(broker: Any) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        set_quota(c, "client-id", "busy", "request_percentage", 0.0001)
        throttles = [
            request_as(c, m.MetadataRequest(topics=[]), 9, "busy").throttle_time_ms for _ in range(3)
        ]
        # A millionth of the loop's time is less than any request takes; capped at a window.
        assert all(0 < t <= 100 for t in throttles[1:]), throttles
        assert broker.state.quotas.throttled_total["request"] >= 2


def test_request_percentage_times_handlers_that_answer_later(
    broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "quota-t")
        set_quota(c, "client-id", "busy", "request_percentage", 0.0001)
        # Produce answers after its append, Fetch after its long poll: both are measured.
        assert request_as(c, _produce_batch(100), 9, "busy").throttle_time_ms >= 0
        assert request_as(c, _produce_batch(100), 9, "busy").throttle_time_ms > 0
        r = request_as(c, fetch_request("quota-t", 0, 2, max_wait_ms=200, min_bytes=1), 12, "busy")
        assert r.throttle_time_ms > 0
    # A connection closed while its timed long poll waits goes away cleanly.
    with WireClient(broker.bootstrap_servers) as c:
        send_as(c, fetch_request("quota-t", 0, 2, max_wait_ms=30_000, min_bytes=1), 12, "busy")
    deadline = time.monotonic() + 10
    while broker.runtime._server.connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert broker.runtime._server.connections == []
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_quotas_apply_without_a_restart_and_survive_one(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    first = Broker(data, host="127.0.0.1", port=0, quotas_window_size_ms=100).start()
    try:
        with WireClient(first.bootstrap_servers) as c:
            create_topic(c, "quota-t")
            assert request_as(c, _produce_batch(4000), 9, "later").throttle_time_ms == 0
            set_quota(c, "client-id", "later", "producer_byte_rate", 100)
            set_quota(c, "user", None, "consumer_byte_rate", 5000)
            # The next request of the same connection is measured against the new quota.
            assert request_as(c, _produce_batch(4000), 9, "later").throttle_time_ms > 0
    finally:
        first.stop()
    assert (tmp_path / "data" / "client-quotas.json").exists()
    second = Broker(data, host="127.0.0.1", port=0, quotas_window_size_ms=100).start()
    try:
        with WireClient(second.bootstrap_servers) as c:
            assert quotas_of(describe(c)) == {
                (("client-id", "later"),): {"producer_byte_rate": 100.0},
                (("user", None),): {"consumer_byte_rate": 5000.0},
            }
            assert request_as(c, _produce_batch(4000), 9, "later").throttle_time_ms > 0
    finally:
        second.stop()


USERS = {"admin": "admin-pw", "alice": "alice-pw"}


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Any:
    b = Broker(
        str(tmp_path / "data"),
        listeners="SASL_PLAINTEXT://127.0.0.1:0",
        sasl_mechanisms="PLAIN",
        sasl_plain_users=",".join(f"{u}:{p}" for u, p in USERS.items()),
        authorizer="acl",
        super_users="User:admin",
        quotas_window_size_ms=100,
    ).start()
    yield b
    b.stop()


def _allow(c: WireClient, principal: str, resource_type: int, name: str, operation: int) -> None:
    r = c.request(
        m.CreateAclsRequest(
            creations=[
                m.CreateAclsRequest_AclCreation(
                    resource_type=resource_type,
                    resource_name=name,
                    resource_pattern_type=3,
                    principal=principal,
                    host="*",
                    operation=operation,
                    permission_type=3,
                )
            ]
        ),
        3,
    )
    assert [x.error_code for x in r.results] == [0]


def test_the_apis_need_cluster_permissions_and_user_quotas_follow_the_principal(sasl_broker: Any) -> None:
    bootstrap = sasl_broker.bootstrap_servers
    with authenticated(bootstrap, "PLAIN", "admin", USERS["admin"]) as admin:
        create_topic(admin, "quota-t")
        _allow(admin, "User:alice", 2, "quota-t", 4)  # WRITE on the topic
        with authenticated(bootstrap, "PLAIN", "alice", USERS["alice"]) as alice:
            r = describe(alice)
            assert (r.error_code, r.error_message, r.entries) == (
                CLUSTER_DENIED,
                "Cluster authorization failed.",
                None,
            )
            assert alter(alice, ([("user", "alice")], [("producer_byte_rate", 100, False)])) == [
                (CLUSTER_DENIED, "Cluster authorization failed.", [("user", "alice")])
            ]
            assert quotas_of(describe(admin)) == {}
            _allow(admin, "User:alice", 4, "kafka-cluster", 10)  # DESCRIBE_CONFIGS on the cluster
            assert quotas_of(describe(alice)) == {}
            assert (
                alter(alice, ([("user", "bob")], [("producer_byte_rate", 1, False)]))[0][0] == CLUSTER_DENIED
            )
            _allow(admin, "User:alice", 4, "kafka-cluster", 11)  # ALTER_CONFIGS on the cluster
            assert alter(alice, ([("user", "bob")], [("producer_byte_rate", 1, False)]))[0][0] == 0
        set_quota(admin, "user", "alice", "producer_byte_rate", 100)
        # The user quota is alice's, shared by all her client-ids and connections.
        with authenticated(bootstrap, "PLAIN", "alice", USERS["alice"]) as alice:
            r = request_as(alice, _produce_batch(4000), 9, "one")
            assert (r.responses[0].partition_responses[0].error_code, r.throttle_time_ms > 0) == (0, True)
        with authenticated(bootstrap, "PLAIN", "alice", USERS["alice"]) as alice:
            r = request_as(alice, _produce_batch(10), 9, "two")
            assert (r.responses[0].partition_responses[0].error_code, r.throttle_time_ms > 0) == (0, True)
        assert request_as(admin, _produce_batch(4000), 9, "one").throttle_time_ms == 0
    rates = {(user, client) for kind, user, client, _, _ in sasl_broker.state.quotas.sensors()}
    assert rates == {("alice", "")}
