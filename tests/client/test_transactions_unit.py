"""Transactions in the client without a broker: the read_committed filter over decoded
batches, how the consumer moves past markers and aborted data, the producer's
transaction state machine (refusals, fatal and abortable errors, an operation that
outlives its call's timeout) and the settings."""

from __future__ import annotations

import asyncio
import struct
from types import SimpleNamespace
from typing import Any

import pytest

from streamcore.client.config import build_config
from streamcore.client.consumer import ConsumerCore
from streamcore.client.errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionStateError,
)
from streamcore.client.fetcher import FetchSession, PartitionState, committed_batches, is_abort_marker
from streamcore.client.producer import ProducerCore
from streamcore.client.transactions import TransactionState, _OutOfTime
from streamcore.client.types import TopicPartition
from streamcore.codec import decode_batches, encode_batch
from streamcore.errors import ConfigError, ErrorCode, KafkaError

ABORT, COMMIT = 0, 1


def data(pid: int, offset: int, n: int = 1, *, transactional: bool = True) -> bytes:
    return encode_batch(
        [b"p%d-%d" % (pid, offset + i) for i in range(n)],
        timestamps_ms=[1] * n,
        base_offset=offset,
        producer_id=pid,
        producer_epoch=0,
        base_sequence=offset,
        transactional=transactional,
    )


def plain(offset: int) -> bytes:
    return encode_batch([b"plain-%d" % offset], timestamps_ms=[1], base_offset=offset)


def marker(pid: int, offset: int, kind: int) -> bytes:
    return encode_batch(
        [struct.pack(">hi", 0, 0)],
        keys=[struct.pack(">hh", 0, kind)],
        timestamps_ms=[1],
        base_offset=offset,
        producer_id=pid,
        producer_epoch=0,
        transactional=True,
        control=True,
    )


def aborted(*entries: tuple[int, int]) -> list[Any]:
    return [SimpleNamespace(producer_id=pid, first_offset=first) for pid, first in entries]


# A log of two producers: 1 aborts offsets 0-1 (marker 4), 2 commits 2-3 (marker 5),
# 1 commits 6 (marker 8), a plain record 7, then 1 aborts 9-10 (marker 11).
LOG = (
    data(1, 0, 2)
    + data(2, 2, 2)
    + marker(1, 4, ABORT)
    + marker(2, 5, COMMIT)
    + data(1, 6)
    + plain(7)
    + marker(1, 8, COMMIT)
    + data(1, 9, 2)
    + marker(1, 11, ABORT)
)


def offsets(batches: list[Any]) -> list[int]:
    return [r[0] for b in batches for r in b.records]


def test_read_committed_drops_each_aborted_transaction_up_to_its_marker() -> None:
    batches = decode_batches(LOG)
    kept = committed_batches(batches, aborted((1, 0), (1, 9)))
    assert offsets(kept) == [2, 3, 6, 7]
    assert not any(b.is_control for b in kept)


def test_a_producers_later_transaction_is_kept_after_its_abort_marker() -> None:
    # Only the first transaction of producer 1 is aborted: its data after the marker stays.
    kept = committed_batches(decode_batches(LOG), aborted((1, 0)))
    assert offsets(kept) == [2, 3, 6, 7, 9, 10]


def test_read_uncommitted_keeps_aborted_data_but_never_markers() -> None:
    kept = committed_batches(decode_batches(LOG), None)
    assert offsets(kept) == [0, 1, 2, 3, 6, 7, 9, 10]


def test_abort_markers_are_told_from_commit_markers() -> None:
    batches = decode_batches(marker(1, 0, ABORT) + marker(1, 1, COMMIT))
    assert [is_abort_marker(b) for b in batches] == [True, False]


def test_an_aborted_transaction_before_the_answer_and_a_non_transactional_batch_of_its_producer() -> None:
    # The answer starts at offset 6: producer 1's aborted transaction from offset 0
    # is listed but its marker (4) is not in the answer; a non-transactional batch of
    # the same producer id is never dropped.
    answer = data(1, 6, transactional=False) + data(1, 7)
    kept = committed_batches(decode_batches(answer), aborted((1, 0)))
    assert offsets(kept) == [6]


