"""The broker benchmarks (streamcore.bench.broker, and ``streamcore bench produce|consume`` in
streamcore.bench.cli) move the right counts and report figures.

Small counts against the ``streamcore_broker`` fixture; figures are checked for being
present and positive, never against a speed (that is the benchmarks' job).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamcore.bench import broker as bench
from streamcore.bench import cli as bench_cli
from streamcore.bench.processes import (
    ServerProcess,
    free_port,
    peak_rss_bytes,
    process_tree,
    streamcore_broker_argv,
)
from streamcore.bench.progress import ProgressBar

TIMEOUT_S = 60.0


def _cli_args(argv: list[str], workload: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.add_broker_arguments(parser, workload)
    return parser.parse_args(argv)


def test_run_produce_reports_every_message_delivered_with_latencies(streamcore_broker: str) -> None:
    result = bench.run_produce(streamcore_broker, 300, 50, acks=1, progress=False, timeout_s=TIMEOUT_S)
    assert result["delivered"] == 300
    assert result["failed"] == 0
    assert result["msgs_per_s"] > 0
    assert result["mb_per_s"] > 0
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]


def test_run_produce_without_delivery_reports_has_no_latency(streamcore_broker: str) -> None:
    result = bench.run_produce(
        streamcore_broker, 100, 10, acks="all", delivery_reports=False, progress=False, timeout_s=TIMEOUT_S
    )
    assert result["delivered"] is None
    assert result["latency_ms"] is None
    assert result["msgs_per_s"] > 0


def test_run_consume_reads_back_exactly_what_was_produced(streamcore_broker: str) -> None:
    bench.create_topic(streamcore_broker, "bench-roundtrip", partitions=2, timeout_s=TIMEOUT_S)
    bench.run_produce(
        streamcore_broker, 400, 64, acks=1, topic="bench-roundtrip", progress=False, timeout_s=TIMEOUT_S
    )
    result = bench.run_consume(streamcore_broker, "bench-roundtrip", 400, progress=False, timeout_s=TIMEOUT_S)
    assert result["received"] == 400
    assert result["bytes"] == 400 * 64
    assert result["errors"] == 0
    assert 0 < result["first_message_s"] <= result["seconds"]
    assert result["msgs_per_s"] > 0
    assert result["latency_ms"]["p50"] >= 0


def test_run_consume_times_out_when_the_topic_holds_fewer_messages(streamcore_broker: str) -> None:
    bench.run_produce(streamcore_broker, 5, 10, acks=1, topic="short", progress=False, timeout_s=TIMEOUT_S)
    with pytest.raises(TimeoutError, match="5 of 6 received"):
        bench.run_consume(streamcore_broker, "short", 6, progress=False, timeout_s=3.0)


def test_produce_rejects_a_zero_message_count(streamcore_broker: str) -> None:
    with pytest.raises(ValueError, match="messages"):
        bench.run_produce(streamcore_broker, 0, 10, acks=1)


def test_message_values_are_exactly_the_requested_size() -> None:
    values = bench.message_values(5000, 37)
    assert len(values) == 1000
    assert {len(v) for v in values} == {37}
    assert bench.message_values(3, 0) == [b""]


def test_percentile_is_nearest_rank() -> None:
    data = [float(x) for x in range(1, 101)]
    assert bench.percentile(data, 50) == 50.0
    assert bench.percentile(data, 99) == 99.0
    assert bench.percentile(data, 100) == 100.0
    assert bench.percentile([7.0], 99) == 7.0
    assert bench.percentile([], 50) is None


def test_progress_bar_redraws_in_place_and_ends_the_line() -> None:
    out = io.StringIO()
    bar = ProgressBar(10, "produce", stream=out, enabled=True, min_interval_s=0.0)
    bar.update(5)
    bar.close(10)
    text = out.getvalue()
    assert text.startswith("\rproduce [")
    assert "50%" in text and "100%" in text and "10/10" in text
    assert text.endswith("\n")


def test_progress_bar_is_silent_when_disabled_or_not_a_terminal() -> None:
    out = io.StringIO()  # not a terminal: enabled=None draws nothing
    for enabled in (None, False):
        bar = ProgressBar(10, "consume", stream=out, enabled=enabled)
        bar.update(5)
        bar.close(10)
    assert out.getvalue() == ""


def test_cli_consume_preloads_a_topic_and_writes_json(
    streamcore_broker: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "consume.json"
    args = _cli_args(
        [
            "--bootstrap",
            streamcore_broker,
            "--messages",
            "200",
            "--size",
            "20",
            "--json",
            str(out),
            "--no-progress",
        ],
        "consume",
    )
    assert bench_cli.run_broker_workload(args) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "consume"
    assert report["preload"]["messages"] == 200
    assert report["result"]["received"] == 200
    assert report["result"]["bytes"] == 200 * 20
    assert "msgs/s" in capsys.readouterr().out


def test_cli_produce_without_bootstrap_runs_its_own_broker_process(tmp_path: Path) -> None:
    out = tmp_path / "produce.json"
    args = _cli_args(["--messages", "100", "--size", "10", "--json", str(out), "--no-progress"], "produce")
    assert bench_cli.run_broker_workload(args) == 0
    report = json.loads(out.read_text())
    assert report["result"]["delivered"] == 100
    assert report["broker"]["kind"] == "streamcore subprocess"
    assert report["broker"]["peak_rss_bytes"] > 0


def test_add_broker_commands_gives_each_workload_a_parser_run_by_run_broker_workload() -> None:
    parser = argparse.ArgumentParser()
    bench_cli.add_broker_commands(parser.add_subparsers(dest="bench_target", required=True))
    for workload in bench.WORKLOADS:
        args = parser.parse_args([workload, "--bootstrap", "127.0.0.1:1", "--acks", "all"])
        assert args.handler is bench_cli.run_broker_workload
        assert args.broker_workload == workload
        assert args.acks == "all" and args.messages == 100_000 and args.size == 100


def test_add_broker_arguments_rejects_an_unknown_workload() -> None:
    with pytest.raises(ValueError, match="workload"):
        bench_cli.add_broker_arguments(argparse.ArgumentParser(), "replicate")


def test_broker_argv_runs_the_streamcore_command_unless_a_profile_is_wanted(tmp_path: Path) -> None:
    plain = streamcore_broker_argv(tmp_path, fsync="always", python="py")
    assert plain == ["py", "-m", "streamcore.cli", "broker", "--data-dir", str(tmp_path), "--host",
                     "127.0.0.1", "--port", "0", "--fsync", "always"]  # fmt: skip
    profiled = streamcore_broker_argv(tmp_path, cprofile_out=tmp_path / "p.prof", python="py")
    assert profiled[:3] == ["py", "-m", "streamcore.bench.foreground_broker"]
    assert profiled[-2:] == ["--cprofile", str(tmp_path / "p.prof")]


def test_bench_modules_never_import_the_streamcore_command() -> None:
    # The command imports the bench package; the reverse would be an import cycle.
    code = (
        "import sys, streamcore.bench.cli, streamcore.bench.broker, streamcore.bench.processes, "
        "streamcore.bench.foreground_broker; print('streamcore.cli' in sys.modules)"
    )
    env = dict(os.environ)
    package_parent = str(Path(bench.__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_peak_rss_counts_this_process() -> None:
    assert os.getpid() in process_tree(os.getpid())
    assert peak_rss_bytes(os.getpid()) > 1024 * 1024


def test_server_process_waits_for_its_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    ]
    server = ServerProcess("http", argv, ready_port=port, start_timeout_s=TIMEOUT_S).start()
    try:
        assert server.bootstrap == f"127.0.0.1:{port}"
        assert server.peak_rss_bytes() > 0
    finally:
        status = server.stop(timeout_s=10.0)
    assert status is not None
    assert server.proc is not None and server.proc.poll() is not None


def test_server_process_reports_a_server_that_exits_before_it_is_ready() -> None:
    argv = [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(RuntimeError, match="exited with 3.*boom"):
        ServerProcess("failing", argv, start_timeout_s=TIMEOUT_S).start()
