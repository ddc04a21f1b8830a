"""The codec benchmark: streamcore native vs reference vs kafka-python vs ``crc32c``.

One *case* is one row of the comparison (say, "batch encode zstd"); it holds, per
column, either a zero-argument callable doing one unit of that work or a
:class:`Missing` note saying why that column has no figure. The same cases feed
``streamcore bench codec``, the pytest-benchmark suite and the asv suite.

Every callable is run once while the cases are built and its result is checked
(decoded values add up, columns have one entry per record, varints decode back),
so a wrong implementation shows up as an error cell, never as a fast figure.
"""

from __future__ import annotations

import importlib
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

from streamcore import _impl
from streamcore.bench.environment import distribution_version, native_module
from streamcore.bench.timing import STANDARD, TimingPolicy, best_seconds_per_call
from streamcore.bench.workload import CodecWorkload
from streamcore.codec.batch_header import HEADER_SIZE, MAGIC, MAGIC_AT, batch_size

__all__ = [
    "CODECS",
    "COLUMNS",
    "RATIOS",
    "CodecCase",
    "Missing",
    "Row",
    "build_codec_cases",
    "codec_rows",
    "column_title",
    "run_codec_benchmark",
]

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
NATIVE, REFERENCE, KAFKA_PYTHON, CRC32C_PACKAGE = "native", "reference", "kafka-python", "crc32c-package"
COLUMNS = (NATIVE, REFERENCE, KAFKA_PYTHON, CRC32C_PACKAGE)
#: Ratio columns (numerator, denominator) of throughputs: > 1 means the first is faster.
RATIOS = ((NATIVE, KAFKA_PYTHON), (NATIVE, CRC32C_PACKAGE))

# kafka-python's codec for each compression name (the batch attributes' codec id).
_CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_KAFKA_PYTHON_CODEC_LIBS = {"snappy": "python-snappy", "lz4": "lz4", "zstd": "zstandard"}
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Row:
    """One line of the comparison.

    ``unit`` is the display unit; ``per_unit`` is how many work units (bytes, calls,
    records, varints) make one display unit, e.g. 1e9 bytes per GB.
    """

    key: str
    label: str
    unit: str
    per_unit: float


@dataclass(frozen=True)
class Missing:
    """Why a column has no figure in a row (printed in the cell)."""

    reason: str


NOT_APPLICABLE = Missing("-")

Subject = Callable[[], object]


@dataclass
class CodecCase:
    """A row, the work one call does (in the row's work units), and each column's subject."""

    row: Row
    work_per_call: int
    subjects: dict[str, Subject | Missing] = field(default_factory=dict)


def codec_rows(codecs: Iterable[str] = CODECS) -> list[Row]:
    """The rows of the codec comparison, in display order."""
    rows = [
        Row("crc32c_1mib", "CRC32C 1 MiB", "GB/s", 1e9),
        Row("crc32c_100b", "CRC32C 100 B", "M calls/s", 1e6),
    ]
    codecs = tuple(codecs)
    rows += [Row(f"encode_{c}", f"batch encode {c}", "M records/s", 1e6) for c in codecs]
    rows += [Row(f"decode_{c}", f"batch decode {c} (objects)", "M records/s", 1e6) for c in codecs]
    rows += [Row(f"columns_{c}", f"batch decode {c} (columns)", "M records/s", 1e6) for c in codecs]
    rows += [
        Row("varint_encode", "varint encode", "M varints/s", 1e6),
        Row("varint_decode", "varint decode", "M varints/s", 1e6),
    ]
    return rows


# --- the work each subject does -------------------------------------------------


def _sum_value_lengths(records: Iterable[Any]) -> int:
    # Touch every record's value, as a consumer would.
    total = 0
    for record in records:
        total += len(record.value)
    return total


def _decode_values(decode_batch: Callable[..., Any], data: bytes) -> int:
    return _sum_value_lengths(decode_batch(data))


def _decode_columns(decode_batch: Callable[..., Any], data: bytes) -> int:
    return len(decode_batch(data).to_columns()["offset"])


def _encode_varints(encode_varint: Callable[[int], bytes], values: list[int]) -> int:
    size = 0
    for v in values:
        size += len(encode_varint(v))
    return size


def _decode_varints(decode_varint: Callable[..., tuple[int, int]], buf: bytes, count: int) -> int:
    pos = 0
    total = 0
    for _ in range(count):
        value, pos = decode_varint(buf, pos)
        total += value
    return total