def _core(**settings: Any) -> tuple[ConsumerCore, PartitionState]:
    config = build_config("consumer", "127.0.0.1:1", None, settings)
    core = ConsumerCore(config)
    tp = TopicPartition("t", 0)
    st = core.states[tp] = PartitionState(tp)
    st.seek(0)
    return core, st


def _answer(records: bytes, aborted_transactions: list[Any] | None = None) -> Any:
    part = SimpleNamespace(
        partition_index=0,
        error_code=0,
        high_watermark=12,
        last_stable_offset=12,
        aborted_transactions=aborted_transactions,
        records=records,
    )
    return SimpleNamespace(responses=[SimpleNamespace(topic="t", partitions=[part])])


@pytest.mark.parametrize(
    ("isolation", "expected"),
    [("read_committed", [2, 3, 6, 7]), ("read_uncommitted", [0, 1, 2, 3, 6, 7, 9, 10])],
)
def test_the_consumer_returns_what_its_isolation_level_allows_and_moves_past_the_rest(
    isolation: str, expected: list[int]
) -> None:
    async def main() -> None:
        core, st = _core(isolation_level=isolation)
        core.fetcher._handle_fetch(_answer(LOG, aborted((1, 0), (1, 9))), {st.tp: st.epoch}, FetchSession())
        assert st.fetch_offset == 12
        got = core.collect(100)
        assert [r.offset for r in got] == expected
        # The last batches (aborted data, the ABORT marker) were skipped: the position
        # is past them, so a commit or a restart does not read them again.
        assert st.position == 12
        core.cluster.close()

    asyncio.run(main())


def test_an_answer_of_markers_only_moves_the_position() -> None:
    async def main() -> None:
        core, st = _core(isolation_level="read_committed")
        records = marker(3, 0, COMMIT) + marker(4, 1, ABORT)
        core.fetcher._handle_fetch(_answer(records, aborted((4, 1))), {st.tp: st.epoch}, FetchSession())
        assert (st.position, st.fetch_offset, st.buffered) == (2, 2, 0)
        assert core.collect(10) == []
        core.cluster.close()

    asyncio.run(main())


# ---------------------------------------------------------------- the producer's state machine


