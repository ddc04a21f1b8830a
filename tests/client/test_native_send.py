"""The producer's one-call send path (``partitioner`` and ``accumulator`` capabilities).

Runs in both passes. In the native pass the Rust twins are compared with the
pure-Python ones on the same inputs: the same partitions, the same records in the
same batches (encoded, byte for byte), the same memory charge, and the same records
declined to the full path. In the reference pass the active twins are checked
against Kafka's known values and the full path alone.
"""

from __future__ import annotations

import concurrent.futures
import random
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcore import _impl
from streamcore._reference import accumulator as ref_accumulator
from streamcore._reference import partitioner as ref_partitioner
from streamcore.client import accumulator as client_accumulator
from streamcore.client.config import build_config
from streamcore.client.producer import ProducerCore
from streamcore.client.sync import DeliveryFuture
from streamcore.client.types import RecordMetadata
from streamcore.codec import encode_batch

# Kafka's UtilsTest.testMurmur2 inputs and the Java client's (signed int) results.
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# The twins to compare: the active ones, and in the native pass the reference too.
PARTITIONERS = [pytest.param(_impl.partitioner, id="active")]
ACCUMULATORS = [pytest.param(_impl.accumulator, id="active")]
if _impl.partitioner is not ref_partitioner:
    PARTITIONERS.append(pytest.param(ref_partitioner, id="reference"))
if _impl.accumulator is not ref_accumulator:
    ACCUMULATORS.append(pytest.param(ref_accumulator, id="reference"))


# ------------------------------------------------------------------ partitioner


@pytest.mark.parametrize("impl", PARTITIONERS)
@pytest.mark.parametrize("key,expected", JAVA_MURMUR2)
def test_murmur2_gives_the_java_clients_values(impl: ModuleType, key: bytes, expected: int) -> None:
    assert impl.murmur2(key) == expected
    assert impl.murmur2(bytearray(key)) == expected
    assert impl.murmur2(memoryview(key)) == expected


@pytest.mark.parametrize("impl", PARTITIONERS)
def test_default_partition_is_javas_formula_and_refuses_no_partitions(impl: ModuleType) -> None:
    for key, h in JAVA_MURMUR2:
        for n in (1, 2, 3, 7, 100, 2**31 - 1):
            assert impl.default_partition(key, n) == (h & 0x7FFFFFFF) % n
    for bad in (0, -1):
        with pytest.raises(ValueError, match="num_partitions must be positive"):
            impl.default_partition(b"k", bad)


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=5000))
@settings(max_examples=400, deadline=None)
def test_active_partitioner_agrees_with_the_reference(key: bytes, n: int) -> None:
    assert _impl.partitioner.murmur2(key) == ref_partitioner.murmur2(key)
    assert _impl.partitioner.default_partition(key, n) == ref_partitioner.default_partition(key, n)


# ------------------------------------------------------------------ the send path


class _Given:
    """A future handed to ``append`` (as the asyncio producer passes its own)."""

    def __init__(self, n: int) -> None:
        self.n = n


