"""The transaction coordinator on a real broker state: flows, fencing, timeouts, recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from streamcore.broker.transactions import TransactionSettings, TxnState, parse_marker
from streamcore.broker.transactions.metadata import MAX_EPOCH
from streamcore.errors import ErrorCode, KafkaError

from .harness import Clock, attach, batches, close, open_state, produce, run, txn_batch, until

E = ErrorCode
NONE = E.NO_ERROR.code
TID = "app-1"
T, U = ("t", 0), ("t", 1)


@pytest.fixture
def broker(tmp_path):
    state = open_state(tmp_path / "data")
    state.topics.create_topic("t", 2)
    clock = Clock()
    coord = attach(state, clock=clock)
    yield state, coord, clock
    close(state)


def reopen(state, tmp_path, clock, **kw):
    """Close everything and open the data directory again (a restart)."""
    close(state)
    state = open_state(tmp_path / "data")
    return state, attach(state, clock=clock, **kw)


async def init(coord, tid=TID, timeout=60_000, **kw):
    result = await coord.init_producer_id(tid, timeout, **kw)
    assert result.error_code == NONE, result
    return result.producer_id, result.producer_epoch


def last_batch(state, tp):
    return batches(state.topics.log(*tp))[-1]


def test_commit_writes_markers_and_moves_the_lso(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        assert epoch == 0
        assert await coord.add_partitions(TID, pid, epoch, [T, U]) == NONE
        assert coord.metadata(TID).state is TxnState.ONGOING
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"a", b"b"]), transactional_id=TID)
        await produce(state, "t", 1, txn_batch(pid, epoch, 0, [b"c"]), transactional_id=TID)
        assert coord.lso("t", 0) == 0 and coord.lso("t", 1) == 0
        assert coord.partitions.ongoing("t", 0) == {pid: 0}
        assert await coord.end_transaction(TID, pid, epoch, True) == NONE
        return pid, epoch

    pid, epoch = run(main())
    meta = coord.metadata(TID)
    assert meta.state is TxnState.COMPLETE_COMMIT and meta.partitions == set()
    for tp, marker_offset in ((T, 2), (U, 1)):
        marker = last_batch(state, tp)
        assert marker.is_control and marker.base_offset == marker_offset
        assert parse_marker(state.topics.log(*tp).read(marker_offset, 1)).commit is True
        assert (marker.producer_id, marker.producer_epoch) == (pid, epoch)
        assert coord.lso(*tp) == state.topics.log(*tp).high_watermark
        # Never above the high watermark a response reports beside it.
        assert coord.lso(*tp, high_watermark=1) == 1
        assert coord.aborted_transactions(*tp, 0, 100) == []
    # A retried EndTxn(commit) is answered as done; an abort now is a state error.
    assert run(coord.end_transaction(TID, pid, epoch, True)) == NONE
    assert run(coord.end_transaction(TID, pid, epoch, False)) == E.INVALID_TXN_STATE.code


def test_abort_is_indexed_for_read_committed(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        await produce(state, "t", 0, txn_batch(-1, -1, -1, [b"before"], transactional=False))  # offset 0
        assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"x", b"y"]), transactional_id=TID)  # 1-2
        assert await coord.end_transaction(TID, pid, epoch, False) == NONE  # marker at 3
        return pid

    pid = run(main())
    assert coord.metadata(TID).state is TxnState.COMPLETE_ABORT
    assert coord.aborted_transactions("t", 0, 0, 4) == [(pid, 1)]
    assert coord.aborted_transactions("t", 0, 4, 10) == []
    assert parse_marker(state.topics.log("t", 0).read(3, 1)).commit is False


def test_read_committed_view_never_shows_aborted_or_open_data(broker):
    """What a read_committed consumer reconstructs from LSO, batches and the aborted list."""
    from streamcore.broker.transactions import committed_prefix

    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        other, oe = await init(coord, "app-2")
        for round_, commit in enumerate((True, False, True)):
            assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
            await produce(
                state,
                "t",
                0,
                txn_batch(pid, epoch, round_ * 2, [b"%d-a" % round_, b"%d-b" % round_]),
                transactional_id=TID,
            )
            if round_ == 1:  # another producer's open transaction interleaves
                assert await coord.add_partitions("app-2", other, oe, [T]) == NONE
                await produce(state, "t", 0, txn_batch(other, oe, 0, [b"open"]), transactional_id="app-2")
            assert await coord.end_transaction(TID, pid, epoch, commit) == NONE
        return other

    other = run(main())
    log = state.topics.log("t", 0)
    lso = coord.lso("t", 0)
    assert lso < log.high_watermark  # app-2's transaction holds it back

    def consume() -> list[bytes]:
        data, upper = committed_prefix(log.read(0, 1 << 20), lso)
        aborted = coord.aborted_transactions("t", 0, 0, upper)
        from streamcore.codec import decode_batches

        # Kafka's consumer algorithm: an aborted (pid, first offset) hides that pid's batches
        # from first offset until its ABORT marker.
        dropping: set[int] = set()
        starts = sorted(aborted, key=lambda a: a[1])
        out = []
        for b in decode_batches(bytes(data)):
            while starts and starts[0][1] <= b.base_offset:
                dropping.add(starts.pop(0)[0])
            if b.is_control:
                if b.records and b.records[0].key[3] == 0:
                    dropping.discard(b.producer_id)
                continue
            if b.is_transactional and b.producer_id in dropping:
                continue
            out.extend(r.value for r in b.records)
        return out

    assert consume() == [b"0-a", b"0-b"]  # round 1 aborted; round 2 lies beyond the LSO
    run(coord.end_transaction("app-2", other, 0, False))
    lso = coord.lso("t", 0)
    assert lso == log.high_watermark
    assert consume() == [b"0-a", b"0-b", b"2-a", b"2-b"]


def test_the_lso_never_runs_ahead_of_an_append_in_flight(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        await produce(state, "t", 0, txn_batch(-1, -1, -1, [b"p"] * 3, transactional=False))  # 0-2
        assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
        batch = txn_batch(pid, epoch, 0, [b"x"])
        from streamcore.codec import validate_batch

        log = state.topics.log("t", 0)
        fut = coord.append(
            "t",
            0,
            log,
            batch,
            validate_batch(batch),
            transactional_id=TID,
            api_version=12,
            appender=state.appender,
        )
        # Queued, not yet settled: the transaction is already open at the high watermark.
        assert coord.lso("t", 0) <= 3
        assert (await fut).base_offset == 3
        assert coord.partitions.ongoing("t", 0) == {pid: 3}
        assert coord.lso("t", 0) == 3

    run(main())


def test_produce_checks(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        # Not added to the transaction: INVALID_TXN_STATE for old clients, TRANSACTION_ABORTABLE for v11+.
        for version, code in ((10, E.INVALID_TXN_STATE), (11, E.TRANSACTION_ABORTABLE)):
            with pytest.raises(KafkaError) as info:
                await produce(
                    state, "t", 0, txn_batch(pid, epoch, 0, [b"x"]), transactional_id=TID, api_version=version
                )
            assert info.value.error is code
        assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
        # The wrong epoch is a fenced producer, answered as the partition would.
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, epoch + 1, 0, [b"x"]), transactional_id=TID)
        assert info.value.error is E.INVALID_PRODUCER_EPOCH
        # Another producer id under this transactional id.
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid + 100, 0, 0, [b"x"]), transactional_id=TID)
        assert info.value.error is E.INVALID_PRODUCER_ID_MAPPING
        # Without a transactional id in the request, the producer id finds the transaction.
        assert await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"x"])) == 0
        # A plain batch of a producer with a transaction open here.
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, epoch, 1, [b"y"], transactional=False))
        assert info.value.error is E.INVALID_TXN_STATE
        # Still fine in the other partition, where it has no transaction open.
        assert await produce(state, "t", 1, txn_batch(pid, epoch, 0, [b"y"], transactional=False)) == 0

    run(main())


def test_producer_state_errors(broker):
    state, coord, clock = broker

    async def main():
        assert (await coord.add_partitions("nobody", 1, 0, [T])) == E.INVALID_PRODUCER_ID_MAPPING.code
        assert (await coord.end_transaction("nobody", 1, 0, True)) == E.INVALID_PRODUCER_ID_MAPPING.code
        pid, epoch = await init(coord)
        assert (await coord.add_partitions(TID, pid + 1, epoch, [T])) == E.INVALID_PRODUCER_ID_MAPPING.code
        assert (await coord.add_partitions(TID, pid, epoch + 1, [T])) == E.PRODUCER_FENCED.code
        assert (await coord.end_transaction(TID, pid, epoch, True)) == E.INVALID_TXN_STATE.code  # Empty
        assert (await coord.add_partitions("", pid, epoch, [T])) == E.INVALID_REQUEST.code
        assert (await coord.init_producer_id("", 1000)).error_code == E.INVALID_REQUEST.code
        for timeout in (0, -5, 900_001):
            assert (
                await coord.init_producer_id(TID, timeout)
            ).error_code == E.INVALID_TRANSACTION_TIMEOUT.code
        assert (await coord.init_producer_id(TID, 900_000)).error_code == NONE
        # A v3+ client naming only one of id and epoch.
        assert (await coord.init_producer_id(TID, 1000, producer_id=pid)).error_code == E.INVALID_REQUEST.code

    run(main())


def test_init_fences_the_previous_producer(broker):
    state, coord, clock = broker

    async def main():
        pid, old = await init(coord)
        pid2, new = await init(coord)
        assert (pid2, new) == (pid, old + 1)
        assert await coord.add_partitions(TID, pid, old, [T]) == E.PRODUCER_FENCED.code
        assert await coord.end_transaction(TID, pid, old, True) == E.PRODUCER_FENCED.code
        assert await coord.add_partitions(TID, pid, new, [T]) == NONE
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, old, 0, [b"zombie"]), transactional_id=TID)
        assert info.value.error is E.INVALID_PRODUCER_EPOCH
        # v3+ InitProducerId naming a producer id of another incarnation is fenced too.
        result = await coord.init_producer_id(TID, 60_000, producer_id=pid + 7, producer_epoch=0)
        assert result.error_code == E.PRODUCER_FENCED.code

    run(main())


def test_init_while_a_transaction_is_open_aborts_it_first(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        assert await coord.add_partitions(TID, pid, epoch, [T, U]) == NONE
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"doomed"]), transactional_id=TID)
        result = await coord.init_producer_id(TID, 60_000)
        assert result.error_code == E.CONCURRENT_TRANSACTIONS.code
        meta = coord.metadata(TID)
        assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == epoch + 1
        # The abort markers carry the fencing epoch.
        marker = last_batch(state, T)
        assert marker.is_control and marker.producer_epoch == epoch + 1
        assert parse_marker(state.topics.log("t", 0).read(marker.base_offset, 1)).commit is False
        assert coord.aborted_transactions("t", 0, 0, 10) == [(pid, 0)]
        # The client's retry gets the epoch after the fencing one.
        assert await init(coord) == (pid, epoch + 2)
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, epoch, 1, [b"zombie"]), transactional_id=TID)
        assert info.value.error is E.INVALID_PRODUCER_EPOCH

    run(main())


def test_v3_init_retry_and_epoch_exhaustion(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord)
        pid, bumped = await init(coord, producer_id=pid, producer_epoch=epoch)
        assert bumped == epoch + 1
        # The same request again (the answer was lost): same epoch, no second bump.
        assert await init(coord, producer_id=pid, producer_epoch=epoch) == (pid, bumped)
        # Near the top of the epoch range the producer id changes.
        meta = coord.metadata(TID)
        meta.producer_epoch = MAX_EPOCH - 2
        assert await init(coord) == (pid, MAX_EPOCH - 1)
        new_pid, new_epoch = await init(coord)
        assert new_pid != pid and new_epoch == 0
        assert coord.metadata(TID).previous_producer_id == pid

    run(main())


def test_concurrent_requests_while_markers_are_written(tmp_path):
    state = open_state(tmp_path / "data")
    state.topics.create_topic("t", 2)
    gate = asyncio.Event
    from streamcore.broker.transactions import make_marker_appender

    real = make_marker_appender(state.topics)
    holder = {}

    async def slow_marker(topic, partition, batch):
        await holder["gate"].wait()
        return await real(topic, partition, batch)

    coord = attach(state, append_marker=slow_marker, settings=TransactionSettings(end_txn_wait_ms=10))

    async def main():
        holder["gate"] = gate()
        pid, epoch = await init(coord)
        assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
        # The decision is durable: EndTxn succeeds although the markers wait.
        assert await coord.end_transaction(TID, pid, epoch, True) == NONE
        assert coord.metadata(TID).state is TxnState.PREPARE_COMMIT
        assert await coord.add_partitions(TID, pid, epoch, [U]) == E.CONCURRENT_TRANSACTIONS.code
        assert (await coord.init_producer_id(TID, 60_000)).error_code == E.CONCURRENT_TRANSACTIONS.code
        assert await coord.end_transaction(TID, pid, epoch, True) == E.CONCURRENT_TRANSACTIONS.code
        assert await coord.end_transaction(TID, pid, epoch, False) == E.INVALID_TXN_STATE.code
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"late"]), transactional_id=TID)
        assert info.value.error is E.NOT_ENOUGH_REPLICAS  # retriable for every client
        assert coord.verify_partitions(TID, pid, epoch, [T]) == {T: E.CONCURRENT_TRANSACTIONS.code}
        holder["gate"].set()
        await until(lambda: coord.metadata(TID).state is TxnState.COMPLETE_COMMIT, "CompleteCommit")
        assert await coord.add_partitions(TID, pid, epoch, [U]) == NONE

    try:
        run(main())
    finally:
        close(state)


def test_state_survives_a_restart(tmp_path):
    clock = Clock()
    state = open_state(tmp_path / "data")
    state.topics.create_topic("t", 2)
    coord = attach(state, clock=clock)

    async def first():
        pid, epoch = await init(coord)
        await init(coord, "other", timeout=5_000)
        assert await coord.add_partitions(TID, pid, epoch, [T, U]) == NONE
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"a"]), transactional_id=TID)
        return pid, epoch

    pid, epoch = run(first())
    before = coord.metadata(TID).snapshot()
    state, coord = reopen(state, tmp_path, clock)
    try:
        meta = coord.metadata(TID)
        assert meta.state is TxnState.ONGOING
        # Value v0 does not hold the last epoch and previous producer id (Kafka's too).
        unstored = {"last_producer_epoch": -1, "previous_producer_id": -1}
        assert replace(meta.snapshot(), **unstored) == replace(before, **unstored)
        assert coord.metadata("other").timeout_ms == 5_000
        # The partition state came back from the log: the open transaction holds the LSO.
        assert coord.lso("t", 0) == 0
        assert coord.partitions.ongoing("t", 0) == {pid: 0}

        async def second():
            await produce(state, "t", 0, txn_batch(pid, epoch, 1, [b"b"]), transactional_id=TID)
            assert await coord.end_transaction(TID, pid, epoch, True) == NONE

        run(second())
        assert coord.lso("t", 0) == state.topics.log("t", 0).high_watermark
        # New ids stay above every id handed out before the restart.
        assert run(init(coord, "third"))[0] > pid
    finally:
        close(state)


def test_a_decision_without_its_markers_is_completed_after_a_crash(tmp_path):
    clock = Clock()
    state = open_state(tmp_path / "data")
    state.topics.create_topic("t", 2)
    from streamcore.broker.transactions import make_marker_appender

    real = make_marker_appender(state.topics)

    async def half_markers(topic, partition, batch):
        if partition == 1:
            raise OSError("disk unplugged")
        return await real(topic, partition, batch)

    coord = attach(
        state,
        clock=clock,
        append_marker=half_markers,
        settings=TransactionSettings(end_txn_wait_ms=50, retry_backoff_ms=10),
    )

    async def first():
        pid, epoch = await init(coord)
        assert await coord.add_partitions(TID, pid, epoch, [T, U]) == NONE
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"a"]), transactional_id=TID)
        await produce(state, "t", 1, txn_batch(pid, epoch, 0, [b"b"]), transactional_id=TID)
        assert await coord.end_transaction(TID, pid, epoch, False) == NONE
        assert coord.metadata(TID).state is TxnState.PREPARE_ABORT
        await coord.stop()  # the broker dies with one marker missing
        return pid

    pid = run(first())
    assert coord.aborted_transactions("t", 0, 0, 10) == [(pid, 0)]
    assert coord.lso("t", 1) == 0
    state, coord = reopen(state, tmp_path, clock)
    try:
        assert coord.metadata(TID).state is TxnState.PREPARE_ABORT
        assert coord.lso("t", 1) == 0  # rebuilt from the log: still open there

        async def second():
            assert (await coord.tick())["resumed"] == 1
            await until(lambda: coord.metadata(TID).state is TxnState.COMPLETE_ABORT, "CompleteAbort")

        run(second())
        assert coord.metadata(TID).state is TxnState.COMPLETE_ABORT
        for tp in (T, U):
            assert coord.lso(*tp) == state.topics.log(*tp).high_watermark
            assert coord.aborted_transactions(*tp, 0, 10) == [(pid, 0)]
        # Partition 0 got the marker twice (before and after the crash); the second
        # one found nothing open and changed nothing.
        markers = [b for b in batches(state.topics.log("t", 0)) if b.is_control]
        assert len(markers) == 2
    finally:
        close(state)


def test_timed_out_transactions_are_aborted_and_fenced(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord, timeout=1_000)
        assert await coord.add_partitions(TID, pid, epoch, [T]) == NONE
        await produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"slow"]), transactional_id=TID)
        clock.now += 1_000
        assert (await coord.tick())["aborted"] == 0  # exactly at the timeout: not yet
        clock.now += 1
        assert (await coord.tick())["aborted"] == 1
        await until(lambda: coord.metadata(TID).state is TxnState.COMPLETE_ABORT, "CompleteAbort")
        meta = coord.metadata(TID)
        assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == epoch + 1
        assert coord.lso("t", 0) == state.topics.log("t", 0).high_watermark
        assert coord.aborted_transactions("t", 0, 0, 10) == [(pid, 0)]
        # The producer learns it was fenced.
        assert await coord.end_transaction(TID, pid, epoch, True) == E.PRODUCER_FENCED.code
        with pytest.raises(KafkaError) as info:
            await produce(state, "t", 0, txn_batch(pid, epoch, 1, [b"late"]), transactional_id=TID)
        assert info.value.error is E.INVALID_PRODUCER_EPOCH

    run(main())


def test_idle_transactional_ids_expire(tmp_path):
    clock = Clock()
    state = open_state(tmp_path / "data")
    coord = attach(state, clock=clock, settings=TransactionSettings(transactional_id_expiration_ms=10_000))

    async def main():
        await init(coord, "old")
        clock.now += 5_000
        await init(coord, "young")
        clock.now += 5_001
        assert await coord.expire_transactional_ids() == 1

    run(main())
    assert coord.transactional_ids() == ["young"]
    state, coord = reopen(state, tmp_path, clock)
    try:
        assert coord.transactional_ids() == ["young"]  # the tombstone is durable
    finally:
        close(state)


def test_describe_and_list(broker):
    state, coord, clock = broker

    async def main():
        pid, epoch = await init(coord, "a-1")
        await init(coord, "a-2")
        await init(coord, "b-1")
        clock.now += 10
        assert await coord.add_partitions("a-1", pid, epoch, [U, T]) == NONE
        clock.now += 1_000

    run(main())
    d = coord.describe("a-1")
    assert (d.error_code, d.state, d.producer_id, d.timeout_ms) == (
        NONE,
        "Ongoing",
        coord.metadata("a-1").producer_id,
        60_000,
    )
    assert d.topics == {"t": [0, 1]} and d.start_ms == clock.now - 1_000
    assert coord.describe("nope").error_code == E.TRANSACTIONAL_ID_NOT_FOUND.code
    assert coord.describe("").error_code == E.INVALID_REQUEST.code

    def names(**kw):
        code, unknown, listed = coord.list_transactions(**kw)
        assert code == NONE
        return unknown, [t.transactional_id for t in listed]

    assert names() == ([], ["a-1", "a-2", "b-1"])
    assert names(states=["Ongoing"]) == ([], ["a-1"])
    assert names(states=["Empty", "Bogus"]) == (["Bogus"], ["a-2", "b-1"])
    assert names(producer_ids=[coord.metadata("b-1").producer_id]) == ([], ["b-1"])
    # Running longer than the duration: a-1 has run 1000 ms. Ids without a transaction
    # have no start time (-1), and Kafka's filter keeps them.
    assert names(duration_ms=999) == ([], ["a-1", "a-2", "b-1"])
    assert names(duration_ms=1_000) == ([], ["a-2", "b-1"])
    assert names(states=["Ongoing"], duration_ms=1_000) == ([], [])
    assert names(pattern="a-.*") == ([], ["a-1", "a-2"])
    assert names(pattern="a") == ([], [])  # the whole id must match
    assert coord.list_transactions(pattern="(")[0] == 128  # INVALID_REGULAR_EXPRESSION


def test_verify_partitions_v4(broker):
    state, coord, clock = broker
    pid, epoch = run(init(coord))
    run(coord.add_partitions(TID, pid, epoch, [T]))
    assert coord.verify_partitions(TID, pid, epoch, [T, U]) == {T: NONE, U: E.TRANSACTION_ABORTABLE.code}
    assert coord.verify_partitions(TID, pid, epoch + 1, [T]) == {T: E.PRODUCER_FENCED.code}
    assert coord.verify_partitions("x", pid, epoch, [T]) == {T: E.INVALID_PRODUCER_ID_MAPPING.code}