class _Sender:
    """Stands in for the producer's sender: flush waits for ``release``."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.failed: list[BaseException] = []

    async def flush(self, timeout: float | None = None) -> None:
        await self.release.wait()

    def fail_undrained(self, exc: BaseException) -> None:
        self.failed.append(exc)

    def wake_from_any_thread(self) -> None:
        pass

    def wake(self) -> None:
        pass


def _producer(**settings: Any) -> tuple[ProducerCore, Any]:
    config = build_config("producer", "127.0.0.1:1", None, {"transactional_id": "t-1", **settings})
    core = ProducerCore(config)
    txn = core.txn
    assert txn is not None
    txn.sender = _Sender()  # type: ignore[assignment]
    return core, txn


def test_a_record_failure_dooms_the_transaction_or_the_producer() -> None:
    async def main() -> None:
        core, txn = _producer()
        txn.state = TransactionState.IN_TRANSACTION
        # Produce's INVALID_PRODUCER_EPOCH: the coordinator may have aborted a transaction
        # that timed out; only the transaction is lost (as in the Java client).
        txn.record_failed(KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH, "produce"))
        assert txn.state is TransactionState.ABORTABLE_ERROR
        assert isinstance(txn.sender.failed[-1], AbortableTransactionError)
        with pytest.raises(AbortableTransactionError) as refused:
            core.try_append("t", [0], b"v", None, None, 0, None, None, 0)
        assert refused.value.error is ErrorCode.INVALID_PRODUCER_EPOCH
        assert core.acc.used == 0  # refused before any memory was charged
        with pytest.raises(AbortableTransactionError):
            await core.commit_transaction(1)
        # A fenced producer is done for.
        txn.state = TransactionState.IN_TRANSACTION
        txn.record_failed(KafkaError(ErrorCode.PRODUCER_FENCED, "produce"))
        assert txn.state is TransactionState.FATAL_ERROR
        for call in (
            core.begin_transaction,
            lambda: core.try_append("t", [0], b"v", None, None, 0, None, None, 0),
        ):
            with pytest.raises(FatalTransactionError) as fatal:
                call()
            assert fatal.value.error is ErrorCode.PRODUCER_FENCED and fatal.value.fatal
        with pytest.raises(FatalTransactionError):
            await core.abort_transaction(1)
        core.cluster.close()

    asyncio.run(main())


def test_coordinator_errors_are_classified_like_the_java_client() -> None:
    async def main() -> None:
        _, txn = _producer()
        cases = [
            (ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, FatalTransactionError),
            (ErrorCode.INVALID_PRODUCER_EPOCH, FatalTransactionError),
            (ErrorCode.TRANSACTION_ABORTABLE, AbortableTransactionError),
            (ErrorCode.GROUP_AUTHORIZATION_FAILED, AbortableTransactionError),
            (ErrorCode.UNKNOWN_MEMBER_ID, AbortableTransactionError),
            (ErrorCode.ILLEGAL_GENERATION, AbortableTransactionError),
        ]
        for code, kind in cases:
            txn.state, txn.error = TransactionState.IN_TRANSACTION, None
            err = txn._classified(KafkaError(code), "TxnOffsetCommit")
            assert type(err) is kind and err.error is code, code
        # Retriable answers until the deadline: the transaction, not the producer, is lost.
        txn.state, txn.error = TransactionState.IN_TRANSACTION, None
        err = txn._classified(
            _OutOfTime(KafkaError(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)), "AddOffsetsToTxn"
        )
        assert type(err) is AbortableTransactionError and err.error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        assert txn.state is TransactionState.ABORTABLE_ERROR

    asyncio.run(main())


def test_a_commit_that_times_out_goes_on_and_is_waited_for_by_the_next_call() -> None:
    async def main() -> None:
        core, txn = _producer()
        txn.state = TransactionState.READY
        core.begin_transaction()
        with pytest.raises(TimeoutError):
            await core.commit_transaction(0.05)
        assert txn.state is TransactionState.COMMITTING
        # Another operation must wait for it; the same one resumes.
        with pytest.raises(TransactionStateError, match="commit_transaction"):
            await core.abort_transaction(0.05)
        with pytest.raises(TimeoutError):
            await core.commit_transaction(0.05)
        txn.sender.release.set()
        # Nothing was added to the transaction: no EndTxn is needed.
        await core.commit_transaction(5)
        assert txn.state is TransactionState.READY
        core.begin_transaction()
        assert txn.state is TransactionState.IN_TRANSACTION
        core.cluster.close()

    asyncio.run(main())


def test_refusals_name_the_state_and_what_to_do() -> None:
    async def main() -> None:
        core, txn = _producer()
        with pytest.raises(TransactionStateError, match="UNINITIALIZED: call init_transactions"):
            core.begin_transaction()
        txn.state = TransactionState.READY
        with pytest.raises(TransactionStateError, match="READY: call begin_transaction"):
            await core.commit_transaction(1)
        with pytest.raises(TransactionStateError, match="READY: call begin_transaction"):
            await core.send_offsets_to_transaction({TopicPartition("t", 0): 1}, "g", 1)
        core.cluster.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"enable_idempotence": False}, "needs enable_idempotence"),
        ({"acks": 1}, "needs acks='all'"),
        ({"transactional_id": ""}, "must not be empty"),
    ],
)
def test_transactional_settings_that_cannot_hold_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config("producer", "127.0.0.1:1", None, {"transactional_id": "t", **settings})


def test_a_transactional_id_implies_idempotence_and_reads_kafka_property_names() -> None:
    config = build_config(
        "producer", "127.0.0.1:1", {"transactional.id": "t", "transaction.timeout.ms": "30s"}, {}
    )
    assert (config.transactional_id, config.transaction_timeout_ms, config.enable_idempotence) == (
        "t",
        30_000,
        True,
    )
    assert build_config("producer", "127.0.0.1:1", None, {}).transactional_id is None


# ---------------------------------------------------------------- requests against a scripted coordinator


class _Conn:
    """A coordinator connection answering each request type from its own script."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = {name: list(answers) for name, answers in script.items()}
        self.sent: list[Any] = []

    def version_for(self, cls: type) -> int:
        return 3

    async def request(self, req: Any, version: int | None = None) -> Any:
        self.sent.append(req)
        return self.script[type(req).__name__].pop(0)


