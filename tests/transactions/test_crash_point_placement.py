"""Each test crash point (broker/transactions/crash_points.py) fires where its name says,
and the coordinator recovers from the state it leaves: a transaction whose
PrepareCommit was logged is committed after the restart, one that never got that far
is aborted (by the producer's successor), and the read_committed view and the group's
offsets follow.

In process, on both twins: the "crash" is an exception raised at the point, after
which the broker state is closed without the coordinator finishing anything, and
opened again (what a SIGKILL leaves on disk is what the appends had written, as here).
test_crash_points.py does the same with real SIGKILLs and confluent-kafka.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import txn_offset_commit
from streamcore.broker.transactions import OFFSETS_PARTITION, TxnState
from streamcore.broker.transactions.crash_points import (
    ENV_VAR,
    POINTS,
    CrashPoint,
    crash_point_from_environment,
)
from streamcore.broker.transactions.log_format import decode_value
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic,
)
from streamcore.storage.txn_index import CONTROL_ABORT, CONTROL_KEY

from .harness import PATIENCE_S, Clock, attach, batches, close, open_state, produce, run, txn_batch

E = ErrorCode
NONE = E.NO_ERROR.code
TID = "ctp"
T0, T1 = ("out", 0), ("out", 1)


class Crashed(Exception):
    """Raised where the broker process would have died."""


def die(point: str) -> None:
    raise Crashed(point)


def state_log_states(coord: Any) -> list[TxnState]:
    """The state of every record of TID in ``__transaction_state``, in log order."""
    out = []
    for batch in batches(coord._log):
        for record in batch.records:
            if record.value is not None:
                out.append(TxnState(decode_value(record.value).state))
    return out


def markers(state: Any, tp: tuple[str, int]) -> int:
    log = state.topics.offsets_log() if tp == OFFSETS_PARTITION else state.topics.log(*tp)
    return sum(1 for b in batches(log) if b.is_control)


def read_committed(state: Any, coord: Any, tp: tuple[str, int]) -> list[bytes]:
    """Values a read_committed consumer of ``tp`` gets (Kafka's consumer algorithm: the
    batches below the LSO, less those of the aborted transactions the fetch lists)."""
    log = state.topics.log(*tp)
    lso = coord.lso(*tp)
    aborted = sorted(coord.aborted_transactions(*tp, 0, lso), key=lambda a: a[1])
    aborting: set[int] = set()
    out = []
    for batch in batches(log):
        if batch.base_offset >= lso:
            break
        while aborted and aborted[0][1] <= batch.base_offset:
            aborting.add(aborted.pop(0)[0])
        if batch.is_control:
            key = batch.records[0].key
            if key is not None and CONTROL_KEY.unpack(key)[1] == CONTROL_ABORT:
                aborting.discard(batch.producer_id)
            continue
        if batch.is_transactional and batch.producer_id in aborting:
            continue
        out.extend(r.value for r in batch.records)
    return out


def offset_commit_request(pid: int, epoch: int, offset: int) -> TxnOffsetCommitRequest:
    return TxnOffsetCommitRequest(
        transactional_id=TID,
        group_id="g",
        producer_id=pid,
        producer_epoch=epoch,
        topics=[
            TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic(
                name="in",
                partitions=[
                    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=offset
                    )
                ],
            )
        ],
    )


async def transaction(state: Any, coord: Any, pid: int, epoch: int, n: int, commit: bool, seq: int) -> None:
    """One consume-transform-produce round: AddPartitions, a record in each partition,
    AddOffsets, TxnOffsetCommit (through the handler) of offset ``n``, EndTxn.
    ``seq``: the producer's next sequence number in each partition."""
    assert await coord.add_partitions(TID, pid, epoch, [T0, T1]) == NONE
    for i, tp in enumerate((T0, T1)):
        batch = txn_batch(pid, epoch, seq, [b"r%d-%d" % (n, i)])
        await produce(state, *tp, batch, transactional_id=TID)
    assert await coord.add_offsets(TID, pid, epoch, "g") == NONE
    ctx = RequestContext(txn_offset_commit.API_KEY, 3, 1, "test", "127.0.0.1:1")
    response = await txn_offset_commit.handle(state, ctx, offset_commit_request(pid, epoch, n))
    assert [p.error_code for t in response.topics for p in t.partitions] == [NONE]
    assert await coord.end_transaction(TID, pid, epoch, commit) == NONE


# (point, nth, the transaction's outcome asked for, state logged at the crash, markers
# written then, outcome after the restart). Every case first commits a transaction
# whole (records r0-*, offset 0) except before/after_add_partitions_logged, whose
# first AddPartitions is the second transaction's.
CASES = [
    ("before_add_partitions_logged", 3, True, TxnState.COMPLETE_COMMIT, 0, "aborted"),
    ("after_add_partitions_logged", 3, True, TxnState.ONGOING, 0, "aborted"),
    ("after_txn_offset_commit", 2, True, TxnState.ONGOING, 0, "aborted"),
    ("before_prepare_logged", 2, True, TxnState.ONGOING, 0, "aborted"),
    ("after_prepare_commit_logged", 2, True, TxnState.PREPARE_COMMIT, 0, "committed"),
    ("after_prepare_abort_logged", 1, False, TxnState.PREPARE_ABORT, 0, "aborted"),
    ("between_markers", 2, True, TxnState.PREPARE_COMMIT, 1, "committed"),
    ("after_markers_before_complete", 2, True, TxnState.PREPARE_COMMIT, 3, "committed"),
]