# --- kafka-python baselines ----------------------------------------------------


def _kafka_python_encode(builder_cls: Any, codec_id: int, w: CodecWorkload) -> bytes:
    builder = builder_cls(
        magic=2,
        compression_type=codec_id,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=_INT32_MAX,
    )
    for i, (key, value, ts) in enumerate(zip(w.keys, w.values, w.timestamps_ms, strict=True)):
        builder.append(i, timestamp=ts, key=key, value=value, headers=[])
    return bytes(builder.build())


def _kafka_python_decode(batch_cls: Any, data: bytes) -> int:
    batch = batch_cls(data)
    # kafka-python's consumer checks every batch's CRC (check_crcs=True by default),
    # as streamcore's decode_batch does, so the baseline does too.
    if not batch.validate_crc():
        raise ValueError("kafka-python reports a bad CRC")
    return _sum_value_lengths(batch)


def _kafka_python_varint_encode(encode_varint: Callable[..., int], values: list[int]) -> int:
    out = bytearray()
    write = out.append
    for v in values:
        encode_varint(v, write)
    return len(out)


# --- finding each column's implementation ----------------------------------------


def _native_unavailable() -> Missing:
    if _impl.NO_EXTENSIONS:
        return Missing("n/a (STREAMCORE_NO_EXTENSIONS=1)")
    return Missing("n/a (not built)")


def _native_capability(name: str) -> ModuleType | Missing:
    native = native_module()
    sub = getattr(native, name, None) if native is not None else None
    return sub if sub is not None else _native_unavailable()


def _cython_capability(module: str) -> ModuleType | Missing:
    if _impl.NO_EXTENSIONS:
        return _native_unavailable()
    try:
        return importlib.import_module(module)
    except ImportError:
        return Missing("n/a (not built)")


def _reference_capability(name: str) -> ModuleType:
    return importlib.import_module(f"streamcore._reference.{name}")


def _function(module: ModuleType | Missing, name: str) -> Callable[..., Any] | Missing:
    if isinstance(module, Missing):
        return module
    fn = getattr(module, name, None)
    if fn is None:
        return Missing(f"n/a (no {name} yet)")
    return fn


def _kafka_python() -> dict[str, Any] | Missing:
    try:
        from kafka import codec as kp_codec
        from kafka.record import util as kp_util
        from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
    except ImportError:
        return Missing("n/a (not installed)")
    return {
        "codec": kp_codec,
        "util": kp_util,
        "batch": DefaultRecordBatch,
        "builder": DefaultRecordBatchBuilder,
    }


def _crc32c_package() -> Callable[..., int] | Missing:
    try:
        import crc32c
    except ImportError:
        return Missing("n/a (not installed)")
    return crc32c.crc32c


def _kafka_python_has_codec(kp: dict[str, Any], codec: str) -> bool:
    if codec in ("none", "gzip"):
        return True
    return bool(getattr(kp["codec"], f"has_{codec}")())


# --- building the cases ----------------------------------------------------------


def _canonical_batches(
    encoders: list[Callable[[str], bytes] | Missing], codecs: Iterable[str]
) -> dict[str, bytes | Missing]:
    # Every column decodes the same bytes: those of the first encoder that can
    # produce the codec (native, then reference, then kafka-python).
    out: dict[str, bytes | Missing] = {}
    for codec in codecs:
        out[codec] = Missing("n/a (no encoder available)")
        for encode in encoders:
            if isinstance(encode, Missing):
                continue
            try:
                out[codec] = encode(codec)
            except Exception:  # that encoder's own cell shows the error
                continue
            break
    return out


def _checked(subject: Subject, check: Callable[[Any], bool], what: str) -> Subject | Missing:
    """Run ``subject`` once; keep it only if it works and ``check`` accepts its result."""
    try:
        result = subject()
    except Exception as exc:  # reported in the table instead
        return Missing(f"error: {type(exc).__name__}: {exc}"[:120])
    if not check(result):
        return Missing(f"error: wrong result ({what})")
    return subject


Cells = dict[str, Subject | Missing]


