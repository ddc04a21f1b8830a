"""The transactional producer: its state machine and the transaction requests (KIP-98).

A producer built with ``transactional_id`` writes records to several partitions, and
commits consumed offsets, atomically: ``read_committed`` consumers see all of a
transaction or none of it. ``TransactionManager`` is the part of the producer that
speaks to the coordinators, as the Java client's TransactionManager does; the sender
asks it which partitions may be sent to and tells it when a record failed.

States, with Kafka's names::

    UNINITIALIZED --init_transactions--> INITIALIZING --> READY
    READY --begin_transaction--> IN_TRANSACTION
    IN_TRANSACTION --commit_transaction--> COMMITTING --> READY
    IN_TRANSACTION, ABORTABLE_ERROR --abort_transaction--> ABORTING --> READY
    IN_TRANSACTION, COMMITTING --a record or an offset commit failed--> ABORTABLE_ERROR
    any --fenced, not authorized--> FATAL_ERROR (final)

The requests (transaction protocol version 1, what every client speaks):

* ``init_transactions``: FindCoordinator (key type 1, the transactional id), then
  InitProducerId with the id and ``transaction_timeout_ms``. The coordinator answers
  the id's producer id at the next epoch: an older producer of the same id is fenced
  (its later requests get PRODUCER_FENCED) and its open transaction aborted.
* A partition's records are sent only once AddPartitionsToTxn added the partition to
  the transaction. Partitions first written to while one AddPartitionsToTxn is in
  flight go together in the next one.
* ``send_offsets_to_transaction``: AddOffsetsToTxn (the group's ``__consumer_offsets``
  partition joins the transaction), then TxnOffsetCommit to the group's coordinator.
* ``commit_transaction`` sends every record first; ``abort_transaction`` drops the
  records not yet sent and waits for the answers of those in flight. Then EndTxn, if
  the coordinator knows of the transaction (something was added to it).

Retriable answers (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR,
CONCURRENT_TRANSACTIONS, lost connections ...) are retried with the client's retry
policy, finding the coordinator again when it moved. Errors are fatal or abortable
as in the Java client (``FatalTransactionError``, ``AbortableTransactionError``).

A call of ``init_transactions``, ``commit_transaction`` or ``abort_transaction``
whose timeout passes raises TimeoutError, and the operation goes on: calling the same
method again waits for it (the Java client and librdkafka do the same); another
operation is refused until then.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from streamcore.client.accumulator import Accumulator
from streamcore.client.cluster import Cluster
from streamcore.client.config import ClientConfig
from streamcore.client.connection import BrokerConnection
from streamcore.client.errors import (
    AbortableTransactionError,
    FatalTransactionError,
    TransactionAbortedError,
    TransactionError,
    TransactionStateError,
    broker_error,
)
from streamcore.client.retrying import Backoff, connection_failed, coordinator_moved, is_retriable
from streamcore.client.sequencing import Sequencer
from streamcore.client.types import ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition
from streamcore.errors import ErrorCode, KafkaError
from streamcore.protocol.messages import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnRequest_AddPartitionsToTxnTopic,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic,
)

if TYPE_CHECKING:
    from streamcore.client.sender import Sender

__all__ = ["PRODUCE_MAX_VERSION", "TransactionManager", "TransactionState"]

#: FindCoordinator key types.
GROUP_KEY = 0
TRANSACTION_KEY = 1

#: Highest Produce version a transactional producer sends. v12 tells a broker running
#: transaction protocol 2 that the client leaves adding partitions to it (KIP-890);
#: this client adds them itself, as the Java client does below protocol 2.
PRODUCE_MAX_VERSION = 11


class TransactionState(enum.Enum):
    """Where a transactional producer stands (the Java client's names)."""

    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING = "COMMITTING"
    ABORTING = "ABORTING"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"


S = TransactionState
E = ErrorCode

# Coordinator answers after which the producer cannot go on (the Java client's list).
# INVALID_PRODUCER_EPOCH is how coordinators answered PRODUCER_FENCED before it existed.
_FATAL = frozenset(
    {
        E.PRODUCER_FENCED,
        E.INVALID_PRODUCER_EPOCH,
        E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        E.CLUSTER_AUTHORIZATION_FAILED,
        E.INVALID_TXN_STATE,
        E.INVALID_TRANSACTION_TIMEOUT,
        E.UNSUPPORTED_VERSION,
        E.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        E.TRANSACTION_COORDINATOR_FENCED,
    }
)
# Answers that doom the transaction but not the producer.
_ABORTABLE = frozenset(
    {
        E.TRANSACTION_ABORTABLE,
        E.TOPIC_AUTHORIZATION_FAILED,
        E.GROUP_AUTHORIZATION_FAILED,
        E.UNKNOWN_PRODUCER_ID,
        E.INVALID_PRODUCER_ID_MAPPING,
        E.UNKNOWN_MEMBER_ID,
        E.ILLEGAL_GENERATION,
        E.FENCED_INSTANCE_ID,
        E.REBALANCE_IN_PROGRESS,
    }
)
# A Produce answer that ends the producer. INVALID_PRODUCER_EPOCH is not one: the
# coordinator may have aborted a transaction that outlived its timeout, so the record
# only dooms the transaction (KIP-588, as in the Java client); the EndTxn of the
# abort then says whether the producer was fenced.
_FATAL_FOR_RECORDS = frozenset(
    {
        E.PRODUCER_FENCED,
        E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        E.CLUSTER_AUTHORIZATION_FAILED,
        E.UNSUPPORTED_VERSION,
    }
)
_OPERATION_NOT_ATTEMPTED = E.OPERATION_NOT_ATTEMPTED.code

_HINTS = {
    S.UNINITIALIZED: "call init_transactions() first",
    S.INITIALIZING: "init_transactions() has not finished",
    S.READY: "call begin_transaction() first",
    S.IN_TRANSACTION: "a transaction is open",
    S.COMMITTING: "the transaction is being committed",
    S.ABORTING: "the transaction is being aborted",
}


class _OutOfTime(Exception):
    """Retriable answers went on until the deadline; ``last`` is the last one."""

    def __init__(self, last: BaseException) -> None:
        super().__init__(str(last))
        self.last = last


def _code(exc: BaseException) -> ErrorCode | None:
    return exc.error if isinstance(exc, KafkaError) else None


def _retrieve(task: asyncio.Task[Any]) -> None:
    # An operation whose caller timed out may fail with nobody awaiting it; its error
    # is kept in the task for the next call, not logged as never retrieved.
    if not task.cancelled():
        task.exception()


class TransactionManager:
    """The transaction state of one producer; lives on the producer's event loop.

    ``check_send`` and ``want`` are called by appenders in any thread with the
    accumulator lock held; everything else runs on the loop. ``added`` (partitions in
    the current transaction) and ``wanted`` (written to, not yet added) change under
    that lock.
    """

    def __init__(
        self,
        config: ClientConfig,
        cluster: Cluster,
        acc: Accumulator,
        sequencer: Sequencer,
        backoff: Backoff,
    ) -> None:
        self.transactional_id: str = config.transactional_id
        self.transaction_timeout_ms: int = config.transaction_timeout_ms
        self.default_timeout_s = config.max_block_ms / 1000.0
        self.cluster = cluster
        self.acc = acc
        self.sequencer = sequencer
        self.backoff = backoff
        self.sender: Sender | None = None  # set by the producer
        self.state = S.UNINITIALIZED
        #: The error of ABORTABLE_ERROR / FATAL_ERROR.
        self.error: TransactionError | None = None
        self.added: set[TopicPartition] = set()
        self.wanted: set[TopicPartition] = set()
        #: True once the coordinator holds an open transaction of ours (something was added).
        self.started = False
        # Partitions sent in an AddPartitionsToTxn whose answer was lost: the coordinator
        # may have added them, so an abort settles them before its EndTxn.
        self._unsure: set[TopicPartition] = set()
        self._adding: asyncio.Task[None] | None = None
        self._add_retry_at = 0.0
        self._add_attempts = 0
        self._op: tuple[str, asyncio.Task[None]] | None = None
        self._closed = False

    # ------------------------------------------------------------------ appenders (any thread)

    def check_send(self) -> None:
        """Raise unless records may join the transaction now (accumulator lock held)."""
        if self.state is not S.IN_TRANSACTION:
            raise self.refusal("send")

    def want(self, tp: TopicPartition) -> None:
        """A record for ``tp`` joined the transaction (accumulator lock held)."""
        if tp not in self.added and tp not in self.wanted:
            self.wanted.add(tp)
            if self.sender is not None:
                self.sender.wake_from_any_thread()

    def refusal(self, what: str) -> Exception:
        """The exception for ``what`` (a method name) called in the current state."""
        st, err = self.state, self.error
        out: Exception
        if st is S.FATAL_ERROR and err is not None:
            out = FatalTransactionError(f"{what}: the producer failed for good: {err}", err.error)
            out.__cause__ = err
        elif st is S.ABORTABLE_ERROR and err is not None:
            out = AbortableTransactionError(
                f"{what}: the transaction failed and must be aborted (abort_transaction()): {err}", err.error
            )
            out.__cause__ = err
        else:
            out = TransactionStateError(
                f"{what} is not allowed while the producer is {st.name}: {_HINTS[st]}"
            )
        return out

    # ------------------------------------------------------------------ transitions

    def _fatal(self, cause: BaseException, what: str) -> TransactionError:
        if self.state is S.FATAL_ERROR and self.error is not None:
            return self.error
        err = FatalTransactionError(f"{what}: {cause}", _code(cause))
        err.__cause__ = cause
        self.state = S.FATAL_ERROR
        self.error = err
        if self.sender is not None:
            self.sender.fail_undrained(err)
        return err

    def _abortable(self, cause: BaseException, what: str) -> TransactionError:
        if self.state is S.FATAL_ERROR and self.error is not None:
            return self.error
        err = AbortableTransactionError(f"{what}: {cause}", _code(cause))
        err.__cause__ = cause
        if self.state in (S.IN_TRANSACTION, S.COMMITTING, S.ABORTABLE_ERROR, S.ABORTING):
            # During an abort the transaction is being dropped already: a failure
            # changes nothing unless the abort itself fails (it then goes back here).
            if self.state is not S.ABORTING:
                self.state = S.ABORTABLE_ERROR
                self.error = err
                if self.sender is not None:
                    self.sender.fail_undrained(err)
        return err

    def _classified(
        self, exc: BaseException, what: str, *, unexpected_fatal: bool = True
    ) -> TransactionError:
        """Move to FATAL_ERROR or ABORTABLE_ERROR for a non-retriable ``exc``; returns the error to raise."""
        if isinstance(exc, TransactionError):
            return exc
        if isinstance(exc, _OutOfTime):
            # Retriable answers until the caller's deadline: the transaction is lost,
            # the producer is not.
            return self._abortable(exc.last, f"{what}: no success before the timeout")
        code = _code(exc)
        if code in _FATAL:
            return self._fatal(exc, what)
        if code in _ABORTABLE or not unexpected_fatal:
            return self._abortable(exc, what)
        return self._fatal(exc, what)

    def record_failed(self, exc: BaseException) -> None:
        """A record batch of the transaction failed for good (the sender's report)."""
        if self.state not in (S.IN_TRANSACTION, S.COMMITTING):
            return
        if _code(exc) in _FATAL_FOR_RECORDS:
            self._fatal(exc, "a record of the transaction failed")
        else:
            self._abortable(exc, "a record of the transaction failed")

    def _completed(self) -> None:
        with self.acc.lock:
            self.added.clear()
            self.wanted.clear()
            self._unsure.clear()
            self.started = False
            self.error = None
            self.state = S.READY
        self._add_attempts = 0
        self._add_retry_at = 0.0

    def _take_producer_id(self, resp: Any) -> None:
        seq = self.sequencer
        seq.producer_id, seq.producer_epoch = resp.producer_id, resp.producer_epoch
        seq.start_over(self.acc)
        seq.needs_new_id = False

    # ------------------------------------------------------------------ operations

    async def _run_op(
        self, name: str, start: Callable[[], Coroutine[Any, Any, None]], timeout: float | None
    ) -> None:
        """Run (or resume, after a call that timed out) the operation ``name``.

        ``start`` checks and changes the state and returns the coroutine to run in
        a task; it is not called when an earlier call's operation is resumed.
        """
        op = self._op
        if op is not None and op[0] == name:
            task = op[1]
        else:
            if op is not None and not op[1].done():
                raise TransactionStateError(
                    f"{name}() cannot start: {op[0]}() has not finished (its call timed out); "
                    f"call {op[0]}() again to wait for it"
                )
            task = asyncio.ensure_future(start())
            task.add_done_callback(_retrieve)
            self._op = (name, task)
        wait_s = self.default_timeout_s if timeout is None else max(0.0, timeout)
        done, _ = await asyncio.wait({task}, timeout=wait_s)
        if not done:
            raise TimeoutError(
                f"{name}() did not finish within {wait_s:g} s; it goes on: call {name}() again to wait for it"
            )
        if self._op is not None and self._op[1] is task:
            self._op = None
        task.result()

    async def init(self, timeout: float | None) -> None:
        """``init_transactions``: a producer id and epoch for the transactional id."""

        def start() -> Coroutine[Any, Any, None]:
            if self.state is not S.UNINITIALIZED:
                raise self.refusal("init_transactions")
            self.state = S.INITIALIZING
            return self._init_body()

        await self._run_op("init_transactions", start, timeout)

    async def _init_body(self) -> None:
        try:
            resp = await self._call(
                self.transactional_id,
                TRANSACTION_KEY,
                "InitProducerId",
                self._init_request(-1, -1),
                lambda r: r.error_code,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._fatal(exc, "init_transactions") from None
        self._take_producer_id(resp)
        self.state = S.READY

    def _init_request(self, producer_id: int, epoch: int) -> Callable[[BrokerConnection], tuple[Any, int]]:
        def make(conn: BrokerConnection) -> tuple[Any, int]:
            version = conn.version_for(InitProducerIdRequest)
            pid, ep = (producer_id, epoch) if version >= 3 else (-1, -1)
            req = InitProducerIdRequest(
                transactional_id=self.transactional_id,
                transaction_timeout_ms=self.transaction_timeout_ms,
                producer_id=pid,
                producer_epoch=ep,
            )
            return req, version

        return make

    def begin(self) -> None:
        """``begin_transaction``: local only; the coordinator hears of it with the first addition."""
        if self.state is not S.READY:
            raise self.refusal("begin_transaction")
        if self._op is not None and self._op[1].done():
            self._op = None  # a finished operation nobody came back for belongs to the last transaction
        self.state = S.IN_TRANSACTION

    async def commit(self, timeout: float | None) -> None:
        """``commit_transaction``: send every record, then EndTxn(commit)."""

        def start() -> Coroutine[Any, Any, None]:
            if self.state is not S.IN_TRANSACTION:
                raise self.refusal("commit_transaction")
            self.state = S.COMMITTING
            return self._commit_body()

        await self._run_op("commit_transaction", start, timeout)

    async def _commit_body(self) -> None:
        assert self.sender is not None
        await self.sender.flush()
        if self._adding is not None:
            await asyncio.wait({self._adding})
        if self.state is not S.COMMITTING:  # a record failed meanwhile
            raise self.refusal("commit_transaction")
        if self.started:
            await self._end_txn(True)
        self._completed()

    async def abort(self, timeout: float | None) -> None:
        """``abort_transaction``: drop what is not sent, wait for what is in flight, EndTxn(abort)."""

        def start() -> Coroutine[Any, Any, None]:
            if self.state not in (S.IN_TRANSACTION, S.ABORTABLE_ERROR):
                raise self.refusal("abort_transaction")
            self.state = S.ABORTING
            return self._abort_body()

        await self._run_op("abort_transaction", start, timeout)

    async def _abort_body(self) -> None:
        assert self.sender is not None
        self.sender.fail_undrained(
            TransactionAbortedError("the transaction was aborted before the record was sent")
        )
        with self.acc.lock:
            # Partitions never sent in an AddPartitionsToTxn are not in the transaction.
            self.wanted &= self._unsure
        await self.sender.flush()  # the answers of the records in flight
        if self._adding is not None:
            await asyncio.wait({self._adding})
        try:
            if self.state is S.FATAL_ERROR:
                raise self.refusal("abort_transaction")
            with self.acc.lock:
                unsure = sorted(self.wanted)
            if unsure:
                await self._settle(unsure)
            if self.started:
                await self._end_txn(False)
            if self.sequencer.needs_new_id:
                # A record that had a sequence number failed: later sequences cannot
                # follow it, so the producer takes the next epoch (KIP-360).
                await self._bump_epoch()
        except AbortableTransactionError as exc:
            # The abort itself failed without fencing the producer: it may be tried again.
            if self.state is S.ABORTING:
                self.state = S.ABORTABLE_ERROR
                self.error = exc
            raise
        self._completed()

    async def send_offsets(
        self,
        offsets: Mapping[Any, OffsetAndMetadata | int],
        group_metadata: ConsumerGroupMetadata | str,
        timeout: float | None,
    ) -> None:
        """``send_offsets_to_transaction``: AddOffsetsToTxn, then TxnOffsetCommit to the group's coordinator.

        Retriable answers are retried until ``timeout`` (seconds; None: max_block_ms)
        passes; then the transaction is lost (abortable error).
        """
        if self.state is not S.IN_TRANSACTION:
            raise self.refusal("send_offsets_to_transaction")
        meta = group_metadata if isinstance(group_metadata, ConsumerGroupMetadata) else None
        if meta is None:
            if not isinstance(group_metadata, str):
                raise TypeError(
                    "group_metadata must be a ConsumerGroupMetadata (Consumer.group_metadata()) or a group id"
                )
            meta = ConsumerGroupMetadata(group_metadata)
        by_topic: dict[str, list[TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition]] = defaultdict(list)
        for tp, om in offsets.items():
            topic, partition = tp
            if not isinstance(om, OffsetAndMetadata):
                om = OffsetAndMetadata(int(om))
            by_topic[topic].append(
                TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                    partition_index=int(partition),
                    committed_offset=om.offset,
                    committed_leader_epoch=-1,
                    committed_metadata=om.metadata,
                )
            )
        if not by_topic:
            return
        deadline = time.monotonic() + (self.default_timeout_s if timeout is None else timeout)
        seq = self.sequencer

        def add_offsets(conn: BrokerConnection) -> tuple[Any, int]:
            req = AddOffsetsToTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=seq.producer_id,
                producer_epoch=seq.producer_epoch,
                group_id=meta.group_id,
            )
            return req, conn.version_for(AddOffsetsToTxnRequest)

        try:
            await self._call(
                self.transactional_id,
                TRANSACTION_KEY,
                "AddOffsetsToTxn",
                add_offsets,
                lambda r: r.error_code,
                deadline,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._classified(exc, "send_offsets_to_transaction: AddOffsetsToTxn") from None
        self.started = True

        def commit(conn: BrokerConnection) -> tuple[Any, int]:
            req = TxnOffsetCommitRequest(
                transactional_id=self.transactional_id,
                group_id=meta.group_id,
                producer_id=seq.producer_id,
                producer_epoch=seq.producer_epoch,
                generation_id=meta.generation_id,
                member_id=meta.member_id,
                group_instance_id=meta.group_instance_id,
                topics=[
                    TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic(name=t, partitions=ps)
                    for t, ps in by_topic.items()
                ],
            )
            return req, conn.version_for(TxnOffsetCommitRequest)

        try:
            await self._call(
                meta.group_id, GROUP_KEY, "TxnOffsetCommit", commit, _txn_offset_commit_code, deadline
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._classified(exc, "send_offsets_to_transaction: TxnOffsetCommit") from None

    # ------------------------------------------------------------------ requests

    async def _end_txn(self, commit: bool) -> None:
        seq = self.sequencer
        what = "EndTxn(commit)" if commit else "EndTxn(abort)"

        def make(conn: BrokerConnection) -> tuple[Any, int]:
            req = EndTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=seq.producer_id,
                producer_epoch=seq.producer_epoch,
                committed=commit,
            )
            return req, conn.version_for(EndTxnRequest)

        try:
            await self._call(self.transactional_id, TRANSACTION_KEY, what, make, lambda r: r.error_code)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._classified(exc, what) from None

    async def _bump_epoch(self) -> None:
        seq = self.sequencer
        try:
            resp = await self._call(
                self.transactional_id,
                TRANSACTION_KEY,
                "InitProducerId",
                self._init_request(seq.producer_id, seq.producer_epoch),
                lambda r: r.error_code,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._classified(exc, "InitProducerId (new epoch after a failed record)") from None
        self._take_producer_id(resp)

    async def _call(
        self,
        key: str,
        key_type: int,
        what: str,
        make: Callable[[BrokerConnection], tuple[Any, int]],
        code_of: Callable[[Any], int],
        deadline: float | None = None,
    ) -> Any:
        """Send ``make(conn)`` to the coordinator of ``key`` until it answers without error.

        Retriable errors and lost connections are retried with the retry policy's
        delays, finding the coordinator again when it moved, until ``deadline``
        (monotonic seconds; None: until success or close), then ``_OutOfTime``. Any
        other error is raised as it is.
        """
        attempt = 0
        while True:
            err: BaseException
            try:
                node = await self.cluster.coordinator(key, key_type)
                conn = await self.cluster.connection(node)
                req, version = make(conn)
                resp = await conn.request(req, version)
                code = code_of(resp)
                if code == 0:
                    return resp
                kind = "transactional id" if key_type == TRANSACTION_KEY else "group"
                err = broker_error(code, f"{what} ({kind} {key!r})")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                err = exc
            if coordinator_moved(err) or connection_failed(err):
                self.cluster.forget_coordinator(key, key_type)
            if self._closed or not is_retriable(err):
                raise err
            delay = self.backoff.delay_ms(attempt) / 1000.0
            attempt += 1
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise _OutOfTime(err)
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ adding partitions

    def poll_adds(self, now: float) -> float | None:
        """Start an AddPartitionsToTxn for the partitions waiting for one (the sender calls
        this each cycle); returns when to look again after a retriable failure, or None."""
        if self._adding is not None or self.state not in (S.IN_TRANSACTION, S.COMMITTING):
            return None
        with self.acc.lock:
            if not self.wanted:
                return None
            if now < self._add_retry_at:
                return self._add_retry_at
            tps = sorted(self.wanted)
        self._adding = asyncio.ensure_future(self._add_in_background(tps))
        return None

    async def _add_in_background(self, tps: list[TopicPartition]) -> None:
        try:
            await self._add(tps, settle=False)
        finally:
            self._adding = None
            if self.sender is not None:
                self.sender.wake()

    async def _send_add(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        node = await self.cluster.coordinator(self.transactional_id, TRANSACTION_KEY)
        conn = await self.cluster.connection(node)
        by_topic: dict[str, list[int]] = defaultdict(list)
        for tp in tps:
            by_topic[tp.topic].append(tp.partition)
        seq = self.sequencer
        req = AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=self.transactional_id,
            v3_and_below_producer_id=seq.producer_id,
            v3_and_below_producer_epoch=seq.producer_epoch,
            v3_and_below_topics=[
                AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name=t, partitions=ps)
                for t, ps in by_topic.items()
            ],
        )
        with self.acc.lock:
            # From here the coordinator may add them, whatever becomes of the answer.
            self._unsure.update(tps)
        resp = await conn.request(req, conn.version_for(AddPartitionsToTxnRequest))
        return {
            TopicPartition(t.name, r.partition_index): r.partition_error_code
            for t in resp.results_by_topic_v3_and_below
            for r in t.results_by_partition
        }

    async def _add(self, tps: list[TopicPartition], *, settle: bool) -> None:
        """One AddPartitionsToTxn for ``tps``.

        A retriable failure leaves the partitions wanted and sets when to try again.
        In the background (``settle`` False) a definite refusal makes the transaction
        fail. When an abort settles partitions whose addition is unknown (``settle``),
        a definite refusal means the partition is not in the transaction, and a
        non-retriable error of the request is raised.
        """
        try:
            codes = await self._send_add(tps)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The coordinator may or may not have added them (a lost answer):
            # ``_unsure`` keeps them until a later answer says.
            if coordinator_moved(exc) or connection_failed(exc):
                self.cluster.forget_coordinator(self.transactional_id, TRANSACTION_KEY)
            if is_retriable(exc) and not self._closed:
                self._schedule_add_retry()
                return
            err = self._classified(exc, "AddPartitionsToTxn", unexpected_fatal=False)
            if settle:
                raise err from None
            return
        failed: dict[TopicPartition, int] = {}
        retry = False
        with self.acc.lock:
            for tp in tps:
                code = codes.get(tp, _OPERATION_NOT_ATTEMPTED)
                self._unsure.discard(tp)
                if code == 0:
                    self.added.add(tp)
                    self.wanted.discard(tp)
                    self.started = True
                elif code == _OPERATION_NOT_ATTEMPTED or is_retriable(broker_error(code)):
                    retry = True
                elif settle:
                    self.wanted.discard(tp)  # refused: not in the transaction
                else:
                    failed[tp] = code
        if failed:
            # A fatal code first, if there is one.
            tp, code = min(failed.items(), key=lambda item: ErrorCode.from_code(item[1]) not in _FATAL)
            self._classified(
                broker_error(code, f"AddPartitionsToTxn {tp.topic}-{tp.partition}"),
                "AddPartitionsToTxn",
                unexpected_fatal=False,
            )
        elif retry:
            if any(coordinator_moved(broker_error(c)) for c in codes.values() if c):
                self.cluster.forget_coordinator(self.transactional_id, TRANSACTION_KEY)
            self._schedule_add_retry()
        else:
            self._add_attempts = 0

    def _schedule_add_retry(self) -> None:
        self._add_retry_at = time.monotonic() + self.backoff.delay_ms(self._add_attempts) / 1000.0
        self._add_attempts += 1

    async def _settle(self, tps: list[TopicPartition]) -> None:
        """Before an abort's EndTxn: learn whether the coordinator added ``tps`` (partitions
        whose AddPartitionsToTxn answer was lost), sending it again until answered."""
        attempt = 0
        while True:
            with self.acc.lock:
                left = sorted(tp for tp in tps if tp in self.wanted)
            if not left:
                return
            await self._add(left, settle=True)
            with self.acc.lock:
                if not any(tp in self.wanted for tp in tps):
                    return
            await asyncio.sleep(self.backoff.delay_ms(attempt) / 1000.0)
            attempt += 1

    # ------------------------------------------------------------------ closing

    async def close(self, timeout: float | None) -> None:
        """Before the producer closes: finish an operation under way and abort an open
        transaction (as the Java client does), both within ``timeout`` seconds."""
        wait_s = self.default_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + wait_s
        op = self._op
        if op is not None and not op[1].done():
            await asyncio.wait({op[1]}, timeout=max(0.0, deadline - time.monotonic()))
        if self.state in (S.IN_TRANSACTION, S.ABORTABLE_ERROR) and (self._op is None or self._op[1].done()):
            self._op = None
            try:
                await self.abort(max(0.0, deadline - time.monotonic()))
            except Exception:
                pass  # the coordinator aborts it when transaction_timeout_ms passes
        self._closed = True
        for task in (self._op[1] if self._op is not None else None, self._adding):
            if task is not None and not task.done():
                task.cancel()


def _txn_offset_commit_code(resp: Any) -> int:
    """The error of a TxnOffsetCommit answer: a non-retriable partition error before a
    retriable one, 0 when every partition succeeded."""
    found = 0
    for t in resp.topics:
        for p in t.partitions:
            code = p.error_code
            if code and not ErrorCode.from_code(code).retriable:
                return int(code)
            found = found or code
    return int(found)
