"""Client throughput: streamcore vs confluent-kafka, aiokafka and kafka-python on one broker.

Run:  PYTHONPATH=python python benchmarks/client_bench.py [--messages 200000] [--rounds 5] [--json out.json]

The broker is our own, started as a separate process (``python -m streamcore.cli
broker --port 0``) so that it does not share a GIL with the clients. Every client
produces ``--messages`` records of ``--value-bytes`` (default 100) bytes into a
fresh topic with linger 5 ms and its default acks/idempotence, then waits for all
acknowledgements; the consumer rows read a topic of ``--messages`` records from the
start. Figures are messages per second (higher is better) and the ratio to
confluent-kafka's. Measurements only; nothing is asserted.

With ``--rounds N`` (default 1) every selected row runs N times, interleaved: each
round runs all rows once, and the row order is rotated by one position per round
so no row always runs first or right after the same neighbour. The table shows
each row's median msgs/s with its min and max over the rounds, and the ratio of
the row's median to the median of its confluent-kafka baseline row. ``--json``
holds the medians (``results``), every round's figure (``samples``), the ratios
and min/max per row.

Rows (``keyed``: a distinct 8-byte key per record, built before the clock starts;
``headers``: one header ``("h", b"v")`` per record; the keyed and headers rows
are compared with confluent-kafka's row of the same kind):
* streamcore send        blocking ``Producer.send`` in a loop, then ``flush``
  (also ``keyed``, ``headers``)
* streamcore send_batch  blocking ``Producer.send_batch`` of all values at once
* streamcore aio send    ``await aio.Producer.send`` in a loop, then ``flush``
  (also ``keyed``)
* confluent produce      ``Producer.produce`` tight loop with ``poll(0)`` after each
  record (on BufferError, ``poll(0.005)`` and a retry until it is taken), ``flush``
  (also ``keyed``, ``headers``)
* kafka-python send      ``KafkaProducer.send`` loop, ``flush``
* aiokafka send          ``await AIOKafkaProducer.send`` loop, ``flush``
* streamcore consume     blocking ``Consumer.poll`` (assign, earliest) until all arrived
* confluent consume      ``Consumer.consume(10000)`` until all arrived
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(os.path.dirname(HERE), "python")
sys.path.insert(0, PYTHON_DIR)

import streamcore  # noqa: E402
import streamcore.aio  # noqa: E402
from streamcore.client import AdminClient, Consumer, Producer, TopicPartition  # noqa: E402

PARTITIONS = 4


@contextlib.contextmanager
def broker_process() -> Iterator[str]:
    """Run ``streamcore broker`` in a child process; yield its bootstrap address."""
    data_dir = tempfile.mkdtemp(prefix="streamcore-client-bench-")
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamcore.cli",
            "broker",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            data_dir,
        ],
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            raise RuntimeError(f"broker did not start: {line!r}")
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(30)
        # Every row writes its records to disk: a few GB over several rounds.
        shutil.rmtree(data_dir, ignore_errors=True)


def fresh_topic(bootstrap: str, name: str) -> str:
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    with AdminClient(bootstrap) as admin:
        admin.create_topic(topic, num_partitions=PARTITIONS)
    return topic


def timed(fn: Callable[[], int]) -> float:
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


# ---------------------------------------------------------------- producers


HEADERS = [("h", b"v")]


def keys_for(n: int) -> list[bytes]:
    """``n`` distinct 8-byte keys (made before timing starts)."""
    return [b"%08d" % i for i in range(n)]


def sc_send(bootstrap: str, n: int, value: bytes, kind: str = "") -> float:
    topic = fresh_topic(bootstrap, "sc-send")
    p = Producer(bootstrap, linger_ms=5)
    p.send(topic, value).result()

    keys = keys_for(n) if kind == "keyed" else []

    def run() -> int:
        send = p.send
        if kind == "keyed":
            for key in keys:
                send(topic, value, key)
        elif kind == "headers":
            for _ in range(n):
                send(topic, value, headers=HEADERS)
        else:
            for _ in range(n):
                send(topic, value)
        p.flush()
        return n

    try:
        return timed(run)
    finally:
        p.close()


def sc_send_batch(bootstrap: str, n: int, value: bytes) -> float:
    topic = fresh_topic(bootstrap, "sc-batch")
    p = Producer(bootstrap, linger_ms=5)
    p.send(topic, value).result()
    values = [value] * n

    def run() -> int:
        p.send_batch(topic, values).result()
        return n

    try:
        return timed(run)
    finally:
        p.close()


def sc_aio_send(bootstrap: str, n: int, value: bytes, kind: str = "") -> float:
    topic = fresh_topic(bootstrap, "sc-aio")
    keys = keys_for(n) if kind == "keyed" else [None] * n

    async def main() -> float:
        async with streamcore.aio.Producer(bootstrap, linger_ms=5) as p:
            await (await p.send(topic, value))
            send = p.send
            t0 = time.perf_counter()
            for key in keys:
                await send(topic, value, key)
            await p.flush()
            return n / (time.perf_counter() - t0)

    return asyncio.run(main())


def _produce_when_room(
    poll: Callable[[float], int], produce: Callable[..., None], *args: object, **kw: object
) -> None:
    """``produce`` after librdkafka's queue (100,000 messages by default) has room again."""
    while True:
        poll(0.005)
        try:
            produce(*args, **kw)
            return
        except BufferError:
            continue


