"""``streamcore bench compaction`` (streamcore.bench.compaction): tiny runs report sane figures.

Sizes of a MiB or two, so the active twins (native, or pure Python under
STREAMCORE_NO_EXTENSIONS=1) finish in moments; figures are checked for being present
and consistent, never against a speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamcore
from streamcore import cli
from streamcore.bench import compaction
from streamcore.codec import decode_batches

_PACKAGE_PARENT = str(Path(streamcore.__file__).resolve().parent.parent)


def _check_cleaner_figures(c: dict, total_bytes: int) -> None:
    shape = compaction.dirty_log_shape(total_bytes)
    assert c["records"] == c["records_read"] == shape.records
    assert c["live_keys"] == shape.live_keys
    assert c["records_kept"] == c["map_entries"] == c["live_keys"]
    assert c["map_full"] is False
    assert c["bytes_in"] > c["bytes_out"] > 0
    # 10% of the records live: the output is about a tenth of the input.
    assert c["bytes_out"] < c["bytes_in"] / 5
    for name in ("map", "clean", "total"):
        assert c[f"{name}_s"] > 0
        assert c[f"{name}_mb_per_s"] > 0
    assert c["total_s"] == pytest.approx(c["map_s"] + c["clean_s"])


def _check_produce_figures(r: dict, rounds: int) -> None:
    assert r["rounds"] == rounds
    assert len(r["runs"]) == 2 * rounds
    assert [run["with_cleaner"] for run in r["runs"]].count(True) == rounds
    for run in r["runs"]:
        assert run["bytes"] == r["produce_bytes"] > 0
        assert run["truncated_by_timeout"] is False
        assert run["mb_per_s"] > 0
        assert run["process_cpu_s"] > 0
        if os.path.exists("/proc/stat"):
            assert run["other_cpu_s"] >= 0
    assert r["without_cleaner_mb_per_s"] > 0
    assert r["with_cleaner_mb_per_s"] > 0
    assert r["ratio"] == pytest.approx(r["with_cleaner_mb_per_s"] / r["without_cleaner_mb_per_s"])
    assert r["cleaner_failures"] == 0
    assert r["with_cleaner_seconds"] > 0 and r["without_cleaner_seconds"] > 0
    assert r["cleaner_passes"] >= 0
    assert r["cleaner_bytes_read"] >= 0


def test_dirty_batches_write_every_key_ten_times_and_the_latest_is_a_tenth() -> None:
    total = 200 << 10
    shape = compaction.dirty_log_shape(total)
    latest: dict[bytes, int] = {}
    seen = 0
    for base, batch in compaction.iter_dirty_batches(total):
        (decoded,) = decode_batches(batch)
        assert decoded.base_offset == base
        for i, record in enumerate(decoded.records):
            assert len(record.value) == compaction.VALUE_BYTES
            latest[record.key] = base + i
            seen += 1
    assert seen == shape.records
    assert len(latest) == shape.live_keys == shape.records // 10


def test_cleaner_throughput_keeps_exactly_the_live_keys(tmp_path: Path) -> None:
    total = 1 << 20
    c = compaction.run_cleaner_throughput(tmp_path, total)
    _check_cleaner_figures(c, total)
    assert os.listdir(tmp_path) == []  # its files are removed


def test_produce_while_cleaning_reports_both_rates(tmp_path: Path) -> None:
    r = compaction.run_produce_while_cleaning(
        tmp_path,
        1 << 20,
        rounds=2,
        segment_bytes=64 << 10,
        backoff_ms=5,
        dedupe_bytes=1 << 20,
        io_max_bytes_per_second=50e6,
    )
    _check_produce_figures(r, 2)
    # Segments rolled, so the cleaner had closed segments to work on.
    assert all(run["segments_at_end"] > 1 for run in r["runs"])
    assert os.listdir(tmp_path) == []


def test_produce_while_cleaning_refuses_zero_rounds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rounds"):
        compaction.run_produce_while_cleaning(tmp_path, 1 << 20, rounds=0)


def test_cli_json_to_stdout_in_a_child_interpreter(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_PARENT, env.get("PYTHONPATH")) if p)
    argv = [
        sys.executable,
        "-m",
        "streamcore",
        "bench",
        "compaction",
        "--mb",
        "1",
        "--produce-mb",
        "2",
        "--segment-mb",
        "1",
        "--rounds",
        "1",
        "--dedupe-mb",
        "1",
        "--dir",
        str(tmp_path),
        "--json",
        "-",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["benchmark"] == "compaction"
    assert report["parameters"]["mb"] == 1
    assert report["environment"]
    _check_cleaner_figures(report["cleaner"], 1 << 20)
    _check_produce_figures(report["produce"], 1)
    assert os.listdir(tmp_path) == []


def test_cli_table_and_json_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "compaction.json"
    status = cli.main(
        ["bench", "compaction", "--only", "cleaner", "--mb", "1", "--dir", str(tmp_path), "--json", str(out)]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "offset map" in printed and "cleaning" in printed
    assert "produce while cleaning" not in printed
    report = json.loads(out.read_text())
    assert "produce" not in report
    _check_cleaner_figures(report["cleaner"], 1 << 20)


def test_cli_refuses_a_ratio_outside_zero_to_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "compaction", "--min-dirty-ratio", "1.5"])
    assert exc.value.code == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
