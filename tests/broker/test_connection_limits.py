"""Connection limits: per address (and its overrides), in total, by creation rate; keepalive;
refusals summarised in the log; the open-file limit raised at start."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import streamcore
from streamcore.errors import ConfigError
from streamcore.protocol import messages as m

from .wire_client import ConnectionClosed, WireClient

# The same streamcore as this test run (installed in CI, the source tree in a checkout).
PYTHON_DIR = str(Path(streamcore.__file__).resolve().parents[1])


def _served(bootstrap: str, timeout_s: float = 10.0) -> bool:
    """True if a new connection gets an ApiVersions answer; False if the broker closes it."""
    try:
        with WireClient(bootstrap, timeout_s=timeout_s) as c:
            return c.request(m.ApiVersionsRequest(), 3).error_code == 0
    except (ConnectionError, OSError, ConnectionClosed):
        # The broker may still count the connection the test just closed (it learns of the
        # close only when its reader sees EOF), so a refusal here means "not yet".
        return False


def test_connections_over_max_connections_per_ip_are_closed(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory(limits_max_connections_per_ip=3)
    held = [WireClient(broker.bootstrap_servers) for _ in range(3)]
    try:
        for c in held:
            assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        with WireClient(broker.bootstrap_servers) as extra:
            assert extra.is_closed_by_peer(timeout_s=10.0)
        held.pop().close()
        # The freed slot is given to the next client (the count follows closes).
        deadline = time.monotonic() + 10
        while not _served(broker.bootstrap_servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() < deadline, "a slot freed by a close was not given to a new connection"
    finally:
        for c in held:
            c.close()


def test_per_ip_override_raises_the_limit_for_that_address(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory(
        limits_max_connections_per_ip=1, limits_max_connections_per_ip_overrides="127.0.0.1:4"
    )
    held = [WireClient(broker.bootstrap_servers) for _ in range(4)]
    try:
        for c in held:
            assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        with WireClient(broker.bootstrap_servers) as fifth:
            assert fifth.is_closed_by_peer(timeout_s=10.0)
    finally:
        for c in held:
            c.close()


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:many", "127.0.0.1:-3", ":5"])
def test_malformed_per_ip_overrides_are_refused_by_name(streamcore_broker_factory: Any, bad: str) -> None:
    with pytest.raises(ConfigError, match="max_connections_per_ip_overrides"):
        streamcore_broker_factory(limits_max_connections_per_ip_overrides=bad)


def test_max_connections_holds_new_clients_until_a_slot_frees(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory(limits_max_connections=2)
    first = WireClient(broker.bootstrap_servers)
    second = WireClient(broker.bootstrap_servers)
    try:
        assert first.request(m.ApiVersionsRequest(), 3).error_code == 0
        assert second.request(m.ApiVersionsRequest(), 3).error_code == 0
        # The third is left in the kernel's backlog: not refused, not served.
        third = WireClient(broker.bootstrap_servers, timeout_s=1.0)
        third.send(m.ApiVersionsRequest(), 3)
        with pytest.raises(TimeoutError):
            third.recv()
        first.close()
        third.sock.settimeout(10.0)
        # The answer to the request sent while it waited arrives once a slot frees.
        third.pending.append((1, 18, 3))
        assert third.recv()[1].error_code == 0
        third.close()
    finally:
        first.close()
        second.close()


def test_connection_creation_rate_delays_but_serves_every_client(streamcore_broker_factory: Any) -> None:
    broker = streamcore_broker_factory(limits_max_connection_creation_rate=5)
    started = time.monotonic()
    served = [_served(broker.bootstrap_servers) for _ in range(15)]
    elapsed = time.monotonic() - started
    assert all(served)
    # The bucket holds 5 tokens and refills at 5 a second: 10 connections beyond the burst
    # cannot all be accepted in less than 2 s (a lower bound the limiter guarantees).
    assert elapsed >= 1.8, elapsed


def test_refusals_are_logged_as_one_summary_line(
    streamcore_broker_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="streamcore.broker")
    broker = streamcore_broker_factory(limits_max_connections_per_ip=1)
    with WireClient(broker.bootstrap_servers) as holder:
        assert holder.request(m.ApiVersionsRequest(), 3).error_code == 0
        for _ in range(60):
            with WireClient(broker.bootstrap_servers) as refused:
                assert refused.is_closed_by_peer(timeout_s=10.0)
    broker.stop()  # writes the summary of the interval so far
    lines = [r.getMessage() for r in caplog.records if r.name == "streamcore.broker"]
    refusal_lines = [line for line in lines if "too many from one address" in line]
    assert len(refusal_lines) == 1, lines
    assert refusal_lines[0].startswith("60 connection(s) refused"), refusal_lines
    assert "max_connections_per_ip is 1" in refusal_lines[0]


def _tcp_rows() -> list[list[str]]:
    rows = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows += [line.split() for line in Path(name).read_text().splitlines()[1:]]
        except OSError:
            pass
    return rows


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_accepted_sockets_have_tcp_keepalive(broker: Any, client: WireClient) -> None:
    assert client.request(m.ApiVersionsRequest(), 3).error_code == 0
    client_port = client.sock.getsockname()[1]
    # The broker's side of this connection: local port = broker port, remote port = ours.
    # Column 5 is "timer:when"; timer 2 is the keepalive timer, armed only with SO_KEEPALIVE.
    rows = [
        r
        for r in _tcp_rows()
        if int(r[1].rsplit(":", 1)[1], 16) == broker.port and int(r[2].rsplit(":", 1)[1], 16) == client_port
    ]
    assert rows, "the broker's socket of this connection is not in /proc/net/tcp"
    assert rows[0][5].split(":")[0] == "02", rows[0]


def _start_broker_process(
    tmp_path: Path, soft: int, hard: int, env_extra: dict[str, str]
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCORE_")}
    env["PYTHONPATH"] = PYTHON_DIR
    env.update(env_extra)

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.Popen(
        [sys.executable, "-m", "streamcore", "broker", "--port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        preexec_fn=limit_files,
    )


def _below_hard_limit() -> int:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)


def test_broker_raises_its_open_file_soft_limit_to_the_hard_limit(tmp_path: Path) -> None:
    hard = _below_hard_limit()
    proc = _start_broker_process(tmp_path, 256, hard, {})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        limits = Path(f"/proc/{proc.pid}/limits").read_text()
        [row] = [r for r in limits.splitlines() if r.startswith("Max open files")]
        assert row.split()[3:5] == [str(hard), str(hard)], row
    finally:
        proc.terminate()
        proc.wait(30)


def test_max_connections_that_cannot_fit_the_open_file_limit_is_refused(tmp_path: Path) -> None:
    hard = _below_hard_limit()
    proc = _start_broker_process(tmp_path, hard, hard, {"STREAMCORE_LIMITS_MAX_CONNECTIONS": str(hard)})
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "does not fit in the open-file limit" in err, err
    assert "limits.max_connections" in err
