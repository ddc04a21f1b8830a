"""Reference twin of the ``accumulator`` capability: open batches and the one-call send path.

``ProducerBatch`` holds one partition's records on their way into one record batch
v2 (per-record columns, the records' futures, the batch's state on its way to the
broker). ``Appender.append`` does, in one call, the per-record work of the common
``send()``: pick the partition (murmur2 of the key, the sticky partition, or the
one given), charge the record's bytes against ``buffer_memory``, append it to its
partition's open batch and give it its future. It takes the record only when that
needs nothing else; otherwise it returns None having changed nothing, and the
caller runs the full path (``ProducerCore.try_append``), which also blocks for
memory, opens new batches and runs serializers. The native twin
(``rust/python/src/producer_accumulator.rs``) takes and refuses exactly the same
records and leaves the same state behind.

The objects it works on are the client's (``streamcore.client.producer`` and
``accumulator``), passed in duck-typed: this module imports nothing from the client.
"""

from __future__ import annotations

from typing import Any

from streamcore._reference.partitioner import murmur2

__all__ = ["RECORD_OVERHEAD", "Appender", "ProducerBatch", "total_len"]

#: Bytes charged per record beyond key, value and headers (the client's RECORD_OVERHEAD).
RECORD_OVERHEAD = 24


def total_len(items: Any) -> int:
    """Sum of ``len()`` of ``items`` (a list, a tuple or any iterable), None counting 0.

    The bytes of a send_batch call's values or keys, before the per-record overhead.
    Raises TypeError for an item without a length.
    """
    if not isinstance(items, (list, tuple)):
        items = list(items)  # iterated twice below when a None is among them
    try:
        # ``map(len)`` runs in C: several times cheaper per item than a generator.
        return sum(map(len, items))
    except TypeError:  # a None among them (or an item without a length, which raises below)
        return sum(len(x) for x in items if x is not None)


