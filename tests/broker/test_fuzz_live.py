"""Thousands of malformed frames against a live broker while a real client keeps working.

Frames are valid requests mutated at random (bytes flipped, cut short, spliced), random
bytes behind a plausible size, and bad size prefixes, sent over many short connections.
Meanwhile a confluent-kafka producer and consumer move records through a topic the fuzzer
never names; every record must arrive, in order per partition, with no client error.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    produce,
    produce_request,
    request_frame,
)

confluent_kafka = pytest.importorskip("confluent_kafka")

MALFORMED_FRAMES = 10_000  # the requirement; not scaled down
FUZZ_DEADLINE_S = 240.0
GOOD_TOPIC = "good-client-topic"
FUZZ_TOPIC = "fz"
MIN_GOOD_RECORDS = 2_000
MAX_GOOD_RECORDS = 50_000
SEED = int(os.environ.get("STREAMCORE_TEST_FUZZ_SEED", "20240611"))


def _seed_frames() -> list[bytes]:
    """Valid requests the mutations start from (none creates or deletes topics)."""
    meta = m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name=FUZZ_TOPIC)])
    meta_no_create = m.MetadataRequest(
        topics=[m.MetadataRequest_MetadataRequestTopic(name=FUZZ_TOPIC)], allow_auto_topic_creation=False
    )
    offsets = m.ListOffsetsRequest(
        replica_id=-1,
        topics=[
            m.ListOffsetsRequest_ListOffsetsTopic(
                name=FUZZ_TOPIC,
                partitions=[m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=-1)],
            )
        ],
    )
    commit_fetch = m.OffsetFetchRequest(
        group_id="fz-group",
        topics=[m.OffsetFetchRequest_OffsetFetchRequestTopic(name=FUZZ_TOPIC, partition_indexes=[0])],
    )
    join = m.JoinGroupRequest(
        group_id="fz-group",
        session_timeout_ms=6000,
        rebalance_timeout_ms=1000,
        member_id="",
        protocol_type="consumer",
        protocols=[
            m.JoinGroupRequest_JoinGroupRequestProtocol(name="range", metadata=b"\x00\x00\x00\x00\x00\x00")
        ],
    )
    records = batch([b"fuzz-%d" % i for i in range(5)], keys=[b"k"] * 5)
    seeds = [
        (m.ApiVersionsRequest(), 0),
        (m.ApiVersionsRequest(client_software_name="fz", client_software_version="1"), 3),
        (meta, 1),
        (meta_no_create, 12),
        (produce_request(FUZZ_TOPIC, 0, records, acks=1), 3),
        (produce_request(FUZZ_TOPIC, 0, records, acks=-1), 9),
        (fetch_request(FUZZ_TOPIC, 0, 0, max_wait_ms=0), 4),
        (fetch_request(FUZZ_TOPIC, 0, 0, max_wait_ms=50, min_bytes=1, session_id=0, session_epoch=0), 12),
        (offsets, 1),
        (offsets, 7),
        (commit_fetch, 1),
        (commit_fetch, 7),
        (m.FindCoordinatorRequest(key="fz-group", key_type=0), 0),
        (m.FindCoordinatorRequest(key="fz-group", key_type=0), 3),
        (m.HeartbeatRequest(group_id="fz-group", generation_id=1, member_id="nobody"), 0),
        (join, 0),
        (m.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=1000), 0),
        (m.DescribeGroupsRequest(groups=["fz-group"]), 0),
        (m.ListGroupsRequest(), 0),
    ]
    return [request_frame(req, version, 1000 + i) for i, (req, version) in enumerate(seeds)]


def _mutate(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One malformed (or at least unusual) frame."""
    kind = rng.randrange(7)
    frame = bytearray(rng.choice(seeds))
    payload = frame[4:]
    if kind == 0:  # flip bytes anywhere after the size prefix
        for _ in range(rng.randint(1, 8)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
    elif kind == 1:  # cut the body short, size prefix matching the shorter payload
        payload = payload[: rng.randrange(len(payload))]
    elif kind == 2:  # splice: delete or insert a run of bytes
        at = rng.randrange(len(payload))
        if rng.random() < 0.5:
            del payload[at : at + rng.randint(1, 16)]
        else:
            payload[at:at] = rng.randbytes(rng.randint(1, 16))
    elif kind == 3:  # random bytes behind a correct size prefix
        payload = bytearray(rng.randbytes(rng.randint(0, 200)))
    elif kind == 4:  # a valid header with a random api key / version
        struct.pack_into(">hh", payload, 0, rng.randint(-5, 80), rng.randint(-2, 40))
    elif kind == 5:  # a bad size prefix: negative, huge, or longer than what follows
        size = rng.choice([-1, -(2**31), 2**31 - 1, len(payload) + rng.randint(1, 1000)])
        return struct.pack(">i", size) + bytes(payload)
    else:  # pure noise, no framing at all
        return rng.randbytes(rng.randint(1, 64))
    return struct.pack(">i", len(payload)) + bytes(payload)


def _send_malformed(host: str, port: int, frames: list[bytes]) -> None:
    with socket.create_connection((host, port), timeout=5.0) as s:
        try:
            s.sendall(b"".join(frames))
        except OSError:
            return  # the broker already closed on an earlier frame: that is the point
        s.settimeout(0.05)
        try:
            s.recv(65536)
        except OSError:
            pass


class GoodClient:
    """A well-behaved confluent-kafka producer and consumer running in threads."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.errors: list[str] = []
        self.delivered: list[tuple[int, int, bytes]] = []  # (partition, offset, key)
        self.consumed: list[tuple[int, int, bytes, bytes, list[Any]]] = []
        self.produced = 0
        self.producing_done = threading.Event()
        self.stop = threading.Event()

    def _error_cb(self, err: Any) -> None:
        self.errors.append(f"client error: {err}")

    def produce_loop(self) -> None:
        try:
            self._produce()
        except Exception as exc:  # reported by the test, not lost in a thread
            self.errors.append(f"producer thread: {exc!r}")
        finally:
            self.producing_done.set()

    def consume_loop(self) -> None:
        try:
            self._consume()
        except Exception as exc:
            self.errors.append(f"consumer thread: {exc!r}")

    def _produce(self) -> None:
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": self.bootstrap, "linger.ms": 5, "error_cb": self._error_cb, "acks": "all"}
        )

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                self.errors.append(f"delivery failed: {err}")
            else:
                self.delivered.append((msg.partition(), msg.offset(), msg.key()))

        i = 0
        deadline = time.monotonic() + FUZZ_DEADLINE_S
        # About 1,000 records a second while the fuzzer runs; at least 2,000 in all.
        while (not self.stop.is_set() or i < MIN_GOOD_RECORDS) and i < MAX_GOOD_RECORDS:
            if time.monotonic() > deadline:
                break
            for _ in range(50):
                producer.produce(
                    GOOD_TOPIC,
                    key=b"key-%d" % i,
                    value=b"value-%d" % i,
                    headers=[("seq", b"%d" % i)],
                    on_delivery=on_delivery,
                )
                i += 1
            producer.poll(0.05)
        remaining = producer.flush(60)
        self.produced = i
        if remaining:
            self.errors.append(f"{remaining} messages still undelivered after flush")

    def _consume(self) -> None:
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": "good-group",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "error_cb": self._error_cb,
            }
        )
        consumer.subscribe([GOOD_TOPIC])
        deadline = time.monotonic() + FUZZ_DEADLINE_S + 60
        try:
            while time.monotonic() < deadline:
                if self.producing_done.is_set() and len(self.consumed) >= self.produced:
                    break
                for msg in consumer.consume(500, 0.2):
                    if msg.error():
                        self.errors.append(f"consume error: {msg.error()}")
                        continue
                    self.consumed.append(
                        (msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers())
                    )
            if self.consumed:
                consumer.commit(asynchronous=False)
        finally:
            consumer.close()


@pytest.mark.interop
def test_thousands_of_malformed_frames_do_not_disturb_a_good_client(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    b = streamcore_broker_factory(auto_create=False)
    with WireClient(b.bootstrap_servers) as c:
        create_topic(c, GOOD_TOPIC, partitions=3)
        create_topic(c, FUZZ_TOPIC, partitions=1)
        assert produce(c, FUZZ_TOPIC, 0, batch([b"seed"])).error_code == 0

    rng = random.Random(SEED)
    seeds = _seed_frames()
    good = GoodClient(b.bootstrap_servers)
    threads = [threading.Thread(target=good.produce_loop), threading.Thread(target=good.consume_loop)]
    for t in threads:
        t.start()

    sent = connections = 0
    started = time.monotonic()
    try:
        while sent < MALFORMED_FRAMES and time.monotonic() - started < FUZZ_DEADLINE_S:
            frames = [_mutate(rng, seeds) for _ in range(rng.randint(1, 12))]
            _send_malformed(b.host, b.port, frames)
            sent += len(frames)
            connections += 1
    finally:
        good.stop.set()
        for t in threads:
            t.join(FUZZ_DEADLINE_S + 120)
    elapsed = time.monotonic() - started
    print(f"fuzz: {sent} frames over {connections} connections in {elapsed:.1f} s (seed {SEED})")
    assert sent >= MALFORMED_FRAMES, f"only {sent} frames sent in {FUZZ_DEADLINE_S} s"
    assert not any(t.is_alive() for t in threads), "the good client did not finish"

    assert good.errors == []
    assert good.produced >= MIN_GOOD_RECORDS
    assert len(good.delivered) == good.produced
    expected_keys = {b"key-%d" % i for i in range(good.produced)}
    assert {k for _, _, k in good.delivered} == expected_keys
    assert len(good.consumed) == good.produced
    assert {k for _, _, k, _, _ in good.consumed} == expected_keys
    by_partition: dict[int, list[tuple[int, int]]] = {}
    for partition, offset, key, value, headers in good.consumed:
        seq = int(key.split(b"-")[1])
        assert value == b"value-%d" % seq
        assert headers == [("seq", b"%d" % seq)]
        by_partition.setdefault(partition, []).append((offset, seq))
    for partition, rows in by_partition.items():
        offsets = [o for o, _ in rows]
        assert offsets == list(range(len(rows))), f"partition {partition}: offsets not 0..n-1 in order"
        seqs = [s for _, s in rows]
        assert seqs == sorted(seqs), f"partition {partition}: records out of produce order"

    # Still serving, and the fuzzed topic's own data was only ever appended to, never damaged.
    with WireClient(b.bootstrap_servers) as c:
        assert c.request(m.ApiVersionsRequest(), 3).error_code == 0
        resp = c.request(fetch_request(FUZZ_TOPIC, 0, 0), 12)
        assert resp.error_code == 0
