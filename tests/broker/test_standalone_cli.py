"""The standalone ``streamcore broker`` process and the Prometheus ``/metrics`` endpoint."""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamcore
from streamcore.protocol import messages as m

from .wire_client import WireClient, batch, create_topic, produce

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
# One Prometheus sample line: name{labels} value
SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? \S+$'
)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    """The next stdout line of ``proc``, failing the test after ``timeout_s``."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            pytest.fail(f"no line on stdout within {timeout_s} s")
    return proc.stdout.readline()


class BrokerProcess:
    def __init__(self, proc: subprocess.Popen[str], port: int, data_dir: Path) -> None:
        self.proc = proc
        self.port = port
        self.data_dir = data_dir

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def terminate(self) -> tuple[int, str, str]:
        """SIGTERM, then (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            pytest.fail(f"broker did not exit within {STOP_TIMEOUT_S} s of SIGTERM; stderr:\n{err}")
        return self.proc.returncode, out, err


@pytest.fixture
def start_broker_process(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> BrokerProcess:
        data_dir = tmp_path / f"data{len(started)}"
        env = dict(os.environ)
        # The broker process imports the same streamcore as the tests (installed build or source tree).
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(data_dir),
             "--host", "127.0.0.1", "--port", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        started.append(proc)
        line = _read_line(proc, START_TIMEOUT_S).rstrip("\n")
        match = LISTENING.match(line)
        if match is None:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"expected 'listening on 127.0.0.1:PORT', got {line!r}; stderr:\n{err}")
        return BrokerProcess(proc, int(match.group(1)), data_dir)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.mark.interop
def test_cli_broker_serves_a_client_and_exits_cleanly_on_sigterm(
    start_broker_process: Callable[..., BrokerProcess],
) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    broker = start_broker_process("--default-partitions", "2")
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(100):
        producer.produce("cli-topic", key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.bootstrap, "group.id": "cli", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe(["cli-topic"])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 30
    while len(got) < 100 and time.monotonic() < deadline:
        for msg in consumer.consume(100, 0.5):
            assert msg.error() is None, msg.error()
            got.append((msg.key(), msg.value()))
    consumer.close()
    assert sorted(got) == sorted((b"k%d" % i, b"v%d" % i) for i in range(100))

    code, rest, err = broker.terminate()
    assert code == 0, err
    assert rest == "", "the broker printed more than its one 'listening on' line"
    partition_dirs = sorted(p.name for p in broker.data_dir.iterdir() if p.name.startswith("cli-topic-"))
    assert partition_dirs == ["cli-topic-0", "cli-topic-1"]
    for name in partition_dirs:
        assert (broker.data_dir / name / ".clean_shutdown").exists(), f"{name} has no clean-shutdown marker"


def _scrape(port: int) -> tuple[str, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        return resp.headers.get("Content-Type", ""), resp.read().decode()


def _check_exposition(text: str) -> dict[str, float]:
    """Every line is a comment or a sample; returns sample -> value."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        assert SAMPLE.match(line), f"not Prometheus text: {line!r}"
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def _traffic(bootstrap: str) -> None:
    with WireClient(bootstrap) as c:
        assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        create_topic(c, "metered")
        for _ in range(3):
            assert produce(c, "metered", 0, batch([b"x" * 100])).error_code == 0


def test_cli_broker_metrics_endpoint_counts_requests(
    start_broker_process: Callable[..., BrokerProcess],
) -> None:
    metrics_port = _free_port()
    broker = start_broker_process("--metrics-port", str(metrics_port))
    _traffic(broker.bootstrap)
    content_type, text = _scrape(metrics_port)
    assert content_type.startswith("text/plain")
    samples = _check_exposition(text)
    assert samples['streamcore_requests_total{api="Produce"}'] == 3
    assert samples['streamcore_requests_total{api="ApiVersions"}'] >= 1
    assert samples['streamcore_produced_bytes_total{topic="metered"}'] > 300
    code, _, err = broker.terminate()
    assert code == 0, err


def test_embedded_broker_metrics_on_a_free_port(streamcore_broker_factory: Callable[..., Any]) -> None:
    b = streamcore_broker_factory(metrics_http_port=0)
    port = b.state.metrics_port
    assert port
    _traffic(b.bootstrap_servers)
    _, text = _scrape(port)
    samples = _check_exposition(text)
    assert samples['streamcore_requests_total{api="Produce"}'] == 3
    assert samples['streamcore_requests_total{api="CreateTopics"}'] == 1
