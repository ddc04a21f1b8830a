"""Per-address connection limits in the accept path: max.connections.per.ip and the
connection creation rate (KIP-612 ``connection_creation_rate``, from the broker config or
an ``ip`` quota set with AlterClientQuotas); a connection over either is closed at once,
and the refusals are counted in the metrics."""

from __future__ import annotations

from typing import Any

from broker.wire_client import ConnectionClosed, WireClient
from streamcore.protocol import messages as m


def _served(bootstrap: str) -> bool:
    """True if a new connection gets an ApiVersions answer; False if the broker closes it."""
    try:
        with WireClient(bootstrap, timeout_s=10.0) as c:
            return c.request(m.ApiVersionsRequest(), 3).error_code == 0
    except (ConnectionError, OSError, ConnectionClosed):
        return False


def _refused(broker: Any, reason: str) -> int:
    for line in broker.state.metrics.render().splitlines():
        if line.startswith(f'streamcore_connections_refused_total{{reason="{reason}"}} '):
            return int(line.split()[-1])
    return 0


def _ip_quota(c: WireClient, name: str | None, rate: float, remove: bool = False) -> None:
    r = c.request(
        m.AlterClientQuotasRequest(
            entries=[
                m.AlterClientQuotasRequest_EntryData(
                    entity=[m.AlterClientQuotasRequest_EntityData(entity_type="ip", entity_name=name)],
                    ops=[
                        m.AlterClientQuotasRequest_OpData(
                            key="connection_creation_rate", value=rate, remove=remove
                        )
                    ],
                )
            ]
        ),
        1,
    )
    assert [e.error_code for e in r.entries] == [0]


def test_max_connections_per_ip_closes_the_extra_connection_at_once(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory(limits_max_connections_per_ip=2)
    held = [WireClient(broker.bootstrap_servers) for _ in range(2)]
    try:
        for c in held:
            assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        with WireClient(broker.bootstrap_servers) as extra:
            assert extra.is_closed_by_peer(timeout_s=10.0)
        assert _refused(broker, "max_connections_per_ip") == 1
    finally:
        for c in held:
            c.close()


def test_connection_creation_rate_closes_new_connections_over_the_rate(
    streamcore_broker_factory: Any,
) -> None:
    # 1 new connection a second from an address, measured over 11 samples of a second: ten
    # at once fit (the span counts as at least ten seconds), the eleventh does not.
    broker = streamcore_broker_factory(quotas_connection_creation_rate=1)
    with WireClient(broker.bootstrap_servers) as admin:  # the first of the ten
        assert admin.request(m.ApiVersionsRequest(), 3).error_code == 0
        assert [_served(broker.bootstrap_servers) for _ in range(9)] == [True] * 9
        with WireClient(broker.bootstrap_servers) as over:
            assert over.is_closed_by_peer(timeout_s=10.0)
        assert not _served(broker.bootstrap_servers)
        assert _refused(broker, "connection_creation_rate") == 2
        # An ip quota for the address replaces the configured default at once ...
        _ip_quota(admin, "127.0.0.1", 1000)
        assert _served(broker.bootstrap_servers)
        # ... and removing it brings the default back.
        _ip_quota(admin, "127.0.0.1", 0, remove=True)
        assert not _served(broker.bootstrap_servers)
        assert _refused(broker, "connection_creation_rate") == 3


def test_an_ip_default_quota_limits_every_address(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory()
    with WireClient(broker.bootstrap_servers) as admin:
        _ip_quota(admin, None, 1)
        # Connections made before the quota are not counted: ten new ones fit, then none.
        assert [_served(broker.bootstrap_servers) for _ in range(10)] == [True] * 10
        assert not _served(broker.bootstrap_servers)
        # Connections already open are not touched.
        assert admin.request(m.ApiVersionsRequest(), 3).error_code == 0
