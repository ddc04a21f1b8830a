"""``streamcore bench transactions`` (streamcore.bench.transactions, its parser and handler in
streamcore.bench.cli) runs on a tiny workload against streamcore's broker and reports sane
figures: every record delivered, one commit per transaction, commits visible to a
read_committed consumer. Never a speed check.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from streamcore.bench import cli as bench_cli
from streamcore.bench import transactions as txb

confluent_kafka = pytest.importorskip("confluent_kafka")

TIMEOUT_S = 60.0


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.add_transactions_command(parser.add_subparsers(dest="bench_target", required=True))
    return parser.parse_args(["transactions", *argv])


def _committed_values(bootstrap: str, topic: str, expected: int) -> int:
    """How many records a read_committed consumer gets from ``topic`` (bounded wait)."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{topic}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while seen < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    seen += 1
        # A little longer: nothing beyond the expected count may arrive.
        for msg in consumer.consume(500, 0.5):
            if msg.error() is None:
                seen += 1
    finally:
        consumer.close()
    return seen


def test_a_transactional_run_commits_every_transaction(streamcore_broker: str) -> None:
    clock = iter(range(100, 1000, 7))
    result = txb.run_transactional_produce(
        streamcore_broker,
        250,
        32,
        "transactional",
        100,
        progress=False,
        timeout_s=TIMEOUT_S,
        broker_cpu=lambda: float(next(clock)),
    )
    assert (result["delivered"], result["failed"]) == (250, 0)
    # 100 + 100 + 50: the last transaction is shorter.
    assert result["syncs"] == 3 and len(result["sync_ms"]) == 3
    lat = result["sync_latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert result["init_s"] > 0
    assert result["records_per_s"] > 0 and result["mb_per_s"] > 0
    assert result["broker_cpu_s"] == 7.0  # after minus before, from the clock given
    # The warm-up record and the 250 are all committed.
    assert _committed_values(streamcore_broker, result["topic"], 251) == 251


def test_idempotent_modes_report_flushes_not_commits(streamcore_broker: str) -> None:
    one = txb.run_transactional_produce(streamcore_broker, 120, 10, "idempotent", progress=False)
    assert (one["delivered"], one["txn_size"], one["sync_latency_ms"], one["init_s"]) == (
        120,
        None,
        None,
        None,
    )
    assert one["broker_cpu_s"] is None
    every = txb.run_transactional_produce(streamcore_broker, 120, 10, "flush", 50, progress=False)
    assert every["delivered"] == 120 and every["syncs"] == 3
    assert every["sync_latency_ms"]["p50"] > 0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        txb.run_transactional_produce("127.0.0.1:1", 10, 1, "exactly-once")
    with pytest.raises(ValueError, match="txn_size"):
        txb.run_transactional_produce("127.0.0.1:1", 10, 1, "transactional")
    with pytest.raises(SystemExit):
        _parse(["--txn-sizes", "100,0"])


def test_summary_rows_take_medians_and_pool_the_commit_times() -> None:
    runs = [
        {"mode": "transactional", "txn_size": 10, "records": 20, "size": 1, "records_per_s": r,
         "mb_per_s": r / 1e6, "sync_ms": s, "broker_cpu_s": c, "failed": 0}
        for r, s, c in ((100.0, [1.0, 2.0], 0.5), (300.0, [3.0, 4.0], None), (200.0, [5.0, 6.0], 0.7))
    ]  # fmt: skip
    row = txb.summarize_runs("b", runs)
    assert row["records_per_s"] == 200.0
    assert row["syncs"] == 6 and row["sync_latency_ms"] == {"p50": 3.0, "p99": 6.0, "max": 6.0}
    assert row["broker_cpu_s"] == pytest.approx(0.6)
    table = txb.render_transaction_rows([{**row, "mode": "idempotent", "txn_size": None}, row])
    lines = table.splitlines()
    assert lines[0].startswith("| broker | mode | records/s |")
    assert lines[1].startswith("| --- | --- | ---: |")
    assert "| b | transactional, 10 per txn | 200 | 0.0 | 1.00 | 6 | 3.00 | 6.00 | 0.60 |" in table


def test_the_command_runs_its_own_broker_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "txn.json"
    args = _parse(
        ["--records", "200", "--size", "20", "--txn-sizes", "20,100", "--no-apache", "--no-progress",
         "--warmup-rounds", "1", "--json", str(out)]
    )  # fmt: skip
    assert args.handler(args) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "transactions"
    assert report["apache_kafka"] == {"skipped": "--no-apache"}
    assert [b["name"] for b in report["brokers"]] == ["streamcore"]
    rows = {(r["mode"], r["txn_size"]): r for r in report["rows"]}
    assert set(rows) == {("idempotent", None), ("flush", 20), ("transactional", 20), ("flush", 100),
                         ("transactional", 100)}  # fmt: skip
    assert rows[("transactional", 20)]["syncs"] == 10
    assert rows[("transactional", 100)]["syncs"] == 2
    for row in report["rows"]:
        assert row["failed"] == 0 and row["records_per_s"] > 0
        assert row["broker_cpu_s"] is not None and row["broker_cpu_s"] >= 0
    # The warm-up round is not kept: one run per case.
    assert len(report["runs"]) == 5 and all(r["delivered"] == 200 for r in report["runs"])
    printed = capsys.readouterr().out
    assert "| streamcore | transactional, 20 per txn |" in printed
    assert "Apache Kafka not run: --no-apache" in printed
