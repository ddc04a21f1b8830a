"""Byte-rate quotas with a real client (confluent-kafka): the issue's acceptance check.

A producer whose client-id has a producer_byte_rate quota is held to that rate (±20%,
measured over a bounded run) while an unlimited producer on the same broker, at the same
time, is not; a consumer with a consumer_byte_rate quota likewise. The broker measures
rates over 11 samples of 100 ms (``quotas.window_size_ms``): a quota admits what it saves
up over the span in one burst (Kafka's sampled rate), so the span must be short against
the run for a rate measured over a few seconds to mean anything; the first 2 s (the
initial burst) are left out of the measurement.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from broker.wire_client import WireClient
from streamcore import Broker
from streamcore.protocol import messages as m

confluent_kafka = pytest.importorskip("confluent_kafka")

pytestmark = pytest.mark.interop

QUOTA = 256 * 1024  # bytes per second
WARMUP_S = 2.0
MEASURE_S = 6.0
VALUE = 1000  # bytes per record


def _set_quota(bootstrap: str, client_id: str, key: str, value: float) -> None:
    request = m.AlterClientQuotasRequest(
        entries=[
            m.AlterClientQuotasRequest_EntryData(
                entity=[
                    m.AlterClientQuotasRequest_EntityData(entity_type="client-id", entity_name=client_id)
                ],
                ops=[m.AlterClientQuotasRequest_OpData(key=key, value=value)],
            )
        ]
    )
    with WireClient(bootstrap) as c:
        [entry] = c.request(request, 1).entries
    assert entry.error_code == 0, entry


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    b = Broker(str(tmp_path / "data"), host="127.0.0.1", port=0, quotas_window_size_ms=100).start()
    yield b
    b.stop()


def _produce_for(
    bootstrap: str, client_id: str, topic: str, seconds: float
) -> tuple[list[tuple[float, int]], float]:
    """Produce as fast as the client can for ``seconds``; returns the (monotonic time, bytes)
    of each acknowledged record and the start time."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "linger.ms": 5,
            # Small requests, so that one request is a small part of what a second allows.
            "batch.size": 16384,
            "queue.buffering.max.kbytes": 1024,
        }
    )
    acked: list[tuple[float, int]] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked.append((time.monotonic(), len(msg.value())))

    value = os.urandom(VALUE)
    start = time.monotonic()
    end = start + seconds
    while time.monotonic() < end:
        try:
            producer.produce(topic, value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.005)
        producer.poll(0)
    assert producer.flush(60) == 0, "records still unacknowledged a minute after the run"
    return acked, start


def _rate(acked: list[tuple[float, int]], start: float, end: float) -> float:
    return sum(n for t, n in acked if start <= t < end) / (end - start)


def test_quota_limited_producer_is_held_to_its_rate_while_an_unlimited_one_is_not(broker: Any) -> None:
    _set_quota(broker.bootstrap_servers, "limited", "producer_byte_rate", QUOTA)
    results: dict[str, tuple[list[tuple[float, int]], float]] = {}

    def run(client_id: str, seconds: float) -> None:
        results[client_id] = _produce_for(broker.bootstrap_servers, client_id, f"quota-{client_id}", seconds)

    free = threading.Thread(target=run, args=("unlimited", 3.0 + WARMUP_S))
    free.start()
    run("limited", WARMUP_S + MEASURE_S)
    free.join(120)
    assert not free.is_alive()

    acked, start = results["limited"]
    limited = _rate(acked, start + WARMUP_S, start + WARMUP_S + MEASURE_S)
    acked_free, start_free = results["unlimited"]
    unlimited = _rate(acked_free, start_free, max(t for t, _ in acked_free))
    print(f"producer quota {QUOTA} B/s: limited achieved {limited:.0f} B/s, unlimited {unlimited:.0f} B/s")
    assert 0.8 * QUOTA <= limited <= 1.2 * QUOTA, (limited, QUOTA)
    # The unlimited producer, running at the same time, is not held near the quota.
    assert unlimited > 3 * QUOTA, (unlimited, QUOTA)
    quotas = broker.state.quotas
    assert quotas.throttled_total["produce"] > 0
    assert {client for _, _, client, _, _ in quotas.sensors()} == {"limited"}


def test_quota_limited_consumer_is_held_to_its_rate_while_an_unlimited_one_is_not(broker: Any) -> None:
    topic = "quota-fetch"
    total = int(QUOTA * (WARMUP_S + MEASURE_S + 4))
    assert _produce_bytes(broker.bootstrap_servers, topic, total) >= total
    _set_quota(broker.bootstrap_servers, "slow-reader", "consumer_byte_rate", QUOTA)

    limited_times = _consume_for(
        broker.bootstrap_servers, "slow-reader", topic, WARMUP_S + MEASURE_S + 2, total
    )
    start = limited_times[0][0]
    limited = _rate(limited_times, start + WARMUP_S, start + WARMUP_S + MEASURE_S)
    free_times = _consume_for(broker.bootstrap_servers, "fast-reader", topic, 60.0, total)
    free_bytes = sum(n for _, n in free_times)
    unlimited = free_bytes / max(free_times[-1][0] - free_times[0][0], 1e-3)
    print(f"consumer quota {QUOTA} B/s: limited achieved {limited:.0f} B/s, unlimited {unlimited:.0f} B/s")
    assert 0.8 * QUOTA <= limited <= 1.2 * QUOTA, (limited, QUOTA)
    assert free_bytes >= total
    assert unlimited > 3 * QUOTA, (unlimited, QUOTA)
    assert broker.state.quotas.throttled_total["fetch"] > 0


def _produce_bytes(bootstrap: str, topic: str, total: int) -> int:
    """Write at least ``total`` bytes of records (in 16 KiB batches); returns the bytes acknowledged."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 16384})
    acked = [0]

    def delivered(err: Any, msg: Any) -> None:
        if err is None:
            acked[0] += len(msg.value())

    value = os.urandom(VALUE)
    for _ in range(total // VALUE + 1):
        while True:
            try:
                producer.produce(topic, value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    assert producer.flush(60) == 0
    return acked[0]


def _consume_for(
    bootstrap: str, client_id: str, topic: str, seconds: float, stop_at: int
) -> list[tuple[float, int]]:
    """Read ``topic`` from the start, without a group, for ``seconds`` or until ``stop_at``
    bytes; returns (monotonic time, bytes) per record."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "group.id": f"g-{client_id}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # Responses small against what the quota allows in a second.
            "fetch.max.bytes": 16384,
            "message.max.bytes": 16384,
            "max.partition.fetch.bytes": 16384,
        }
    )
    got: list[tuple[float, int]] = []
    consumed = 0
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
        end = time.monotonic() + seconds
        while time.monotonic() < end and consumed < stop_at:
            for msg in consumer.consume(500, timeout=0.1):
                if msg.error() is None:
                    got.append((time.monotonic(), len(msg.value())))
                    consumed += len(msg.value())
    finally:
        consumer.close()
    assert got, f"{client_id} read nothing"
    return got
