"""Retry policies, duration parsing and retry metrics (``streamcore.retry``).

The backoff formula is exact integer arithmetic in microseconds; the fast paths for
multipliers 2.0 and 1.5 must equal the general formula for every exponent, and every
strategy must equal the documented formula written independently here. Durations
follow the one set of rules in ``streamcore._units`` (the broker's settings follow
them too: tests/broker_logic/test_config.py). Fuzz budget: STREAMCORE_FUZZ_EXAMPLES
(2000 by default).
"""

from __future__ import annotations

import os
import threading
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcore import _units, retry
from streamcore.errors import BackpressureError, ConfigError
from streamcore.retry import (
    MAX_DURATION_MS,
    MAX_EXPONENT,
    ErrorCategory,
    RetryMetrics,
    RetryPolicy,
    backoff_us,
    parse_duration,
)

FUZZ = int(os.environ.get("STREAMCORE_FUZZ_EXAMPLES", "2000"))
PROPERTY = settings(
    max_examples=max(50, FUZZ // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

U64 = 2**64 - 1


# -- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("100ms", 100),
        ("30s", 30_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("0s", 0),
        ("250", 250),
        (" 5 M ", 300_000),
        ("1MS", 1),
        ("007s", 7_000),
        ("30S", 30_000),
        ("1d", 86_400_000),
        ("7D", 604_800_000),
        ("2 H", 7_200_000),
        (str(MAX_DURATION_MS), MAX_DURATION_MS),
    ],
)
def test_duration_text_parses_to_whole_milliseconds(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


def test_int_duration_is_milliseconds() -> None:
    assert parse_duration(1500) == 1500
    assert parse_duration(0) == 0


@pytest.mark.parametrize(
    "bad", ["", "s", "1.5s", "-1s", "-1", " -1 ", "-5", "1w", "1 s s", "1sm", "ms", "1\u0663s", "30 seconds"]
)
def test_malformed_duration_raises_config_error_naming_text_and_forms(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(bad)
    assert repr(bad) in str(info.value)
    assert "'100ms', '30s', '5m', '1h'" in str(info.value)


@pytest.mark.parametrize(
    "bad", [-1, True, 1.5, None, b"1s", MAX_DURATION_MS + 1, "99999999999999999999h", "9" * 5000]
)
def test_duration_of_wrong_type_or_range_raises_config_error(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_duration_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match="^retry interval: "):
        RetryPolicy(interval="soon")
    with pytest.raises(ConfigError, match="^topic.wait.timeout: .*'-1'"):
        RetryPolicy.from_properties({"topic.wait.timeout": "-1"})
    with pytest.raises(ConfigError) as info:
        parse_duration("-1", "linger")
    assert "\n" not in str(info.value) and str(info.value).startswith("linger: ")


def test_minus_one_is_never_a_retry_duration() -> None:
    # "Forever" is a broker notion (retention); a retry delay of -1 is a mistake.
    for bad in (-1, "-1"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    assert _units.parse_duration_ms("-1", allow_forever=True) == _units.FOREVER == -1


def test_each_distinct_duration_string_is_parsed_once() -> None:
    text = "4242s"
    _units._duration_text_ms.cache_clear()
    for _ in range(50):
        assert parse_duration(text) == 4_242_000
    info = _units._duration_text_ms.cache_info()
    assert (info.misses, info.hits) == (1, 49)


_duration_like = st.one_of(
    st.text(max_size=12),
    st.builds(
        lambda lead, digits, mid, unit, trail: lead + digits + mid + unit + trail,
        st.sampled_from(["", " ", "\t", "\n ", "\x0b", "\xa0"]),
        st.from_regex(r"[0-9]{1,22}", fullmatch=True),
        st.sampled_from(["", " ", "\x0c", "\u2003"]),
        st.sampled_from(["", "ms", "MS", "Ms", "s", "S", "m", "M", "h", "H", "d", "sm", "us", "\u212a"]),
        st.sampled_from(["", " ", "\r\n", "x", "\u3000"]),
    ),
)


_ASCII_BLANKS = " \t\n\r\x0b\x0c"
_UNIT_MS = {"": 1, "ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def _documented_ms(text: str) -> int | None:
    """The documented duration rules, written without a regex; None where an error is due."""
    body = text.strip(_ASCII_BLANKS)
    n = 0
    while n < len(body) and body[n] in "0123456789":
        n += 1
    unit = body[n:].lstrip(_ASCII_BLANKS)
    if not unit.isascii():
        return None
    if n == 0 or unit.lower() not in _UNIT_MS:
        return None
    ms = int(body[:n]) * _UNIT_MS[unit.lower()]
    return ms if ms <= MAX_DURATION_MS else None


@PROPERTY
@given(_duration_like)
def test_duration_parser_follows_the_documented_rules(text: str) -> None:
    want = _documented_ms(text)
    if want is None:
        with pytest.raises(ConfigError):
            parse_duration(text)
    else:
        assert parse_duration(text) == want


# -- backoff formula ----------------------------------------------------------------


def _general_us(interval_us: int, multiplier: float, cap: int, attempt: int) -> int:
    """The documented formula, written independently with Fraction."""
    m = Fraction(repr(multiplier))
    return min(cap, int(interval_us * m ** min(attempt, MAX_EXPONENT)))


@pytest.mark.parametrize("multiplier", [2.0, 1.5])
@pytest.mark.parametrize("interval_us", [0, 1, 3, 7, 999, 1_000_000, 123_456_789, U64 // 3, U64])
@pytest.mark.parametrize("cap", [U64, 120_000_000, 1, 2**200])
def test_fast_paths_equal_the_general_formula_for_every_exponent(
    multiplier: float, interval_us: int, cap: int
) -> None:
    p, q = retry._ratio(multiplier)
    for e in range(MAX_EXPONENT + 1):
        fast = retry._exponential_us(interval_us, p, q, cap, e)
        assert fast == retry._exponential_general_us(interval_us, p, q, cap, e), e
        assert fast == _general_us(interval_us, multiplier, cap, e), e


@PROPERTY
@given(
    st.integers(0, 2**70), st.integers(0, 2**80), st.integers(0, MAX_EXPONENT), st.sampled_from([2.0, 1.5])
)
def test_fast_paths_equal_the_general_formula_on_random_inputs(
    interval_us: int, cap: int, e: int, m: float
) -> None:
    assert backoff_us("exponential", interval_us, m, cap, e) == _general_us(interval_us, m, cap, e)


def test_multiplier_means_its_decimal_value_exactly() -> None:
    # 1.7 is 17/10, not the double just below it: 1 s * 1.7 is exactly 1.7 s.
    assert backoff_us("exponential", 1_000_000, 1.7, U64, 1) == 1_700_000
    assert backoff_us("exponential", 1_000_000, 1.7, U64, 2) == 2_890_000
    assert backoff_us("exponential", 3, 1.7, U64, 2) == 8  # floor(8.67)
    assert backoff_us("exponential", 1_000_000, 1.5, U64, 3) == 3_375_000


def test_strategies_follow_the_documented_formulas() -> None:
    assert [backoff_us("fixed", 500, 3.0, 10_000, k) for k in range(3)] == [500, 500, 500]
    assert [backoff_us("linear", 500, 3.0, 1_600, k) for k in range(5)] == [500, 1000, 1500, 1600, 1600]
    assert [backoff_us("exponential", 500, 2.0, 5_000, k) for k in range(6)] == [
        500,
        1000,
        2000,
        4000,
        5000,
        5000,
    ]
    assert backoff_us("fixed", 500, 1.0, 100, 0) == 100


def test_exponent_stops_at_63() -> None:
    for k in (64, 65, 1000, 10**9):
        assert backoff_us("exponential", 1, 1.01, 2**200, k) == backoff_us("exponential", 1, 1.01, 2**200, 63)
    assert backoff_us("linear", 1, 1.0, 2**200, 10**9) == 10**9 + 1


@pytest.mark.parametrize(
    ("strategy", "multiplier"), [("fibonacci", 2.0), ("exponential", 0.5), ("exponential", float("nan"))]
)
def test_bad_strategy_or_multiplier_raises_config_error(strategy: str, multiplier: float) -> None:
    with pytest.raises(ConfigError):
        backoff_us(strategy, 1, multiplier, 10, 1)


_multiplier = st.one_of(
    st.sampled_from([1.0, 1.5, 2.0, 1.7, 1.1, 3.0, 10.0, 1.0000000000000002, 1e21]),
    st.floats(1.0, 8.0),
    st.floats(1.0, 1e30),
)


def _documented_us(strategy: str, interval_us: int, multiplier: float, cap: int, attempt: int) -> int:
    if strategy == "fixed":
        return min(cap, interval_us)
    if strategy == "linear":
        return min(cap, interval_us * (attempt + 1))
    return _general_us(interval_us, multiplier, cap, attempt)


@PROPERTY
@given(
    st.sampled_from(["exponential", "fixed", "linear"]),
    st.integers(0, U64),
    _multiplier,
    st.integers(0, U64),
    st.one_of(st.integers(0, 70), st.integers(0, U64)),
)
def test_every_strategy_follows_the_documented_formula(
    strategy: str, interval_us: int, m: float, cap: int, attempt: int
) -> None:
    assert backoff_us(strategy, interval_us, m, cap, attempt) == _documented_us(
        strategy, interval_us, m, cap, attempt
    )


# -- policies -----------------------------------------------------------------------


def test_default_policy_is_exponential_from_one_second_capped_at_two_minutes() -> None:
    p = RetryPolicy()
    assert (p.strategy, p.interval_ms, p.multiplier, p.max_delay_ms) == ("exponential", 1000, 2.0, 120_000)
    assert [p.delay_ms(k) for k in range(9)] == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 120000, 120000]
    assert p.delay_ms(500) == 120_000


def test_policy_delays_equal_the_formula_beyond_the_table() -> None:
    p = RetryPolicy("exponential", "100ms", 1.01, "1h")
    for k in (0, 1, 63, 64, 100):
        assert p.delay_us(k) == backoff_us("exponential", 100_000, 1.01, 3_600_000_000, k)
    with pytest.raises(ValueError):
        p.delay_us(-1)


def test_jitter_takes_at_most_its_fraction_off_using_the_injected_source() -> None:
    draws = iter([0.0, 0.5, 0.999999])
    p = RetryPolicy("fixed", "10s", max_delay="10s", jitter=0.2, random=lambda: next(draws))
    assert p.delay_us(0) == 10_000_000
    assert p.delay_us(0) == 9_000_000
    assert p.delay_us(0) == 10_000_000 - int(10_000_000 * 0.2 * 0.999999)
    assert p.base_delay_us(0) == 10_000_000


def test_no_jitter_never_calls_the_random_source() -> None:
    def boom() -> float:
        raise AssertionError("random() called without jitter")

    p = RetryPolicy(jitter=0.0, random=boom)
    assert p.delay_ms(3) == 8000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"strategy": "random"},
        {"multiplier": 0.9},
        {"multiplier": "fast"},
        {"jitter": 1.5},
        {"jitter": -0.1},
        {"max_attempts": -1},
        {"max_attempts": 2.5},
        {"interval": "5 minutes"},
        {"interval": "10m", "max_delay": "1m"},
    ],
)
def test_invalid_policy_settings_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_should_retry_respects_max_attempts() -> None:
    assert RetryPolicy().should_retry(10**6)
    p = RetryPolicy(max_attempts=3)
    assert [p.should_retry(n) for n in range(5)] == [True, True, True, False, False]


def test_policy_from_environment() -> None:
    env = {
        "STREAMCORE_RETRY_STRATEGY": "Linear",
        "STREAMCORE_RETRY_INTERVAL": "250ms",
        "STREAMCORE_RETRY_MULTIPLIER": "1.5",
        "STREAMCORE_RETRY_MAX_DELAY": "2s",
        "UNRELATED": "x",
    }
    p = RetryPolicy.from_env(env)
    assert (p.strategy, p.interval_ms, p.multiplier, p.max_delay_ms) == ("linear", 250, 1.5, 2000)
    assert RetryPolicy.from_env({"STREAMCORE_RETRY_INTERVAL": ""}).interval_ms == 1000
    assert RetryPolicy.from_env({}, jitter=0.1).jitter == 0.1


def test_environment_error_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="STREAMCORE_RETRY_INTERVAL"):
        RetryPolicy.from_env({"STREAMCORE_RETRY_INTERVAL": "soon"})
    with pytest.raises(ConfigError, match="STREAMCORE_RETRY_MULTIPLIER"):
        RetryPolicy.from_env({"STREAMCORE_RETRY_MULTIPLIER": "double"})
    with pytest.raises(ConfigError, match="unknown retry strategy"):
        RetryPolicy.from_env({"STREAMCORE_RETRY_STRATEGY": "hope"})


def test_policy_from_properties() -> None:
    p = RetryPolicy.from_properties(
        {
            "retry.strategy": "exponential",
            "retry.interval": "1s",
            "retry.multiplier": "1.5",
            "retry.max.delay": "120s",
            "topic.wait.timeout": "300s",
            "bootstrap.servers": "ignored:9092",
        }
    )
    assert (p.interval_ms, p.multiplier, p.max_delay_ms, p.wait_timeout_ms) == (1000, 1.5, 120_000, 300_000)
    assert [p.delay_ms(k) for k in range(4)] == [1000, 1500, 2250, 3375]
    assert RetryPolicy.from_properties({"retry.interval": 200}).interval_ms == 200
    assert RetryPolicy.from_properties({}).wait_timeout_ms is None
    with pytest.raises(ConfigError, match="retry.max.delay"):
        RetryPolicy.from_properties({"retry.max.delay": "forever"})


# -- metrics ------------------------------------------------------------------------


def test_retry_metrics_count_attempts_by_outcome() -> None:
    m = RetryMetrics()
    assert m.snapshot()["success_rate"] == 0.0
    m.record(ErrorCategory.TOPIC_MISSING)
    m.record(ErrorCategory.TOPIC_MISSING)
    m.record(ErrorCategory.TIMEOUT)
    m.record(int(ErrorCategory.NETWORK))
    m.record_success()
    assert (m.attempts, m.successes, m.timeouts) == (5, 1, 1)
    assert m.count(ErrorCategory.TOPIC_MISSING) == 2
    assert m.success_rate == pytest.approx(0.2)
    assert m.timeout_rate == pytest.approx(0.2)
    snap = m.snapshot()
    assert snap["attempts"] == 5 and snap["successes"] == 1 and snap["failures"] == 4
    assert snap["by_category"] == {
        "TOPIC_MISSING": 2,
        "NETWORK": 1,
        "TIMEOUT": 1,
        "AUTHORIZATION": 0,
        "BACKPRESSURE": 0,
        "RETRIABLE_BROKER": 0,
        "FATAL": 0,
        "UNKNOWN": 0,
    }


@pytest.mark.parametrize("bad", [-1, 8, 100])
def test_retry_metrics_refuse_a_non_category(bad: int) -> None:
    m = RetryMetrics()
    with pytest.raises(ValueError):
        m.record(bad)
    assert m.attempts == 0


def test_retry_metrics_record_exception_categorizes_it() -> None:
    m = RetryMetrics()
    assert m.record_exception(BackpressureError("queue full")) is ErrorCategory.BACKPRESSURE
    assert m.record_exception(TimeoutError()) is ErrorCategory.TIMEOUT
    assert m.snapshot()["by_category"]["BACKPRESSURE"] == 1
    assert m.attempts == 2


def test_retry_metrics_lose_no_update_under_threads() -> None:
    m = RetryMetrics()
    n = 3000

    def work() -> None:
        for i in range(n):
            if i % 3 == 0:
                m.record_success()
            else:
                m.record(ErrorCategory.TIMEOUT)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    snap = m.snapshot()
    assert snap["attempts"] == 4 * n
    assert snap["successes"] == 4 * 1000
    assert snap["timeouts"] == 4 * 2000


def test_retry_metrics_count_retries_and_their_backoff_apart_from_attempts() -> None:
    m = RetryMetrics()
    m.record(ErrorCategory.NETWORK)
    m.record_backoff(100_000)
    m.record_backoff(200_000)
    assert (m.retries, m.backoff_us, m.attempts) == (2, 300_000, 1)
    snap = m.snapshot()
    assert (snap["retries"], snap["backoff_us"]) == (2, 300_000)
    with pytest.raises(ValueError):
        m.record_backoff(-1)
    assert m.retries == 2
