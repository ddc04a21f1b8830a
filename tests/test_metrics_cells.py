"""Metric cells (``metrics`` capability): counters, gauges, counter arrays, histograms.

Behaviour tests run on whichever implementation ``streamcore._impl`` selected; the
agreement tests replay random operation sequences on the native and the reference
twin and compare every reading. Fuzz budget: STREAMCORE_FUZZ_EXAMPLES operations
(2000 by default).
"""

from __future__ import annotations

import math
import os
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcore import _impl
from streamcore._reference import metrics as ref

cells = _impl.metrics
FUZZ_OPS = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
OPS_PER_EXAMPLE = 40
AGREEMENT = settings(
    max_examples=max(20, FUZZ_OPS // OPS_PER_EXAMPLE),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The native twin is addressed directly, so the comparisons also run in the
# pure-Python pass (where the selector picks the reference) whenever it is built.
try:
    from streamcore import _native as _native_pkg  # type: ignore[attr-defined]
except ImportError:
    _native_pkg = None
_native = getattr(_native_pkg, "metrics", None)
needs_native = pytest.mark.skipif(_native is None, reason="streamcore._native (with metrics) is not built")


def test_both_twins_expose_the_same_public_names() -> None:
    assert cells.HISTOGRAM_BUCKETS == 64
    for name in ref.__all__:
        assert hasattr(cells, name), name


def test_counter_adds_and_refuses_to_go_down() -> None:
    c = cells.Counter()
    assert c.value == 0
    c.inc()
    c.inc(41)
    c.inc(0)
    assert c.value == 42
    with pytest.raises(ValueError, match="only goes up"):
        c.inc(-1)
    assert c.value == 42


def test_gauge_sets_and_moves_both_ways() -> None:
    g = cells.Gauge()
    g.set(10)
    g.inc()
    g.inc(5)
    g.dec(20)
    assert g.value == -4
    g.dec()
    assert g.value == -5
    g.set(7.9)  # int(value), as documented
    assert g.value == 7


def test_counter_array_counts_per_index_and_checks_bounds() -> None:
    a = cells.CounterArray(4)
    assert len(a) == 4
    a.inc(0)
    a.inc(3, 10)
    a.inc_pair(0, 2)
    a.inc_pair(1, 1)
    assert a.values() == [2, 2, 1, 10]
    with pytest.raises(IndexError, match=r"counter index 4 out of range 0\.\.3"):
        a.inc(4)
    with pytest.raises(IndexError):
        a.inc(-1)
    with pytest.raises(IndexError, match=r"out of range 0\.\.3"):
        a.inc_pair(0, 4)
    with pytest.raises(ValueError, match="only goes up"):
        a.inc(0, -1)
    # A failed pair counts neither index.
    assert a.values() == [2, 2, 1, 10]


@pytest.mark.parametrize("size", [0, -3])
def test_counter_array_needs_a_positive_size(size: int) -> None:
    with pytest.raises(ValueError, match="size must be positive"):
        cells.CounterArray(size)


def test_counter_array_values_is_a_copy() -> None:
    a = cells.CounterArray(2)
    v = a.values()
    v[0] = 99
    assert a.values() == [0, 0]


@pytest.mark.parametrize(
    ("value", "bucket"),
    [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 3),
        (1024, 10),
        (1025, 11),
        (2**62, 62),
        (2**62 + 1, 63),
        (2**64 - 1, 63),
    ],
)
def test_histogram_bucket_i_holds_values_up_to_two_to_the_i(value: int, bucket: int) -> None:
    h = cells.Histogram()
    h.observe(value)
    counts, count, total = h.snapshot()
    assert counts[bucket] == 1 and sum(counts) == 1
    assert (count, total) == (1, value)


def test_histogram_counts_negative_as_zero_and_truncates_floats() -> None:
    h = cells.Histogram()
    h.observe(-5)
    h.observe(2.9)
    h.observe(-0.5)
    counts, count, total = h.snapshot()
    assert count == 3 and total == 2
    assert counts[0] == 2 and counts[1] == 1


def test_histogram_quantile_is_the_upper_bound_of_the_ranked_bucket() -> None:
    h = cells.Histogram()
    assert h.quantile(0.5) == 0
    for v in (1, 2, 3, 100):
        h.observe(v)
    assert h.quantile(0.0) == 1
    assert h.quantile(0.25) == 1
    assert h.quantile(0.5) == 2
    assert h.quantile(0.75) == 4
    assert h.quantile(0.99) == 128
    assert h.quantile(1.0) == 128
    assert h.quantile(-3) == 1
    assert h.quantile(5) == 1 << 63


def test_histogram_quantile_of_nan_or_infinity_raises_like_math_ceil() -> None:
    h = cells.Histogram()
    h.observe(3)
    with pytest.raises(ValueError):
        h.quantile(math.nan)
    with pytest.raises(OverflowError):
        h.quantile(math.inf)


def test_concurrent_increments_are_all_counted() -> None:
    c = cells.Counter()
    a = cells.CounterArray(3)
    h = cells.Histogram()
    per_thread = 5000

    def work() -> None:
        for i in range(per_thread):
            c.inc()
            a.inc_pair(0, 1 + i % 2)
            h.observe(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert c.value == 4 * per_thread
    assert a.values() == [4 * per_thread, 2 * per_thread, 2 * per_thread]
    counts, count, total = h.snapshot()
    assert count == sum(counts) == 4 * per_thread
    assert total == 4 * sum(range(per_thread))


_op = st.one_of(
    st.tuples(st.just("counter_inc"), st.integers(0, 2**40)),
    st.tuples(st.just("gauge_set"), st.integers(-(2**62), 2**62)),
    st.tuples(st.just("gauge_inc"), st.integers(-(2**40), 2**40)),
    st.tuples(st.just("gauge_dec"), st.integers(-(2**40), 2**40)),
    st.tuples(st.just("array_inc"), st.integers(-2, 8), st.integers(0, 1000)),
    st.tuples(st.just("array_pair"), st.integers(-1, 8), st.integers(-1, 8)),
    st.tuples(st.just("observe"), st.one_of(st.integers(-(2**40), 2**56), st.floats(-1e6, 1e15))),
    st.tuples(st.just("quantile"), st.floats(-1, 2)),
)


def _apply(mod, ops) -> list[object]:
    c, g, a, h = mod.Counter(), mod.Gauge(), mod.CounterArray(7), mod.Histogram()
    readings: list[object] = []
    for op in ops:
        kind = op[0]
        try:
            if kind == "counter_inc":
                c.inc(op[1])
            elif kind == "gauge_set":
                g.set(op[1])
            elif kind == "gauge_inc":
                g.inc(op[1])
            elif kind == "gauge_dec":
                g.dec(op[1])
            elif kind == "array_inc":
                a.inc(op[1], op[2])
            elif kind == "array_pair":
                a.inc_pair(op[1], op[2])
            elif kind == "observe":
                h.observe(op[1])
            else:
                readings.append(h.quantile(op[1]))
        except (IndexError, ValueError) as exc:
            readings.append(type(exc))
    readings += [c.value, g.value, a.values(), len(a), h.snapshot()]
    return readings


@needs_native
@AGREEMENT
@given(st.lists(_op, max_size=OPS_PER_EXAMPLE))
def test_native_and_reference_agree_on_random_operations(ops) -> None:
    native = _apply(_native, ops)
    reference = _apply(ref, ops)
    native[-1] = tuple(native[-1])
    reference[-1] = tuple(reference[-1])
    assert native == reference