def confluent_produce(bootstrap: str, n: int, value: bytes, kind: str = "") -> float:
    from confluent_kafka import Producer as CProducer

    topic = fresh_topic(bootstrap, "confluent")
    p = CProducer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    p.produce(topic, value)
    p.flush()
    keys = keys_for(n) if kind == "keyed" else []

    def run() -> int:
        produce, poll = p.produce, p.poll
        if kind == "keyed":
            for key in keys:
                try:
                    produce(topic, value, key)
                except BufferError:
                    _produce_when_room(poll, produce, topic, value, key)
                poll(0)
        elif kind == "headers":
            for _ in range(n):
                try:
                    produce(topic, value, headers=HEADERS)
                except BufferError:
                    _produce_when_room(poll, produce, topic, value, headers=HEADERS)
                poll(0)
        else:
            for _ in range(n):
                try:
                    produce(topic, value)
                except BufferError:
                    _produce_when_room(poll, produce, topic, value)
                poll(0)
        p.flush()
        return n

    return timed(run)


def kafka_python_send(bootstrap: str, n: int, value: bytes) -> float:
    from kafka import KafkaProducer

    topic = fresh_topic(bootstrap, "kafka-python")
    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    p.send(topic, value).get(30)

    def run() -> int:
        for _ in range(n):
            p.send(topic, value)
        p.flush()
        return n

    try:
        return timed(run)
    finally:
        p.close()


def aiokafka_send(bootstrap: str, n: int, value: bytes) -> float:
    from aiokafka import AIOKafkaProducer

    topic = fresh_topic(bootstrap, "aiokafka")

    async def main() -> float:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await p.start()
        try:
            await (await p.send(topic, value))
            t0 = time.perf_counter()
            for _ in range(n):
                await p.send(topic, value)
            await p.flush()
            return n / (time.perf_counter() - t0)
        finally:
            await p.stop()

    return asyncio.run(main())


# ---------------------------------------------------------------- consumers


def filled_topic(bootstrap: str, n: int, value: bytes) -> str:
    topic = fresh_topic(bootstrap, "consume")
    with Producer(bootstrap, linger_ms=5) as p:
        p.send_batch(topic, [value] * n).result()
    return topic


def sc_consume(bootstrap: str, n: int, value: bytes) -> float:
    topic = filled_topic(bootstrap, n, value)
    c = Consumer(bootstrap, auto_offset_reset="earliest", max_poll_records=10_000)
    c.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])

    def run() -> int:
        got = 0
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            got += len(c.poll(timeout_ms=1000))
        return got

    try:
        return timed(run)
    finally:
        c.close()


def confluent_consume(bootstrap: str, n: int, value: bytes) -> float:
    from confluent_kafka import Consumer as CConsumer
    from confluent_kafka import TopicPartition as CTopicPartition

    topic = filled_topic(bootstrap, n, value)
    c = CConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.assign([CTopicPartition(topic, p, 0) for p in range(PARTITIONS)])

    def run() -> int:
        got = 0
        deadline = time.monotonic() + 300
        while got < n and time.monotonic() < deadline:
            got += sum(1 for m in c.consume(10_000, 1.0) if m.error() is None)
        return got

    try:
        return timed(run)
    finally:
        c.close()


