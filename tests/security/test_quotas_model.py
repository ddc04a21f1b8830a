"""The quota model without a broker: which quota applies (Kafka's precedence and sharing),
the sampled rate and throttle times, AlterClientQuotas/DescribeClientQuotas rules, the
quotas file, and the broker settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamcore.broker.config import load_config
from streamcore.broker.quotas import (
    FETCH,
    PRODUCE,
    REQUEST,
    QuotaManager,
    QuotaRequestError,
    QuotaStore,
    SampledRate,
    describe_quotas,
    plan_alter,
    resolve_ip_quotas,
)
from streamcore.errors import ConfigError, StorageError


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def __call__(self) -> float:
        return self.ms


def entity(**parts: str | None) -> tuple[tuple[str, str | None], ...]:
    named = {k.replace("_", "-"): v for k, v in parts.items()}
    order = {"client-id": 0, "user": 1, "ip": 2}
    return tuple(sorted(named.items(), key=lambda kv: order[kv[0]]))


D = None  # the default entity's name

# One quota per entity of Kafka's eight, each a different value, to see which one wins.
ALL_EIGHT = {
    entity(user="alice", client_id="app"): 1.0,
    entity(user="alice", client_id=D): 2.0,
    entity(user="alice"): 3.0,
    entity(user=D, client_id="app"): 4.0,
    entity(user=D, client_id=D): 5.0,
    entity(user=D): 6.0,
    entity(client_id="app"): 7.0,
    entity(client_id=D): 8.0,
}


@pytest.mark.parametrize(
    ("removed", "expected_value", "expected_tags"),
    [
        (0, 1.0, ("alice", "app")),
        (1, 2.0, ("alice", "app")),
        (2, 3.0, ("alice", "")),
        (3, 4.0, ("alice", "app")),
        (4, 5.0, ("alice", "app")),
        (5, 6.0, ("alice", "")),
        (6, 7.0, ("", "app")),
        (7, 8.0, ("", "app")),
    ],
)
def test_precedence_is_kafkas_and_the_entity_that_matched_says_who_shares_the_rate(
    removed: int, expected_value: float, expected_tags: tuple[str, str]
) -> None:
    # Remove the first `removed` entities: the next one in Kafka's order must apply.
    quotas = {e: {"producer_byte_rate": v} for i, (e, v) in enumerate(ALL_EIGHT.items()) if i >= removed}
    manager = QuotaManager()
    manager.install(quotas)
    assert manager.resolve(PRODUCE, "alice", "app") == (expected_tags, expected_value)


def test_nothing_matching_is_unlimited_and_the_config_default_is_per_client_id() -> None:
    manager = QuotaManager()
    manager.install({entity(user="bob"): {"producer_byte_rate": 10.0}})
    assert manager.resolve(PRODUCE, "alice", "app")[1] is None
    assert manager.enabled == {PRODUCE: True, FETCH: False, REQUEST: False}
    assert manager.record(PRODUCE, "alice", "app", 10**9) == 0
    configured = QuotaManager(defaults={"consumer_byte_rate": 500, "producer_byte_rate": None})
    assert configured.enabled[FETCH] and not configured.enabled[PRODUCE]
    assert configured.resolve(FETCH, "alice", "app") == (("", "app"), 500.0)
    # A quota set for the entity wins over the configured default.
    configured.install({entity(client_id=D): {"consumer_byte_rate": 70.0}})
    assert configured.resolve(FETCH, "alice", "app") == (("", "app"), 70.0)


def test_each_quota_key_is_looked_up_on_its_own() -> None:
    manager = QuotaManager()
    manager.install(
        {
            entity(user="alice"): {"producer_byte_rate": 100.0},
            entity(client_id="app"): {"consumer_byte_rate": 200.0, "request_percentage": 25.0},
        }
    )
    assert manager.resolve(PRODUCE, "alice", "app") == (("alice", ""), 100.0)
    assert manager.resolve(FETCH, "alice", "app") == (("", "app"), 200.0)
    assert manager.resolve(REQUEST, "alice", "app") == (("", "app"), 25.0)


def test_sampled_rate_counts_at_least_all_but_one_window_and_forgets_old_samples() -> None:
    rate = SampledRate(11, 1000)
    rate.record(5000, 0.0)
    # One value, just recorded: measured over 10 windows (Kafka's minimum span).
    assert rate.span_ms(0.0) == 10_000
    assert rate.rate(0.0) == 500.0
    # 20 s later the sample is older than 11 windows: emptied.
    assert rate.rate(20_000.0) == 0.0
    steady = SampledRate(11, 1000)
    for second in range(30):
        steady.record(100, second * 1000.0)
    assert steady.rate(29_500.0) == pytest.approx(100 * 11 / 10.5)


def test_throttle_time_is_the_excess_over_the_quota_times_the_span() -> None:
    clock = Clock()
    manager = QuotaManager(window_num=11, window_size_ms=1000, clock=clock)
    manager.install({entity(client_id="app"): {"producer_byte_rate": 100.0}})
    # (N - 1) windows' worth passes at once: the burst a new client is allowed.
    assert manager.record(PRODUCE, "u", "app", 1000) == 0
    # 500 more: rate 1500 B / 10 s = 150 B/s, 50% over: half the 10 s span.
    assert manager.record(PRODUCE, "u", "app", 500) == 5000


# Requests of up to one window's worth of the quota each (a request of several seconds'
# worth is held to the quota more coarsely, as in Kafka).
@pytest.mark.parametrize("request_bytes", [50, 400, 1000])
def test_a_greedy_client_that_waits_out_each_throttle_gets_the_quota(request_bytes: int) -> None:
    clock = Clock()
    manager = QuotaManager(window_num=11, window_size_ms=1000, clock=clock)
    manager.install({entity(client_id="app"): {"producer_byte_rate": 1000.0}})
    start = clock.ms
    sent = 0
    for _ in range(100_000):
        if clock.ms - start >= 600_000:
            break
        throttle = manager.record(PRODUCE, "u", "app", request_bytes)
        sent += request_bytes
        clock.ms += max(throttle, 1)
    # Ten minutes of simulated time: the start's burst (10 s worth) is a small part.
    assert sent / ((clock.ms - start) / 1000) == pytest.approx(1000.0, rel=0.05)


def test_request_percentage_throttle_is_capped_at_one_window() -> None:
    clock = Clock()
    manager = QuotaManager(window_num=11, window_size_ms=1000, clock=clock)
    manager.install({entity(user=D): {"request_percentage": 1.0}})
    # 5 s of handler time against 1% of one thread.
    assert manager.record(REQUEST, "alice", "x", 5.0 * 100) == 1000


def test_fetch_max_bytes_and_unrecord() -> None:
    clock = Clock()
    manager = QuotaManager(window_num=11, window_size_ms=100, clock=clock)
    manager.install({entity(client_id="r"): {"consumer_byte_rate": 1000.0}})
    assert manager.max_fetch_bytes("u", "r") == 1000  # 1000 B/s x 10 windows of 100 ms
    assert manager.max_fetch_bytes("u", "other") is None
    throttle = manager.record(FETCH, "u", "r", 3000)
    assert throttle > 0
    manager.unrecord(FETCH, "u", "r", 3000)
    assert manager.sensors()[0][3] == 0.0


def test_connection_creation_rate_refuses_over_the_rate_and_does_not_count_refusals() -> None:
    clock = Clock()
    manager = QuotaManager(window_num=11, window_size_ms=1000, connection_creation_rate=2, clock=clock)
    manager.install({}, {"10.0.0.7": 1.0})
    assert manager.connection_rate_limit("10.0.0.8") == 2.0
    assert manager.connection_rate_limit("10.0.0.7") == 1.0
    # 10 windows at 1/s: ten at once, the eleventh refused.
    assert [manager.accept_connection("10.0.0.7") for _ in range(11)] == [True] * 10 + [False]
    # A refusal is not counted: once the first samples age out, new connections pass.
    clock.ms += 11_000
    assert manager.accept_connection("10.0.0.7")
    manager.install({}, {None: 3.0})
    assert manager.connection_rate_limit("10.0.0.7") == 3.0
    unlimited = QuotaManager()
    assert all(unlimited.accept_connection("1.2.3.4") for _ in range(1000))


def test_resolve_ip_quotas_takes_addresses_names_and_the_default() -> None:
    rates = resolve_ip_quotas(
        {
            entity(ip="127.0.0.1"): {"connection_creation_rate": 5.0},
            entity(ip="localhost"): {"connection_creation_rate": 6.0},
            entity(ip=D): {"connection_creation_rate": 7.0},
            entity(user="x"): {"producer_byte_rate": 1.0},
        }
    )
    assert rates[None] == 7.0
    # localhost resolves to the loopback address(es): the later entry may win for 127.0.0.1.
    assert rates["127.0.0.1"] in (5.0, 6.0)
    assert len(rates) >= 2


def _alter(quotas, *entries):
    return plan_alter(quotas, entries)


def test_alter_sets_changes_and_removes_and_reports_per_entity() -> None:
    out = _alter(
        {},
        ([("user", "alice")], [("producer_byte_rate", 1024.0, False), ("request_percentage", 12.5, False)]),
        ([("client-id", None)], [("consumer_byte_rate", 10.0, False)]),
    )
    assert [r[:2] for r in out.results] == [(0, None), (0, None)]
    assert out.quotas == {
        entity(user="alice"): {"producer_byte_rate": 1024.0, "request_percentage": 12.5},
        entity(client_id=D): {"consumer_byte_rate": 10.0},
    }
    removed = _alter(
        out.quotas,
        ([("user", "alice")], [("producer_byte_rate", 0.0, True), ("request_percentage", 0, True)]),
    )
    assert entity(user="alice") not in removed.quotas
    # Removing what is not there changes nothing.
    assert _alter({}, ([("user", "x")], [("producer_byte_rate", 0.0, True)])).quotas is None


@pytest.mark.parametrize(
    ("pairs", "ops", "message"),
    [
        ([("user", "x")], [("producer_byte_rate", 1.5, False)], "producer_byte_rate cannot be a fractional value."),
        ([("user", "x")], [("producer_byte_rate", 0.0, False)], "Quota producer_byte_rate must be greater than 0"),
        ([("user", "x")], [("request_percentage", -5.0, False)], "Quota request_percentage must be greater than 0"),
        ([("user", "x")], [("bogus", 5.0, False)], "Invalid configuration key bogus"),
        ([("user", "x")], [("connection_creation_rate", 5.0, False)], "Invalid configuration key connection_creation_rate"),
        ([("ip", "127.0.0.1")], [("producer_byte_rate", 5.0, False)], "Invalid configuration key producer_byte_rate"),
        ([("ip", "127.0.0.1")], [("connection_creation_rate", 5.5, False)], "connection_creation_rate cannot be a fractional value."),
        ([("ip", "127.0.0.1")], [("connection_creation_rate", 2.0**31, False)], "Proposed value for connection_creation_rate is too large for an INT."),
        ([("ip", "no-such-host.invalid")], [("connection_creation_rate", 5.0, False)], "no-such-host.invalid is not a valid IP or resolvable host."),
        ([("user", "x"), ("ip", "127.0.0.1")], [("producer_byte_rate", 5.0, False)], "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"),
        ([("user", "")], [("producer_byte_rate", 5.0, False)], "Empty user not supported"),
        ([("group", "g")], [("producer_byte_rate", 5.0, False)], "Unhandled client quota entity type: group"),
        ([], [("producer_byte_rate", 5.0, False)], "Invalid empty client quota entity"),
        ([("user", "x")], [("producer_byte_rate", 5.0, False), ("producer_byte_rate", 6.0, False)], "Ignoring duplicate entity ClientQuotaEntity(entries={user=x})"),
        ([("user", "x")], [("producer_byte_rate", 5.0, False), ("bogus", 1.0, False)], "Invalid configuration key bogus"),
    ],
)  # fmt: skip
def test_alter_refuses_what_kafka_refuses_and_changes_nothing(pairs, ops, message) -> None:
    before = {entity(user="x"): {"consumer_byte_rate": 9.0}}
    out = _alter(before, (pairs, ops))
    assert [r[:2] for r in out.results] == [(42, message)]
    assert out.quotas is None


def test_an_entity_named_by_two_entries_is_refused_once_but_its_first_entry_applies() -> None:
    out = _alter(
        {},
        ([("user", "dup")], [("producer_byte_rate", 5.0, False)]),
        ([("user", "dup")], [("consumer_byte_rate", 6.0, False)]),
        ([("user", "ok")], [("consumer_byte_rate", 7.0, False)]),
    )
    assert [r[:2] for r in out.results] == [
        (42, "Ignoring duplicate entity ClientQuotaEntity(entries={user=dup})"),
        (0, None),
    ]
    assert out.quotas == {
        entity(user="dup"): {"producer_byte_rate": 5.0},
        entity(user="ok"): {"consumer_byte_rate": 7.0},
    }


STORED = {
    entity(user="alice"): {"producer_byte_rate": 1.0},
    entity(user="alice", client_id="app"): {"consumer_byte_rate": 2.0},
    entity(user=D): {"producer_byte_rate": 3.0},
    entity(user=D, client_id=D): {"producer_byte_rate": 4.0},
    entity(client_id="app"): {"producer_byte_rate": 5.0},
    entity(client_id=D): {"producer_byte_rate": 6.0},
    entity(ip="127.0.0.1"): {"connection_creation_rate": 7.0},
}


def _found(components, strict=False):
    return [e for e, _ in describe_quotas(STORED, components, strict)]


def test_describe_matches_as_kafka_does() -> None:
    assert len(_found([])) == len(STORED)
    assert _found([], strict=True) == []
    assert set(_found([("user", 0, "alice")])) == {
        entity(user="alice"),
        entity(user="alice", client_id="app"),
    }
    assert _found([("user", 0, "alice")], strict=True) == [entity(user="alice")]
    assert set(_found([("user", 1, None)])) == {entity(user=D), entity(user=D, client_id=D)}
    assert set(_found([("user", 2, None)], strict=True)) == {entity(user="alice"), entity(user=D)}
    assert set(_found([("user", 2, None), ("client-id", 2, None)], strict=True)) == {
        entity(user="alice", client_id="app"),
        entity(user=D, client_id=D),
    }
    assert _found([("ip", 2, None)]) == [entity(ip="127.0.0.1")]


@pytest.mark.parametrize(
    ("components", "code", "message"),
    [
        ([("", 2, None)], 42, "Invalid empty entity type."),
        ([("user", 2, None), ("user", 0, "x")], 42, "Entity type user cannot appear more than once in the filter."),
        ([("group", 2, None)], 35, "Unsupported entity type group"),
        ([("user", 0, None)], 42, "Request specified MATCH_TYPE_EXACT, but set match string to null."),
        ([("user", 1, "x")], 42, "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."),
        ([("user", 2, "x")], 42, "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."),
        ([("user", 7, None)], 42, "Unknown match type 7"),
        ([("ip", 2, None), ("user", 2, None)], 42, "Invalid entity filter component combination. IP filter "
         "component should not be used with user or clientId filter component."),
    ],
)  # fmt: skip
def test_describe_refuses_malformed_filters(components, code, message) -> None:
    with pytest.raises(QuotaRequestError) as info:
        describe_quotas(STORED, components, False)
    assert (info.value.code, info.value.message) == (code, message)


def test_store_persists_and_refuses_a_damaged_file(tmp_path: Path) -> None:
    store = QuotaStore(tmp_path)
    assert store.quotas == {}
    store.replace(dict(STORED))
    assert QuotaStore(tmp_path).quotas == STORED
    data = json.loads((tmp_path / "client-quotas.json").read_text())
    assert data["version"] == 1
    (tmp_path / "client-quotas.json").write_text("{not json")
    with pytest.raises(StorageError, match="client-quotas.json"):
        QuotaStore(tmp_path)


def test_quota_settings_parse_and_refuse_bad_values() -> None:
    cfg = load_config(
        env={},
        cli={
            "quotas.producer_byte_rate": "1048576",
            "quotas.request_percentage": "12.5",
            "quotas.window_size_ms": "100ms",
            "quotas.window_num": 5,
        },
    )
    assert cfg.quotas.producer_byte_rate == 1048576
    assert cfg.quotas.request_percentage == 12.5
    assert cfg.quotas.window_size_ms == 100
    assert cfg.quotas.consumer_byte_rate is None
    with pytest.raises(ConfigError, match="quotas.request_percentage"):
        load_config(env={}, cli={"quotas.request_percentage": "0"})
    with pytest.raises(ConfigError, match="quotas.request_percentage"):
        load_config(env={}, cli={"quotas.request_percentage": "nan"})
    with pytest.raises(ConfigError, match="quotas.producer_byte_rate"):
        load_config(env={}, cli={"quotas.producer_byte_rate": "0"})