def _core(impl: ModuleType, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> ProducerCore:
    """An unstarted ProducerCore whose batches and send path come from ``impl``."""
    monkeypatch.setattr(client_accumulator, "ProducerBatch", impl.ProducerBatch)
    cfg = build_config("producer", "127.0.0.1:1", None, dict(linger_ms=5, **settings))
    core = ProducerCore(cfg)
    core._future_factory = DeliveryFuture
    core.partitions["t"] = [0, 1, 2, 3]
    core.partitions["u"] = [0, 1, 2]
    core.fast = impl.Appender(core, DeliveryFuture)
    return core


def _send(core: ProducerCore, rec: tuple[Any, ...], given: bool, n: int) -> tuple[bool, Any]:
    """Send ``rec`` as the producers do: the one-call path, else serialize and try_append.

    Returns (taken by the one-call path, the record's future or False if memory was full).
    """
    topic, value, key, headers, partition, ts = rec
    fut = _Given(n) if given else None
    got = core.fast.append(topic, value, key, headers, partition, ts, fut)
    if got is not None:
        return True, got
    value, key = core.serialize(topic, value, key)
    parts = core.partitions[topic]
    return False, core.try_append(topic, parts, value, key, headers, partition, ts, fut, 0)


def _where(core: ProducerCore, fut: Any) -> tuple[str, int, int]:
    """(topic, partition, index in its batch) of a record's future."""
    if isinstance(fut, DeliveryFuture):
        b = fut._batch
        return (b.tp.topic, b.tp.partition, fut._index)
    for b in _batches(core):
        for i, f in zip(b.record_indices, b.record_futures, strict=True):
            if f is fut:
                return (b.tp.topic, b.tp.partition, i)
    raise AssertionError("record not found in any batch")


def _batches(core: ProducerCore) -> list[Any]:
    acc = core.acc
    out = [b for q in acc.sealed.values() for b in q]
    return out + list(acc.open.values())


def _encoded(core: ProducerCore) -> list[tuple[str, int, int, int, bytes]]:
    """Every batch as (topic, partition, size, count, bytes) with fixed timestamps, in a
    stable order (per partition, oldest first)."""
    out = []
    for b in _batches(core):
        ts = [t if t is not None else 1_700_000_000_000 for t in (b.timestamps or [None] * b.count)]
        data = encode_batch(b.values, b.keys, b.headers, ts)
        out.append((b.tp.topic, b.tp.partition, b.size, b.count, bytes(data)))
    return sorted(out, key=lambda e: (e[0], e[1]))


_headers = st.one_of(
    st.none(),
    st.just([]),
    st.lists(
        st.tuples(st.text(max_size=6), st.one_of(st.none(), st.binary(max_size=8))), min_size=1, max_size=3
    ),
    st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=4)), min_size=1, max_size=2).map(tuple),
    # Not plain bytes: the full path converts these (str value) or refuses them.
    st.just([("k", "text")]),
)
_record = st.tuples(
    st.sampled_from(["t", "u"]),
    st.one_of(st.none(), st.binary(max_size=60)),
    st.one_of(st.none(), st.binary(max_size=12), st.just("str-key")),
    _headers,
    st.one_of(st.none(), st.integers(0, 2)),
    st.one_of(st.none(), st.integers(0, 2**41)),
)


def _run(
    impl: ModuleType, monkeypatch: pytest.MonkeyPatch, records: list[Any], given: bool, seed: int, **kw: Any
) -> tuple[list[Any], list[Any], int, dict[str, int]]:
    random.seed(seed)  # the full path picks sticky partitions with random.choice
    core = _core(impl, monkeypatch, **kw)
    taken, where = [], []
    for n, rec in enumerate(records):
        fast, fut = _send(core, rec, given, n)
        taken.append(fast)
        where.append(None if fut is False else _where(core, fut))
    return taken + where, _encoded(core), core.acc.used, dict(core._sticky)


def _run_full_path(
    monkeypatch: pytest.MonkeyPatch, records: list[Any], given: bool, seed: int, **kw: Any
) -> tuple[list[Any], list[Any], int, dict[str, int]]:
    """The same records through serialize + try_append only (the path before the one call)."""
    random.seed(seed)
    core = _core(ref_accumulator, monkeypatch, **kw)
    core.fast = None
    where = []
    for n, rec in enumerate(records):
        topic, value, key, headers, partition, ts = rec
        value, key = core.serialize(topic, value, key)
        fut = core.try_append(
            topic, core.partitions[topic], value, key, headers, partition, ts, _Given(n) if given else None, 0
        )
        where.append(None if fut is False else _where(core, fut))
    return where, _encoded(core), core.acc.used, dict(core._sticky)


