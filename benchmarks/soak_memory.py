"""Soak: the broker's peak memory under hostile clients, and a well-behaved client's latency meanwhile.

Each scenario starts a fresh broker process (``python -m streamcore broker``, default
settings unless ``--set`` says otherwise) on 127.0.0.1, lets a confluent-kafka producer
and consumer run against it, starts the hostile clients, and prints the broker's peak
RSS (VmHWM of its /proc entry) and the well-behaved clients' p50/p99 latencies:

* ``producers``: 128 connections, each pipelining 50 Produce requests of 512 KiB
  without reading an answer until all are sent;
* ``fetchers``: 3 connections, each sending 200 Fetch requests (4 MiB each) in one
  burst and never reading;
* ``dribblers``: 1,000 connections sending a request one byte a second;
* ``partials``: 20 connections each declaring a 50 MB frame and sending all but its last byte.

Everything is bounded: each scenario runs ``--seconds`` (default 20) after the hostile
clients start, and every hostile socket has a send timeout. ``--tree DIR`` runs the broker
from another source tree (for example a ``git worktree`` of the code before a change).

    PYTHONPATH=python python benchmarks/soak_memory.py
    PYTHONPATH=python python benchmarks/soak_memory.py --tree /tmp/before/python --scenario fetchers
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from streamcore._impl import wire
from streamcore.codec import encode_batch
from streamcore.protocol import messages as m

HOST = "127.0.0.1"
TOPIC = "soak"
VICTIM_TOPIC = "victim"


# ---------------------------------------------------------------- the broker process


class BrokerProcess:
    """A broker subprocess; ``peak_rss_mb`` reads VmHWM."""

    def __init__(self, tree: str, data_dir: str, settings: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCORE_")}
        env["PYTHONPATH"] = tree
        env.update(settings)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamcore",
                "broker",
                "--host",
                HOST,
                "--port",
                "0",
                "--data-dir",
                data_dir,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"broker did not start: {line!r}")
        self.port = int(line.rsplit(":", 1)[1])
        self.bootstrap = f"{HOST}:{self.port}"

    def _status(self, field: str) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def rss_mb(self) -> float:
        return self._status("VmRSS")

    def peak_rss_mb(self) -> float:
        return self._status("VmHWM")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- raw wire helpers


def frame(request: object, version: int, correlation_id: int) -> bytes:
    w = wire.Writer()
    w.int16(request.API_KEY)  # type: ignore[attr-defined]
    w.int16(version)
    w.int32(correlation_id)
    w.string("soak")
    if request.FLEXIBLE_FROM is not None and version >= request.FLEXIBLE_FROM:  # type: ignore[attr-defined]
        w.uvarint(0)
    request.encode_into(w, version)  # type: ignore[attr-defined]
    return bytes(w.getvalue_framed())


def connect(bootstrap: str, timeout_s: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def produce_frame(topic: str, value_bytes: int, correlation_id: int) -> bytes:
    records = encode_batch([b"x" * value_bytes], None, None, [int(time.time() * 1000)])
    req = m.ProduceRequest(
        acks=1,
        timeout_ms=30_000,
        topic_data=[
            m.ProduceRequest_TopicProduceData(
                name=topic,
                partition_data=[m.ProduceRequest_PartitionProduceData(index=0, records=records)],
            )
        ],
    )
    return frame(req, 9, correlation_id)


def fetch_frame(topic: str, max_bytes: int, correlation_id: int) -> bytes:
    req = m.FetchRequest(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=max_bytes,
        session_id=0,
        session_epoch=-1,
        topics=[
            m.FetchRequest_FetchTopic(
                topic=topic,
                partitions=[
                    m.FetchRequest_FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=max_bytes)
                ],
            )
        ],
    )
    return frame(req, 12, correlation_id)


def send_until(sock: socket.socket, data: bytes, deadline: float) -> int:
    """Send as much of ``data`` as the broker takes before ``deadline``; bytes sent."""
    sent = 0
    view = memoryview(data)
    while sent < len(data) and time.monotonic() < deadline:
        sock.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
        try:
            sent += sock.send(view[sent : sent + (1 << 20)])
        except TimeoutError:
            continue
        except OSError:
            break
    return sent


# ---------------------------------------------------------------- the well-behaved clients


class WellBehaved:
    """A confluent-kafka producer (acks=all) and consumer; latencies in ms."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka import Consumer, Producer

        self.produce_ms: list[float] = []
        self.consume_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "soak-victim",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        self._threads = [
            threading.Thread(target=self._produce, daemon=True),
            threading.Thread(target=self._consume, daemon=True),
        ]

    def start(self) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.assign([TopicPartition(VICTIM_TOPIC, 0, -1)])
        for t in self._threads:
            t.start()

    def _produce(self) -> None:
        def delivered(err: object, msg: object, sent: float) -> None:
            if err is not None:
                self.errors += 1
            else:
                self.produce_ms.append((time.perf_counter() - sent) * 1000)

        while not self._stop.is_set():
            sent = time.perf_counter()
            self._producer.produce(
                VICTIM_TOPIC,
                struct.pack(">d", time.time()),
                partition=0,
                on_delivery=lambda err, msg, s=sent: delivered(err, msg, s),
            )
            self._producer.poll(0.01)
        self._producer.flush(10)

    def _consume(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            (sent,) = struct.unpack(">d", msg.value())
            self.consume_ms.append((time.time() - sent) * 1000)

    def reset(self) -> None:
        self.produce_ms.clear()
        self.consume_ms.clear()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)
        self._consumer.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------- the hostile clients


