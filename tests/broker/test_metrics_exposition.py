"""The broker's /metrics: Prometheus names and types, read back with prometheus_client's parser.

A real ``streamcore broker`` process is scraped; what clients do (produce, commit, fetch)
must move the per-topic, per-partition and per-group figures by exactly what was done.
The Registry's text rules (exact floats, fixed cumulative buckets) are pinned without a
server, on whichever metrics cells (native or reference) this pass loaded.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import streamcore
from streamcore.metrics import Registry, format_value
from streamcore.protocol import messages as m

from .wire_client import WireClient, batch, create_topic, fetch_request, fetched_partition, produce

PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(streamcore.__file__)))
START_TIMEOUT_S = 60.0
LISTENING = re.compile(r"^listening on 127\.0\.0\.1:(\d+)$")
METRICS_ON = re.compile(r"^metrics on http://127\.0\.0\.1:(\d+)/metrics$")


def _first_lines(proc: subprocess.Popen[bytes], count: int) -> list[str]:
    """The first ``count`` stdout lines, read straight from the pipe (no buffering past
    them), failing the test after START_TIMEOUT_S."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while data.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                pytest.fail(f"fewer than {count} lines on stdout within {START_TIMEOUT_S} s: {data!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                pytest.fail(
                    f"stdout closed after {data!r}; stderr: {proc.stderr.read() if proc.stderr else ''!r}"
                )
            data += chunk
    return data.decode().splitlines()[:count]


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A ``streamcore broker --metrics-port 0`` process: (bootstrap, metrics port)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STREAMCORE_") or k == "STREAMCORE_NO_EXTENSIONS"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamcore.cli", "broker", "--data-dir", str(tmp_path / "data"),
         "--host", "127.0.0.1", "--port", "0", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        first, second = _first_lines(proc, 2)
        listening, metrics_on = LISTENING.match(first), METRICS_ON.match(second)
        assert listening is not None, f"first line {first!r}"
        assert metrics_on is not None, f"second line {second!r}"
        yield f"127.0.0.1:{listening.group(1)}", int(metrics_on.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0


def _get(port: int, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, "/metrics")
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class Scrape:
    """One parsed scrape: family types and sample values by (name, labels)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def get(self, name: str, **labels: Any) -> float | None:
        return self.samples.get((name, frozenset((k, str(v)) for k, v in labels.items())))

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        return {lb: v for (n, lb), v in self.samples.items() if n == name}


def _scrape(port: int) -> Scrape:
    status, headers, body = _get(port)
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(body.decode())


def _commit(c: WireClient, group: str, topic: str, partition: int, offset: int) -> None:
    resp = c.request(
        m.OffsetCommitRequest(
            group_id=group,
            generation_id_or_member_epoch=-1,
            member_id="",
            topics=[
                m.OffsetCommitRequest_OffsetCommitRequestTopic(
                    name=topic,
                    partitions=[
                        m.OffsetCommitRequest_OffsetCommitRequestPartition(
                            partition_index=partition, committed_offset=offset, committed_metadata=""
                        )
                    ],
                )
            ],
        ),
        8,
    )
    assert resp.topics[0].partitions[0].error_code == 0


# Prometheus family names (the parser drops a counter's _total) and their types.
EXPECTED_TYPES = {
    "streamcore_requests": "counter",
    "streamcore_errors": "counter",
    "streamcore_produced_bytes": "counter",
    "streamcore_produced_records": "counter",
    "streamcore_fetched_bytes": "counter",
    "streamcore_fetched_records": "counter",
    "streamcore_response_bytes": "counter",
    "streamcore_connections": "gauge",
    "streamcore_produce_request_duration_seconds": "histogram",
    "streamcore_fetch_request_duration_seconds": "histogram",
    "streamcore_group_rebalances": "counter",
    "streamcore_wal_queue_depth": "gauge",
    "streamcore_wal_fsyncs": "counter",
    "streamcore_wal_fsync_seconds": "counter",
    "streamcore_wal_written_bytes": "counter",
    "streamcore_wal_backpressure_rejections": "counter",
    "streamcore_offline_partitions": "gauge",
    "streamcore_storage_damaged_reads": "counter",
    "streamcore_log_end_offset": "gauge",
    "streamcore_log_start_offset": "gauge",
    "streamcore_log_size_bytes": "gauge",
    "streamcore_group_committed_offset": "gauge",
    "streamcore_group_lag": "gauge",
    "streamcore_build_info": "gauge",
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_max_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


def test_live_broker_metrics_parse_and_move_with_produce_commit_and_fetch(broker_process):
    bootstrap, port = broker_process
    before = _scrape(port)
    assert before.types == EXPECTED_TYPES
    for line in before.text.splitlines():
        name = line.split("{")[0].split(" ")[-1 if line.startswith("#") else 0]
        # _total only ever once, and only on counters.
        assert name.count("_total") <= 1, line
        if "_total" in name and not line.startswith("# HELP"):
            assert before.types[name.removesuffix("_total")] == "counter", line
    build = before.series("streamcore_build_info")
    [(labels, value)] = build.items()
    assert value == 1
    assert dict(labels)["version"] == streamcore.__version__
    assert dict(labels)["implementation"] in ("native", "reference", "mixed")
    assert before.get("process_resident_memory_bytes") > 1 << 20
    assert before.get("process_open_fds") >= 3
    assert abs(before.get("process_start_time_seconds") - time.time()) < 3600

    batches = [batch([b"v" * 100, b"w" * 50]) for _ in range(3)]
    with WireClient(bootstrap) as c:
        create_topic(c, "metered")
        for records in batches:
            assert produce(c, "metered", 0, records).error_code == 0
        _commit(c, "billing", "metered", 0, 2)
        middle = _scrape(port)
        assert middle.get("streamcore_produced_bytes_total", topic="metered") == sum(map(len, batches))
        assert middle.get("streamcore_produced_records_total", topic="metered") == 6
        assert middle.get("streamcore_log_end_offset", topic="metered", partition=0) == 6
        assert middle.get("streamcore_log_start_offset", topic="metered", partition=0) == 0
        assert middle.get("streamcore_log_size_bytes", topic="metered", partition=0) == sum(map(len, batches))
        assert (
            middle.get("streamcore_group_committed_offset", group="billing", topic="metered", partition=0)
            == 2
        )
        assert middle.get("streamcore_group_lag", group="billing", topic="metered", partition=0) == 4

        assert produce(c, "metered", 0, batch([b"x"] * 4)).error_code == 0
        _commit(c, "billing", "metered", 0, 9)
        pd = fetched_partition(c.request(fetch_request("metered", 0, 0), 12), "metered", 0)
        fetched = len(pd.records)
        after = _scrape(port)
    assert after.get("streamcore_produced_records_total", topic="metered") == 10
    assert after.get("streamcore_group_lag", group="billing", topic="metered", partition=0) == 1
    assert after.get("streamcore_fetched_bytes_total", topic="metered") == fetched
    assert after.get("streamcore_fetched_records_total", topic="metered") == 10
    assert after.get("streamcore_requests_total", api="Produce") == 4
    count = after.get("streamcore_produce_request_duration_seconds_count")
    assert count == 4
    buckets = after.series("streamcore_produce_request_duration_seconds_bucket")
    # The same fixed bounds at every scrape, cumulative, +Inf equal to the count.
    assert set(buckets) == set(before.series("streamcore_produce_request_duration_seconds_bucket"))
    ordered = sorted(buckets.items(), key=lambda kv: float(dict(kv[0])["le"]))
    values = [v for _, v in ordered]
    assert values == sorted(values)
    assert values[-1] == count
    assert after.get("streamcore_wal_written_bytes_total") >= sum(map(len, batches))


def test_head_metrics_answers_the_headers_without_a_body(broker_process):
    _, port = broker_process
    status, headers, body = _get(port, "HEAD")
    assert status == 200
    assert body == b""
    assert headers["content-type"].startswith("text/plain")
    assert int(headers["content-length"]) > 1000
    status, _, _ = _get(port, "POST")
    assert status == 405


def test_a_deleted_topic_leaves_the_per_topic_and_per_partition_series(streamcore_broker_factory):
    broker = streamcore_broker_factory(metrics_http_port=0)
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "doomed")
        assert produce(c, "doomed", 0, batch([b"x"])).error_code == 0
        _, _, body = _get(broker.metrics_port)
        assert Scrape(body.decode()).get("streamcore_produced_records_total", topic="doomed") == 1
        resp = c.request(m.DeleteTopicsRequest(topic_names=["doomed"], timeout_ms=10_000), 5)
        assert resp.responses[0].error_code == 0
    _, _, body = _get(broker.metrics_port)
    text = body.decode()
    assert 'topic="doomed"' not in text


# -- the Registry's text, without a server -----------------------------------------------------


def test_floats_are_printed_exactly_and_histogram_buckets_are_fixed_seconds():
    r = Registry()
    hist = r.histogram("demo_duration_seconds", "demo", divisor=1_000_000, bucket_exponents=range(4, 8))
    empty = r.render()
    for us in (3, 17, 100, 1000):
        hist.observe(us)
    text = r.render()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [(s.name, s.labels.get("le"), s.value) for s in families["demo_duration_seconds"].samples]
    assert samples == [
        ("demo_duration_seconds_bucket", "1.6e-05", 1.0),  # 3 µs is inside the first bound
        ("demo_duration_seconds_bucket", "3.2e-05", 2.0),
        ("demo_duration_seconds_bucket", "6.4e-05", 2.0),
        ("demo_duration_seconds_bucket", "0.000128", 3.0),
        ("demo_duration_seconds_bucket", "+Inf", 4.0),  # 1000 µs is above the last bound
        ("demo_duration_seconds_sum", None, 0.00112),
        ("demo_duration_seconds_count", None, 4.0),
    ]
    assert "demo_duration_seconds_sum 0.00112\n" in text
    # The same series before and after observations: only the values change.
    assert [ln.rsplit(" ", 1)[0] for ln in empty.splitlines()] == [
        ln.rsplit(" ", 1)[0] for ln in text.splitlines()
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3"), (0.1 + 0.2, "0.30000000000000004"), (1e-06, "1e-06"), (123456789.125, "123456789.125"),
     (float("inf"), "+Inf"), (float("-inf"), "-Inf"), (float("nan"), "NaN"), (True, "1")],
)  # fmt: skip
def test_sample_values_round_trip_exactly(value, text):
    assert format_value(value) == text
    if text != "NaN":
        assert float(text) == float(value)


def test_counter_and_gauge_names_follow_the_total_rule():
    r = Registry()
    with pytest.raises(ValueError, match="_total"):
        r.counter("demo_requests", "no suffix")
    with pytest.raises(ValueError, match="_total"):
        r.gauge("demo_depth_total", "a gauge is not a total")
    labelled = r.labelled_counters("demo_bytes_total", "by topic", ("topic",))
    labelled.labels("a").inc(5)
    labelled.labels('q"uote').inc(1)
    [family] = list(text_string_to_metric_families(r.render()))
    assert {s.labels["topic"]: s.value for s in family.samples} == {"a": 5.0, 'q"uote': 1.0}


def test_the_grafana_dashboard_uses_only_names_the_broker_exposes(broker_process):
    dashboard = json.loads(
        (Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text()
    )
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used = {name for e in exprs for name in re.findall(r"\b(?:streamcore|process)_[a-z_]+", e)}
    _, port = broker_process
    text = _scrape(port).text
    # Every family has a TYPE line, even before its first sample (a fresh broker has no topics).
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    exposed = set(types) | {f"{name}_bucket" for name, kind in types.items() if kind == "histogram"}
    assert used, "no metric names found in the dashboard"
    assert used <= exposed, sorted(used - exposed)
