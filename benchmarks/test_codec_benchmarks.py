"""pytest-benchmark version of ``streamcore bench codec``: the same cases, one group per row.

Run ``PYTHONPATH=python .venv/bin/python -m pytest benchmarks/ --benchmark-group-by=group``
to see, for each operation, streamcore native vs reference vs kafka-python vs the
``crc32c`` package side by side. Times are per call; ``extra_info`` records how
much work one call does (``work_per_call`` in ``work_unit``) to turn them into
throughputs. A column whose library is absent is skipped with the reason; a column
whose code gives a wrong result fails.
"""

from __future__ import annotations

import pytest

from streamcore.bench import codec
from streamcore.bench.workload import make_codec_workload

ROWS = codec.codec_rows()
# What one call of each row processes, for extra_info (display unit -> work unit).
_WORK_UNITS = {"GB/s": "bytes", "M calls/s": "calls", "M records/s": "records", "M varints/s": "varints"}


@pytest.fixture(scope="session")
def codec_cases() -> dict[str, codec.CodecCase]:
    """Every row's subjects for 1000 records x 100-byte values, built and checked once."""
    workload = make_codec_workload(records=1000, value_size=100)
    return {case.row.key: case for case in codec.build_codec_cases(workload)}


@pytest.mark.parametrize("column", codec.COLUMNS)
@pytest.mark.parametrize("row", ROWS, ids=[r.key for r in ROWS])
def test_codec(benchmark, codec_cases, row, column):
    case = codec_cases[row.key]
    subject = case.subjects[column]
    if isinstance(subject, codec.Missing):
        if subject.reason.startswith("error"):
            pytest.fail(f"{column} {row.label}: {subject.reason}")
        reason = "no such operation" if subject.reason.startswith("-") else subject.reason
        pytest.skip(f"{column}: {reason}")
    benchmark.group = row.label
    benchmark.extra_info["implementation"] = codec.column_title(column)
    benchmark.extra_info["work_per_call"] = case.work_per_call
    benchmark.extra_info["work_unit"] = _WORK_UNITS[row.unit]
    benchmark(subject)
