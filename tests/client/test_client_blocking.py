"""Blocking clients: futures, callbacks that block, rebalance callbacks, the loop-thread guard."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from streamcore.client import AdminClient, Consumer, Producer, RecordMetadata, TopicPartition


def test_blocking_round_trip_with_concurrent_futures(kafka_bootstrap: str, topic_name: str) -> None:
    with AdminClient(kafka_bootstrap) as admin:
        admin.create_topic(topic_name, num_partitions=2)
    with Producer(kafka_bootstrap, linger_ms=1) as p:
        futs = [p.send(topic_name, b"%d" % i, key=b"k%d" % i) for i in range(100)]
        assert all(isinstance(f, concurrent.futures.Future) for f in futs)
        done, not_done = concurrent.futures.wait(futs, timeout=20)
        assert not not_done
        metas = [f.result() for f in futs]
        assert all(isinstance(m, RecordMetadata) and m.offset >= 0 for m in metas)
        spans = p.send_batch(topic_name, [b"b"] * 50).result(20)
        assert sum(s.record_count for s in spans) == 50
    with Consumer(kafka_bootstrap, auto_offset_reset="earliest") as c:
        c.assign([TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 150 and time.monotonic() < deadline:
            got += c.poll(timeout_ms=200)
        assert len(got) == 150


def test_blocking_calls_inside_a_delivery_callback_do_not_deadlock(
    kafka_bootstrap: str, topic_name: str
) -> None:
    with Producer(kafka_bootstrap) as p:
        results: list[object] = []
        finished = threading.Event()

        def on_done(fut: concurrent.futures.Future) -> None:
            assert threading.current_thread().name != "streamcore-client"  # never the loop thread
            results.append(p.send(topic_name, b"nested").result(10))
            p.flush(10)
            finished.set()

        p.send(topic_name, b"outer").add_done_callback(on_done)
        assert finished.wait(20)
        assert isinstance(results[0], RecordMetadata)


def test_rebalance_callbacks_may_call_the_consumer(kafka_bootstrap: str, topic_name: str) -> None:
    with AdminClient(kafka_bootstrap) as admin:
        admin.create_topic(topic_name, num_partitions=3)
    seen: list[set[TopicPartition]] = []
    c = Consumer(
        kafka_bootstrap, group_id=f"g-{topic_name}", session_timeout_ms=6000, heartbeat_interval_ms=100
    )
    try:
        c.subscribe([topic_name], on_assign=lambda parts: seen.append(c.assignment()))
        assert len(c.wait_for_assignment(20)) == 3
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen and len(seen[0]) == 3
        c.commit()
    finally:
        c.close()


def test_blocking_call_on_the_loop_thread_is_refused_instead_of_hanging(kafka_bootstrap: str) -> None:
    from streamcore.client.sync import loop_thread

    admin = AdminClient(kafka_bootstrap)
    try:
        lt = loop_thread()
        fut = concurrent.futures.Future()

        def on_loop() -> None:
            try:
                admin.list_topics()
            except RuntimeError as exc:
                fut.set_result(exc)
            else:
                fut.set_result(None)

        lt.loop.call_soon_threadsafe(on_loop)
        assert isinstance(fut.result(10), RuntimeError)
    finally:
        admin.close()


def test_closed_producer_refuses_sends(kafka_bootstrap: str) -> None:
    from streamcore.client.errors import ClientClosedError

    p = Producer(kafka_bootstrap)
    p.close()
    with pytest.raises(ClientClosedError):
        p.send("t", b"x")
