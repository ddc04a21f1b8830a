"""One producer or one consumer process of ``streamcore bench load``.

Run by path (``python load_worker.py produce|consume ...``) so that it imports only
the standard library and confluent-kafka, never the broker under test. It talks to
the driver (:mod:`streamcore.bench.load`) over its standard streams, one JSON object
per line on stdout, one command per line on stdin.

* ``produce``: connects, prints ``{"event": "ready"}``, waits for ``go T`` (T: the
  wall-clock start, time.time() seconds), sleeps until T, then offers ``--rate``
  records/s (0 = as fast as librdkafka takes them) of ``--size`` bytes for
  ``--duration`` seconds, flushes and prints ``done``. The first 8 bytes of each value
  are the wall-clock time of its ``produce()`` call (a little-endian double) so a
  consumer can measure end-to-end latency in microseconds.
* ``consume``: joins ``--group`` on ``--topic``, starting each partition at its end
  (its committed offset if the group has one), and prints ``assigned``/``revoked``
  events with partition counts. ``start T`` sets the clock of its interval reports;
  after ``stop`` it also prints ``{"event": "count", "records": n}`` whenever its
  count changes, and ``exit`` ends it with ``done``.

Both print ``{"event": "tick", "k": k, ...}`` at each wall-clock instant T + k ×
``--interval`` with what happened in the interval just ended: producers the records
sent, acknowledged and failed and a histogram of acknowledgement latencies
(librdkafka's ``Message.latency()``: ``produce()`` to the broker's answer),
consumers the records received and a histogram of end-to-end latencies (receipt time
minus the time stamped at ``produce()``; the record's CreateTime, 1 ms resolution,
when values are shorter than 8 bytes). ``done`` carries the part after the last tick
and the totals. Histograms map a bucket (microseconds, see :func:`bucket`) to a count.

Every wait is bounded by ``--timeout`` seconds; a worker past it reports and exits
with status 3.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import threading
import time
from collections import Counter
from typing import Any

__all__ = ["bucket", "main"]

_STAMP = struct.Struct("<d")
#: Significant bits kept by :func:`bucket`: every bucket is within 1/128 (0.8%) of its values.
_BITS = 7


def bucket(us: float) -> int:
    """The histogram bucket of a latency of ``us`` microseconds: its lower bound, in µs.

    Below 128 µs a bucket is one microsecond wide; above, the value keeps its 7 most
    significant bits, so a bucket's width is under 1/64 of its values (a percentile
    read from it is at most 1.6% low) and a run's histogram has at most a few
    hundred distinct keys whatever its length.
    """
    n = int(us) if us > 0 else 0
    shift = n.bit_length() - _BITS
    if shift <= 0:
        return n
    return (n >> shift) << shift


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def _tails(size: int) -> list[bytes]:
    # A few distinct values so that nothing downstream sees one repeated payload; the
    # first 8 bytes of each value are replaced by the send time.
    body = max(0, size - _STAMP.size)
    return [bytes((i * 7 + j) % 251 for j in range(body)) for i in range(16)]


def produce(args: argparse.Namespace) -> int:
    """The ``produce`` command; see the module docstring."""
    import confluent_kafka as ck

    acked = [0]
    failed = [0]
    errors: list[str] = []
    hist: Counter[int] = Counter()

    def on_delivery(err: Any, msg: Any) -> None:
        # librdkafka runs it inside poll()/flush(), on this thread.
        if err is not None:
            failed[0] += 1
            if len(errors) < 5:
                errors.append(str(err)[:300])
            return
        acked[0] += 1
        lat = msg.latency()
        if lat is not None:
            hist[bucket(lat * 1e6)] += 1

    config: dict[str, Any] = {
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "on_delivery": on_delivery,
        "log_level": 3,
    }
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = value
    producer = ck.Producer(config)
    deadline = time.monotonic() + args.timeout
    # Connecting and fetching metadata now keeps it out of the measured interval.
    producer.list_topics(args.topic, timeout=min(30.0, args.timeout))
    _emit({"event": "ready"})
    words = sys.stdin.readline().split()
    if len(words) != 2 or words[0] != "go":
        return 2
    start = float(words[1])
    delay = start - time.time()
    if delay > 0:
        time.sleep(delay)
    interval = args.interval
    tails = _tails(args.size)
    ntails = len(tails)
    stamped = args.size >= _STAMP.size
    plain = bytes(args.size)
    pack = _STAMP.pack
    rate = args.rate
    end_send = start + args.duration
    next_tick = start + interval
    tick = 1
    sent = 0
    sent_at_tick = 0
    acked_at_tick = 0
    failed_at_tick = 0

    def report(now: float, kind: str, k: int) -> dict[str, Any]:
        nonlocal sent_at_tick, acked_at_tick, failed_at_tick, hist
        h, hist = hist, Counter()
        out = {
            "event": kind,
            "k": k,
            "t": now,
            "sent": sent - sent_at_tick,
            "acked": acked[0] - acked_at_tick,
            "failed": failed[0] - failed_at_tick,
            "hist": {str(b): c for b, c in h.items()},
        }
        sent_at_tick, acked_at_tick, failed_at_tick = sent, acked[0], failed[0]
        return out

    produce_one, poll = producer.produce, producer.poll
    topic = args.topic
    now = time.time()
    while now < end_send:
        if now >= next_tick:
            _emit(report(now, "tick", tick))
            tick += 1
            next_tick = start + tick * interval
        if rate > 0:
            due = int((now - start) * rate) + 1
            if sent >= due:
                time.sleep(min(start + sent / rate - now, 0.001, max(0.0, end_send - now)))
                poll(0)
                now = time.time()
                continue
        else:
            due = sent + 256  # unpaced: up to 256 records between two poll() calls
        while sent < due:
            value = pack(now) + tails[sent % ntails] if stamped else plain
            try:
                produce_one(topic, value)
            except BufferError:
                # librdkafka's queue is full: serve delivery reports until there is room.
                poll(0.001)
                break
            sent += 1
            # Each value carries the time of its own produce() call, also in a catch-up burst.
            now = time.time()
            if now >= end_send or now >= next_tick:
                break
        poll(0)
        now = time.time()
        if time.monotonic() > deadline:
            break
    send_end = time.time()
    remaining = len(producer)
    while remaining and time.monotonic() < deadline:
        remaining = producer.flush(min(0.1, max(0.0, next_tick - time.time())) or 0.01)
        now = time.time()
        if now >= next_tick:
            _emit(report(now, "tick", tick))
            tick += 1
            next_tick = start + tick * interval
    end = time.time()
    done = report(end, "done", tick)
    done.update(
        total_sent=sent,
        total_acked=acked[0],
        total_failed=failed[0],
        unflushed=remaining,
        start=start,
        send_end=send_end,
        end=end,
        errors=errors,
    )
    _emit(done)
    return 0 if remaining == 0 else 3


def consume(args: argparse.Namespace) -> int:
    """The ``consume`` command; see the module docstring."""
    import confluent_kafka as ck

    commands: list[list[str]] = []
    command_lock = threading.Lock()

    def read_commands() -> None:
        for line in sys.stdin:
            with command_lock:
                commands.append(line.split())
        with command_lock:
            commands.append(["exit"])  # the driver went away

    threading.Thread(target=read_commands, daemon=True).start()
    client_errors: list[str] = []

    def keep(text: str) -> None:
        client_errors.append(text[-300:])
        del client_errors[:-20]

    consumer = ck.Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "latest",
            "log_level": 3,
            "error_cb": lambda err: keep(str(err)),
        }
    )

    def on_assign(c: Any, partitions: list[Any]) -> None:
        # Start at each partition's end as it is now, or where the group left off: the
        # driver starts the producers only once every partition is assigned, so the
        # run reads exactly what it produced even on a topic that already held records.
        try:
            committed = c.committed(partitions, timeout=min(30.0, args.timeout))
            for tp, got in zip(partitions, committed, strict=True):
                if got.offset >= 0:
                    tp.offset = got.offset
                else:
                    tp.offset = c.get_watermark_offsets(tp, timeout=min(30.0, args.timeout))[1]
        except ck.KafkaException as exc:
            keep(f"offset lookup failed, starting at the end: {exc}")
            for tp in partitions:
                tp.offset = ck.OFFSET_END
        c.assign(partitions)
        _emit({"event": "assigned", "partitions": len(partitions)})

    def on_revoke(c: Any, partitions: list[Any]) -> None:
        _emit({"event": "revoked"})

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.monotonic() + args.timeout
    unpack = _STAMP.unpack_from
    stamped = args.size >= _STAMP.size
    hist: Counter[int] = Counter()
    received = 0
    nbytes = 0
    errors = 0
    received_at_tick = 0
    bytes_at_tick = 0
    first: float | None = None
    last: float | None = None
    start: float | None = None
    next_tick = float("inf")
    tick = 1
    stopped = False
    reported = -1
    status = 0

    def report(now: float, kind: str, k: int) -> dict[str, Any]:
        nonlocal received_at_tick, bytes_at_tick, hist
        out = {
            "event": kind,
            "k": k,
            "t": now,
            "received": received - received_at_tick,
            "bytes": nbytes - bytes_at_tick,
            "hist": {str(b): c for b, c in hist.items()},
        }
        hist = Counter()
        received_at_tick, bytes_at_tick = received, nbytes
        return out

    try:
        while True:
            with command_lock:
                todo, commands[:] = commands[:], []
            if any(w and w[0] == "exit" for w in todo):
                break
            for words in todo:
                if len(words) == 2 and words[0] == "start":
                    start = float(words[1])
                    next_tick = start + args.interval
                elif words and words[0] == "stop":
                    stopped = True
            if time.monotonic() > deadline:
                status = 3
                break
            now = time.time()
            if now >= next_tick and start is not None:
                _emit(report(now, "tick", tick))
                tick += 1
                next_tick = start + tick * args.interval
            if stopped and received != reported:
                _emit({"event": "count", "records": received})
                reported = received
            # consume(n, timeout) waits for all n records or the timeout, which would add
            # up to the timeout to every latency: wait for one record, then take what is queued.
            head = consumer.poll(0.05)
            if head is None:
                continue
            batch = [head, *consumer.consume(10_000, 0)]
            wall = time.time()
            wall_us = wall * 1e6
            for msg in batch:
                if msg.error() is not None:
                    errors += 1
                    continue
                value = msg.value() or b""
                received += 1
                nbytes += len(value)
                if stamped and len(value) >= _STAMP.size:
                    hist[bucket(wall_us - unpack(value)[0] * 1e6)] += 1
                else:
                    hist[bucket(wall_us - msg.timestamp()[1] * 1e3)] += 1
            if first is None and received:
                first = wall
            last = wall
    finally:
        consumer.close()
    done = report(time.time(), "done", tick)
    done.update(
        total_received=received,
        total_bytes=nbytes,
        errors=errors,
        first=first,
        last=last,
        timed_out=status == 3,
        client_errors=client_errors[-5:],
    )
    _emit(done)
    return status


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one worker."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("produce")
    pp.add_argument("--rate", type=float, default=0.0, help="records/s of this producer (0 = unpaced)")
    pp.add_argument("--duration", type=float, required=True, help="seconds of sending")
    pp.add_argument("--acks", default="1")
    pp.add_argument("--linger-ms", type=float, default=5.0)
    pp.add_argument("--config", action="append", default=[], help="librdkafka KEY=VALUE")
    pc = sub.add_parser("consume")
    pc.add_argument("--group", required=True)
    for q in (pp, pc):
        q.add_argument("--bootstrap", required=True)
        q.add_argument("--topic", required=True)
        q.add_argument("--size", type=int, required=True, help="value bytes")
        q.add_argument("--interval", type=float, default=5.0, help="seconds between tick reports")
        q.add_argument("--timeout", type=float, default=300.0, help="bound of the whole run, s")
    args = p.parse_args(argv)
    return produce(args) if args.command == "produce" else consume(args)


if __name__ == "__main__":
    sys.exit(main())