class _Cluster:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.forgotten = 0

    async def coordinator(self, key: str, key_type: int = 0, *, refresh: bool = False) -> int:
        return 1

    async def connection(self, node: int) -> _Conn:
        return self.conn

    def forget_coordinator(self, key: str, key_type: int = 0) -> None:
        self.forgotten += 1


def _scripted(script: dict[str, list[Any]]) -> tuple[Any, _Conn, _Cluster]:
    from streamcore.client.accumulator import Accumulator
    from streamcore.client.retrying import Backoff
    from streamcore.client.sequencing import Sequencer
    from streamcore.client.transactions import TransactionManager

    config = build_config("producer", "127.0.0.1:1", None, {"transactional_id": "t-1"})
    conn = _Conn(script)
    cluster = _Cluster(conn)
    acc = Accumulator(1024, 1 << 20, 0, 60_000)
    txn = TransactionManager(config, cluster, acc, Sequencer(), Backoff(1, 1, jitter=0.0))  # type: ignore[arg-type]
    sender = _Sender()
    sender.release.set()
    txn.sender = sender  # type: ignore[assignment]
    return txn, conn, cluster


def _code(code: ErrorCode, **fields: Any) -> Any:
    return SimpleNamespace(error_code=code.code, **fields)


def _added(*codes: ErrorCode) -> list[Any]:
    return [
        SimpleNamespace(
            results_by_topic_v3_and_below=[
                SimpleNamespace(
                    name="t",
                    results_by_partition=[SimpleNamespace(partition_index=0, partition_error_code=c.code)],
                )
            ]
        )
        for c in codes
    ]


def test_retriable_coordinator_answers_are_retried_and_a_moved_coordinator_looked_up_again() -> None:
    E = ErrorCode
    ok = E.NO_ERROR

    async def main() -> None:
        txn, conn, cluster = _scripted(
            {
                "InitProducerIdRequest": [
                    _code(E.CONCURRENT_TRANSACTIONS),
                    _code(E.COORDINATOR_LOAD_IN_PROGRESS),
                    _code(E.NOT_COORDINATOR),
                    _code(ok, producer_id=7, producer_epoch=3),
                ],
                "AddPartitionsToTxnRequest": _added(E.CONCURRENT_TRANSACTIONS, ok),
                "EndTxnRequest": [_code(E.CONCURRENT_TRANSACTIONS), _code(ok)],
            }
        )
        await txn.init(5)
        assert txn.state is TransactionState.READY
        assert (txn.sequencer.producer_id, txn.sequencer.producer_epoch) == (7, 3)
        # Looked up again after NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS, not after
        # CONCURRENT_TRANSACTIONS (retrying.coordinator_moved).
        assert cluster.forgotten == 2
        sent = conn.sent[0]
        assert (sent.transactional_id, sent.transaction_timeout_ms) == ("t-1", 60_000)
        txn.begin()
        tp = TopicPartition("t", 0)
        with txn.acc.lock:
            txn.check_send()
            txn.want(tp)
        # The first AddPartitionsToTxn meets CONCURRENT_TRANSACTIONS: the partition stays
        # wanted and its batches wait; the retry adds it.
        for _ in range(2):
            txn.poll_adds(txn._add_retry_at)
            assert txn._adding is not None
            await txn._adding
        assert tp in txn.added and not txn.wanted and txn.started
        add = conn.sent[-1]
        assert (add.v3_and_below_producer_id, add.v3_and_below_producer_epoch) == (7, 3)
        await txn.commit(5)
        assert txn.state is TransactionState.READY and not txn.added and not txn.started
        end = conn.sent[-1]
        assert type(end).__name__ == "EndTxnRequest" and end.committed is True
        assert [type(r).__name__ for r in conn.sent].count("EndTxnRequest") == 2

    asyncio.run(main())


