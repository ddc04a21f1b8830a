"""A load-generating process for ``streamcore bench compare``: one producer or one consumer.

Run by path (``python worker.py produce|consume ...``) so that it imports only the
standard library and confluent-kafka, never the broker under test. It talks to the
driver over its standard streams, one JSON object per line:

* ``produce``: prints ``{"event": "ready"}`` once its producer has the topic's
  metadata, waits for a ``go`` line on stdin, sends ``--messages`` values of
  ``--size`` bytes as fast as it can, flushes, and prints ``{"event": "done", ...}``
  with wall-clock ``start`` and ``end`` (time.time(), seconds).
* ``consume``: joins ``--group`` on ``--topic``; prints ``{"event": "assigned",
  "partitions": k}`` after each (re)assignment and ``{"event": "revoked"}`` before
  each revocation; reads until told ``stop [N]`` on stdin and then either N records
  arrived (when N is given) or none arrived for ``--idle`` seconds; prints ``{"event":
  "done", ...}`` with the count, bytes, wall-clock times of the first and last
  record, the client's last errors, and a histogram of end-to-end latencies (receipt time minus the record's
  timestamp, in tenths of a millisecond; the timestamp itself has 1 ms resolution).

Every wait is bounded by ``--timeout`` seconds; a worker past it exits with status 3.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections import Counter
from typing import Any


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _values(size: int) -> list[bytes]:
    # A few distinct values, so nothing downstream sees one repeated payload.
    return [bytes((i + j) % 251 for j in range(size)) for i in range(16)] if size else [b""]


def produce(args: argparse.Namespace) -> int:
    """The ``produce`` command; see the module docstring."""
    import confluent_kafka as ck

    producer = ck.Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "acks": args.acks,
            "linger.ms": args.linger_ms,
            "log_level": 3,
        }
    )
    deadline = time.monotonic() + args.timeout
    # Connecting and fetching metadata now keeps it out of the measured interval.
    producer.list_topics(args.topic, timeout=min(30.0, args.timeout))
    _emit({"event": "ready"})
    if sys.stdin.readline().strip() != "go":
        return 2
    values = _values(args.size)
    nvalues = len(values)
    sent = 0
    start = time.time()
    while sent < args.messages:
        try:
            producer.produce(args.topic, values[sent % nvalues])
        except BufferError:
            producer.poll(0.005)
            if time.monotonic() > deadline:
                _emit({"event": "error", "error": f"{sent} of {args.messages} queued before the timeout"})
                return 3
            continue
        sent += 1
    remaining = producer.flush(max(0.0, deadline - time.monotonic()))
    end = time.time()
    _emit({"event": "done", "records": sent - remaining, "unflushed": remaining, "start": start, "end": end})
    return 0 if remaining == 0 else 3


def consume(args: argparse.Namespace) -> int:
    """The ``consume`` command; see the module docstring."""
    import confluent_kafka as ck

    stop = threading.Event()
    target: list[int] = []
    stopped_at: list[float] = []

    def read_commands() -> None:
        for line in sys.stdin:
            words = line.split()
            if words and words[0] == "stop":
                if len(words) > 1:
                    target.append(int(words[1]))
                stopped_at.append(time.monotonic())
                stop.set()
                return
        stopped_at.append(time.monotonic())
        stop.set()  # the driver went away

    threading.Thread(target=read_commands, daemon=True).start()

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        _emit({"event": "assigned", "partitions": len(partitions)})

    def on_revoke(consumer: Any, partitions: list[Any]) -> None:
        _emit({"event": "revoked"})

    client_errors: list[str] = []

    def keep(text: str) -> None:
        client_errors.append(text[-300:])
        del client_errors[:-20]

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            keep(record.getMessage())

    # librdkafka's errors and log lines go into the final report, not to stderr.
    log = logging.getLogger("worker")
    log.propagate = False
    log.addHandler(Keep())
    consumer = ck.Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "log_level": 3,
            "logger": log,
            "error_cb": lambda err: keep(str(err)),
        }
    )
    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.monotonic() + args.timeout
    histogram: Counter[int] = Counter()
    received = 0
    nbytes = 0
    errors = 0
    first: float | None = None
    last: float | None = None
    last_seen = time.monotonic()
    status = 0
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                status = 3
                break
            if stop.is_set():
                if target and received >= target[0]:
                    break
                # Idle time counts from the stop at the earliest: records may still be in flight.
                if now - max(last_seen, stopped_at[0]) > args.idle:
                    break
            # consume(n, timeout) waits for all n records or the timeout, which would add
            # up to the timeout to every latency: wait for one record, then take what is queued.
            head = consumer.poll(0.1)
            if head is None:
                continue
            batch = [head, *consumer.consume(10_000, 0)]
            wall = time.time()
            wall_ms = wall * 1000.0
            for msg in batch:
                if msg.error() is not None:
                    errors += 1
                    continue
                received += 1
                nbytes += len(msg.value() or b"")
                histogram[max(0, int((wall_ms - msg.timestamp()[1]) * 10))] += 1
            if first is None and received:
                first = wall
            last = wall
            last_seen = time.monotonic()
    finally:
        consumer.close()
    _emit(
        {
            "event": "done",
            "records": received,
            "bytes": nbytes,
            "errors": errors,
            "first": first,
            "last": last,
            "timed_out": status == 3,
            "client_errors": client_errors[-5:],
            "latency_tenths_ms": {str(k): v for k, v in histogram.items()},
        }
    )
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one worker."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("produce")
    pp.add_argument("--messages", type=int, required=True)
    pp.add_argument("--size", type=int, required=True)
    pp.add_argument("--acks", default="1")
    pp.add_argument("--linger-ms", type=float, default=5.0)
    pc = sub.add_parser("consume")
    pc.add_argument("--group", required=True)
    pc.add_argument("--idle", type=float, default=2.0, help="seconds without a record that end a stopped run")
    for q in (pp, pc):
        q.add_argument("--bootstrap", required=True)
        q.add_argument("--topic", required=True)
        q.add_argument("--timeout", type=float, default=300.0, help="bound of the whole run, s")
    args = p.parse_args(argv)
    return produce(args) if args.command == "produce" else consume(args)


if __name__ == "__main__":
    sys.exit(main())