def _crc_cases(w: CodecWorkload, kp: dict[str, Any] | Missing) -> dict[str, tuple[int, Cells]]:
    reference = _reference_capability("crc32c").crc32c
    fns: dict[str, Callable[..., Any] | Missing] = {
        NATIVE: _function(_native_capability("crc32c"), "crc32c"),
        REFERENCE: reference,
        KAFKA_PYTHON: kp if isinstance(kp, Missing) else kp["util"].calc_crc32c,
        CRC32C_PACKAGE: _crc32c_package(),
    }
    out: dict[str, tuple[int, Cells]] = {}
    # 1 MiB measures bandwidth (work = bytes); 100 B measures call overhead (work = calls).
    for key, data, work in (("crc32c_1mib", w.crc_large, len(w.crc_large)), ("crc32c_100b", w.crc_small, 1)):
        expected = reference(data)
        out[key] = (
            work,
            {
                column: fn
                if isinstance(fn, Missing)
                else _checked(partial(fn, data), partial(operator.eq, expected), "checksum differs")
                for column, fn in fns.items()
            },
        )
    return out


def _batch_cases(
    w: CodecWorkload, kp: dict[str, Any] | Missing, codecs: tuple[str, ...]
) -> dict[str, tuple[int, Cells]]:
    n = w.record_count
    value_bytes = sum(len(v) for v in w.values)
    modules: dict[str, ModuleType | Missing] = {
        NATIVE: _native_capability("record_batch"),
        REFERENCE: _reference_capability("record_batch"),
    }
    encoders: dict[str, Callable[..., Any] | Missing] = {
        c: _function(m, "encode_batch") for c, m in modules.items()
    }
    decoders: dict[str, Callable[..., Any] | Missing] = {
        c: _function(m, "decode_batch") for c, m in modules.items()
    }

    def canonical_encoder(encode: Callable[..., Any] | Missing) -> Callable[[str], bytes] | Missing:
        return encode if isinstance(encode, Missing) else partial(_encode_with, encode, w)

    kp_encoder: Callable[[str], bytes] | Missing = (
        kp
        if isinstance(kp, Missing)
        else lambda codec: _kafka_python_encode(kp["builder"], _CODEC_IDS[codec], w)
    )
    canonical = _canonical_batches(
        [canonical_encoder(encoders[NATIVE]), canonical_encoder(encoders[REFERENCE]), kp_encoder], codecs
    )

    out: dict[str, tuple[int, Cells]] = {}
    for codec in codecs:
        data = canonical[codec]
        enc: Cells = {}
        dec: Cells = {}
        col: Cells = {}
        for column in (NATIVE, REFERENCE):
            encode, decode = encoders[column], decoders[column]
            enc[column] = (
                encode
                if isinstance(encode, Missing)
                else _checked(partial(_encode_with, encode, w, codec), _is_batch, "not a batch")
            )
            if isinstance(decode, Missing):
                dec[column] = col[column] = decode
                continue
            if isinstance(data, Missing):
                dec[column] = col[column] = data
                continue
            dec[column] = _checked(
                partial(_decode_values, decode, data), lambda r: r == value_bytes, "value bytes differ"
            )
            col[column] = _checked(partial(_decode_columns, decode, data), lambda r: r == n, "row count")
        if isinstance(kp, Missing):
            enc[KAFKA_PYTHON] = dec[KAFKA_PYTHON] = kp
        elif not _kafka_python_has_codec(kp, codec):
            enc[KAFKA_PYTHON] = dec[KAFKA_PYTHON] = Missing(
                f"n/a ({_KAFKA_PYTHON_CODEC_LIBS[codec]} not installed)"
            )
        else:
            enc[KAFKA_PYTHON] = _checked(
                partial(_kafka_python_encode, kp["builder"], _CODEC_IDS[codec], w), _is_batch, "not a batch"
            )
            dec[KAFKA_PYTHON] = (
                data
                if isinstance(data, Missing)
                else _checked(
                    partial(_kafka_python_decode, kp["batch"], data),
                    lambda r: r == value_bytes,
                    "value bytes differ",
                )
            )
        col[KAFKA_PYTHON] = Missing("- (no columnar API)")
        out[f"encode_{codec}"] = (n, enc)
        out[f"decode_{codec}"] = (n, dec)
        out[f"columns_{codec}"] = (n, col)
    return out


