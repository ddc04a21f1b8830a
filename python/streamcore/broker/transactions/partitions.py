"""Per-partition transaction state for the broker: LSO, aborted transactions, appends in flight.

:class:`TransactionalPartitions` keeps one :class:`streamcore.storage.txn_index.PartitionTxnState`
per partition, loaded from the partition's log the first time the partition is
asked about (``log_for(topic, partition)`` finds the log), and follows what is
appended afterwards:

* a transactional batch opens its producer's transaction in the partition. The
  batch's offset is known only once the WAL has written it, but the WAL may advance
  the high watermark before the completion reaches the event loop; so the
  transaction is opened *when the append is queued*, at the high watermark of that
  moment (a lower bound of where the batch lands: appends land in order), and the
  exact offset replaces it when the append completes. The LSO is therefore never
  above the first batch of an open transaction, even for a moment.
* a marker closes the transaction, after it is durable (``on_marker``): until then
  the LSO stays at the transaction's first offset.

The fetch handler asks :meth:`lso` and :meth:`aborted_transactions`; the produce path
calls :meth:`begin_append` before queueing a batch of a producer with a producer id
and :meth:`finish_append` when the append settles.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from streamcore.errors import ErrorCode, KafkaError, StorageError
from streamcore.storage.txn_index import AbortedTxn, PartitionTxnState

__all__ = ["AppendToken", "TransactionalPartitions"]

logger = logging.getLogger("streamcore.broker")

PartitionKey = tuple[str, int]


class _Opening:
    """A transaction opened by appends still in flight (its first offset is provisional)."""

    __slots__ = ("confirmed", "inflight")

    def __init__(self) -> None:
        self.inflight = 0
        self.confirmed = False


class AppendToken:
    """What :meth:`TransactionalPartitions.begin_append` hands back for one queued batch."""

    __slots__ = ("key", "opening", "producer_id")

    def __init__(self, key: PartitionKey, producer_id: int, opening: _Opening | None) -> None:
        self.key = key
        self.producer_id = producer_id
        self.opening = opening


class TransactionalPartitions:
    """Transaction state of every partition (see the module doc).

    ``log_for(topic, partition)`` returns the partition's log (``TopicManager.log``),
    raising for an unknown partition.
    """

    def __init__(self, log_for: Callable[[str, int], Any]) -> None:
        self._log_for = log_for
        self._states: dict[PartitionKey, PartitionTxnState] = {}
        self._openings: dict[tuple[PartitionKey, int], _Opening] = {}

    # ------------------------------------------------------------------ loading

    def state(self, topic: str, partition: int) -> PartitionTxnState:
        """The partition's state, loaded from its log on first use."""
        key = (topic, partition)
        found = self._states.get(key)
        log = self._log_for(topic, partition)
        if found is not None and found.log is log:
            return found
        if found is None:
            # First use of a log opened empty in this process (a topic created while the
            # broker runs): its state is empty, whatever was produced to it since.
            fresh = PartitionTxnState(log)
            if fresh.start_if_new():
                self._states[key] = fresh
                return fresh
        # First use, or the log object was replaced (the topic was deleted and created
        # again): load from the log as it is now.
        return self.load(key, log)

    def loaded(self, key: PartitionKey) -> PartitionTxnState | None:
        """The partition's state if already loaded, else None; never loads (safe from the
        cleaner thread, which falls back to its own header scan)."""
        return self._states.get(key)

    def load(self, key: PartitionKey, log: Any) -> PartitionTxnState:
        """(Re)load a partition's state from ``log`` (at start, after a reopen)."""
        old = self._states.pop(key, None)
        if old is not None:
            old.close()
        for k in [k for k in self._openings if k[0] == key]:
            del self._openings[k]
        state = PartitionTxnState(log)
        try:
            report = state.load()
        except StorageError:
            # The state is complete in memory; only its files could not be written.
            logger.exception("transaction index of %s-%d not persisted", *key)
        else:
            if report["ongoing"] or report["aborted"]:
                logger.info(
                    "%s-%d: %d open and %d aborted transaction(s) (scanned %d batches from offset %d)",
                    key[0],
                    key[1],
                    report["ongoing"],
                    report["aborted"],
                    report["scanned_batches"],
                    report["from_offset"],
                )
        self._states[key] = state
        return state

    def forget(self, key: PartitionKey) -> None:
        """Drop a partition's state (its topic was deleted)."""
        old = self._states.pop(key, None)
        if old is not None:
            old.close()
        for k in [k for k in self._openings if k[0] == key]:
            del self._openings[k]

    def close(self) -> None:
        for state in self._states.values():
            state.close()
        self._states.clear()
        self._openings.clear()

    def retain(self) -> None:
        """Forget aborted transactions below each loaded log's start (retention moved it)."""
        for state in self._states.values():
            state.retain_from(state.log.log_start_offset)

    # ------------------------------------------------------------------ what fetch asks

    def lso(self, topic: str, partition: int, high_watermark: int | None = None) -> int:
        """The partition's last stable offset: read_committed consumers read below it.

        ``high_watermark``: the one the caller already read (the log's current one by
        default), so that the answer is never above the high watermark it reports.
        """
        return self.state(topic, partition).last_stable_offset(high_watermark)

    def lso_of_log(self, topic: str, partition: int, log: Any, high_watermark: int) -> int:
        """:meth:`lso` for a caller that holds the partition's current ``log`` (Fetch asks
        it for every partition of every request): a loaded state of that log answers
        without looking the log up again."""
        found = self._states.get((topic, partition))
        if found is not None and found.log is log:
            return found.last_stable_offset(high_watermark)
        return self.state(topic, partition).last_stable_offset(high_watermark)

    def aborted_transactions(
        self, topic: str, partition: int, fetch_offset: int, upper_offset: int
    ) -> list[tuple[int, int]]:
        """(producer id, first offset) of every aborted transaction that may have batches in
        [``fetch_offset``, ``upper_offset``), for a read_committed Fetch response."""
        return [
            (t.producer_id, t.first_offset)
            for t in self.state(topic, partition).collect_aborted(fetch_offset, upper_offset)
        ]

    def aborted(self, topic: str, partition: int) -> list[AbortedTxn]:
        return self.state(topic, partition).aborted()

    def ongoing(self, topic: str, partition: int) -> dict[int, int]:
        """producer id -> first offset of each open transaction (DescribeProducers)."""
        return self.state(topic, partition).ongoing()

    # ------------------------------------------------------------------ what produce does

    def begin_append(
        self, topic: str, partition: int, producer_id: int, transactional: bool
    ) -> AppendToken | None:
        """Before queueing a batch of ``producer_id`` (>= 0) on the partition.

        A non-transactional batch of a producer with a transaction open here is refused
        with KafkaError INVALID_TXN_STATE (Kafka's rule); otherwise it needs no token
        (None). A transactional batch opens the producer's transaction when none is open;
        the caller must pass the token to :meth:`finish_append` once the append settles.
        """
        state = self.state(topic, partition)
        key = (topic, partition)
        open_first = state.open_transaction(producer_id)
        if not transactional:
            if open_first is not None:
                raise KafkaError(
                    ErrorCode.INVALID_TXN_STATE,
                    f"expected a transactional write from producer {producer_id} in {topic}-{partition}",
                )
            return None
        opening = self._openings.get((key, producer_id))
        if open_first is None:
            state.begin(producer_id, state.log.high_watermark)
            opening = self._openings[(key, producer_id)] = _Opening()
        if opening is not None:
            opening.inflight += 1
        return AppendToken(key, producer_id, opening)

    def finish_append(self, token: AppendToken | None, base_offset: int | None) -> None:
        """The append of ``token``'s batch settled: at ``base_offset``, or failed (None)."""
        if token is None or token.opening is None:
            return
        opening = token.opening
        opening.inflight -= 1
        state = self._states.get(token.key)
        current = self._openings.get((token.key, token.producer_id))
        if state is None or current is not opening:
            return  # the partition was reloaded or the transaction ended meanwhile
        if base_offset is not None and not opening.confirmed:
            state.move_start(token.producer_id, base_offset)
            opening.confirmed = True
        if opening.inflight <= 0:
            del self._openings[(token.key, token.producer_id)]
            if not opening.confirmed:
                # Nothing of the transaction reached the log here.
                state.drop(token.producer_id)

    def finish_append_unknown(self, token: AppendToken | None) -> None:
        """The append of ``token``'s batch may or may not have reached the log (the client
        hung up and the WAL may still write it; a write whose offset is not reported):
        the provisional start stays. Being a lower bound it is safe, and the
        transaction's marker ends it."""
        if token is None or token.opening is None:
            return
        opening = token.opening
        opening.inflight -= 1
        opening.confirmed = True
        if opening.inflight <= 0 and self._openings.get((token.key, token.producer_id)) is opening:
            del self._openings[(token.key, token.producer_id)]

    def settle_when_done(self, token: AppendToken | None, fut: asyncio.Future[Any]) -> None:
        """Call :meth:`finish_append` (or :meth:`finish_append_unknown` for a cancelled
        future) when ``fut``, of an AppendResult, settles."""
        if token is None or token.opening is None:
            return

        def done(f: asyncio.Future[Any]) -> None:
            if f.cancelled():
                self.finish_append_unknown(token)
            elif f.exception() is not None:
                self.finish_append(token, None)
            else:
                self.finish_append(token, int(f.result().base_offset))

        fut.add_done_callback(done)

    def on_marker(
        self, topic: str, partition: int, producer_id: int, marker_offset: int, commit: bool
    ) -> AbortedTxn | None:
        """A marker of ``producer_id`` is durable at ``marker_offset``: its transaction in the
        partition is over (an abort is added to the aborted index)."""
        key = (topic, partition)
        state = self.state(topic, partition)
        self._openings.pop((key, producer_id), None)
        try:
            return state.end(producer_id, marker_offset, commit)
        except StorageError:
            logger.exception(
                "aborted-transaction index of %s-%d not written (kept in memory)", topic, partition
            )
            return None
