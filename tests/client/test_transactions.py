"""The transactional producer and read_committed consumer against each broker (streamcore's
and a real Apache Kafka): commit and abort as each isolation level sees them,
send_offsets_to_transaction, a zombie fenced by its successor, abort after a failed
record, blocking and asyncio. Every wait is bounded."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from streamcore.aio import AdminClient, Consumer, Producer
from streamcore.client import Consumer as BlockingConsumer
from streamcore.client import Producer as BlockingProducer
from streamcore.client.errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionAbortedError,
    TransactionStateError,
)
from streamcore.client.transactions import TransactionState
from streamcore.client.types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from streamcore.errors import ErrorCode

STEP_S = 30.0  # bound of one transactional call
QUIET_POLLS = 4  # empty polls after the expected count: extra records would show


def txn_id() -> str:
    return "txn-" + uuid.uuid4().hex[:12]


async def create(
    bootstrap: str, topic: str, partitions: int = 2, config: dict[str, str] | None = None
) -> None:
    async with AdminClient(bootstrap) as admin:
        await admin.create_topic(topic, num_partitions=partitions, config=config)


async def read_all(
    bootstrap: str, topic: str, partitions: int, isolation: str, expected: int, timeout_s: float = 30.0
) -> list[Any]:
    """Records of ``topic`` from the start until ``expected`` came and a few polls were
    quiet, with their final positions (``(records, {partition: position})``)."""
    async with Consumer(bootstrap, auto_offset_reset="earliest", isolation_level=isolation) as c:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        out: list[Any] = []
        quiet = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (len(out) < expected or quiet < QUIET_POLLS):
            got = await c.poll(timeout_ms=250)
            quiet = 0 if got else quiet + 1
            out += got
        positions = {tp.partition: await c.position(tp) for tp in tps}
    return [out, positions]


def values(records: list[Any]) -> list[bytes]:
    return sorted(r.value for r in records)


def test_commit_is_visible_and_abort_only_to_read_uncommitted(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        await create(kafka_bootstrap, topic_name)
        async with Producer(kafka_bootstrap, transactional_id=txn_id()) as p:
            assert p.transaction_state is TransactionState.UNINITIALIZED
            await p.init_transactions(STEP_S)
            assert p.transaction_state is TransactionState.READY
            p.begin_transaction()
            committed = [await p.send(topic_name, b"c%d" % i, partition=i % 2) for i in range(10)]
            await p.commit_transaction(STEP_S)
            assert all(f.done() and f.result().offset >= 0 for f in committed)
            p.begin_transaction()
            for i in range(10):
                await p.send(topic_name, b"a%d" % i, partition=i % 2)
            await p.flush(STEP_S)
            await p.abort_transaction(STEP_S)
            assert p.transaction_state is TransactionState.READY
            # A third transaction commits after the aborted one.
            p.begin_transaction()
            await p.send(topic_name, b"after", partition=0)
            await p.commit_transaction(STEP_S)

        committed_values = sorted([b"c%d" % i for i in range(10)] + [b"after"])
        records, positions = await read_all(kafka_bootstrap, topic_name, 2, "read_committed", 11)
        assert values(records) == committed_values
        # Offsets of partition 0: 5 committed records, COMMIT marker, 5 aborted
        # records, ABORT marker, "after", COMMIT marker: the position passes the last marker.
        assert positions[0] == 14
        assert positions[1] == 12
        records, _ = await read_all(kafka_bootstrap, topic_name, 2, "read_uncommitted", 21)
        assert values(records) == sorted(committed_values + [b"a%d" % i for i in range(10)])

    asyncio.run(main())


def test_an_open_transaction_holds_read_committed_back(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        await create(kafka_bootstrap, topic_name, 1)
        async with Producer(kafka_bootstrap, transactional_id=txn_id()) as p:
            await p.init_transactions(STEP_S)
            p.begin_transaction()
            await p.send(topic_name, b"first")
            await p.commit_transaction(STEP_S)
            p.begin_transaction()
            await p.send(topic_name, b"open")
            await p.flush(STEP_S)
            records, positions = await read_all(kafka_bootstrap, topic_name, 1, "read_committed", 1, 10.0)
            assert values(records) == [b"first"]
            assert positions[0] == 2  # stops at the open transaction's first offset
            records, _ = await read_all(kafka_bootstrap, topic_name, 1, "read_uncommitted", 2, 10.0)
            assert values(records) == [b"first", b"open"]
            await p.commit_transaction(STEP_S)
        records, _ = await read_all(kafka_bootstrap, topic_name, 1, "read_committed", 2)
        assert values(records) == [b"first", b"open"]

    asyncio.run(main())


def test_send_offsets_commits_them_only_with_the_transaction(kafka_bootstrap: str, topic_name: str) -> None:
    source, sink, group = topic_name + "-in", topic_name + "-out", "g-" + uuid.uuid4().hex[:8]

    async def consume_and_send(p: Producer, c: Consumer, n: int) -> None:
        got: list[Any] = []
        deadline = time.monotonic() + STEP_S
        while len(got) < n and time.monotonic() < deadline:
            got += await c.poll(timeout_ms=250, max_records=n - len(got))
        assert len(got) == n
        p.begin_transaction()
        for r in got:
            await p.send(sink, r.value.upper(), partition=0)
        last = got[-1]
        await p.send_offsets_to_transaction(
            {TopicPartition(source, 0): OffsetAndMetadata(last.offset + 1)}, c.group_metadata(), STEP_S
        )

    async def main() -> None:
        await create(kafka_bootstrap, source, 1)
        await create(kafka_bootstrap, sink, 1)
        async with Producer(kafka_bootstrap) as plain:
            for i in range(6):
                await plain.send(source, b"v%d" % i)
        async with (
            Producer(kafka_bootstrap, transactional_id=txn_id()) as p,
            Consumer(
                kafka_bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                isolation_level="read_committed",
            ) as c,
        ):
            await p.init_transactions(STEP_S)
            c.subscribe([source])
            await c.wait_for_assignment(STEP_S)
            meta = c.group_metadata()
            assert meta.group_id == group and meta.generation_id >= 0 and meta.member_id
            await consume_and_send(p, c, 3)
            await p.abort_transaction(STEP_S)
            assert await c.committed(TopicPartition(source, 0)) is None
            c.seek(TopicPartition(source, 0), 0)
            await consume_and_send(p, c, 3)
            await p.commit_transaction(STEP_S)
            deadline = time.monotonic() + STEP_S
            committed = None
            # Apache Kafka answers EndTxn before its markers are written.
            while time.monotonic() < deadline:
                committed = await c.committed(TopicPartition(source, 0))
                if committed is not None:
                    break
                await asyncio.sleep(0.1)
            assert committed is not None and committed.offset == 3
        records, _ = await read_all(kafka_bootstrap, sink, 1, "read_committed", 3)
        assert values(records) == [b"V0", b"V1", b"V2"]

    asyncio.run(main())


def test_a_zombie_is_fenced_by_its_successor(kafka_bootstrap: str, topic_name: str) -> None:
    tid = txn_id()

    async def main() -> None:
        await create(kafka_bootstrap, topic_name, 1)
        zombie = Producer(kafka_bootstrap, transactional_id=tid)
        await zombie.init_transactions(STEP_S)
        zombie.begin_transaction()
        await asyncio.wait_for(await zombie.send(topic_name, b"zombie"), STEP_S)
        async with Producer(kafka_bootstrap, transactional_id=tid) as successor:
            # Its InitProducerId aborts the zombie's open transaction and fences it.
            await successor.init_transactions(STEP_S)
            with pytest.raises(FatalTransactionError) as fenced:
                await zombie.commit_transaction(STEP_S)
            assert fenced.value.fatal and not fenced.value.abortable
            assert fenced.value.error in (ErrorCode.PRODUCER_FENCED, ErrorCode.INVALID_PRODUCER_EPOCH)
            assert zombie.transaction_state is TransactionState.FATAL_ERROR
            # Every later call raises the fatal error.
            with pytest.raises(FatalTransactionError):
                zombie.begin_transaction()
            with pytest.raises(FatalTransactionError):
                await zombie.send(topic_name, b"more")
            with pytest.raises(FatalTransactionError):
                await zombie.abort_transaction(STEP_S)
            successor.begin_transaction()
            await successor.send(topic_name, b"successor")
            await successor.commit_transaction(STEP_S)
        await zombie.close(STEP_S)
        records, _ = await read_all(kafka_bootstrap, topic_name, 1, "read_committed", 1)
        assert values(records) == [b"successor"]

    asyncio.run(main())


def test_a_zombie_sending_after_the_fence_must_abort_and_is_then_fatal(
    kafka_bootstrap: str, topic_name: str
) -> None:
    tid = txn_id()

    async def main() -> None:
        await create(kafka_bootstrap, topic_name, 1)
        zombie = Producer(kafka_bootstrap, transactional_id=tid)
        await zombie.init_transactions(STEP_S)
        async with Producer(kafka_bootstrap, transactional_id=tid) as successor:
            await successor.init_transactions(STEP_S)
            zombie.begin_transaction()
            fut = await zombie.send(topic_name, b"zombie")
            # Its AddPartitionsToTxn (or its Produce) is refused: fenced, or failed.
            with pytest.raises((FatalTransactionError, AbortableTransactionError)):
                await zombie.commit_transaction(STEP_S)
            assert fut.done() and fut.exception() is not None
            if zombie.transaction_state is TransactionState.ABORTABLE_ERROR:
                with pytest.raises(FatalTransactionError):
                    await zombie.abort_transaction(STEP_S)
            assert zombie.transaction_state is TransactionState.FATAL_ERROR
        await zombie.close(STEP_S)
        records, _ = await read_all(kafka_bootstrap, topic_name, 1, "read_uncommitted", 0, 5.0)
        assert records == []

    asyncio.run(main())


def test_abort_after_a_failed_record_then_a_new_transaction(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        # Batches over max.message.bytes are refused (MESSAGE_TOO_LARGE): a record of
        # the transaction fails for good after it got a sequence number.
        await create(kafka_bootstrap, topic_name, 2, {"max.message.bytes": "2048"})
        async with Producer(kafka_bootstrap, transactional_id=txn_id(), linger_ms=0) as p:
            await p.init_transactions(STEP_S)
            p.begin_transaction()
            small = await p.send(topic_name, b"small", partition=0)
            await asyncio.wait_for(small, STEP_S)
            big = await p.send(topic_name, b"x" * 8192, partition=1)
            with pytest.raises(AbortableTransactionError) as failed:
                await p.commit_transaction(STEP_S)
            assert failed.value.abortable and not failed.value.fatal
            assert failed.value.error in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE)
            assert big.done() and big.exception() is not None
            assert p.transaction_state is TransactionState.ABORTABLE_ERROR
            with pytest.raises(AbortableTransactionError):
                await p.send(topic_name, b"refused", partition=0)
            with pytest.raises(AbortableTransactionError):
                p.begin_transaction()
            epoch = p._core.sequencer.producer_epoch  # type: ignore[union-attr]
            await p.abort_transaction(STEP_S)
            assert p.transaction_state is TransactionState.READY
            # The failed record left a sequence gap: the abort took the next epoch.
            assert p._core.sequencer.producer_epoch == epoch + 1  # type: ignore[union-attr]
            p.begin_transaction()
            futs = [await p.send(topic_name, b"ok%d" % i, partition=i % 2) for i in range(4)]
            await p.commit_transaction(STEP_S)
            assert all(f.result().offset >= 0 for f in futs)
        records, _ = await read_all(kafka_bootstrap, topic_name, 2, "read_committed", 4)
        assert values(records) == [b"ok0", b"ok1", b"ok2", b"ok3"]
        records, _ = await read_all(kafka_bootstrap, topic_name, 2, "read_uncommitted", 5)
        assert values(records) == [b"ok0", b"ok1", b"ok2", b"ok3", b"small"]

    asyncio.run(main())


def test_abort_drops_records_not_yet_sent(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        await create(kafka_bootstrap, topic_name, 1)
        # A long linger keeps the records in the producer until the abort.
        async with Producer(kafka_bootstrap, transactional_id=txn_id(), linger_ms=60_000) as p:
            await p.init_transactions(STEP_S)
            p.begin_transaction()
            futs = [await p.send(topic_name, b"never-%d" % i) for i in range(5)]
            await p.abort_transaction(STEP_S)
            for f in futs:
                assert isinstance(f.exception(), TransactionAbortedError)
            p.begin_transaction()
            await p.send(topic_name, b"kept")
            await p.commit_transaction(STEP_S)
        records, _ = await read_all(kafka_bootstrap, topic_name, 1, "read_uncommitted", 1)
        assert values(records) == [b"kept"]

    asyncio.run(main())


def test_blocking_consume_transform_produce(kafka_bootstrap: str, topic_name: str) -> None:
    source, sink, group = topic_name + "-in", topic_name + "-out", "g-" + uuid.uuid4().hex[:8]
    asyncio.run(create(kafka_bootstrap, source, 2))
    asyncio.run(create(kafka_bootstrap, sink, 2))
    with BlockingProducer(kafka_bootstrap) as plain:
        for i in range(20):
            plain.send(source, b"%d" % i, key=b"k%d" % i)
        plain.flush(STEP_S)
    with (
        BlockingProducer(
            kafka_bootstrap, {"transactional.id": txn_id(), "transaction.timeout.ms": 30_000}
        ) as p,
        BlockingConsumer(
            kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level="read_committed",
        ) as c,
    ):
        p.init_transactions(STEP_S)
        c.subscribe([source])
        c.wait_for_assignment(STEP_S)
        seen = 0
        rounds = 0
        deadline = time.monotonic() + 60
        while seen < 20 and time.monotonic() < deadline:
            records = c.poll(timeout_ms=250, max_records=7)
            if not records:
                continue
            p.begin_transaction()
            for r in records:
                p.send(sink, r.value + b"!", key=r.key)
            offsets = {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
            p.send_offsets_to_transaction(offsets, c.group_metadata(), STEP_S)
            rounds += 1
            if rounds == 2:
                # One round is dropped: its records are read again from the last commit.
                p.abort_transaction(STEP_S)
                for tp in c.assignment():
                    committed = c.committed(tp)
                    c.seek(tp, committed.offset if committed is not None else 0)
                continue
            p.commit_transaction(STEP_S)
            seen += len(records)
        assert seen == 20
    records, _ = asyncio.run(read_all(kafka_bootstrap, sink, 2, "read_committed", 20))
    assert values(records) == sorted(b"%d!" % i for i in range(20))


def test_calls_out_of_order_are_refused(kafka_bootstrap: str, topic_name: str) -> None:
    async def main() -> None:
        await create(kafka_bootstrap, topic_name, 1)
        async with Producer(kafka_bootstrap, transactional_id=txn_id()) as p:
            with pytest.raises(TransactionStateError):
                p.begin_transaction()
            with pytest.raises(TransactionStateError):
                await p.send(topic_name, b"v")
            await p.init_transactions(STEP_S)
            with pytest.raises(TransactionStateError):
                await p.init_transactions(STEP_S)
            with pytest.raises(TransactionStateError):
                await p.send(topic_name, b"v")
            with pytest.raises(TransactionStateError):
                await p.commit_transaction(STEP_S)
            with pytest.raises(TransactionStateError):
                await p.abort_transaction(STEP_S)
            p.begin_transaction()
            with pytest.raises(TransactionStateError):
                p.begin_transaction()
            # A transaction with nothing in it commits without asking the coordinator.
            await p.commit_transaction(STEP_S)
            assert p.transaction_state is TransactionState.READY
            p.begin_transaction()
            await p.send_offsets_to_transaction({}, ConsumerGroupMetadata("g"), STEP_S)
            await p.abort_transaction(STEP_S)
        async with Producer(kafka_bootstrap) as plain:
            with pytest.raises(TransactionStateError):
                await plain.init_transactions(STEP_S)
            assert plain.transaction_state is None

    asyncio.run(main())
