"""The state machine of one transactional id, as Kafka's transaction coordinator runs it.

A :class:`TransactionMetadata` is what the coordinator knows about one
``transactional.id``: its producer id and epoch, the state of its current
transaction, the partitions in it, its timeout and timestamps.

Every change goes through two steps, so that memory never runs ahead of the
``__transaction_state`` log:

1. ``prepare_*`` checks the transition is legal, marks the metadata *pending* (a
   second request for the same id meanwhile gets CONCURRENT_TRANSACTIONS) and
   returns a :class:`TxnTransit`, the record to append;
2. after the append is durable, :meth:`TransactionMetadata.complete` applies it; after
   a failed append, :meth:`TransactionMetadata.cancel` drops the pending mark.

States and their legal predecessors (Kafka's ``TransactionState``)::

    Empty              <- Empty, CompleteCommit, CompleteAbort    (InitProducerId)
    Ongoing            <- Ongoing, Empty, CompleteCommit, CompleteAbort (AddPartitions/AddOffsets)
    PrepareCommit      <- Ongoing                                 (EndTxn commit)
    PrepareAbort       <- Ongoing, PrepareEpochFence              (EndTxn abort, fencing, timeout)
    CompleteCommit     <- PrepareCommit                           (markers written)
    CompleteAbort      <- PrepareAbort                            (markers written)
    Dead               <- Empty, CompleteCommit, CompleteAbort    (transactional id expired)
    PrepareEpochFence  <- Ongoing                                 (only ever pending)

This is transaction protocol version 0/1 (clients up to EndTxn v4): the epoch changes
at InitProducerId and when the coordinator fences a producer, not at every EndTxn
(KIP-890 part 2 is not implemented).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from streamcore.errors import ErrorCode

__all__ = [
    "MAX_EPOCH",
    "NO_PRODUCER_EPOCH",
    "NO_PRODUCER_ID",
    "IllegalTransition",
    "TopicPartition",
    "TransactionMetadata",
    "TxnState",
    "TxnTransit",
    "epoch_exhausted",
]

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
#: Largest int16 epoch. Clients are never given MAX_EPOCH - 1 or above, so the
#: coordinator can always fence a producer with one more bump.
MAX_EPOCH = 2**15 - 1

#: (topic, partition)
TopicPartition = tuple[str, int]


class IllegalTransition(RuntimeError):
    """A transition the state machine forbids: a coordinator bug, never a client error."""


class TxnState(enum.IntEnum):
    """Transaction states; the value is the id stored in ``__transaction_state``."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def display_name(self) -> str:
        """Kafka's name of the state, as DescribeTransactions/ListTransactions report it."""
        return _NAMES[self]

    @classmethod
    def from_name(cls, name: str) -> TxnState | None:
        """The state Kafka calls ``name`` ("Ongoing", "PrepareCommit", ...), None if none."""
        return _BY_NAME.get(name)

    @property
    def is_prepare(self) -> bool:
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def is_complete(self) -> bool:
        return self in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


_NAMES = {
    TxnState.EMPTY: "Empty",
    TxnState.ONGOING: "Ongoing",
    TxnState.PREPARE_COMMIT: "PrepareCommit",
    TxnState.PREPARE_ABORT: "PrepareAbort",
    TxnState.COMPLETE_COMMIT: "CompleteCommit",
    TxnState.COMPLETE_ABORT: "CompleteAbort",
    TxnState.DEAD: "Dead",
    TxnState.PREPARE_EPOCH_FENCE: "PrepareEpochFence",
}
_BY_NAME = {name: state for state, name in _NAMES.items()}

_S = TxnState
_VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_ABORT, _S.COMPLETE_COMMIT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
}


def epoch_exhausted(epoch: int) -> bool:
    """True when ``epoch`` leaves no room for a fencing bump: a new producer id is due."""
    return epoch >= MAX_EPOCH - 1


@dataclass(frozen=True)
class TxnTransit:
    """The target of a transition: what the ``__transaction_state`` record will say."""

    producer_id: int
    #: The producer id before the transition (not persisted in value v0).
    previous_producer_id: int
    producer_epoch: int
    #: The epoch before a bump, so that a retried InitProducerId gets the same answer
    #: (not persisted: -1 after a restart, as in Kafka).
    last_producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    #: When the transaction began (first partition added), ms; -1 when none.
    start_ms: int
    last_update_ms: int