def _varint_cases(w: CodecWorkload, kp: dict[str, Any] | Missing) -> dict[str, tuple[int, Cells]]:
    count = len(w.varints)
    expected_size = len(w.varint_buffer)
    expected_sum = sum(w.varints)
    encoders: dict[str, Callable[..., Any] | Missing] = {}
    decoders: dict[str, Callable[..., Any] | Missing] = {}
    for column, module in (
        (NATIVE, _cython_capability("streamcore._cy_wire")),
        (REFERENCE, _reference_capability("wire")),
    ):
        encoders[column] = _function(module, "encode_varint")
        decoders[column] = _function(module, "decode_varint")
    encode_loops: dict[str, Callable[..., Any]] = {NATIVE: _encode_varints, REFERENCE: _encode_varints}
    if isinstance(kp, Missing):
        encoders[KAFKA_PYTHON] = decoders[KAFKA_PYTHON] = kp
    else:
        encoders[KAFKA_PYTHON] = kp["util"].encode_varint
        decoders[KAFKA_PYTHON] = kp["util"].decode_varint
        encode_loops[KAFKA_PYTHON] = _kafka_python_varint_encode
    venc: Cells = {}
    vdec: Cells = {}
    for column, encode in encoders.items():
        venc[column] = (
            encode
            if isinstance(encode, Missing)
            else _checked(
                partial(encode_loops[column], encode, w.varints),
                lambda r: r == expected_size,
                "encoded size",
            )
        )
    for column, decode in decoders.items():
        vdec[column] = (
            decode
            if isinstance(decode, Missing)
            else _checked(
                partial(_decode_varints, decode, w.varint_buffer, count),
                lambda r: r == expected_sum,
                "values differ",
            )
        )
    return {"varint_encode": (count, venc), "varint_decode": (count, vdec)}


def build_codec_cases(w: CodecWorkload, codecs: Iterable[str] = CODECS) -> list[CodecCase]:
    """Build every row's subjects for workload ``w``, each one run once and checked.

    Columns without a subject for a row (say, the crc32c package for batch encode)
    get a :class:`Missing` note; the cases come in :func:`codec_rows` order.
    """
    codecs = tuple(codecs)
    kp = _kafka_python()
    built = {**_crc_cases(w, kp), **_batch_cases(w, kp, codecs), **_varint_cases(w, kp)}
    cases = []
    for row in codec_rows(codecs):
        work, cells = built[row.key]
        cases.append(CodecCase(row, work, {c: cells.get(c, NOT_APPLICABLE) for c in COLUMNS}))
    return cases


def _encode_with(encode_batch: Callable[..., bytes], w: CodecWorkload, codec: str) -> bytes:
    return encode_batch(w.values, w.keys, None, w.timestamps_ms, compression=codec)


def _is_batch(result: Any) -> bool:
    # One whole v2 batch: more than a header, magic 2, and a batchLength that frames exactly these bytes.
    return (
        isinstance(result, (bytes, bytearray))
        and len(result) > HEADER_SIZE
        and result[MAGIC_AT] == MAGIC
        and batch_size(result) == len(result)
    )


# --- running and reporting -------------------------------------------------------


def column_title(column: str) -> str:
    """Column header with the baseline library's version where there is one."""
    dist = {KAFKA_PYTHON: "kafka-python", CRC32C_PACKAGE: "crc32c"}.get(column)
    version = distribution_version(dist) if dist else None
    if column == CRC32C_PACKAGE:
        return f"crc32c pkg {version}" if version else "crc32c pkg"
    return f"{column} {version}" if version else column


def run_codec_benchmark(
    cases: list[CodecCase],
    policy: TimingPolicy = STANDARD,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Time every available subject; return one JSON-ready dict per row.

    Each dict: ``key``, ``label``, ``unit``, ``results`` (column -> throughput in
    ``unit``, or None), ``notes`` (column -> why there is no figure), ``ratios``
    ("a/b" -> throughput ratio, or None).
    """
    out = []
    for case in cases:
        results: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for column in COLUMNS:
            subject = case.subjects[column]
            if isinstance(subject, Missing):
                results[column] = None
                notes[column] = subject.reason
                continue
            if progress is not None:
                progress(f"{case.row.label}: {column}")
            seconds = best_seconds_per_call(subject, policy)
            results[column] = case.work_per_call / seconds / case.row.per_unit
        ratios: dict[str, float | None] = {}
        for a, b in RATIOS:
            ra, rb = results.get(a), results.get(b)
            ratios[f"{a}/{b}"] = ra / rb if ra and rb else None
        out.append(
            {
                "key": case.row.key,
                "label": case.row.label,
                "unit": case.row.unit,
                "work_per_call": case.work_per_call,
                "results": results,
                "notes": notes,
                "ratios": ratios,
            }
        )
    return out
