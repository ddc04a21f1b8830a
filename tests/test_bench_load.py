"""``streamcore bench load`` (streamcore.bench.load, load_worker) moves the records it says and
reports consistent figures.

Tiny runs (a couple of seconds at a low rate) against real brokers: the counts must
match (sent = acknowledged = received), percentiles must be ordered, and the JSON
must parse. No figure is checked against a speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamcore import cli
from streamcore.bench import load
from streamcore.bench.load_worker import bucket


def _ordered(summary: dict[str, Any]) -> None:
    assert summary["count"] > 0, summary
    assert 0 <= summary["p50"] <= summary["p99"] <= summary["p999"] <= summary["max"], summary


def test_bucket_is_exact_below_128_us_and_within_one_64th_above() -> None:
    assert [bucket(v) for v in (0, 0.4, 1, 5.9, 127)] == [0, 0, 1, 5, 127]
    assert bucket(-3) == 0
    previous = 0
    for v in [*range(0, 5000, 7), *range(5000, 10_000_000, 9973)]:
        b = bucket(v)
        assert b <= v and (v - b) / max(v, 1) < 1 / 64, v
        assert b >= previous, v  # monotone: percentiles keep their order
        previous = b
    # Few distinct buckets however wide the range: the JSON histograms stay small.
    assert len({bucket(v) for v in range(0, 10_000_000, 101)}) < 1500


def test_latency_summary_is_nearest_rank_in_ms() -> None:
    # 100 values: 1..100 µs; nearest rank p50 = 50th value, p99 = 99th, p99.9 = 100th.
    histogram = load.merge_histograms([{str(v): 1 for v in range(1, 51)}, {v: 1 for v in range(51, 101)}])
    summary = load.latency_summary(histogram)
    assert summary == {"count": 100, "p50": 0.05, "p99": 0.099, "p999": 0.1, "max": 0.1}
    assert load.latency_summary(load.merge_histograms([]))["p50"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "-1"], "argument --rate: must be >= 0"),
        (["--duration", "0"], "argument --duration: must be > 0"),
        (["--producers", "0"], "argument --producers: must be >= 1"),
        (["--consumers", "-1"], "argument --consumers: must be >= 0"),
        (["--size", "-5"], "argument --size: must be >= 0"),
        (["--acks", "2"], "argument --acks: invalid choice"),
        (["--bootstrap", "localhost"], "expected HOST:PORT"),
        (["--profile", "low,turbo"], "unknown profile ['turbo']"),
        (["--producer-config", "linger.ms"], "expected KEY=VALUE"),
        (
            ["--bootstrap", "127.0.0.1:9", "--profile", "low"],
            "--profile sets up the broker this command starts",
        ),
        (
            ["--bootstrap", "127.0.0.1:9", "--fsync", "always"],
            "--fsync sets up the broker this command starts",
        ),
    ],
)
def test_argument_errors_are_clear(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "load", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "usage: " in err


def _check_run(run: dict[str, Any], size: int) -> None:
    t = run["totals"]
    assert t["failed"] == 0 and run["unflushed"] == 0, run["producer_errors"]
    assert t["sent"] > 0
    assert t["sent"] == t["acked"] == t["received"], t
    _ordered(t["ack_ms"])
    _ordered(t["e2e_ms"])
    # Every acknowledgement and every receipt has its latency in the histograms.
    assert t["ack_ms"]["count"] == t["acked"] and t["e2e_ms"]["count"] == t["received"]
    assert t["produce_records_per_s"] > 0 and t["consume_records_per_s"] > 0
    assert t["produce_mb_per_s"] == pytest.approx(t["produce_records_per_s"] * size / 1e6)
    # The interval rows add up to the totals (the part after the last tick included).
    rows = run["intervals"]
    assert rows and [r["k"] for r in rows] == sorted({r["k"] for r in rows})
    assert sum(r["acked"] for r in rows) == t["acked"]
    assert sum(r["received"] for r in rows) == t["received"]
    for r in rows:
        for key in ("ack_ms", "e2e_ms"):
            if r[key]["count"]:
                _ordered(r[key])


def test_tiny_run_against_a_given_broker(streamcore_broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "load", "--bootstrap", streamcore_broker, "--rate", "150", "--duration", "2"]
    argv += ["--producers", "2", "--consumers", "2", "--partitions", "2", "--size", "100"]
    argv += ["--interval", "1", "--timeout", "60", "--json", "-"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # with --json -, stdout holds the JSON alone
    assert "produced" in captured.err and "records: sent" in captured.err
    assert report["benchmark"] == "load" and report["parameters"]["rate"] == 150
    (run,) = report["runs"]
    assert run["partitions"] == 2 and run["broker"] == {"started": False}
    _check_run(run, 100)
    # Paced: each of the 2 producers sends at most rate/2 x duration + 1 records.
    assert run["totals"]["sent"] <= 2 * (75 * 2 + 1)
    assert run["totals"]["broker_cpu_s"] is None  # not our process: its CPU is not counted


def test_profile_run_starts_one_broker_per_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "load.json"
    argv = ["bench", "load", "--profile", "low,ultra", "--fsync", "always", "--rate", "100"]
    argv += ["--duration", "1", "--partitions", "1", "--size", "16", "--interval", "1"]
    argv += ["--timeout", "60", "--dir", str(tmp_path), "--json", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    runs = report["runs"]
    # What each broker itself reported (DescribeConfigs), not what was asked for.
    assert sorted(r["broker"]["profile"] for r in runs) == ["low", "ultra"]
    assert {r["broker"]["fsync"] for r in runs} == {"always"}
    for run in runs:
        _check_run(run, 16)
        assert run["broker"]["started"] and run["broker"]["peak_rss_bytes"] > 0
        assert run["totals"]["broker_cpu_s"] >= 0
    table = report["profile_table"]
    assert "| low |" in table and "| ultra |" in table and table in printed
    assert list(tmp_path.iterdir()) == [out]  # the brokers' data directories are gone


def test_compare_latency_under_fsync_always_asks_every_broker_for_an_fsync_per_append(
    streamcore_broker: str,
) -> None:
    """``bench compare --fsync always``: the latency workload's topics carry flush.messages=1
    (Apache Kafka's fsync per append); the figures stay ordered."""
    import os

    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    from streamcore.bench.peers import workloads

    settings = workloads.Settings(scale=0.001, timeout_s=60.0, latency_seconds=1.0, fsync="always")
    figures = workloads.latency(workloads.Target("streamcore", streamcore_broker, os.getpid()), settings)
    assert figures["topic_config"] == {"flush.messages": "1"}
    assert (
        figures["max_records_per_s"] > 0
        and figures["offered_records_per_s"] == figures["max_records_per_s"] / 2
    )
    for prefix in ("produce", "e2e"):
        assert 0 <= figures[f"{prefix}_p50_ms"] <= figures[f"{prefix}_p99_ms"] <= figures[f"{prefix}_p999_ms"]
    admin = AdminClient({"bootstrap.servers": streamcore_broker, "log_level": 3})
    topics = [
        t for t in admin.list_topics(timeout=30).topics if t.startswith(("compare-latency", "compare-probe"))
    ]
    assert len(topics) == 2
    for topic in topics:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        entries = admin.describe_configs([resource])[resource].result(timeout=30)
        assert entries["flush.messages"].value == "1", topic
