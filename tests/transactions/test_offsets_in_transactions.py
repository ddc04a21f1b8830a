"""Offsets committed in a transaction: pending until the COMMIT marker, dropped on ABORT, replayed alike."""

from __future__ import annotations

from streamcore.broker.offset_store import CommittedOffset, OffsetStore
from streamcore.broker.transactions import OFFSETS_PARTITION, TxnState, build_marker
from streamcore.codec import decode_batches
from streamcore.codec.batch_header import TRANSACTIONAL_FLAG
from streamcore.errors import ErrorCode
from streamcore.storage import Log

from .harness import Clock, attach, close, open_state, run

NONE = ErrorCode.NO_ERROR.code


def open_log(tmp_path):
    return Log(tmp_path / "__consumer_offsets-0", fsync="never")


def test_pending_until_commit_then_visible_and_replayed(tmp_path):
    clock = Clock()
    with open_log(tmp_path) as log:
        store = OffsetStore(log, wall_clock_ms=clock)
        store.commit("g", [("in", 0, 5, -1, "")])
        codes = run(
            store.commit_transactional_async("g", 42, 3, [("in", 0, 10, -1, "m"), ("in", 1, 20, -1, "")])
        )
        assert codes == {("in", 0): NONE, ("in", 1): NONE}
        # Invisible while the transaction is open.
        assert store.fetch("g") == {("in", 0): CommittedOffset(5, -1, "", clock.now)}
        assert store.pending_partitions("g") == {("in", 0), ("in", 1)}
        (batch,) = [b for b in decode_batches(log.read(0, 1 << 20)) if b.attributes & TRANSACTIONAL_FLAG]
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (42, 3, 0)
        log.append(build_marker(42, 3, commit=True))
        assert store.complete_transaction(42, True) == 2
        assert store.fetch("g")[("in", 0)].offset == 10
        assert store.fetch("g")[("in", 1)].offset == 20
        assert store.pending_partitions("g") == set()
    with open_log(tmp_path) as log:
        again = OffsetStore(log, wall_clock_ms=clock)
        assert {tp: c.offset for tp, c in again.fetch("g").items()} == {("in", 0): 10, ("in", 1): 20}


def test_abort_drops_them_and_replay_agrees(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        store.commit("g", [("in", 0, 5, -1, "")])
        run(store.commit_transactional_async("g", 42, 0, [("in", 0, 10, -1, "")]))
        log.append(build_marker(42, 0, commit=False))
        assert store.complete_transaction(42, False) == 1
        assert store.fetch("g")[("in", 0)].offset == 5
    with open_log(tmp_path) as log:
        assert OffsetStore(log).fetch("g")[("in", 0)].offset == 5


def test_replay_keeps_an_undecided_transaction_pending(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        run(store.commit_transactional_async("g", 7, 0, [("in", 0, 10, -1, "")]))
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        assert store.fetch("g") == {}
        assert store.pending_partitions("g") == {("in", 0)}
        assert store.pending_producers() == [7]
        log.append(build_marker(7, 0, commit=True))
        store.complete_transaction(7, True)
        assert store.fetch("g")[("in", 0)].offset == 10


def test_a_later_plain_commit_wins_over_a_pending_one(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log)
        run(store.commit_transactional_async("g", 7, 0, [("in", 0, 10, -1, ""), ("in", 1, 11, -1, "")]))
        store.commit("g", [("in", 0, 99, -1, "")])
        log.append(build_marker(7, 0, commit=True))
        store.complete_transaction(7, True)
        assert {tp: c.offset for tp, c in store.fetch("g").items()} == {("in", 0): 99, ("in", 1): 11}
    with open_log(tmp_path) as log:
        replayed = OffsetStore(log)
        assert {tp: c.offset for tp, c in replayed.fetch("g").items()} == {("in", 0): 99, ("in", 1): 11}


def test_group_validation_applies(tmp_path):
    with open_log(tmp_path) as log:
        store = OffsetStore(log, validator=lambda g, gen, m, i: ErrorCode.ILLEGAL_GENERATION.code)
        codes = run(store.commit_transactional_async("g", 7, 0, [("in", 0, 10, -1, "")], generation_id=3))
        assert codes == {("in", 0): ErrorCode.ILLEGAL_GENERATION.code}
        assert store.pending_partitions("g") == set() and log.high_watermark == 0


def test_coordinator_marker_completes_the_offsets(tmp_path):
    state = open_state(tmp_path / "data")
    coord = attach(state)

    async def main(commit: bool, offset: int):
        result = await coord.init_producer_id("tx", 60_000)
        pid, epoch = result.producer_id, result.producer_epoch
        assert await coord.add_offsets("tx", pid, epoch, "g") == NONE
        assert coord.metadata("tx").partitions == {OFFSETS_PARTITION}
        assert coord.verify("tx", pid, epoch, OFFSETS_PARTITION) == NONE
        codes = await state.offsets.commit_transactional_async("g", pid, epoch, [("in", 0, offset, -1, "")])
        assert codes == {("in", 0): NONE}
        assert await coord.end_transaction("tx", pid, epoch, commit) == NONE
        return coord.metadata("tx").state

    try:
        assert run(main(True, 10)) is TxnState.COMPLETE_COMMIT
        assert state.offsets.fetch("g")[("in", 0)].offset == 10
        assert run(main(False, 20)) is TxnState.COMPLETE_ABORT
        assert state.offsets.fetch("g")[("in", 0)].offset == 10
        assert state.offsets.pending_producers() == []
    finally:
        close(state)