def test_offsets_whose_coordinator_stays_unavailable_doom_the_transaction() -> None:
    async def main() -> None:
        loading = [_code(ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)] * 10_000
        txn, conn, _ = _scripted({"AddOffsetsToTxnRequest": loading})
        txn.state = TransactionState.IN_TRANSACTION
        with pytest.raises(AbortableTransactionError) as failed:
            await txn.send_offsets({TopicPartition("in", 0): 5}, "g", 0.2)
        assert failed.value.error is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        assert txn.state is TransactionState.ABORTABLE_ERROR
        assert len(conn.sent) > 1  # retried before giving up
        assert not txn.started  # so the abort sends no EndTxn
        await txn.abort(5)
        assert txn.state is TransactionState.READY
        assert all(type(r).__name__ == "AddOffsetsToTxnRequest" for r in conn.sent)

    asyncio.run(main())


def test_offsets_go_to_the_group_coordinator_with_the_members_generation() -> None:
    async def main() -> None:
        from streamcore.client.types import ConsumerGroupMetadata, OffsetAndMetadata

        committed = SimpleNamespace(
            topics=[SimpleNamespace(name="in", partitions=[SimpleNamespace(partition_index=0, error_code=0)])]
        )
        txn, conn, _ = _scripted(
            {"AddOffsetsToTxnRequest": [_code(ErrorCode.NO_ERROR)], "TxnOffsetCommitRequest": [committed]}
        )
        txn.state = TransactionState.IN_TRANSACTION
        meta = ConsumerGroupMetadata("g", 4, "member-1", "static-1")
        await txn.send_offsets({("in", 0): OffsetAndMetadata(5, "m")}, meta, 5)
        add, commit = conn.sent
        assert add.group_id == "g" and txn.started
        assert (commit.group_id, commit.generation_id, commit.member_id, commit.group_instance_id) == (
            "g",
            4,
            "member-1",
            "static-1",
        )
        part = commit.topics[0].partitions[0]
        assert (
            commit.topics[0].name,
            part.partition_index,
            part.committed_offset,
            part.committed_metadata,
        ) == (
            "in",
            0,
            5,
            "m",
        )

    asyncio.run(main())


def test_a_fenced_end_txn_is_fatal() -> None:
    async def main() -> None:
        txn, _, _ = _scripted({"EndTxnRequest": [_code(ErrorCode.PRODUCER_FENCED)]})
        txn.state = TransactionState.IN_TRANSACTION
        txn.started = True
        with pytest.raises(FatalTransactionError) as fenced:
            await txn.commit(5)
        assert fenced.value.error is ErrorCode.PRODUCER_FENCED
        assert txn.state is TransactionState.FATAL_ERROR

    asyncio.run(main())


def test_transactional_batches_carry_the_flag_the_producer_id_epoch_and_sequences() -> None:
    from streamcore.client.accumulator import ProducerBatch
    from streamcore.codec import decode_batch

    async def main() -> None:
        core, txn = _producer()
        seq = core.sequencer
        assert seq is not None
        seq.producer_id, seq.producer_epoch = 42, 7
        tp = TopicPartition("t", 0)
        first, second = ProducerBatch(tp, 0.0, 60.0), ProducerBatch(tp, 0.0, 60.0)
        for batch, n in ((first, 3), (second, 2)):
            for i in range(n):
                batch.add(b"v%d" % i, None, None, None, 10, None)
            core.sender._encode(batch)
        got = [decode_batch(b.encoded) for b in (first, second)]  # type: ignore[arg-type]
        assert [(b.is_transactional, b.producer_id, b.producer_epoch, b.base_sequence) for b in got] == [
            (True, 42, 7, 0),
            (True, 42, 7, 3),
        ]
        core.cluster.close()

    asyncio.run(main())
