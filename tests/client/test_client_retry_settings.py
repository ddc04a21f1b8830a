"""Retry settings reach the producer's real waits: ``retry_*`` keywords, the ``retry.*``
properties and the ``STREAMCORE_RETRY_*`` variables choose the policy, and a broker that
answers a retriable error N times sees the attempts spaced by that policy's delays.

Gaps are checked from below only (the sender never resends before its backoff ends,
however loaded the machine); the exact delays the producer chose are in its metrics.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import streamcore.aio as aio
from streamcore.client import Producer as BlockingProducer
from streamcore.client.config import build_config
from streamcore.errors import ConfigError, ErrorCode
from streamcore.retry import RETRY_ENV_VARS, RetryPolicy

from .fake_broker import FakeBroker

NOT_LEADER = ErrorCode.NOT_LEADER_OR_FOLLOWER.code
FAILURES = 3


def _expected_delays_us(strategy: str, interval_ms: int, multiplier: float, max_ms: int) -> list[int]:
    policy = RetryPolicy(strategy, interval=interval_ms, multiplier=multiplier, max_delay=max_ms)
    return [policy.delay_us(k) for k in range(FAILURES)]


def _gaps_us(arrivals: list[float]) -> list[float]:
    return [(b - a) * 1e6 for a, b in zip(arrivals, arrivals[1:], strict=False)]


async def _produce_through_failures(bootstrap: str, settings: dict[str, Any]) -> dict[str, Any]:
    async with aio.Producer(bootstrap, linger_ms=0, **settings) as p:
        meta = await asyncio.wait_for(await p.send("t", b"v"), 30)
        assert meta.offset == 0
        return p.metrics


@pytest.mark.parametrize(
    ("strategy", "multiplier"), [("exponential", 2.0), ("fixed", 2.0), ("linear", 2.0), ("exponential", 1.5)]
)
def test_configured_strategy_spaces_the_producers_real_retries(strategy: str, multiplier: float) -> None:
    interval_ms, max_ms = 120, 10_000
    expected = _expected_delays_us(strategy, interval_ms, multiplier, max_ms)
    with FakeBroker() as broker:
        broker.produce_script.extend([(NOT_LEADER, 0)] * FAILURES)
        metrics = asyncio.run(
            _produce_through_failures(
                broker.bootstrap,
                {
                    "retry_strategy": strategy,
                    "retry_backoff_ms": interval_ms,
                    "retry_backoff_max_ms": max_ms,
                    "retry_multiplier": multiplier,
                    "retry_jitter": 0,
                },
            )
        )
        arrivals = list(broker.produce_arrivals)
    assert len(arrivals) == FAILURES + 1
    for gap, delay in zip(_gaps_us(arrivals), expected, strict=True):
        assert gap >= delay
    retry = metrics["retry"]
    assert retry["retries"] == FAILURES
    assert retry["backoff_us"] == sum(expected)
    assert (retry["attempts"], retry["successes"], retry["failures"]) == (FAILURES + 1, 1, FAILURES)
    assert retry["success_rate"] == pytest.approx(1 / (FAILURES + 1))
    assert retry["timeout_rate"] == 0.0
    assert sum(retry["by_category"].values()) == FAILURES


def test_strategies_choose_different_waits() -> None:
    waits = {s: sum(_expected_delays_us(s, 120, 2.0, 10_000)) for s in ("exponential", "fixed", "linear")}
    assert len(set(waits.values())) == 3  # so the exact backoff_us above tells them apart


def test_retry_properties_drive_the_blocking_producer(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in RETRY_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    props = {
        "retry.strategy": "linear",
        "retry.interval": "100ms",
        "retry.max.delay": "5s",
        "retry.jitter": "0",
    }
    expected = _expected_delays_us("linear", 100, 2.0, 5000)
    with FakeBroker() as broker:
        broker.produce_script.extend([(NOT_LEADER, 0)] * FAILURES)
        with BlockingProducer(broker.bootstrap, props, linger_ms=0) as p:
            assert p.send("t", b"v").result(30).offset == 0
            metrics = p.metrics
        arrivals = list(broker.produce_arrivals)
    for gap, delay in zip(_gaps_us(arrivals), expected, strict=True):
        assert gap >= delay
    assert metrics["retry"]["retries"] == FAILURES and metrics["retry"]["backoff_us"] == sum(expected)
    assert set(metrics) >= {"buffer_used_bytes", "batches_outstanding", "retry", "connections"}


def test_environment_tunes_retries_the_code_did_not_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCORE_RETRY_STRATEGY", "FIXED")
    monkeypatch.setenv("STREAMCORE_RETRY_INTERVAL", "80ms")
    monkeypatch.setenv("STREAMCORE_RETRY_MULTIPLIER", "3")
    monkeypatch.setenv("STREAMCORE_RETRY_MAX_DELAY", "2s")
    expected = _expected_delays_us("fixed", 80, 3.0, 2000)
    with FakeBroker() as broker:
        broker.produce_script.extend([(NOT_LEADER, 0)] * FAILURES)
        metrics = asyncio.run(_produce_through_failures(broker.bootstrap, {"retry_jitter": 0}))
        arrivals = list(broker.produce_arrivals)
    for gap, delay in zip(_gaps_us(arrivals), expected, strict=True):
        assert gap >= delay
    assert metrics["retry"]["backoff_us"] == sum(expected) == 3 * 80_000


def test_environment_is_below_explicit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCORE_RETRY_STRATEGY", "fixed")
    monkeypatch.setenv("STREAMCORE_RETRY_INTERVAL", "2s")
    cfg = build_config("producer", "h:1", {"retry.strategy": "linear"}, {})
    assert cfg.retry_strategy == "linear" and cfg.source("retry_strategy") == "argument"
    assert cfg.retry_backoff_ms == 2000 and cfg.source("retry_backoff_ms") == "STREAMCORE_RETRY_INTERVAL"
    # only the first delay was given: it is also the largest
    assert cfg.retry_backoff_max_ms == 2000 and cfg.source("retry_backoff_max_ms") == "default"
    cfg = build_config("consumer", "h:1", None, {}, environ={})
    assert cfg.retry_strategy == "exponential" and cfg.source("retry_strategy") == "default"


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("STREAMCORE_RETRY_STRATEGY", "random", "exponential, fixed, linear"),
        ("STREAMCORE_RETRY_INTERVAL", "soon", "duration"),
        ("STREAMCORE_RETRY_MULTIPLIER", "0.5", ">= 1"),
        ("STREAMCORE_RETRY_MAX_DELAY", "-1", "STREAMCORE_RETRY_MAX_DELAY"),
    ],
)
def test_bad_environment_value_names_the_variable(var: str, value: str, match: str) -> None:
    with pytest.raises(ConfigError, match=var) as info:
        build_config("producer", "h:1", None, {}, environ={var: value})
    assert match in str(info.value)


def test_largest_delay_below_the_first_is_refused_when_both_are_given() -> None:
    with pytest.raises(ConfigError, match="retry_backoff_max_ms"):
        build_config("admin", "h:1", {"retry.interval": "2s", "retry.max.delay": "1s"}, {}, environ={})