@given(
    records=st.lists(_record, max_size=120),
    given_futures=st.booleans(),
    seed=st.integers(0, 2**16),
    batch_size=st.sampled_from([64, 200, 1000, 262_144]),
    buffer_memory=st.sampled_from([300, 4000, 1 << 30]),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_send_path_twin_leaves_the_batches_of_the_full_path(
    monkeypatch: pytest.MonkeyPatch,
    records: list[Any],
    given_futures: bool,
    seed: int,
    batch_size: int,
    buffer_memory: int,
) -> None:
    # Every twin (native and reference in the native pass) against the full path alone:
    # the same partitions and batch positions, byte-identical batches, the same memory
    # charge and sticky partitions; and the twins decline the same records.
    kw = dict(batch_size=batch_size, buffer_memory=buffer_memory)
    with monkeypatch.context() as m:
        full = _run_full_path(m, records, given_futures, seed, **kw)
    declined = []
    for param in ACCUMULATORS:
        impl = param.values[0]
        with monkeypatch.context() as m:
            got = _run(impl, m, records, given_futures, seed, **kw)
        n = len(records)
        assert (got[0][n:], *got[1:]) == full
        declined.append(got[0][:n])
    assert all(d == declined[0] for d in declined)


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_the_one_call_path_matches_the_full_path(impl: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same records through try_append only: same batches, same partitions.
    rng = random.Random(5)
    records = [
        (
            rng.choice(["t", "u"]),
            rng.randbytes(rng.randrange(0, 40)),
            rng.choice([None, rng.randbytes(6)]),
            rng.choice([None, [("h", b"v"), ("e", None)]]),
            rng.choice([None, None, 1]),
            rng.choice([None, 1234]),
        )
        for _ in range(500)
    ]
    with monkeypatch.context() as m:
        one_call = _run(impl, m, records, False, 7, batch_size=700)
    with monkeypatch.context() as m:
        random.seed(7)
        core = _core(impl, m, batch_size=700)
        core.fast = None
        where = []
        for rec in records:
            topic, value, key, headers, partition, ts = rec
            fut = core.try_append(topic, core.partitions[topic], value, key, headers, partition, ts, None, 0)
            where.append(_where(core, fut))
        full = ([False] * len(records) + where, _encoded(core), core.acc.used, dict(core._sticky))
    assert one_call[1:] == full[1:]
    assert one_call[0][len(records) :] == full[0][len(records) :]
    assert any(one_call[0][: len(records)])  # most records did take the one call


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_declined_records_change_nothing(impl: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    core = _core(impl, monkeypatch, buffer_memory=1000)
    app = core.fast
    # No open batch yet, unknown topic, sticky partition not chosen: the full path's work.
    assert app.append("t", b"v", None, None, None, None, None) is None
    assert app.append("nope", b"v", b"k", None, None, None, None) is None
    fut = core.try_append("t", [0, 1, 2, 3], b"v", b"k", None, None, None, None, 0)
    batch = fut._batch
    p = batch.tp.partition
    before = (core.acc.used, batch.size, batch.count, list(batch.values), batch.keys, batch.bound)
    declined = [
        ("t", "str value", b"k", None, None, None),  # not bytes: serializing is the full path's
        ("t", b"v", "str key", None, None, None),
        ("t", b"v", b"k", [("h", "str")], None, None),  # header value to convert
        ("t", b"v", b"k", [["h", b"v"]], None, None),  # header not a tuple
        ("t", b"v", None, None, 9, None),  # no such partition: the full path raises
        ("t", b"v", None, None, True, None),  # bool is not a partition number
        ("t", b"v", None, None, p, 1.5),  # timestamp not an int
        ("t", b"x" * 2000, None, None, p, None),  # memory full: the full path waits
        ("t", b"v", None, None, (p + 1) % 4, None),  # that partition has no open batch
    ]
    for rec in declined:
        assert app.append(*rec, None) is None, rec
    assert (core.acc.used, batch.size, batch.count, list(batch.values), batch.keys, batch.bound) == before
    # And one it takes: same partition, next index, charged like try_append.
    got = app.append("t", b"vv", None, [("h", b"12")], p, 5, None)
    assert isinstance(got, DeliveryFuture) and got._batch is batch and got._index == 1
    assert core.acc.used == before[0] + 2 + 24 + 3
    assert batch.keys == [b"k", None] and batch.headers == [None, [("h", b"12")]]
    assert batch.timestamps == [None, 5] and batch.explicit_ts


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_a_full_batch_is_sealed_and_the_sticky_partition_moves(
    impl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = _core(impl, monkeypatch, batch_size=321)
    random.seed(3)
    first = core.try_append("t", [0, 1, 2, 3], b"v" * 50, None, None, None, None, None, 0)
    p = first._batch.tp.partition
    futs = [core.fast.append("t", b"v" * 50) for _ in range(3)]
    assert all(f is not None and f._batch is first._batch for f in futs)
    # 4 x (50 + 24) = 296 bytes: the next one does not fit, the full path seals.
    assert core.fast.append("t", b"v" * 50) is None
    last = core.fast.append("t", b"v", None, None, p)
    assert last is not None and last._batch is first._batch
    # 296 + 25 = 321: sealed by the one call (an explicit partition: the sticky one stays).
    assert first._batch not in core.acc.open.values()
    assert list(core.acc.sealed[first._batch.tp]) == [first._batch]
    assert core._sticky["t"] == p  # an explicit partition does not move the sticky one
    core.try_append("t", [0, 1, 2, 3], b"v" * 250, None, None, None, None, None, 0)
    sticky_batch = core.acc.open[core._tp_cache["t"][p]]
    assert core.fast.append("t", b"v" * 23) is not None  # 250+24 + 23+24 = 321: sealed
    assert sticky_batch not in core.acc.open.values()
    assert core._sticky["t"] != p


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_bound_futures_from_the_one_call_path_resolve_from_their_batch(
    impl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamcore.client.sync import complete_batch

    core = _core(impl, monkeypatch)
    first = core.try_append("t", [0, 1, 2, 3], b"a", b"k", None, None, None, None, 0)
    batch = first._batch
    p = batch.tp.partition
    futs = [first] + [core.fast.append("t", b"b", None, None, p, 1000 + i) for i in range(3)]
    assert batch.bound == 4 and batch.count == 4
    waited = futs[2]
    done: list[Any] = []
    waited.add_done_callback(done.append)
    complete_batch(batch, (40, -1))
    results = [f.result(0) for f in futs]
    assert results[1:] == [RecordMetadata("t", p, 41 + i, 1000 + i) for i in range(3)]
    assert concurrent.futures.wait(futs, 0).not_done == set()
    assert done == [waited]


@pytest.mark.parametrize("impl", ACCUMULATORS)
@pytest.mark.parametrize(
    "base_offset,log_append_time", [(100, -1), (100, None), (0, 777), (-1, -1), (-1, 555)]
)
@pytest.mark.parametrize("explicit_ts", [False, True])
def test_resolve_records_gives_each_send_future_its_metadata(
    impl: ModuleType, base_offset: int, log_append_time: int | None, explicit_ts: bool
) -> None:
    from streamcore.client.types import TopicPartition

    b = impl.ProducerBatch(TopicPartition("t", 2), 0.0, 9.0)
    futs = [concurrent.futures.Future() for _ in range(4)]
    for i, f in enumerate(futs):
        b.add(b"v", None, None, 1000 + i if explicit_ts else None, 25, f)
    if explicit_ts:
        b.timestamps[2] = None  # the sender fills these; a gap falls back to first_ts
    b.first_ts = 42
    futs[1].set_result("already done")
    b.resolve_records(base_offset, log_append_time, RecordMetadata)
    appended = log_append_time not in (-1, None)
    for i, f in enumerate(futs):
        if i == 1:
            assert f.result(0) == "already done"
            continue
        off = base_offset + i if base_offset >= 0 else -1
        if appended:
            ts = log_append_time
        elif explicit_ts and i != 2:
            ts = 1000 + i
        else:
            ts = 42
        got = f.result(0)
        assert got == RecordMetadata("t", 2, off, ts) and type(got) is RecordMetadata
    # Any callable builds the metadata, not only a named tuple.
    b2 = impl.ProducerBatch(TopicPartition("t", 0), 0.0, 9.0)
    f2: concurrent.futures.Future[Any] = concurrent.futures.Future()
    b2.add(b"v", None, None, None, 25, f2)
    b2.resolve_records(7, -1, lambda *a: a)
    assert f2.result(0) == ("t", 0, 7, 0)


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_send_takes_the_common_record_and_hands_the_rest_to_the_fallback(
    impl: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = _core(impl, monkeypatch)
    handed: list[tuple[Any, ...]] = []

    def fallback(*args: Any) -> str:
        handed.append(args)
        return "full path"

    app = impl.Appender(core, DeliveryFuture, fallback)
    assert app.send("t", b"v", b"k") == "full path"  # no open batch yet
    first = core.try_append("t", [0, 1, 2, 3], b"v", b"k", None, None, None, None, 0)
    fut = app.send("t", b"w", key=b"k")
    assert isinstance(fut, DeliveryFuture) and fut._batch is first._batch and fut._index == 1
    assert app.send("t", "text", headers=[("h", b"1")], timestamp_ms=5) == "full path"
    app.close()
    assert app.send("t", b"w", b"k") == "full path"  # closed: everything goes to the full path
    assert app.append("t", b"w", b"k") is None
    assert handed == [
        ("t", b"v", b"k", None, None, None),
        ("t", "text", None, [("h", b"1")], None, 5),
        ("t", b"w", b"k", None, None, None),
    ]
    assert first._batch.count == 2
    with pytest.raises(ValueError, match="fallback"):
        impl.Appender(core, DeliveryFuture).send("nope", b"v")


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_total_len_sums_lengths_with_none_as_zero(impl: ModuleType) -> None:
    items: list[Any] = [b"ab", None, "xyz", bytearray(4), memoryview(b"12345")]
    assert impl.total_len(items) == 14
    assert impl.total_len(tuple(items)) == 14
    assert impl.total_len(iter(items)) == 14  # any iterable, even with a None in it
    assert impl.total_len([]) == 0
    assert impl.total_len([None, None]) == 0
    with pytest.raises(TypeError):
        impl.total_len([b"a", 7])


@pytest.mark.parametrize("impl", ACCUMULATORS)
def test_batches_without_own_timestamps_report_the_encoded_base_timestamp(impl: ModuleType) -> None:
    """The sender lets the codec stamp such batches; first_ts must be what it wrote."""
    from streamcore._impl import record_batch
    from streamcore.client.sender import Sender

    batch = impl.ProducerBatch(("t", 0), 0.0, 1e9)
    batch.add_many([b"a", b"b", None], None, 3 * 25, None)
    sender = Sender.__new__(Sender)
    sender.sequencer = None
    sender.compression = "none"
    sender.txn = None
    sender._encode(batch)
    ts = [r.timestamp_ms for r in record_batch.decode_batch(batch.encoded)]
    assert batch.first_ts == ts[0] == ts[1] == ts[2] > 1_600_000_000_000
    assert batch.timestamps is None

    stamped = impl.ProducerBatch(("t", 0), 0.0, 1e9)
    stamped.add(b"a", None, None, 1234, 25, None)
    stamped.add(b"b", None, None, None, 25, None)
    sender._encode(stamped)
    assert stamped.first_ts == 1234
    assert stamped.timestamps[0] == 1234 and stamped.timestamps[1] > 1_600_000_000_000
