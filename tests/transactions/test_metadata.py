"""The transactional id state machine: legal transitions, epochs, fencing, prepare/complete."""

from __future__ import annotations

import pytest

from streamcore.broker.transactions.metadata import (
    MAX_EPOCH,
    IllegalTransition,
    TransactionMetadata,
    TxnState,
)
from streamcore.errors import ErrorCode

S = TxnState
T0 = 1_000


def fresh(epoch: int = -1, state: TxnState = S.EMPTY) -> TransactionMetadata:
    return TransactionMetadata(
        "tx", producer_id=5, producer_epoch=epoch, timeout_ms=60_000, state=state, last_update_ms=T0
    )


def init(meta: TransactionMetadata, expected: int | None = None, timeout: int = 60_000, now: int = T0) -> int:
    code, transit = meta.prepare_increment_epoch(timeout, expected, now)
    assert transit is not None, code
    meta.complete(transit)
    return meta.producer_epoch


def begin(meta: TransactionMetadata, *parts: tuple[str, int], now: int = T0 + 10) -> None:
    transit = meta.prepare_add_partitions(frozenset(parts), now)
    meta.complete(transit)


def test_state_names_and_ids_are_kafkas():
    assert [(s.value, s.display_name) for s in TxnState] == [
        (0, "Empty"),
        (1, "Ongoing"),
        (2, "PrepareCommit"),
        (3, "PrepareAbort"),
        (4, "CompleteCommit"),
        (5, "CompleteAbort"),
        (6, "Dead"),
        (7, "PrepareEpochFence"),
    ]
    assert TxnState.from_name("PrepareAbort") is S.PREPARE_ABORT
    assert TxnState.from_name("prepareabort") is None


def test_a_commit_goes_empty_ongoing_prepare_complete():
    meta = fresh()
    assert init(meta) == 0
    begin(meta, ("t", 0))
    begin(meta, ("t", 1), now=T0 + 20)
    assert meta.state is S.ONGOING
    assert meta.partitions == {("t", 0), ("t", 1)}
    assert meta.start_ms == T0 + 10  # the first AddPartitions started it
    transit = meta.prepare_end(True, T0 + 30)
    assert meta.pending is S.PREPARE_COMMIT and meta.state is S.ONGOING  # nothing applied yet
    meta.complete(transit)
    assert meta.state is S.PREPARE_COMMIT and meta.pending is None
    meta.complete(meta.prepare_complete(T0 + 40))
    assert meta.state is S.COMPLETE_COMMIT
    assert meta.partitions == set()
    assert meta.last_update_ms == T0 + 40
    assert meta.producer_epoch == 0  # protocol v0/1: EndTxn does not bump the epoch
    # The next transaction restarts the clock.
    begin(meta, ("t", 2), now=T0 + 50)
    assert meta.start_ms == T0 + 50


def test_a_cancelled_transition_changes_nothing():
    meta = fresh(0)
    transit = meta.prepare_add_partitions(frozenset({("t", 0)}), T0 + 5)
    meta.cancel()
    assert meta.state is S.EMPTY and meta.partitions == set() and meta.pending is None
    with pytest.raises(IllegalTransition):
        meta.complete(transit)  # nothing is pending any more


@pytest.mark.parametrize(
    ("state", "target"),
    [
        (S.EMPTY, "prepare_end"),
        (S.COMPLETE_COMMIT, "prepare_end"),
        (S.ONGOING, "prepare_complete"),
        (S.EMPTY, "prepare_complete"),
        (S.PREPARE_COMMIT, "prepare_add_partitions"),
        (S.PREPARE_ABORT, "prepare_dead"),
        (S.ONGOING, "prepare_dead"),
    ],
)
def test_illegal_transitions_are_refused(state, target):
    meta = fresh(0, state)
    args = {
        "prepare_end": (True, T0),
        "prepare_complete": (T0,),
        "prepare_add_partitions": (frozenset({("t", 0)}), T0),
        "prepare_dead": (),
    }[target]
    with pytest.raises(IllegalTransition):
        getattr(meta, target)(*args)
    assert meta.pending is None


def test_a_second_transition_cannot_be_prepared_while_one_is_pending():
    meta = fresh(0)
    meta.prepare_add_partitions(frozenset({("t", 0)}), T0)
    with pytest.raises(IllegalTransition):
        meta.prepare_add_partitions(frozenset({("t", 1)}), T0)


def test_init_bumps_the_epoch_and_a_named_epoch_must_match():
    meta = fresh()
    assert init(meta) == 0
    assert init(meta) == 1
    # v3+ clients name their epoch: the current one bumps it...
    assert init(meta, expected=1) == 2
    assert meta.last_producer_epoch == 1
    # ...the one before the last bump is a retry: same answer, no second bump...
    assert init(meta, expected=1) == 2
    # ...any other is a fenced producer.
    code, transit = meta.prepare_increment_epoch(60_000, 0, T0)
    assert (code, transit) == (ErrorCode.PRODUCER_FENCED.code, None)
    assert meta.pending is None


def test_fencing_bumps_the_epoch_in_memory_before_the_abort_is_written():
    meta = fresh(0)
    begin(meta, ("t", 0))
    assert meta.begin_epoch_fence() == 1
    assert meta.producer_epoch == 1  # the old producer's epoch no longer matches
    transit = meta.prepare_end(False, T0 + 20)
    assert transit.state is S.PREPARE_ABORT and transit.producer_epoch == 1
    # The write failed: the next fencing attempt reuses the epoch.
    meta.cancel()
    meta.has_failed_epoch_fence = True
    assert meta.begin_epoch_fence() == 1
    meta.complete(meta.prepare_end(False, T0 + 30))
    meta.complete(meta.prepare_complete(T0 + 40))
    assert meta.state is S.COMPLETE_ABORT and not meta.has_failed_epoch_fence
    # The producer's retried InitProducerId now gets the epoch after the fence.
    assert init(meta) == 2


def test_an_exhausted_epoch_needs_a_new_producer_id():
    meta = fresh(MAX_EPOCH - 1, S.COMPLETE_COMMIT)
    meta.start_ms = T0
    assert meta.epoch_exhausted
    with pytest.raises(IllegalTransition):
        meta.prepare_increment_epoch(60_000, None, T0)
    transit = meta.prepare_producer_id_rotation(77, 30_000, T0 + 1, record_last_epoch=True)
    meta.complete(transit)
    assert (meta.producer_id, meta.producer_epoch, meta.previous_producer_id) == (77, 0, 5)
    assert meta.last_producer_epoch == MAX_EPOCH - 1
    assert meta.timeout_ms == 30_000


def test_completing_checks_the_record_against_the_state():
    meta = fresh(0)
    begin(meta, ("t", 0))
    transit = meta.prepare_end(True, T0 + 20)
    meta.producer_epoch = 3  # something else bumped it meanwhile
    with pytest.raises(IllegalTransition):
        meta.complete(transit)


def test_dead_is_never_completed():
    meta = fresh(0)
    transit = meta.prepare_dead()
    with pytest.raises(IllegalTransition):
        meta.complete(transit)
