"""Storage faults heal and damage is never silent, on the wire (docs/storage.md, "Faults").

The full disk is real: the broker's data directory is a 2 MiB tmpfs mounted by the
test (CI runs as root) and filled until writes fail with ENOSPC; removing a filler file
frees the space. Damage is made on disk with plain file writes.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamcore.broker.embedded import Broker
from streamcore.codec.batch_header import LOG_OVERHEAD, parse_header
from streamcore.errors import ErrorCode, StorageError
from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)

STORAGE = ErrorCode.KAFKA_STORAGE_ERROR.code
CORRUPT = ErrorCode.CORRUPT_MESSAGE.code


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _http(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(port: int, name: str) -> int:
    _, text = _http(port, "/metrics")
    [line] = [line for line in text.splitlines() if line.startswith(name + " ")]
    return int(line.split()[1])


def _fetch(c: WireClient, topic: str, partition: int, offset: int) -> Any:
    return fetched_partition(c.request(fetch_request(topic, partition, offset), 11), topic, partition)


def _read_back(c: WireClient, topic: str, partition: int) -> dict[int, bytes | None]:
    got: dict[int, bytes | None] = {}
    offset = 0
    for _ in range(10_000):
        p = _fetch(c, topic, partition, offset)
        assert p.error_code == 0, p
        records = records_of(p.records)
        if not records:
            return got
        for off, _key, value in records:
            got[off] = value
        offset = records[-1][0] + 1
    raise AssertionError("fetch loop did not end")


def test_partitions_come_back_by_themselves_after_space_is_freed(small_fs, caplog):
    caplog.set_level(logging.INFO)
    with Broker(str(small_fs), settings={"storage.fsync": "always", "metrics.http_port": 0}) as broker:
        mport = broker.metrics_port
        assert mport is not None
        assert _http(mport, "/health") == (200, "ok\n")
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "t", partitions=3)
            (small_fs / "filler").write_bytes(b"\xff" * (1024 * 1024))
            acked: dict[int, dict[int, bytes]] = {0: {}, 1: {}, 2: {}}
            failed: set[int] = set()
            for i in range(20_000):  # far more than the disk holds
                partition = i % 3
                value = b"%06d" % i + b"x" * 400
                p = produce(c, "t", partition, batch([value]))
                if p.error_code == 0:
                    acked[partition][p.base_offset] = value
                else:
                    assert p.error_code == STORAGE, p
                    failed.add(partition)
                    if failed == {0, 1, 2}:
                        break
            assert failed == {0, 1, 2}
            assert all(len(v) > 10 for v in acked.values())
            # Meanwhile: storage errors to clients, the gauge and /health say so.
            for partition in range(3):
                assert produce(c, "t", partition, batch([b"refused"])).error_code == STORAGE
                assert _fetch(c, "t", partition, 0).error_code == STORAGE
            deadline = time.monotonic() + 10
            while _metric(mport, "streamcore_offline_partitions") < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _metric(mport, "streamcore_offline_partitions") == 3
            status, body = _http(mport, "/health")
            assert status == 503
            assert all(f"t-{p}:" in body for p in range(3)), body

            (small_fs / "filler").unlink()
            freed = time.monotonic()
            while _http(mport, "/health")[0] != 200 and time.monotonic() < freed + 10:
                time.sleep(0.05)
            back_after = time.monotonic() - freed
            assert _http(mport, "/health") == (200, "ok\n")
            assert back_after < 10, back_after
            assert _metric(mport, "streamcore_offline_partitions") == 0
            for partition in range(3):
                got = _read_back(c, "t", partition)
                missing = {off: v for off, v in acked[partition].items() if got.get(off) != v}
                assert not missing, (
                    f"partition {partition}: acknowledged records lost at {sorted(missing)[:5]}"
                )
                assert produce(c, "t", partition, batch([b"after"])).error_code == 0
    # Once per change of state, not once per request.
    for partition in range(3):
        wentoff = [
            r for r in caplog.records if r.getMessage().startswith(f"partition t-{partition} is offline")
        ]
        came_back = [r for r in caplog.records if f"partition t-{partition} is back online" in r.getMessage()]
        assert len(wentoff) == 1 and len(came_back) == 1
    print(f"partitions back {back_after:.2f} s after space was freed")


def _produce_some(data_dir: Path, partitions: int = 2) -> None:
    with Broker(str(data_dir)) as broker, WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "t", partitions=partitions)
        for partition in range(partitions):
            for i in range(3):
                assert produce(c, "t", partition, batch([b"v%d" % i])).error_code == 0


def _damage(directory: Path) -> None:
    (directory / ".clean_shutdown").unlink(missing_ok=True)
    [segment] = sorted(directory.glob("*.log"))
    with open(segment, "r+b") as fh:
        fh.seek(65)
        byte = fh.read(1)
        fh.seek(65)
        fh.write(bytes([byte[0] ^ 0x10]))


def test_a_damaged_partition_starts_offline_and_recover_repairs_it(tmp_path, caplog):
    data_dir = tmp_path / "data"
    _produce_some(data_dir)
    _damage(data_dir / "t-1")
    caplog.set_level(logging.ERROR)
    with Broker(str(data_dir), settings={"metrics.http_port": 0}) as broker:
        mport = broker.metrics_port
        assert mport is not None
        status, body = _http(mport, "/health")
        assert status == 503 and "t-1:" in body and "t-0" not in body
        assert _metric(mport, "streamcore_offline_partitions") == 1
        with WireClient(broker.bootstrap_servers) as c:
            assert _fetch(c, "t", 1, 0).error_code == STORAGE
            assert produce(c, "t", 1, batch([b"no"])).error_code == STORAGE
            assert [v for _, _, v in records_of(_fetch(c, "t", 0, 0).records)] == [b"v0", b"v1", b"v2"]
            assert produce(c, "t", 0, batch([b"v3"])).error_code == 0
            # Metadata says which replica is offline; DescribeLogDirs lists only online partitions.
            meta = c.request(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name="t")]), 9)
            parts = {p.partition_index: p for p in meta.topics[0].partitions}
            assert parts[1].error_code == STORAGE and parts[1].offline_replicas == [parts[1].leader_id]
            assert parts[0].error_code == 0 and parts[0].offline_replicas == []
            dirs = c.request(m.DescribeLogDirsRequest(topics=None), 1)
            listed = {
                (t.name, p.partition_index) for r in dirs.results for t in r.topics for p in t.partitions
            }
            assert ("t", 0) in listed and ("t", 1) not in listed
    damaged = [r.getMessage() for r in caplog.records if "its data is damaged" in r.getMessage()]
    assert len(damaged) == 1
    assert str(data_dir / "t-1") in damaged[0] and "streamcore log recover --truncate" in damaged[0]

    with pytest.raises(StorageError, match="streamcore log recover --truncate"):
        Broker(str(data_dir), settings={"storage.on_damage": "refuse"}).start()

    repaired = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamcore.tools.log",
            "recover",
            "--truncate",
            str(data_dir / "t-1"),
            "--yes",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert repaired.returncode == 0, repaired.stderr
    with Broker(str(data_dir), settings={"metrics.http_port": 0}) as broker:
        assert _http(broker.metrics_port, "/health") == (200, "ok\n")
        with WireClient(broker.bootstrap_servers) as c:
            assert produce(c, "t", 1, batch([b"again"])).error_code == 0


def _segment(data_dir: Path, name: str) -> Path:
    [segment] = sorted((data_dir / name).glob("*.log"))
    return segment


def test_a_fetch_that_meets_damage_answers_an_error_and_logs_it_once(tmp_path, caplog):
    data_dir = tmp_path / "data"
    with Broker(str(data_dir)) as broker:
        with WireClient(broker.bootstrap_servers) as c:
            create_topic(c, "t")
            for i in range(4):
                assert produce(c, "t", 0, batch([b"value %d" % i * 10])).error_code == 0
    segment = _segment(data_dir, "t-0")
    raw = segment.read_bytes()
    first = parse_header(raw).batch_length + LOG_OVERHEAD
    second = parse_header(raw, first).batch_length + LOG_OVERHEAD
    # A stray write into the second batch's records between two runs: the broker checks
    # what it did not append itself (batches it appended and validated go by sendfile,
    # unchecked; docs/broker.md, "The fetch path").
    fd = os.open(segment, os.O_RDWR)
    try:
        os.pwrite(fd, b"\xee\xee", first + 70)
    finally:
        os.close(fd)
    with Broker(str(data_dir), settings={"metrics.http_port": 0}) as broker:
        mport = broker.metrics_port
        assert mport is not None
        with WireClient(broker.bootstrap_servers) as c:
            with caplog.at_level(logging.DEBUG, logger="streamcore.storage"):
                for _ in range(3):
                    assert _fetch(c, "t", 0, 0).error_code == CORRUPT
                # Before the damage the log still serves what is sound.
                assert _fetch(c, "t", 0, 0).error_code == CORRUPT
                assert records_of(_fetch(c, "t", 0, 2).records)[0][0] == 2
                # A segment cut short under the broker: missing ranges are storage errors, for
                # a batch cut in two and for one that is gone.
                os.truncate(segment, first + second + 30)
                assert _fetch(c, "t", 0, 2).error_code == STORAGE
                assert _fetch(c, "t", 0, 3).error_code == STORAGE
            corrupt = [
                r for r in caplog.records if r.levelno == logging.ERROR and "corrupt data" in r.getMessage()
            ]
            assert len(corrupt) == 1
            assert f"{segment} at byte {first}" in corrupt[0].getMessage()
            assert "offsets 1 to 1" in corrupt[0].getMessage()
            missing = [
                r.getMessage()
                for r in caplog.records
                if r.levelno == logging.ERROR and "missing data" in r.getMessage()
            ]
            # One place (the segment ends early), named once, though two reads met it.
            assert len(missing) == 1, missing
            assert f"{segment} at byte {first + second + 30}" in missing[0] and "offset 2" in missing[0]
            assert _metric(mport, "streamcore_storage_damaged_reads_total") == 6
