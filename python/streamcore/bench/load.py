"""``streamcore bench load``: a fixed-rate (or unpaced) load generator with live figures.

Like Kafka's ``kafka-producer-perf-test``, with consumers: ``--producers`` producer
processes offer ``--rate`` records/s in all (0 = as fast as they can) of ``--size``
bytes for ``--duration`` seconds while ``--consumers`` consumer processes (one group)
read the topic. Every ``--interval`` seconds a line gives the records/s and MB/s
acknowledged and received in that interval, the produce acknowledgement latency
(p50/p99/p99.9: librdkafka's time from ``produce()`` to the broker's answer) and the
end-to-end latency (produce() call to receipt by a consumer); the end of the run
gives the same over the whole run, the counts, and, for a broker this command
started, its CPU time per GB and peak memory. ``--json`` writes every figure.

The load client is confluent-kafka (librdkafka), in processes of their own
(:mod:`streamcore.bench.load_worker`, which imports nothing from streamcore): its
send path costs about what streamcore's own ``send()`` does (docs/client.md), it
measures each acknowledgement's latency in C, independent of when Python gets to
run the callback, it drives Apache Kafka the same way, and it shares no code with
the broker under test.

Without ``--bootstrap`` a streamcore broker is started for the run on 127.0.0.1 (a
free port, a temporary data directory, ``--fsync``); with ``--profile
low,medium,high,ultra`` one broker per WAL profile (``storage.profile``), and a table
compares them. Every wait is bounded (``--timeout``).

This module runs the load (:func:`run_load`); :mod:`streamcore.bench.load_report`
formats its figures and :mod:`streamcore.bench.load_cli` is the command line.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from streamcore.bench.broker import histogram_percentiles
from streamcore.bench.load_report import format_interval

__all__ = [
    "PROFILES",
    "LoadSettings",
    "latency_summary",
    "merge_histograms",
    "run_load",
]

#: WAL profiles of ``storage.profile`` (docs/storage.md), in the order a profile run uses.
PROFILES = ("low", "medium", "high", "ultra")
ACKS = ("0", "1", "all", "-1")
FSYNC = ("always", "interval", "never")

WORKER = Path(__file__).resolve().parent / "load_worker.py"
_MB = 1e6
_GB = 1e9
#: An interval's line waits this long after the interval ends for late reports.
_GRACE_S = 1.0
#: Consumers that receive nothing for this long after the producers finished give up.
_DRAIN_STALL_S = 15.0
#: Lead time between telling the workers the start time and that time.
_START_LEAD_S = 0.5


@dataclass(frozen=True)
class LoadSettings:
    """One load run. ``rate``: records/s offered by all producers together, 0 = unpaced;
    ``duration_s``: seconds of sending; ``size``: value bytes; ``interval_s``: seconds
    between live reports; ``timeout_s``: bound of each wait (joining, flushing, draining).
    ``topic`` None = a new topic ``load-<hex>`` with ``partitions`` partitions."""

    rate: float = 0.0
    duration_s: float = 10.0
    producers: int = 1
    consumers: int = 1
    size: int = 1024
    partitions: int = 4
    acks: str = "all"
    linger_ms: float = 5.0
    interval_s: float = 5.0
    timeout_s: float = 120.0
    topic: str | None = None
    producer_config: tuple[str, ...] = field(default_factory=tuple)


# --- histograms -----------------------------------------------------------------------


def merge_histograms(histograms: Sequence[dict[str, int] | Counter[int]]) -> Counter[int]:
    """Sum histograms ``{bucket µs: count}`` (JSON string keys or ints) into one Counter."""
    out: Counter[int] = Counter()
    for h in histograms:
        for key, count in h.items():
            out[int(key)] += int(count)
    return out


def latency_summary(histogram: Counter[int]) -> dict[str, float | int | None]:
    """``count``, nearest-rank ``p50``/``p99``/``p999`` and ``max`` in ms of a µs histogram."""
    return {"count": sum(histogram.values()), **histogram_percentiles(histogram, 0.001)}


# --- worker processes ---------------------------------------------------------------


class _Worker:
    """A load_worker.py process; its JSON lines go to a shared queue as ``(worker, event)``."""

    def __init__(self, role: str, index: int, args: list[str], events: queue.Queue[Any]) -> None:
        self.role = role
        self.name = f"{role} {index + 1}"
        self.done: dict[str, Any] | None = None
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), role, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout, events), daemon=True).start()
        threading.Thread(target=self._keep_stderr, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str], events: queue.Queue[Any]) -> None:
        for line in stream:
            with contextlib.suppress(ValueError):
                events.put((self, json.loads(line)))
        events.put((self, {"event": "exit"}))

    def _keep_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-800:].strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def _next(events: queue.Queue[Any], deadline: float) -> tuple[_Worker, dict[str, Any]] | None:
    try:
        got: tuple[_Worker, dict[str, Any]] = events.get(
            timeout=max(0.0, min(0.1, deadline - time.monotonic()))
        )
        return got
    except queue.Empty:
        return None


def _ended(worker: _Worker) -> RuntimeError:
    tail = worker.stderr_tail()
    return RuntimeError(f"{worker.name} ended unexpectedly" + (f": {tail}" if tail else ""))


def _create_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float) -> int:
    """Create ``topic`` if it does not exist; return its partition count."""
    import confluent_kafka as ck
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    future = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )[topic]
    try:
        future.result(timeout=timeout_s)
    except ck.KafkaException as exc:
        if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:
            raise
    deadline = time.monotonic() + timeout_s
    while True:
        meta = admin.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return len(meta.partitions)
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no partitions in the metadata after {timeout_s} s")
        time.sleep(0.05)


def _wait_assigned(
    consumers: list[_Worker], events: queue.Queue[Any], partitions: int, deadline: float
) -> None:
    """Return once the group holds all ``partitions``, spread over as many consumers as
    can hold one, with no event for half a second (an eager rebalance revokes
    everything first, so this state is reached only once every member has joined)."""
    held = {id(w): 0 for w in consumers}
    want_holders = min(len(consumers), partitions)
    stable_since: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"the consumer group did not take all {partitions} partitions in time: {held}")
        got = _next(events, deadline)
        if got is not None:
            worker, event = got
            kind = event["event"]
            if kind == "assigned":
                held[id(worker)] = int(event["partitions"])
            elif kind == "revoked":
                held[id(worker)] = 0
            elif kind in ("exit", "done"):
                raise _ended(worker)
            stable_since = None
            continue
        settled = sum(held.values()) == partitions and sum(1 for n in held.values() if n) == want_holders
        if not settled:
            stable_since = None
        elif stable_since is None:
            stable_since = now
        elif now - stable_since >= 0.5:
            return


# --- one run --------------------------------------------------------------------------


class _Intervals:
    """Tick reports gathered by interval index, each printed as one line once complete."""

    def __init__(self, settings: LoadSettings, start: float, out: TextIO | None) -> None:
        self.settings = settings
        self.start = start
        self.out = out
        self.by_k: dict[int, dict[str, Any]] = {}
        self.printed: set[int] = set()

    def add(self, role: str, event: dict[str, Any]) -> None:
        k = int(event["k"])
        agg = self.by_k.setdefault(
            k,
            {
                "sent": 0,
                "acked": 0,
                "failed": 0,
                "received": 0,
                "ack": Counter(),
                "e2e": Counter(),
                "produce_t": 0.0,
                "consume_t": 0.0,
            },
        )
        if role == "produce":
            agg["sent"] += event["sent"]
            agg["acked"] += event["acked"]
            agg["failed"] += event["failed"]
            agg["ack"].update(merge_histograms([event["hist"]]))
            agg["produce_t"] = max(agg["produce_t"], float(event["t"]))
        else:
            agg["received"] += event["received"]
            agg["e2e"].update(merge_histograms([event["hist"]]))
            agg["consume_t"] = max(agg["consume_t"], float(event["t"]))

    def flush(self, final: bool = False) -> None:
        """Print every interval whose reports are due (all of them when ``final``)."""
        now = time.time()
        for k in sorted(self.by_k):
            if k in self.printed:
                continue
            if not final and now < self.start + k * self.settings.interval_s + _GRACE_S:
                break
            self.printed.add(k)
            row = self.row(k)
            if self.out is not None:
                print(format_interval(row), file=self.out, flush=True)

    def row(self, k: int) -> dict[str, Any]:
        """The figures of interval ``k`` (1 = the first ``interval_s`` seconds) so far."""
        agg = self.by_k[k]
        interval = self.settings.interval_s
        size = self.settings.size
        began = self.start + (k - 1) * interval

        def span(t: float) -> float:
            # A tick reported late still covers one interval; the part after a worker's
            # last tick (its final report) covers only up to that report.
            return min(interval, max(t - began, 1e-3))

        ps, cs = span(agg["produce_t"]), span(agg["consume_t"])
        return {
            "k": k,
            "t_s": min(k * interval, max(agg["produce_t"], agg["consume_t"]) - self.start),
            "sent": agg["sent"],
            "acked": agg["acked"],
            "failed": agg["failed"],
            "received": agg["received"],
            "produce_records_per_s": agg["acked"] / ps,
            "produce_mb_per_s": agg["acked"] * size / ps / _MB,
            "consume_records_per_s": agg["received"] / cs,
            "consume_mb_per_s": agg["received"] * size / cs / _MB,
            "ack_ms": latency_summary(agg["ack"]),
            "e2e_ms": latency_summary(agg["e2e"]),
        }


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    from streamcore.bench.processes import cpu_seconds

    return cpu_seconds(pid)


def run_load(
    bootstrap: str,
    settings: LoadSettings,
    *,
    broker_pid: int | None = None,
    out: TextIO | None = None,
) -> dict[str, Any]:
    """Run one load against ``bootstrap``; return every figure (see the module docstring).

    ``broker_pid``: the broker's process, whose CPU time (all its threads and children)
    is counted over the run; ``out``: where the live interval lines go (None: nowhere).
    Raises RuntimeError or TimeoutError when a worker fails or a wait passes
    ``settings.timeout_s``.
    """
    s = settings
    topic = s.topic or f"load-{uuid.uuid4().hex[:12]}"
    partitions = _create_topic(bootstrap, topic, s.partitions, s.timeout_s)
    events: queue.Queue[Any] = queue.Queue()
    workers: list[_Worker] = []
    common = ["--bootstrap", bootstrap, "--topic", topic, "--size", str(s.size)]
    common += ["--interval", str(s.interval_s)]
    # Long enough for the whole run: the driver enforces the tighter bounds.
    worker_timeout = s.duration_s + 3 * s.timeout_s
    try:
        group = f"load-{uuid.uuid4().hex[:12]}"
        consumers = [
            _Worker("consume", i, [*common, "--group", group, "--timeout", str(worker_timeout)], events)
            for i in range(s.consumers)
        ]
        workers += consumers
        if consumers:
            _wait_assigned(consumers, events, partitions, time.monotonic() + s.timeout_s)
        per_producer = s.rate / s.producers if s.rate > 0 else 0.0
        producers = []
        for i in range(s.producers):
            args = [*common, "--rate", repr(per_producer), "--duration", str(s.duration_s)]
            args += ["--acks", s.acks, "--linger-ms", str(s.linger_ms), "--timeout", str(worker_timeout)]
            for item in s.producer_config:
                args += ["--config", item]
            producers.append(_Worker("produce", i, args, events))
        workers += producers
        ready: set[int] = set()
        deadline = time.monotonic() + s.timeout_s
        while len(ready) < len(producers):
            got = _next(events, deadline)
            if got is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"producers not connected within {s.timeout_s} s")
                continue
            worker, event = got
            if event["event"] == "ready":
                ready.add(id(worker))
            elif event["event"] in ("exit", "done"):
                raise _ended(worker)
        load_before = os.getloadavg()
        cpu0 = _cpu(broker_pid)
        start = time.time() + _START_LEAD_S
        for w in producers:
            w.send(f"go {start!r}")
        for w in consumers:
            w.send(f"start {start!r}")
        intervals = _Intervals(s, start, out)
        counts: dict[int, int] = {}

        def handle(worker: _Worker, event: dict[str, Any]) -> None:
            kind = event["event"]
            if kind == "tick":
                intervals.add(worker.role, event)
            elif kind == "done":
                # Its counts since the worker's last tick belong to the interval under way.
                worker.done = event
                intervals.add(worker.role, event)
            elif kind == "count":
                counts[id(worker)] = int(event["records"])
            elif kind == "exit" and worker.done is None:
                raise _ended(worker)

        # Sending, then flushing: bounded by the duration plus one timeout.
        deadline = time.monotonic() + _START_LEAD_S + s.duration_s + s.timeout_s
        while any(w.done is None for w in producers):
            got = _next(events, deadline)
            if got is not None:
                handle(*got)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"producers not done within {s.duration_s + s.timeout_s:.0f} s")
            intervals.flush()
        acked = sum(int(w.done["total_acked"]) for w in producers if w.done)
        # Draining: until the consumers hold every acknowledged record, or they stall.
        for w in consumers:
            w.send("stop")
        deadline = time.monotonic() + s.timeout_s
        last_total, progressed = -1, time.monotonic()
        while consumers:
            got = _next(events, deadline)
            if got is not None:
                handle(*got)
            total = sum(counts.values())
            now = time.monotonic()
            if total != last_total:
                last_total, progressed = total, now
            if len(counts) == len(consumers) and total >= acked:
                break
            if now > deadline or now - progressed > _DRAIN_STALL_S:
                break
            intervals.flush()
        for w in consumers:
            w.send("exit")
        deadline = time.monotonic() + s.timeout_s
        while any(w.done is None for w in consumers):
            got = _next(events, deadline)
            if got is not None:
                handle(*got)
            elif time.monotonic() > deadline:
                raise TimeoutError("consumers did not report within the timeout")
        cpu1 = _cpu(broker_pid)
        load_after = os.getloadavg()
    finally:
        for w in workers:
            w.stop()
    intervals.flush(final=True)
    return _report(
        s,
        bootstrap,
        topic,
        partitions,
        start,
        producers,
        consumers,
        intervals,
        cpu0,
        cpu1,
        load_before,
        load_after,
    )


def _report(
    s: LoadSettings,
    bootstrap: str,
    topic: str,
    partitions: int,
    start: float,
    producers: list[_Worker],
    consumers: list[_Worker],
    intervals: _Intervals,
    cpu0: float | None,
    cpu1: float | None,
    load_before: Sequence[float],
    load_after: Sequence[float],
) -> dict[str, Any]:
    pdone = [w.done for w in producers if w.done is not None]
    cdone = [w.done for w in consumers if w.done is not None]
    sent = sum(int(d["total_sent"]) for d in pdone)
    acked = sum(int(d["total_acked"]) for d in pdone)
    failed = sum(int(d["total_failed"]) for d in pdone)
    received = sum(int(d["total_received"]) for d in cdone)
    send_s = max(d["send_end"] for d in pdone) - start
    produce_s = max(d["end"] for d in pdone) - start
    lasts = [d["last"] for d in cdone if d["last"] is not None]
    consume_s = max(lasts) - start if lasts else None
    ack = merge_histograms([agg["ack"] for agg in intervals.by_k.values()])
    e2e = merge_histograms([agg["e2e"] for agg in intervals.by_k.values()])
    acked_bytes = acked * s.size
    cpu = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    totals: dict[str, Any] = {
        "sent": sent,
        "acked": acked,
        "failed": failed,
        "received": received,
        "offered_records_per_s": s.rate if s.rate > 0 else None,
        "send_seconds": send_s,
        "send_records_per_s": sent / send_s if send_s > 0 else None,
        "produce_seconds": produce_s,
        "produce_records_per_s": acked / produce_s if produce_s > 0 else None,
        "produce_mb_per_s": acked_bytes / produce_s / _MB if produce_s > 0 else None,
        "consume_seconds": consume_s,
        "consume_records_per_s": received / consume_s if consume_s else None,
        "consume_mb_per_s": received * s.size / consume_s / _MB if consume_s else None,
        "ack_ms": latency_summary(ack),
        "e2e_ms": latency_summary(e2e),
        "broker_cpu_s": cpu,
        "broker_cpu_s_per_gb": cpu / (acked_bytes / _GB) if cpu is not None and acked_bytes else None,
    }
    return {
        "bootstrap": bootstrap,
        "topic": topic,
        "partitions": partitions,
        "settings": asdict(s),
        "start": start,
        # Rebuilt from everything received: a report that came after its line was printed counts.
        "intervals": [intervals.row(k) for k in sorted(intervals.by_k)],
        "totals": totals,
        "producer_errors": [e for d in pdone for e in d.get("errors", [])][:10],
        "consumer_client_errors": [e for d in cdone for e in d.get("client_errors", [])][:10],
        "unflushed": sum(int(d["unflushed"]) for d in pdone),
        "load_average": {"before": list(load_before), "after": list(load_after)},
    }
