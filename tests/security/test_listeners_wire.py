"""Several listeners on one broker: each answers Metadata, FindCoordinator and
DescribeCluster with its own advertised address; binding and the standalone command."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import streamcore
from broker.wire_client import WireClient
from streamcore import Broker
from streamcore.protocol import messages as m

from .certs import authenticated

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
PROCESS_TIMEOUT_S = 60


def addresses(c: WireClient) -> dict[str, tuple[str, int]]:
    """The broker address each of Metadata (v1 and v12), FindCoordinator (v2 and v4) and
    DescribeCluster gives on connection ``c``."""
    out: dict[str, tuple[str, int]] = {}
    for version in (1, 12):
        md = c.request(m.MetadataRequest(topics=[]), version)
        out[f"metadata v{version}"] = (md.brokers[0].host, md.brokers[0].port)
    fc = c.request(m.FindCoordinatorRequest(key="g", key_type=0), 2)
    out["find_coordinator v2"] = (fc.host, fc.port)
    fc4 = c.request(m.FindCoordinatorRequest(key_type=0, coordinator_keys=["g"]), 4)
    out["find_coordinator v4"] = (fc4.coordinators[0].host, fc4.coordinators[0].port)
    dc = c.request(m.DescribeClusterRequest(), 0)
    out["describe_cluster"] = (dc.brokers[0].host, dc.brokers[0].port)
    return out


def test_each_listener_answers_with_its_own_advertised_address() -> None:
    with Broker(
        listeners="PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        advertised_listeners="SASL_PLAINTEXT://sasl.example.com:0",
        sasl_mechanisms="PLAIN",
        sasl_plain_users="alice:pw",
    ) as broker:
        plain = broker.bootstrap_for("PLAINTEXT")
        assert broker.bootstrap_servers == plain
        sasl_port = broker.runtime.listeners[1].port
        assert broker.listeners == {"PLAINTEXT": plain, "SASL_PLAINTEXT": f"sasl.example.com:{sasl_port}"}
        assert sasl_port != broker.port
        with WireClient(plain) as c:
            assert set(addresses(c).values()) == {("127.0.0.1", broker.port)}
        with authenticated(f"127.0.0.1:{sasl_port}", "PLAIN", "alice", "pw") as c:
            assert set(addresses(c).values()) == {("sasl.example.com", sasl_port)}
        # Outside a request the broker's address is the first listener's.
        assert (broker.state.advertised_host, broker.state.advertised_port) == ("127.0.0.1", broker.port)


def test_advertised_host_and_port_still_apply_to_the_default_listener() -> None:
    with Broker(advertised_host="kafka.internal", advertised_port=29092) as broker:
        assert broker.bootstrap_servers == "kafka.internal:29092"
        with WireClient(f"127.0.0.1:{broker.runtime.listen_port}") as c:
            assert set(addresses(c).values()) == {("kafka.internal", 29092)}


def test_a_listener_that_cannot_bind_is_named_and_nothing_stays_bound() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        broker = Broker(
            listeners=f"PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:{port}", sasl_plain_users="a:b"
        )
        with pytest.raises(
            OSError,
            match=rf"cannot listen on 127\.0\.0\.1:{port} \(listeners: SASL_PLAINTEXT\): address already in use",
        ):
            broker.start()
        broker.stop()


def test_the_standalone_broker_prints_every_listener(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(tmp_path / "d"),
         "--listener", "SASL_PLAINTEXT://127.0.0.1:0", "--listener", "PLAINTEXT://127.0.0.1:0",
         "--sasl-mechanisms", "PLAIN"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        second = proc.stdout.readline().strip()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    assert first.startswith("listening on 127.0.0.1:"), (first, err)
    assert second.startswith("listener PLAINTEXT on 127.0.0.1:"), (second, err)
    assert first.rsplit(":", 1)[1] != second.rsplit(":", 1)[1]
    assert proc.returncode == 0, err
    assert "reachable beyond this machine" not in err
