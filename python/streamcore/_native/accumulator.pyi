"""``_native.accumulator``: the producer's open batches and its one-call send path."""

from collections.abc import Callable
from typing import Any, final

__all__ = ["RECORD_OVERHEAD", "Appender", "ProducerBatch", "total_len"]

#: Bytes charged per record beyond key, value and headers.
RECORD_OVERHEAD: int

@final
class ProducerBatch:
    """Records of one partition on their way into one record batch v2."""

    tp: Any
    values: Any
    keys: Any
    headers: Any
    timestamps: Any
    record_futures: Any
    record_indices: Any
    span_futures: Any
    size: int
    created: float
    explicit_ts: bool
    encoded: Any
    base_sequence: int
    producer_id: int
    producer_epoch: int
    attempts: int
    retry_at: float
    deadline: float
    count: int
    first_ts: int
    node: int
    outcome: Any
    watched: Any
    bound: int

    def __new__(cls, tp: Any, now: float, deadline: float) -> ProducerBatch: ...
    def add(
        self, value: Any, key: Any, headers: Any, timestamp_ms: int | None, size: int, future: Any
    ) -> None:
        """Append one record of ``size`` charged bytes (the accumulator lock held)."""

    def resolve_records(self, base_offset: int, log_append_time: int | None, metadata: Any) -> None:
        """Complete the batch's send() futures with ``metadata(topic, partition, offset, timestamp)``."""

    def add_many(self, values: Any, keys: Any, size: int, collector: Any) -> None:
        """Append a run of records from send_batch (the accumulator lock held)."""

def total_len(items: Any) -> int:
    """Sum of ``len()`` of ``items``, None counting 0 (bytes of send_batch values or keys)."""

@final
class Appender:
    """The one-call send path of one producer."""

    def __new__(
        cls,
        core: Any,
        future_factory: Callable[[], Any] | None = None,
        fallback: Callable[..., Any] | None = None,
    ) -> Appender: ...
    def close(self) -> None:
        """Decline every record from now on."""

    def send(
        self,
        topic: Any,
        value: Any,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
    ) -> Any:
        """``append`` with a future from the factory, else ``fallback``'s result."""

    def append(
        self,
        topic: Any,
        value: Any,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
        future: Any = None,
    ) -> Any:
        """Append one record and return its future; None, with nothing changed, when the
        full path must take it."""
