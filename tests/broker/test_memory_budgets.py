"""The broker's memory stays within its budgets whatever clients send, and others are served meanwhile.

Each test starts the broker as its own process (so that its peak RSS, VmHWM, is its own),
with small budgets, runs a scaled-down version of one hostile scenario of
benchmarks/soak_memory.py on 127.0.0.1, checks that a well-behaved client is still
answered, and that the broker's peak RSS grew by less than the budgets plus a generous
150 MB. Every socket has a timeout and every scenario a deadline.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import streamcore
from streamcore.protocol import messages as m

from .wire_client import WireClient, batch, create_topic, fetch_request, produce, request_frame

# The same streamcore as this test run (installed in CI, the source tree in a checkout).
PYTHON_DIR = str(Path(streamcore.__file__).resolve().parents[1])
MIB = 1024 * 1024
QUEUED_BYTES = 16 * MIB
RESPONSE_BUFFER_BYTES = 1 * MIB
WAL_BUDGET_BYTES = 25 * MIB  # the "low" profile's memory budget
MARGIN_BYTES = 150 * MIB
SCENARIO_S = 20.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for VmHWM")


class BrokerProcess:
    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCORE_")}
        env.update(
            PYTHONPATH=PYTHON_DIR,
            STREAMCORE_STORAGE_PROFILE="low",
            STREAMCORE_LIMITS_QUEUED_MAX_REQUEST_BYTES=str(QUEUED_BYTES),
            STREAMCORE_LIMITS_MAX_BUFFERED_RESPONSE_BYTES=str(RESPONSE_BUFFER_BYTES),
            STREAMCORE_LIMITS_REQUEST_TIMEOUT_MS="60s",
        )
        if os.environ.get("STREAMCORE_NO_EXTENSIONS"):
            env["STREAMCORE_NO_EXTENSIONS"] = os.environ["STREAMCORE_NO_EXTENSIONS"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamcore", "broker", "--port", "0", "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, line
        self.bootstrap = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()

    def status_bytes(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"{field} not in /proc/{self.proc.pid}/status")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "data")
    yield proc
    proc.stop()


def _connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def _send_until(sock: socket.socket, data: bytes, deadline: float) -> int:
    """Send what the broker takes before ``deadline`` (it stops reading past its budgets)."""
    sent = 0
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
        try:
            sent += sock.send(view[sent : sent + MIB])
        except TimeoutError:
            continue
        except OSError:
            break
    return sent


def _in_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SCENARIO_S + 30)
        assert not t.is_alive()


def _assert_peak_within(broker: BrokerProcess, baseline: int, budget: int) -> None:
    grown = broker.status_bytes("VmHWM") - baseline
    assert grown < budget + MARGIN_BYTES, (
        f"peak RSS grew by {grown / MIB:.0f} MiB; budgets {budget / MIB:.0f} MiB + {MARGIN_BYTES / MIB:.0f} MiB"
    )


def _well_behaved_round(bootstrap: str, topic: str) -> None:
    with WireClient(bootstrap, timeout_s=30) as c:
        p = produce(c, topic, 0, batch([b"still served"]), acks=-1)
        assert p.error_code == 0, p
        resp = c.request(fetch_request(topic, 0, p.base_offset), 12)
        assert resp.responses[0].partitions[0].error_code == 0


def test_pipelining_producers_stay_within_queued_max_request_bytes(broker_process: BrokerProcess) -> None:
    with WireClient(broker_process.bootstrap) as c:
        create_topic(c, "flood")
        create_topic(c, "calm")
    baseline = broker_process.status_bytes("VmRSS")
    value = b"v" * (512 * 1024 - 200)
    frames = b"".join(
        request_frame(
            m.ProduceRequest(
                acks=1,
                timeout_ms=30_000,
                topic_data=[
                    m.ProduceRequest_TopicProduceData(
                        name="flood",
                        partition_data=[
                            m.ProduceRequest_PartitionProduceData(index=0, records=batch([value]))
                        ],
                    )
                ],
            ),
            9,
            i + 1,
        )
        for i in range(30)
    )
    deadline = time.monotonic() + SCENARIO_S
    answered: list[int] = []

    def producer() -> None:
        with _connect(broker_process.bootstrap) as sock:
            sent = _send_until(sock, frames, deadline)
            assert sent == len(frames), f"only {sent} of {len(frames)} bytes were taken in {SCENARIO_S} s"
            sock.settimeout(30)
            count = 0
            buf = b""
            while count < 30:
                chunk = sock.recv(1 << 16)
                assert chunk, "the broker closed a pipelining producer"
                buf += chunk
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack_from(">i", buf)[0]:
                    buf = buf[4 + struct.unpack_from(">i", buf)[0] :]
                    count += 1
            answered.append(count)

    calm = threading.Thread(target=_well_behaved_round, args=(broker_process.bootstrap, "calm"), daemon=True)
    # 32 connections x 30 requests of 512 KiB = 480 MiB offered, far above the budgets.
    targets: list[Callable[[], None]] = [producer] * 32
    calm.start()
    _in_threads(targets)
    calm.join(30)
    assert answered == [30] * 32
    _well_behaved_round(broker_process.bootstrap, "calm")
    _assert_peak_within(broker_process, baseline, QUEUED_BYTES + WAL_BUDGET_BYTES)


def test_fetches_never_read_hold_at_most_one_response_per_connection(broker_process: BrokerProcess) -> None:
    with WireClient(broker_process.bootstrap) as c:
        create_topic(c, "big")
        create_topic(c, "calm")
        for _ in range(8):
            assert produce(c, "big", 0, batch([b"r" * (MIB - 200)])).error_code == 0
    baseline = broker_process.status_bytes("VmRSS")
    burst = b"".join(
        request_frame(fetch_request("big", 0, 0, max_bytes=4 * MIB), 12, i + 1) for i in range(200)
    )
    deadline = time.monotonic() + 5.0
    socks = [_connect(broker_process.bootstrap) for _ in range(3)]
    try:
        # 3 x 200 fetches of 4 MiB each, never read: 2.4 GB if every response were built.
        _in_threads([lambda s=s: _send_until(s, burst, deadline) for s in socks])
        _well_behaved_round(broker_process.bootstrap, "calm")
        per_connection = RESPONSE_BUFFER_BYTES + 2 * 4 * MIB  # the buffer, one response built, one unsent
        _assert_peak_within(broker_process, baseline, QUEUED_BYTES + 3 * per_connection)
    finally:
        for s in socks:
            s.close()


def test_partial_frames_stay_within_the_budget_and_others_are_served(broker_process: BrokerProcess) -> None:
    with WireClient(broker_process.bootstrap) as c:
        create_topic(c, "calm")
    baseline = broker_process.status_bytes("VmRSS")
    declared = 50_000_000
    body = struct.pack(">i", declared) + b"\x00" * (12 * MIB)
    deadline = time.monotonic() + 8.0
    socks = [_connect(broker_process.bootstrap) for _ in range(20)]
    try:
        # 20 frames declaring 50 MB, 12 MiB of each offered: 240 MiB if all were kept.
        _in_threads([lambda s=s: _send_until(s, body, deadline) for s in socks])
        _well_behaved_round(broker_process.bootstrap, "calm")
        # Half the budget for others' partial frames, plus the one frame that always completes.
        _assert_peak_within(broker_process, baseline, QUEUED_BYTES + 12 * MIB)
    finally:
        for s in socks:
            s.close()