def _kind(fn: Callable[..., float], kind: str) -> Callable[[str, int, bytes], float]:
    return lambda bootstrap, n, value: fn(bootstrap, n, value, kind)


ROWS: list[tuple[str, Callable[[str, int, bytes], float], float, str]] = [
    # name, function, share of --messages, baseline row for the ratio
    ("streamcore send", sc_send, 1.0, "confluent produce"),
    ("streamcore send keyed", _kind(sc_send, "keyed"), 1.0, "confluent produce keyed"),
    ("streamcore send headers", _kind(sc_send, "headers"), 1.0, "confluent produce headers"),
    ("streamcore send_batch", sc_send_batch, 1.0, "confluent produce"),
    ("streamcore aio send", sc_aio_send, 1.0, "confluent produce"),
    ("streamcore aio send keyed", _kind(sc_aio_send, "keyed"), 1.0, "confluent produce keyed"),
    ("confluent produce", confluent_produce, 1.0, "confluent produce"),
    ("confluent produce keyed", _kind(confluent_produce, "keyed"), 1.0, "confluent produce keyed"),
    ("confluent produce headers", _kind(confluent_produce, "headers"), 1.0, "confluent produce headers"),
    ("kafka-python send", kafka_python_send, 0.25, "confluent produce"),
    ("aiokafka send", aiokafka_send, 0.25, "confluent produce"),
    ("streamcore consume", sc_consume, 1.0, "confluent consume"),
    ("confluent consume", confluent_consume, 1.0, "confluent consume"),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--messages", type=int, default=200_000, help="records per row (kafka-python, aiokafka: 1/4)"
    )
    ap.add_argument("--value-bytes", type=int, default=100)
    ap.add_argument("--only", default="", help="comma-separated row names to run (default all)")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument(
        "--bootstrap",
        help="use this running broker instead of starting one (to compare two client versions on one broker)",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run each row this many times, interleaved with row order rotated per round; report medians",
    )
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    value = b"x" * args.value_bytes
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    selected = [row for row in ROWS if not only or row[0] in only]
    samples: dict[str, list[float]] = {}
    skipped: set[str] = set()
    with contextlib.nullcontext(args.bootstrap) if args.bootstrap else broker_process() as bootstrap:
        for rnd in range(args.rounds):
            # Rotating the order spreads warm-up, page-cache and neighbour effects
            # over all rows instead of charging them to the same row every round.
            shift = rnd % len(selected) if selected else 0
            for name, fn, share, _ in selected[shift:] + selected[:shift]:
                if name in skipped:
                    continue
                n = max(1000, int(args.messages * share))
                try:
                    rate = fn(bootstrap, n, value)
                except ImportError as exc:
                    print(f"{name}: skipped ({exc})", file=sys.stderr)
                    skipped.add(name)
                    continue
                samples.setdefault(name, []).append(rate)
                print(
                    f"[round {rnd + 1}/{args.rounds}] {name:26s} {rate:>12,.0f} msg/s  ({n} records)",
                    file=sys.stderr,
                )
    results = {name: statistics.median(v) for name, v in samples.items()}
    ratios: dict[str, float] = {}
    for name, _, _, base in ROWS:
        if name in results:
            ratios[name] = results[name] / results[base] if base in results else float("nan")
    print()
    print(
        f"{'client':26s} {'median msgs/s':>13s}  {'vs confluent':>12s}  "
        f"{'min':>12s}  {'max':>12s}  {'(row)':s}"
    )
    for name, _, _, base in ROWS:
        if name in results:
            v = samples[name]
            print(
                f"{name:26s} {results[name]:>13,.0f}  {ratios[name]:>11.2f}x  "
                f"{min(v):>12,.0f}  {max(v):>12,.0f}  ({base})"
            )
    print(
        f"\n{args.value_bytes}-byte values, {PARTITIONS} partitions, broker in its own process; "
        f"{args.rounds} round(s), medians; "
        f"implementation: {streamcore.implementation()}; python {platform.python_version()}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "messages": args.messages,
                    "value_bytes": args.value_bytes,
                    "rounds": args.rounds,
                    "results": results,
                    "ratio_to_confluent": ratios,
                    "min": {name: min(v) for name, v in samples.items()},
                    "max": {name: max(v) for name, v in samples.items()},
                    "samples": samples,
                    "implementation": streamcore.implementation(),
                    "load_average": os.getloadavg(),
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