class ProducerBatch:
    """Records of one partition on their way into one record batch v2."""

    __slots__ = (
        "tp",
        "values",
        "keys",
        "headers",
        "timestamps",
        "record_futures",
        "record_indices",
        "span_futures",
        "size",
        "created",
        "explicit_ts",
        "encoded",
        "base_sequence",
        "producer_id",
        "producer_epoch",
        "attempts",
        "retry_at",
        "deadline",
        "count",
        "first_ts",
        "node",
        "outcome",
        "watched",
        "bound",
    )

    def __init__(self, tp: Any, now: float, deadline: float) -> None:
        self.tp = tp
        self.values: list[Any] = []
        self.keys: list[Any] | None = None
        self.headers: list[Any] | None = None
        self.timestamps: list[int | None] | None = None
        self.record_futures: list[Any] = []  # the futures of send() records given by the caller
        self.record_indices: list[int] = []  # each of those records' index in the batch
        self.span_futures: list[tuple[int, int, Any]] = []  # (start, count, span collector) for send_batch()
        self.size = 0
        self.created = now
        self.explicit_ts = False
        self.encoded: bytes | None = None
        self.base_sequence = -1
        self.producer_id = -1
        self.producer_epoch = -1
        self.attempts = 0
        self.retry_at = 0.0
        self.deadline = deadline
        self.count = 0
        self.first_ts = 0
        self.node = -1
        self.outcome: Any = None  # (base offset, log append time) or an exception, once answered
        self.watched: list[Any] = []  # bound record futures somebody waits on
        self.bound = 0  # record futures that read their result from ``outcome``

    def add(
        self, value: Any, key: Any, headers: Any, timestamp_ms: int | None, size: int, future: Any
    ) -> None:
        """Append one record (the caller holds the accumulator lock)."""
        i = self.count
        if (
            key is None
            and headers is None
            and timestamp_ms is None
            and self.keys is None
            and self.headers is None
            and self.timestamps is None
        ):
            # The common record, value only, in a batch of value-only records: no
            # parallel lists to keep aligned.
            if future is not None:
                self.record_indices.append(i)
                self.record_futures.append(future)
            self.values.append(value)
            self.size += size
            self.count = i + 1
            return
        self.values.append(value)
        if key is not None or self.keys is not None:
            if self.keys is None:
                self.keys = [None] * i
            self.keys.append(key)
        if headers is not None or self.headers is not None:
            if self.headers is None:
                self.headers = [None] * i
            self.headers.append(headers)
        if timestamp_ms is not None or self.timestamps is not None:
            if self.timestamps is None:
                self.timestamps = [None] * i
            self.timestamps.append(timestamp_ms)
            self.explicit_ts = True
        if future is not None:
            self.record_indices.append(i)
            self.record_futures.append(future)
        self.size += size
        self.count = i + 1

    def resolve_records(self, base_offset: int, log_append_time: int | None, metadata: Any) -> None:
        """Complete the batch's send() futures (those not done yet) with
        ``metadata(topic, partition, offset, timestamp)`` once the broker answered
        (``metadata`` is called for every record, done or not):
        offsets from ``base_offset`` (-1 for every record when it is negative, as under
        acks=0), timestamps the broker's ``log_append_time`` when it is not -1 or None,
        else the record's own (``timestamps``, or ``first_ts`` for all)."""
        if not self.record_futures:
            return
        topic, part = self.tp
        ts_list = self.timestamps
        appended = log_append_time not in (-1, None)
        first = log_append_time if appended else self.first_ts
        if len(self.record_indices) != len(self.record_futures):
            raise ValueError("record_indices and record_futures differ in length")
        for i, f in zip(self.record_indices, self.record_futures, strict=True):
            off = base_offset + i if base_offset >= 0 else -1
            ts = first if ts_list is None or appended else ts_list[i]
            meta = metadata(topic, part, off, first if ts is None else ts)
            # Futures are almost never done already (cancelled, or completed by someone
            # else): set the result first and ask done() only if that failed.
            try:
                f.set_result(meta)
            except Exception:
                if f.done():
                    continue
                raise

    def add_many(self, values: list[Any], keys: list[Any] | None, size: int, collector: Any) -> None:
        """Append a run of records from send_batch (the caller holds the lock)."""
        i = self.count
        n = len(values)
        self.values.extend(values)
        if keys is not None or self.keys is not None:
            if self.keys is None:
                self.keys = [None] * i
            self.keys.extend(keys if keys is not None else [None] * n)
        if self.headers is not None:
            self.headers.extend([None] * n)
        if self.timestamps is not None:
            self.timestamps.extend([None] * n)
        self.span_futures.append((i, n, collector))
        self.size += size
        self.count = i + n


def _header_list(headers: Any) -> tuple[list[tuple[str, bytes | None]], int] | None:
    """A copy of ``headers`` and its charged size, or None unless it is a list or tuple
    of (str, bytes | None) tuples."""
    if type(headers) is not list and type(headers) is not tuple:
        return None
    out = []
    size = 0
    for h in headers:
        if type(h) is not tuple or len(h) != 2:
            return None
        k, v = h
        if type(k) is not str:
            return None
        if v is None:
            size += len(k)
        elif type(v) is bytes:
            size += len(k) + len(v)
        else:
            return None
        out.append(h)
    return out, size