def scenario_producers(bootstrap: str, deadline: float, stop: threading.Event) -> None:
    request_bytes = 512 * 1024
    per_connection = 50
    # Every connection sends the same bytes: built once, so that the clients' own memory and
    # CPU (128 copies would be 3.2 GB in this process) do not weigh on what is measured.
    data = b"".join(produce_frame(TOPIC, request_bytes, i + 1) for i in range(per_connection))

    def one(index: int) -> None:
        try:
            sock = connect(bootstrap)
        except OSError:
            return
        with sock:
            send_until(sock, data, deadline)
            sock.settimeout(1.0)
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    if not sock.recv(1 << 20):
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return

    run_threads([lambda i=i: one(i) for i in range(128)])


def scenario_fetchers(bootstrap: str, deadline: float, stop: threading.Event) -> None:
    def one() -> None:
        sock = connect(bootstrap)
        with sock:
            send_until(sock, b"".join(fetch_frame(TOPIC, 4 << 20, i + 1) for i in range(200)), deadline)
            stop.wait(max(0.0, deadline - time.monotonic()))  # never read

    run_threads([one for _ in range(3)])


def scenario_dribblers(bootstrap: str, deadline: float, stop: threading.Event) -> None:
    socks: list[socket.socket] = []
    for _ in range(1000):
        try:
            socks.append(connect(bootstrap))
        except OSError:
            break
    payload = produce_frame(TOPIC, 1000, 1)
    position = 0
    while not stop.is_set() and time.monotonic() < deadline and position < len(payload):
        for s in socks:
            try:
                s.send(payload[position : position + 1])
            except OSError:
                pass
        position += 1
        stop.wait(1.0)
    for s in socks:
        s.close()


def scenario_partials(bootstrap: str, deadline: float, stop: threading.Event) -> None:
    declared = 50_000_000

    def one() -> None:
        sock = connect(bootstrap)
        with sock:
            head = struct.pack(">i", declared)
            send_until(sock, head + b"\x00" * (declared - 1), deadline)
            stop.wait(max(0.0, deadline - time.monotonic()))

    run_threads([one for _ in range(20)])


def run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t, daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


SCENARIOS: dict[str, Callable[[str, float, threading.Event], None]] = {
    "producers": scenario_producers,
    "fetchers": scenario_fetchers,
    "dribblers": scenario_dribblers,
    "partials": scenario_partials,
}


def prepare(bootstrap: str, scenario: str) -> None:
    """Topics exist before the clock starts; the fetchers' topic holds 8 MiB to read."""
    sock = connect(bootstrap, 30.0)
    with sock:
        for topic in (TOPIC, VICTIM_TOPIC):
            req = m.CreateTopicsRequest(
                topics=[
                    m.CreateTopicsRequest_CreatableTopic(name=topic, num_partitions=1, replication_factor=1)
                ],
                timeout_ms=10_000,
            )
            sock.sendall(frame(req, 5, 1))
            read_frame(sock)
        if scenario == "fetchers":
            for i in range(8):
                sock.sendall(produce_frame(TOPIC, (1 << 20) - 200, 10 + i))
                read_frame(sock)


def read_frame(sock: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return bytes(buf)

    (size,) = struct.unpack(">i", exact(4))
    return exact(size)


def run(tree: str, scenario: str, seconds: float, settings: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="soak-") as data_dir:
        broker = BrokerProcess(tree, data_dir, settings)
        try:
            prepare(broker.bootstrap, scenario)
            victim = WellBehaved(broker.bootstrap)
            victim.start()
            time.sleep(2.0)  # warm up: metadata, first fetch
            victim.reset()
            baseline = broker.rss_mb()
            stop = threading.Event()
            deadline = time.monotonic() + seconds
            attack = threading.Thread(target=SCENARIOS[scenario], args=(broker.bootstrap, deadline, stop))
            attack.start()
            while attack.is_alive() and time.monotonic() < deadline + 5:
                attack.join(0.5)
            stop.set()
            attack.join(10)
            victim.stop()
            return {
                "baseline_mb": baseline,
                "peak_mb": broker.peak_rss_mb(),
                "produce_p50_ms": percentile(victim.produce_ms, 0.5),
                "produce_p99_ms": percentile(victim.produce_ms, 0.99),
                "consume_p50_ms": percentile(victim.consume_ms, 0.5),
                "consume_p99_ms": percentile(victim.consume_ms, 0.99),
                "produced": float(len(victim.produce_ms)),
                "consumed": float(len(victim.consume_ms)),
                "errors": float(victim.errors),
            }
        finally:
            broker.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parents[1] / "python"))
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="ENV=VALUE",
        help="broker setting as STREAMCORE_* variable",
    )
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    print(f"tree {args.tree}")
    print(
        f"{'scenario':<10} {'base MB':>8} {'peak MB':>8} {'prod p50':>9} {'prod p99':>9} "
        f"{'cons p50':>9} {'cons p99':>9} {'produced':>8} {'consumed':>8} {'errors':>6}"
    )
    for name in names:
        r = run(args.tree, name, args.seconds, settings)
        print(
            f"{name:<10} {r['baseline_mb']:>8.0f} {r['peak_mb']:>8.0f} {r['produce_p50_ms']:>9.1f} "
            f"{r['produce_p99_ms']:>9.1f} {r['consume_p50_ms']:>9.1f} {r['consume_p99_ms']:>9.1f} "
            f"{r['produced']:>8.0f} {r['consumed']:>8.0f} {r['errors']:>6.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
