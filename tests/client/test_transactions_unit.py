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
