"""Kafka transactions on the broker: the coordinator, markers and per-partition state.

* :mod:`.metadata` -- a transactional id's state machine (Kafka's TransactionMetadata);
* :mod:`.log_format` -- the ``__transaction_state`` records (Kafka's TransactionLog);
* :mod:`.markers` -- COMMIT/ABORT control batches;
* :mod:`.partitions` -- per partition: open transactions, LSO, aborted index (over
  :mod:`streamcore.storage.txn_index`), and the produce-side bookkeeping;
* :mod:`.coordinator` -- :class:`TransactionCoordinator`, what the handlers call
  (``state.transactions``).
* :mod:`.crash_points` -- test-only SIGKILL at named points of a transaction
  (``STREAMCORE_TEST_CRASH_AT``), for the crash-safety tests.

docs/transactions.md describes the design.
"""

from __future__ import annotations

from streamcore.broker.transactions.coordinator import (
    OFFSETS_PARTITION,
    TRANSACTION_STATE_TOPIC,
    DescribedTransaction,
    InitProducerIdResult,
    ListedTransaction,
    TransactionCoordinator,
    TransactionSettings,
    verification_error,
)
from streamcore.broker.transactions.markers import (
    AppendMarker,
    Marker,
    build_marker,
    make_marker_appender,
    parse_marker,
)
from streamcore.broker.transactions.metadata import TransactionMetadata, TxnState
from streamcore.broker.transactions.partitions import TransactionalPartitions
from streamcore.broker.transactions.read_committed import committed_prefix

__all__ = [
    "OFFSETS_PARTITION",
    "TRANSACTION_STATE_TOPIC",
    "AppendMarker",
    "DescribedTransaction",
    "InitProducerIdResult",
    "ListedTransaction",
    "Marker",
    "TransactionCoordinator",
    "TransactionMetadata",
    "TransactionSettings",
    "TransactionalPartitions",
    "TxnState",
    "build_marker",
    "committed_prefix",
    "make_marker_appender",
    "parse_marker",
    "verification_error",
]
