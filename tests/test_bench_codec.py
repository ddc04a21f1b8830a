"""``streamcore bench codec``: every present library yields a figure; wrong code never does."""

from __future__ import annotations

import importlib
import importlib.util
import json

import pytest

from streamcore import _impl, cli
from streamcore.bench import codec
from streamcore.bench.table import format_ratio, render_codec_table
from streamcore.bench.timing import TimingPolicy, best_seconds_per_call
from streamcore.bench.workload import make_codec_workload, zigzag_varint


def _native_submodule(name: str) -> bool:
    if _impl.NO_EXTENSIONS:
        return False
    try:
        native = importlib.import_module("streamcore._native")
    except ImportError:
        return False
    return getattr(native, name, None) is not None


def _expected_present(row_key: str) -> set[str]:
    """Columns that must have a figure in ``row_key`` given what is installed and built."""
    kafka_python = importlib.util.find_spec("kafka") is not None
    present = {codec.REFERENCE}
    if row_key.startswith("crc32c"):
        present.add(codec.CRC32C_PACKAGE)
        if kafka_python:
            present.add(codec.KAFKA_PYTHON)
        if _native_submodule("crc32c"):
            present.add(codec.NATIVE)
    elif row_key.startswith("varint"):
        if kafka_python:
            present.add(codec.KAFKA_PYTHON)
        if not _impl.NO_EXTENSIONS and importlib.util.find_spec("streamcore._cy_wire") is not None:
            present.add(codec.NATIVE)
    else:
        kind, name = row_key.split("_")
        libs = {"snappy": "snappy", "lz4": "lz4", "zstd": "zstandard"}
        if kind != "columns" and kafka_python and (name not in libs or importlib.util.find_spec(libs[name])):
            present.add(codec.KAFKA_PYTHON)
        if _native_submodule("record_batch"):
            present.add(codec.NATIVE)
    return present


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "codec.json"
    status = cli.main(
        ["bench", "codec", "--quick", "--records", "40", "--value-size", "30", "--json", str(path)]
    )
    assert status == 0
    return json.loads(path.read_text())


def test_quick_json_has_a_positive_figure_for_every_present_library(quick_report):
    rows = quick_report["rows"]
    assert [r["key"] for r in rows] == [r.key for r in codec.codec_rows()]
    for row in rows:
        for column in _expected_present(row["key"]):
            value = row["results"][column]
            assert value is not None and value > 0, (row["key"], column, row["notes"].get(column))


def test_quick_json_never_contains_an_error_cell(quick_report):
    for row in quick_report["rows"]:
        for column, note in row["notes"].items():
            assert not note.startswith("error"), (row["key"], column, note)
            assert row["results"][column] is None


def test_quick_json_records_parameters_and_environment(quick_report):
    assert quick_report["parameters"]["records"] == 40
    assert quick_report["parameters"]["value_size"] == 30
    assert quick_report["environment"]["implementation"]
    assert set(quick_report["columns"]) == set(codec.COLUMNS)


def test_ratio_is_native_over_baseline_when_both_have_figures(quick_report):
    for row in quick_report["rows"]:
        for a, b in codec.RATIOS:
            ra, rb = row["results"][a], row["results"][b]
            ratio = row["ratios"][f"{a}/{b}"]
            if ra and rb:
                assert ratio == pytest.approx(ra / rb)
            else:
                assert ratio is None


def test_table_prints_one_line_per_row_with_notes_for_missing_columns(capsys):
    assert cli.main(["bench", "codec", "--quick", "--records", "5", "--value-size", "8"]) == 0
    out = capsys.readouterr().out
    for row in codec.codec_rows():
        assert sum(line.startswith(f"{row.label} ({row.unit})") for line in out.splitlines()) == 1
    assert "- (no columnar API)" in out


def test_a_subject_with_a_wrong_result_becomes_an_error_cell():
    cell = codec._checked(lambda: 41, lambda r: r == 42, "off by one")
    assert isinstance(cell, codec.Missing)
    assert cell.reason == "error: wrong result (off by one)"


def test_a_subject_that_raises_becomes_an_error_cell():
    def broken():
        raise RuntimeError("kaput")

    cell = codec._checked(broken, lambda r: True, "-")
    assert isinstance(cell, codec.Missing)
    assert cell.reason == "error: RuntimeError: kaput"


def test_render_codec_table_shows_figures_notes_and_ratios():
    results = [
        {
            "label": "CRC32C 1 MiB",
            "unit": "GB/s",
            "results": {"native": 20.0, "reference": None},
            "notes": {"reference": "n/a (not installed)"},
            "ratios": {"native/reference": None},
        }
    ]
    text = render_codec_table(results, ["native", "reference"], [("native", "reference")])
    header, rule, line = text.splitlines()
    assert header.split()[-3:] == ["native", "reference", "native/reference"]
    assert set(rule) <= {"-", " "}
    assert line.startswith("CRC32C 1 MiB (GB/s)")
    assert "20.0" in line and "n/a (not installed)" in line and line.endswith("-")
    assert format_ratio(12.34) == "12.3x"
    assert format_ratio(0.5) == "0.50x"


def test_workload_is_deterministic_and_sized_as_asked():
    a = make_codec_workload(records=7, value_size=33)
    b = make_codec_workload(records=7, value_size=33)
    assert a == b
    assert [len(v) for v in a.values] == [33] * 7
    assert len(a.crc_large) == 1024 * 1024 and len(a.crc_small) == 100
    assert a.varint_buffer == b"".join(zigzag_varint(v) for v in a.varints)
    assert all(-(2**31) <= v < 2**31 for v in a.varints)


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (63, b"\x7e"), (-64, b"\x7f"), (64, b"\x80\x01")],
)
def test_zigzag_varint_matches_the_kafka_record_encoding(n, encoded):
    assert zigzag_varint(n) == encoded


def test_timing_calls_the_subject_at_least_once_per_run():
    calls = []
    seconds = best_seconds_per_call(lambda: calls.append(1), TimingPolicy(min_run_seconds=1e-4, runs=3))
    assert seconds > 0
    assert len(calls) >= 3


def test_timing_policy_rejects_zero_runs():
    with pytest.raises(ValueError):
        TimingPolicy(min_run_seconds=0.1, runs=0)


def test_missing_kafka_python_shows_not_installed_in_every_kafka_python_cell(monkeypatch):
    monkeypatch.setattr(codec, "_kafka_python", lambda: codec.Missing("n/a (not installed)"))
    cases = codec.build_codec_cases(make_codec_workload(records=3, value_size=10))
    for case in cases:
        cell = case.subjects[codec.KAFKA_PYTHON]
        if case.row.key.startswith("columns"):
            assert cell == codec.Missing("- (no columnar API)")
        else:
            assert cell == codec.Missing("n/a (not installed)"), case.row.key
        assert callable(case.subjects[codec.REFERENCE]), case.row.key


def test_unbuilt_native_code_shows_not_built_and_reference_still_runs(monkeypatch):
    monkeypatch.setattr(codec, "_native_capability", lambda name: codec.Missing("n/a (not built)"))
    monkeypatch.setattr(codec, "_cython_capability", lambda module: codec.Missing("n/a (not built)"))
    cases = codec.build_codec_cases(make_codec_workload(records=3, value_size=10))
    for case in cases:
        assert case.subjects[codec.NATIVE] == codec.Missing("n/a (not built)"), case.row.key
        assert callable(case.subjects[codec.REFERENCE]), case.row.key