class Appender:
    """The one-call send path of one producer.

    ``core`` is the ``ProducerCore`` (its ``acc``, ``partitions``, ``_sticky``,
    ``_tp_cache`` and ``_switch_sticky`` are used); ``future_factory`` makes a
    record's future when ``append`` is given none (the blocking API), or None.
    """

    __slots__ = (
        "_core",
        "_acc",
        "_lock",
        "_open",
        "_partitions",
        "_sticky",
        "_tp_cache",
        "_factory",
        "_batch_size",
        "_buffer_memory",
        "_fallback",
        "_closed",
    )

    def __init__(self, core: Any, future_factory: Any = None, fallback: Any = None) -> None:
        acc = core.acc
        self._core = core
        self._acc = acc
        self._lock = acc.lock
        self._open = acc.open
        self._partitions = core.partitions
        self._sticky = core._sticky
        self._tp_cache = core._tp_cache
        self._factory = future_factory
        self._batch_size = acc.batch_size
        self._buffer_memory = acc.buffer_memory
        self._fallback = fallback
        self._closed = False

    def close(self) -> None:
        """Decline every record from now on (the full path then refuses them)."""
        self._closed = True

    def send(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
    ) -> Any:
        """``append`` with a future from the factory, or, for a record it declines,
        ``fallback(topic, value, key, headers, partition, timestamp_ms)``'s result: the
        blocking producer's whole ``send`` in one call."""
        fut = self.append(topic, value, key, headers, partition, timestamp_ms, None)
        if fut is not None:
            return fut
        if self._fallback is None:
            raise ValueError("send needs a fallback: this Appender has none")
        return self._fallback(topic, value, key, headers, partition, timestamp_ms)

    def append(
        self,
        topic: str,
        value: Any,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
        timestamp_ms: Any = None,
        future: Any = None,
    ) -> Any:
        """Append one record and return its future (``future``, or a new one from the
        factory); None, with nothing changed, when the full path must take it.

        Taken: value and key bytes or None; headers None or a list/tuple of
        (str, bytes | None) tuples; partition and timestamp_ms int or None; the
        topic's partitions known; memory free; the partition's open batch present
        with room for the record (sizes in bytes as ``ProducerCore.try_append``).
        """
        if self._closed:
            return None
        if value is not None and type(value) is not bytes:
            return None
        if key is not None and type(key) is not bytes:
            return None
        if timestamp_ms is not None and type(timestamp_ms) is not int:
            return None
        parts = self._partitions.get(topic)
        if parts is None:
            return None
        size = RECORD_OVERHEAD
        if value is not None:
            size += len(value)
        if key is not None:
            size += len(key)
        hdrs = None
        if headers:
            got = _header_list(headers)
            if got is None:
                return None
            hdrs, hsize = got
            size += hsize
        unkeyed = False
        if partition is not None:
            if type(partition) is not int or partition not in parts:
                return None
            p = partition
        elif key is not None:
            p = parts[(murmur2(key) & 0x7FFFFFFF) % len(parts)]
        else:
            unkeyed = True
            p = -1
        acc = self._acc
        with self._lock:
            used = acc.used
            if used + size > self._buffer_memory and used > 0:
                return None
            if unkeyed:
                p = self._sticky.get(topic)
                if p is None:
                    return None
            tps = self._tp_cache.get(topic)
            if tps is None or len(tps) <= p:
                return None
            tp = tps[p]
            batch = self._open.get(tp)
            if batch is None:
                return None
            bsize = batch.size
            if bsize + size > self._batch_size:
                return None
            acc.used = used + size
            i = batch.count
            batch.values.append(value)
            keys = batch.keys
            if key is not None or keys is not None:
                if keys is None:
                    keys = batch.keys = [None] * i
                keys.append(key)
            bh = batch.headers
            if hdrs is not None or bh is not None:
                if bh is None:
                    bh = batch.headers = [None] * i
                bh.append(hdrs)
            ts = batch.timestamps
            if timestamp_ms is not None or ts is not None:
                if ts is None:
                    ts = batch.timestamps = [None] * i
                ts.append(timestamp_ms)
                batch.explicit_ts = True
            if future is None:
                # A bound future: it reads its RecordMetadata from the batch outcome.
                future = self._factory()
                future._batch = batch
                future._index = i
                batch.bound += 1
            else:
                batch.record_indices.append(i)
                batch.record_futures.append(future)
            bsize += size
            batch.size = bsize
            batch.count = i + 1
            if bsize >= self._batch_size:
                acc.seal_if_full(tp, batch)
                if unkeyed:
                    self._core._switch_sticky(topic, parts, p)
        return future
