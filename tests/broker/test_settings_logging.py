"""The broker command's log: level and format settings, and the events an operator needs,
read from a real ``streamcore broker`` process's stderr."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from streamcore.protocol import messages as m

from .test_settings_startup import _broker_argv, _env, _start
from .wire_client import WireClient, batch, create_topic, produce

STOP_TIMEOUT_S = 60.0


def _stop(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("broker did not stop on SIGTERM")
    assert proc.returncode == 0, err.decode()
    return err.decode()


def _bootstrap(line: str) -> str:
    assert line.startswith("listening on "), line
    return line.removeprefix("listening on ")


@pytest.mark.interop
def test_json_log_lines_carry_time_level_logger_message_and_a_rebalance(tmp_path: Path) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    env = _env(STREAMCORE_LOG_FORMAT="json", STREAMCORE_BIN="/opt/bin")
    proc, [line] = _start(
        _broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0", "--log-level", "info"), env
    )
    try:
        with WireClient(_bootstrap(line)) as c:
            create_topic(c, "logged")
        consumer = confluent_kafka.Consumer(
            {"bootstrap.servers": _bootstrap(line), "group.id": "loggers", "auto.offset.reset": "earliest"}
        )
        consumer.subscribe(["logged"])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(0.2)
        assert consumer.assignment(), "the consumer never joined"
        consumer.close()
    finally:
        err = _stop(proc)
    records = [json.loads(text) for text in err.splitlines()]
    assert records, "no log lines"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["level"] in ("debug", "info", "warning", "error")
        assert record["time"].endswith("+00:00")
    messages = {(r["level"], r["logger"], r["message"]) for r in records}
    assert any(lv == "info" and "listening on" in msg for lv, _, msg in messages)
    assert ("info", "streamcore.broker", "group loggers rebalanced: generation 1") in messages
    assert any(
        lv == "warning" and lg == "streamcore.config" and "STREAMCORE_BIN" in msg for lv, lg, msg in messages
    )


def test_default_level_is_warning_and_the_environment_sets_it(tmp_path: Path) -> None:
    proc, _ = _start(_broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0"), _env())
    assert " INFO " not in _stop(proc)
    proc, _ = _start(
        _broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0"), _env(STREAMCORE_LOG_LEVEL="INFO")
    )
    err = _stop(proc)
    assert any(" INFO streamcore.broker: " in ln and "listening on" in ln for ln in err.splitlines()), err


def test_recovery_after_a_crash_is_logged_naming_the_partition(tmp_path: Path) -> None:
    data = tmp_path / "d"
    proc, [line] = _start(_broker_argv("--data-dir", str(data), "--port", "0"), _env())
    with WireClient(_bootstrap(line)) as c:
        create_topic(c, "crashy")
        assert produce(c, "crashy", 0, batch([b"x" * 10])).error_code == 0
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=STOP_TIMEOUT_S)
    proc, _ = _start(_broker_argv("--data-dir", str(data), "--port", "0", "--log-level", "info"), _env())
    err = _stop(proc)
    recovered = [ln for ln in err.splitlines() if "recovered" in ln and "crashy-0" in ln]
    assert len(recovered) == 1, err
    assert " INFO streamcore.storage: " in recovered[0]


def test_retention_deletions_are_logged(tmp_path: Path) -> None:
    env = _env(
        STREAMCORE_STORAGE_SEGMENT_BYTES="1024",
        STREAMCORE_STORAGE_RETENTION_MS="1",
        STREAMCORE_STORAGE_RETENTION_CHECK_INTERVAL_MS="100ms",
    )
    proc, [line] = _start(
        _broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0", "--log-level", "info"), env
    )
    with WireClient(_bootstrap(line)) as c:
        create_topic(c, "shortlived")
        for _ in range(6):
            assert produce(c, "shortlived", 0, batch([b"r" * 600])).error_code == 0
        deadline = time.monotonic() + 20
        start_offset = 0
        while start_offset == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            resp = c.request(
                m.ListOffsetsRequest(
                    replica_id=-1,
                    topics=[
                        m.ListOffsetsRequest_ListOffsetsTopic(
                            name="shortlived",
                            partitions=[
                                m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=-2)
                            ],
                        )
                    ],
                ),
                7,
            )
            start_offset = resp.topics[0].partitions[0].offset
    err = _stop(proc)
    assert start_offset > 0, "retention deleted nothing within 20 s"
    assert any(" INFO streamcore.storage: retention deleted" in ln for ln in err.splitlines()), err


def test_a_client_dropped_for_a_malformed_frame_is_logged_at_warning(tmp_path: Path) -> None:
    proc, [line] = _start(_broker_argv("--data-dir", str(tmp_path / "d"), "--port", "0"), _env())
    host, port = _bootstrap(line).rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", -5))  # a negative frame size: no Kafka client sends this
        s.settimeout(10)
        assert s.recv(1) == b""  # the broker closed this one connection
    err = _stop(proc)
    dropped = [
        ln for ln in err.splitlines() if " WARNING streamcore.broker: " in ln and "connection(s)" in ln
    ]
    assert dropped, err