@dataclass
class TransactionMetadata:
    """What the coordinator knows about one transactional id (see the module doc)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState
    last_update_ms: int
    start_ms: int = -1
    last_producer_epoch: int = NO_PRODUCER_EPOCH
    previous_producer_id: int = NO_PRODUCER_ID
    partitions: set[TopicPartition] = field(default_factory=set)
    #: The state a prepared transition is heading to; None when none is in flight.
    pending: TxnState | None = None
    #: A fencing bump whose write failed: the next fencing attempt reuses its epoch
    #: instead of bumping again (it was never handed to anyone).
    has_failed_epoch_fence: bool = False

    # ------------------------------------------------------------------ queries

    @property
    def epoch_exhausted(self) -> bool:
        return epoch_exhausted(self.producer_epoch)

    @property
    def has_pending_transaction(self) -> bool:
        return self.state in (TxnState.ONGOING, TxnState.PREPARE_ABORT, TxnState.PREPARE_COMMIT)

    def snapshot(self) -> TxnTransit:
        """The current state as a transit record (what loading it back gives)."""
        return TxnTransit(
            self.producer_id,
            self.previous_producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            self.state,
            frozenset(self.partitions),
            self.start_ms,
            self.last_update_ms,
        )

    @classmethod
    def from_transit(cls, transactional_id: str, transit: TxnTransit) -> TransactionMetadata:
        """Metadata as a loaded ``__transaction_state`` record describes it."""
        return cls(
            transactional_id=transactional_id,
            producer_id=transit.producer_id,
            producer_epoch=transit.producer_epoch,
            timeout_ms=transit.timeout_ms,
            state=transit.state,
            last_update_ms=transit.last_update_ms,
            start_ms=transit.start_ms,
            last_producer_epoch=transit.last_producer_epoch,
            previous_producer_id=transit.previous_producer_id,
            partitions=set(transit.partitions) if transit.state is not TxnState.EMPTY else set(),
        )

    # ------------------------------------------------------------------ preparing transitions

    def _prepare(
        self,
        state: TxnState,
        producer_id: int,
        epoch: int,
        last_epoch: int,
        timeout_ms: int,
        partitions: frozenset[TopicPartition],
        start_ms: int,
        now_ms: int,
    ) -> TxnTransit:
        if self.pending is not None:
            raise IllegalTransition(
                f"{self.transactional_id}: preparing {state.display_name} while "
                f"{self.pending.display_name} is pending"
            )
        if producer_id < 0:
            raise IllegalTransition(f"{self.transactional_id}: illegal producer id {producer_id}")
        if state is not TxnState.DEAD and epoch < 0:
            raise IllegalTransition(f"{self.transactional_id}: illegal producer epoch {epoch}")
        if self.state not in _VALID_PREVIOUS[state]:
            raise IllegalTransition(
                f"{self.transactional_id}: {state.display_name} cannot follow {self.state.display_name}"
            )
        self.pending = state
        return TxnTransit(
            producer_id,
            self.producer_id,
            epoch,
            last_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            now_ms,
        )

    def prepare_increment_epoch(
        self, timeout_ms: int, expected_epoch: int | None, now_ms: int
    ) -> tuple[int, TxnTransit | None]:
        """InitProducerId on an idle id: the next epoch, in state Empty.

        ``expected_epoch`` is the epoch a v3+ client names (None: it names none).
        Returns (error code, transit): PRODUCER_FENCED when the named epoch is neither
        the current one nor the one before a bump this client may be retrying.
        """
        if self.epoch_exhausted:
            raise IllegalTransition(
                f"{self.transactional_id}: epochs of producer {self.producer_id} exhausted"
            )
        bumped = self.producer_epoch + 1
        if expected_epoch is None:
            epoch, last = bumped, NO_PRODUCER_EPOCH
        elif self.producer_epoch == NO_PRODUCER_EPOCH or expected_epoch == self.producer_epoch:
            epoch, last = bumped, self.producer_epoch
        elif expected_epoch == self.last_producer_epoch:
            # A retry of a bump that succeeded: same answer, no second bump.
            epoch, last = self.producer_epoch, self.last_producer_epoch
        else:
            return ErrorCode.PRODUCER_FENCED.code, None
        return ErrorCode.NO_ERROR.code, self._prepare(
            TxnState.EMPTY, self.producer_id, epoch, last, timeout_ms, frozenset(), -1, now_ms
        )

    def prepare_producer_id_rotation(
        self, new_producer_id: int, timeout_ms: int, now_ms: int, record_last_epoch: bool
    ) -> TxnTransit:
        """InitProducerId once the epochs of the current producer id are used up."""
        if self.has_pending_transaction:
            raise IllegalTransition(f"{self.transactional_id}: rotating producer ids with a transaction open")
        last = self.producer_epoch if record_last_epoch else NO_PRODUCER_EPOCH
        return self._prepare(TxnState.EMPTY, new_producer_id, 0, last, timeout_ms, frozenset(), -1, now_ms)

    def begin_epoch_fence(self) -> int:
        """Fence the current producer before aborting its transaction: the epoch goes up
        at once (in memory), so the old producer's requests fail from now on. Returns the
        fencing epoch. The abort is then prepared with :meth:`prepare_end`."""
        if self.producer_epoch >= MAX_EPOCH:
            raise IllegalTransition(f"{self.transactional_id}: cannot fence past epoch {MAX_EPOCH}")
        if self.state is not TxnState.ONGOING or self.pending is not None:
            raise IllegalTransition(f"{self.transactional_id}: fencing needs an idle Ongoing transaction")
        if not self.has_failed_epoch_fence:
            self.producer_epoch += 1
        self.last_producer_epoch = NO_PRODUCER_EPOCH
        return self.producer_epoch

    def prepare_add_partitions(self, partitions: frozenset[TopicPartition], now_ms: int) -> TxnTransit:
        """AddPartitionsToTxn/AddOffsetsToTxn: Ongoing with these partitions added; a
        transaction begins (its start time set) when none was open."""
        start = (
            now_ms
            if self.state in (TxnState.EMPTY, TxnState.COMPLETE_ABORT, TxnState.COMPLETE_COMMIT)
            else self.start_ms
        )
        return self._prepare(
            TxnState.ONGOING,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            frozenset(self.partitions | partitions),
            start,
            now_ms,
        )

    def prepare_end(self, commit: bool, now_ms: int) -> TxnTransit:
        """EndTxn (or an abort by the coordinator): PrepareCommit or PrepareAbort."""
        return self._prepare(
            TxnState.PREPARE_COMMIT if commit else TxnState.PREPARE_ABORT,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            frozenset(self.partitions),
            self.start_ms,
            now_ms,
        )

    def prepare_complete(self, now_ms: int) -> TxnTransit:
        """Every marker is written: CompleteCommit or CompleteAbort, no partitions left."""
        if not self.state.is_prepare:
            raise IllegalTransition(f"{self.transactional_id}: completing from {self.state.display_name}")
        self.has_failed_epoch_fence = False
        state = TxnState.COMPLETE_COMMIT if self.state is TxnState.PREPARE_COMMIT else TxnState.COMPLETE_ABORT
        return self._prepare(
            state,
            self.producer_id,
            self.producer_epoch,
            self.producer_epoch,
            self.timeout_ms,
            frozenset(),
            self.start_ms,
            now_ms,
        )

    def prepare_dead(self) -> TxnTransit:
        """The transactional id expired: written as a tombstone, then forgotten."""
        return self._prepare(
            TxnState.DEAD,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            frozenset(),
            self.start_ms,
            self.last_update_ms,
        )

    # ------------------------------------------------------------------ completing them

    def cancel(self) -> None:
        """The prepared transition's record was not written: nothing changes."""
        self.pending = None

    def _valid_epoch(self, transit: TxnTransit) -> bool:
        return transit.producer_epoch == self.producer_epoch and transit.producer_id == self.producer_id

    def _valid_bump(self, transit: TxnTransit) -> bool:
        return transit.producer_epoch == self.producer_epoch + 1 or (
            transit.producer_epoch == 0 and transit.producer_id != self.producer_id
        )

    def complete(self, transit: TxnTransit) -> None:
        """Apply a prepared transition whose record is now durable.

        Checks, as Kafka does, that the record is the one prepared and is consistent
        with the current state; raises IllegalTransition otherwise.
        """
        to = self.pending
        if to is None or to is not transit.state:
            raise IllegalTransition(
                f"{self.transactional_id}: completing {transit.state!r} but {to!r} is pending"
            )
        if to is TxnState.EMPTY:
            if (
                (self.producer_epoch != transit.producer_epoch and not self._valid_bump(transit))
                or transit.partitions
                or transit.start_ms != -1
            ):
                raise IllegalTransition(f"{self.transactional_id}: inconsistent Empty transition {transit}")
            self.timeout_ms = transit.timeout_ms
            self.producer_epoch = transit.producer_epoch
            self.last_producer_epoch = transit.last_producer_epoch
            self.producer_id = transit.producer_id
            self.previous_producer_id = transit.previous_producer_id
        elif to is TxnState.ONGOING:
            if (
                not self._valid_epoch(transit)
                or not self.partitions <= transit.partitions
                or self.timeout_ms != transit.timeout_ms
            ):
                raise IllegalTransition(f"{self.transactional_id}: inconsistent Ongoing transition {transit}")
            self.start_ms = transit.start_ms
            self.partitions |= transit.partitions
        elif to.is_prepare:
            if (
                not self._valid_epoch(transit)
                or self.partitions != transit.partitions
                or self.timeout_ms != transit.timeout_ms
                or self.start_ms != transit.start_ms
            ):
                raise IllegalTransition(f"{self.transactional_id}: inconsistent {to.display_name} {transit}")
        elif to.is_complete:
            if (
                not self._valid_epoch(transit)
                or self.timeout_ms != transit.timeout_ms
                or transit.start_ms == -1
            ):
                raise IllegalTransition(f"{self.transactional_id}: inconsistent {to.display_name} {transit}")
            self.start_ms = transit.start_ms
            self.partitions.clear()
        else:
            # Dead ends in removal from the cache; PrepareEpochFence is only ever pending.
            raise IllegalTransition(f"{self.transactional_id}: {to.display_name} is never completed")
        self.last_update_ms = transit.last_update_ms
        self.pending = None
        self.state = to