def test_every_point_has_a_case() -> None:
    assert {case[0] for case in CASES} == POINTS


@pytest.mark.parametrize(("point", "nth", "commit", "logged", "written", "outcome"), CASES)
def test_crash_point_and_recovery(
    tmp_path: Any, point: str, nth: int, commit: bool, logged: TxnState, written: int, outcome: str
) -> None:
    clock = Clock()
    state = open_state(tmp_path / "data")
    state.topics.create_topic("out", 2)
    state.topics.create_topic("in", 1)
    coord = attach(state, clock=clock)
    coord.crash_at = CrashPoint(point, nth, die=die)

    async def before_crash() -> int:
        result = await coord.init_producer_id(TID, 60_000)
        if point != "after_prepare_abort_logged":
            await transaction(state, coord, result.producer_id, result.producer_epoch, 0, True, 0)
        with pytest.raises(Crashed, match=point):
            await transaction(
                state,
                coord,
                result.producer_id,
                result.producer_epoch,
                1,
                commit,
                1 if point != "after_prepare_abort_logged" else 0,
            )
        return result.producer_epoch

    epoch = run(before_crash())
    first_committed = point != "after_prepare_abort_logged"
    # What was on disk when the process died.
    assert state_log_states(coord)[-1] is logged
    before = 3 if first_committed else 0  # the first transaction's markers
    assert sum(markers(state, tp) for tp in (T0, T1, OFFSETS_PARTITION)) - before == written
    close(state)

    state = open_state(tmp_path / "data")
    coord = attach(state, clock=clock)
    assert coord.crash_at is None  # the variable is not set in this process
    expected = {T0: [b"r0-0"], T1: [b"r0-1"]} if first_committed else {T0: [], T1: []}
    if outcome == "committed":
        expected[T0].append(b"r1-0")
        expected[T1].append(b"r1-1")
    offset = 1 if outcome == "committed" else 0 if first_committed else None

    def check_views() -> None:
        for tp in (T0, T1):
            assert read_committed(state, coord, tp) == expected[tp]
            assert coord.lso(*tp) == state.topics.log(*tp).high_watermark
        assert coord.lso(*OFFSETS_PARTITION) == state.topics.offsets_log().high_watermark
        got = state.offsets.fetch("g").get(("in", 0))
        assert (got.offset if got is not None else None) == offset
        assert state.offsets.pending_partitions("g") == set()

    try:

        async def recover() -> None:
            await coord.tick()  # what the runtime does at start: resumes Prepare* markers
            deadline = time.monotonic() + PATIENCE_S
            while time.monotonic() < deadline:
                meta = coord.metadata(TID)
                if meta.pending is None and not meta.state.is_prepare:
                    break
                await asyncio.sleep(0.01)
            # The producer's successor: its InitProducerId aborts what is still open.
            deadline = time.monotonic() + PATIENCE_S
            while True:
                result = await coord.init_producer_id(TID, 60_000)
                if result.error_code != E.CONCURRENT_TRANSACTIONS.code or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            assert result.error_code == NONE, result
            assert result.producer_epoch > epoch
            check_views()
            # ... and runs a transaction of its own.
            await transaction(state, coord, result.producer_id, result.producer_epoch, 5, True, 0)

        run(recover())
        assert coord.metadata(TID).state is TxnState.COMPLETE_COMMIT
        expected[T0].append(b"r5-0")
        expected[T1].append(b"r5-1")
        offset = 5
        check_views()
    finally:
        close(state)


def test_the_point_fires_on_its_nth_pass_only() -> None:
    fired: list[str] = []
    crash = CrashPoint.parse("between_markers:3", die=fired.append)
    assert (crash.point, crash.nth) == ("between_markers", 3)
    for _ in range(2):
        assert crash.armed("between_markers")
        crash.reached("between_markers")
        crash.reached("after_prepare_commit_logged")  # another point: not counted
    assert fired == []
    crash.reached("between_markers")
    assert fired == ["between_markers"]
    assert not crash.armed("between_markers")
    crash.reached("between_markers")
    assert fired == ["between_markers"]


@pytest.mark.parametrize("spec", ["no_such_point", "between_markers:0", "between_markers:x", ":2"])
def test_a_bad_specification_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=ENV_VAR):
        crash_point_from_environment({ENV_VAR: spec})


def test_unset_or_empty_arms_nothing() -> None:
    assert crash_point_from_environment({}) is None
    assert crash_point_from_environment({ENV_VAR: " "}) is None
    assert crash_point_from_environment({ENV_VAR: "after_markers_before_complete"}).nth == 1  # type: ignore[union-attr]
