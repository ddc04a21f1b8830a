"""CPU time of decoding a record batch to Python objects: native, kafka-python, and the
consumer's conversion to ``ConsumerRecord``.

The workload of ``streamcore bench codec``'s "decode (objects)" row (one batch of 1,000
records, 12-byte keys, 100-byte values; every record's ``value`` read in a loop;
kafka-python checks the CRC as its consumer does), timed with ``time.process_time`` (best
of ``--repeat`` runs) so that other load on the machine moves it less than wall-clock
time. Prints one JSON object of M records/s per case.

    PYTHONPATH=python .venv/bin/python benchmarks/decode_objects.py [--codecs none,lz4]

Compare two builds by running this file with each tree's ``python`` directory first on
``PYTHONPATH``, alternating, in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

RECORDS = 1000


def _rate(fn: Callable[[bytes], object], data: bytes, reps: int, repeat: int) -> float:
    """Best records/s (millions) over ``repeat`` runs of ``reps`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(reps):
            fn(data)
        best = min(best, (time.process_time() - start) / reps)
    return RECORDS / best / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--codecs", default="none", help="comma-separated: none,gzip,snappy,lz4,zstd")
    p.add_argument("--repeat", type=int, default=7, help="timed runs per case (best counts)")
    args = p.parse_args(argv)

    from streamcore import codec
    from streamcore.bench.codec import _kafka_python_decode, _sum_value_lengths
    from streamcore.bench.workload import make_codec_workload
    from streamcore.client.consumer import _consumer_records

    try:
        from kafka.record.default_records import DefaultRecordBatch
    except ImportError:
        DefaultRecordBatch = None

    # The inputs of ``streamcore bench codec`` (12-byte keys, 100-byte values).
    work = make_codec_workload(RECORDS)
    keys, values, stamps = work.keys, work.values, work.timestamps_ms

    def native(data: bytes) -> int:
        return _sum_value_lengths(codec.decode_batch(data))

    def native_list(data: bytes) -> int:
        return _sum_value_lengths(codec.decode_batch(data).records)

    def consumer(data: bytes) -> int:
        return len(_consumer_records(codec.decode_batch(data), ("topic", 0), None, None))

    def kafka_python(data: bytes) -> int:
        return _kafka_python_decode(DefaultRecordBatch, data)

    out: dict[str, Any] = {"implementation": codec.decode_batch.__module__}
    for name in args.codecs.split(","):
        data = bytes(codec.encode_batch(values, keys, None, stamps, compression=name))
        row: dict[str, float] = {
            "objects": _rate(native, data, 200, args.repeat),
            "records_list": _rate(native_list, data, 200, args.repeat),
            "consumer_records": _rate(consumer, data, 200, args.repeat),
        }
        if DefaultRecordBatch is not None:
            row["kafka_python"] = _rate(kafka_python, data, 10, args.repeat)
            row["ratio"] = row["objects"] / row["kafka_python"]
        out[name] = row
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
