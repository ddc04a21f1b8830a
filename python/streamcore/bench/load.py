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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from streamcore._version import __version__

__all__ = [
    "PROFILES",
    "LoadSettings",
    "add_load_command",
    "describe_broker",
    "latency_summary",
    "merge_histograms",
    "render_profile_table",
    "run_load",
    "run_load_command",
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
    total = sum(histogram.values())
    out: dict[str, float | int | None] = {"count": total, "p50": None, "p99": None, "p999": None, "max": None}
    if total == 0:
        return out
    buckets = sorted(histogram.items())
    for key, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        rank = max(1, min(total, -int(-q * total // 100)))
        seen = 0
        for value, count in buckets:
            seen += count
            if seen >= rank:
                out[key] = value / 1000.0
                break
    out["max"] = buckets[-1][0] / 1000.0
    return out


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


def _ms(value: float | int | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _percentiles(summary: dict[str, Any]) -> str:
    return f"p50 {_ms(summary['p50'])} p99 {_ms(summary['p99'])} p99.9 {_ms(summary['p999'])} ms"


def format_interval(row: dict[str, Any]) -> str:
    """One live line: the interval's produce and consume rates and latency percentiles."""
    text = (
        f"{row['t_s']:7.1f} s  produced {row['produce_records_per_s']:>10,.0f} rec/s "
        f"{row['produce_mb_per_s']:7.1f} MB/s  ack {_percentiles(row['ack_ms'])}"
    )
    if row["failed"]:
        text += f"  ({row['failed']:,} failed)"
    if row["e2e_ms"]["count"] or row["received"]:
        text += (
            f" | consumed {row['consume_records_per_s']:>10,.0f} rec/s "
            f"{row['consume_mb_per_s']:7.1f} MB/s  e2e {_percentiles(row['e2e_ms'])}"
        )
    return text


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


# --- printing ---------------------------------------------------------------------------


def format_totals(result: dict[str, Any]) -> str:
    """The end-of-run lines: counts, rates, latency percentiles, broker CPU and memory."""
    t = result["totals"]
    lines = [
        f"records: sent {t['sent']:,}, acknowledged {t['acked']:,}, failed {t['failed']:,}, "
        f"received {t['received']:,}",
    ]
    rate = "-" if t["produce_records_per_s"] is None else f"{t['produce_records_per_s']:,.0f}"
    mbs = "-" if t["produce_mb_per_s"] is None else f"{t['produce_mb_per_s']:,.1f}"
    lines.append(
        f"produce: {rate} rec/s, {mbs} MB/s over {t['produce_seconds']:.1f} s; ack {_latency(t['ack_ms'])}"
    )
    if t["received"] or t["consume_seconds"]:
        rate = "-" if t["consume_records_per_s"] is None else f"{t['consume_records_per_s']:,.0f}"
        mbs = "-" if t["consume_mb_per_s"] is None else f"{t['consume_mb_per_s']:,.1f}"
        lines.append(f"consume: {rate} rec/s, {mbs} MB/s; end-to-end {_latency(t['e2e_ms'])}")
    broker = result.get("broker")
    if t["broker_cpu_s"] is not None:
        per_gb = "-" if t["broker_cpu_s_per_gb"] is None else f"{t['broker_cpu_s_per_gb']:.2f}"
        rss = broker.get("peak_rss_bytes") if broker else None
        lines.append(
            f"broker: CPU {t['broker_cpu_s']:.2f} s ({per_gb} s per GB acknowledged)"
            + ("" if rss is None else f", peak RSS {rss / 2**20:,.0f} MiB")
        )
    la, lb = result["load_average"]["before"], result["load_average"]["after"]
    lines.append(f"load average (1 min) {la[0]:.2f} before, {lb[0]:.2f} after, on {os.cpu_count()} CPU(s)")
    if result["unflushed"]:
        lines.append(f"warning: {result['unflushed']:,} record(s) never acknowledged (flush timed out)")
    if result["producer_errors"]:
        lines.append(f"producer errors: {result['producer_errors'][0]}")
    return "\n".join(lines)


def _latency(summary: dict[str, Any]) -> str:
    return _percentiles(summary) + f" (max {_ms(summary['max'])} ms)"


def render_profile_table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown table of per-profile medians (over rounds) of a ``--profile`` run."""
    by_profile: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        by_profile.setdefault(r["broker"]["profile"], []).append(r)

    def med(rs: list[dict[str, Any]], *path: str) -> float | None:
        values = []
        for r in rs:
            v: Any = r["totals"]
            for p in path:
                v = v.get(p) if isinstance(v, dict) else None
            if isinstance(v, (int, float)):
                values.append(float(v))
        return statistics.median(values) if values else None

    def cell(value: float | None, kind: str) -> str:
        if value is None:
            return "-"
        if kind == "rate":
            return f"{value:,.0f}"
        if kind == "mbs":
            return f"{value:,.1f}"
        if kind == "mib":
            return f"{value / 2**20:,.0f}"
        return _ms(value)

    header = [
        "profile", "rec/s", "MB/s", "ack p50 ms", "ack p99 ms", "ack p99.9 ms",
        "e2e p50 ms", "e2e p99 ms", "e2e p99.9 ms", "broker CPU s/GB", "peak RSS MiB",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for profile, rs in by_profile.items():
        rss = [r["broker"]["peak_rss_bytes"] for r in rs if r["broker"].get("peak_rss_bytes")]
        cells = [
            cell(med(rs, "produce_records_per_s"), "rate"),
            cell(med(rs, "produce_mb_per_s"), "mbs"),
            cell(med(rs, "ack_ms", "p50"), "ms"),
            cell(med(rs, "ack_ms", "p99"), "ms"),
            cell(med(rs, "ack_ms", "p999"), "ms"),
            cell(med(rs, "e2e_ms", "p50"), "ms"),
            cell(med(rs, "e2e_ms", "p99"), "ms"),
            cell(med(rs, "e2e_ms", "p999"), "ms"),
            cell(med(rs, "broker_cpu_s_per_gb"), "s"),
            cell(statistics.median(rss) if rss else None, "mib"),
        ]
        lines.append(f"| {profile} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _bootstrap(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _profiles(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PROFILES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown profile {bad or text!r}; choose from {','.join(PROFILES)}")
    return names


def _key_value(text: str) -> str:
    key, sep, _ = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def add_load_command(targets: Any) -> None:
    """``streamcore bench load``: add the parser to ``targets`` (bench's subparsers)."""
    p = targets.add_parser(
        "load",
        help="load generator: N producers x M consumers at a fixed rate; live throughput and "
        "ack / end-to-end latency percentiles (confluent-kafka processes)",
        description=__doc__.split("\n\n")[1] + "\n\n" + __doc__.split("\n\n")[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--rate",
        type=_non_negative_float,
        default=0.0,
        help="records/s offered, all producers together (0 = unpaced, the default)",
    )
    p.add_argument("--duration", type=_positive_float, default=10.0, help="seconds of sending (default 10)")
    p.add_argument("--producers", type=_int_at_least(1), default=1, help="producer processes (default 1)")
    p.add_argument(
        "--consumers",
        type=_int_at_least(0),
        default=1,
        help="consumer processes, one group (default 1; 0 = none)",
    )
    p.add_argument("--size", type=_int_at_least(0), default=1024, help="value bytes (default 1024)")
    p.add_argument("--topic", help="topic (default: a new topic load-<hex>); created when missing")
    p.add_argument(
        "--partitions", type=_int_at_least(1), default=4, help="partitions of a new topic (default 4)"
    )
    p.add_argument("--acks", choices=ACKS, default="all", help="producer acks (default all)")
    p.add_argument(
        "--linger-ms", type=_non_negative_float, default=5.0, help="producer linger.ms (default 5)"
    )
    p.add_argument(
        "--producer-config",
        metavar="KEY=VALUE",
        type=_key_value,
        action="append",
        default=[],
        help="a librdkafka producer setting (repeatable), e.g. batch.size=262144",
    )
    p.add_argument(
        "--interval", type=_positive_float, default=5.0, help="seconds between live lines (default 5)"
    )
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        type=_bootstrap,
        help="broker to load (default: start a streamcore broker on 127.0.0.1 for the run)",
    )
    p.add_argument(
        "--fsync",
        choices=FSYNC,
        help="storage.fsync of the broker started here (default interval; not with --bootstrap)",
    )
    p.add_argument(
        "--profile",
        type=_profiles,
        help="storage.profile of the broker started here; a comma-separated list (e.g. "
        "low,medium,high,ultra) runs the same load once per profile, each on a fresh broker, "
        "and prints a table (not with --bootstrap)",
    )
    p.add_argument(
        "--rounds",
        type=_int_at_least(1),
        default=1,
        help="runs of each profile, interleaved; the table shows medians",
    )
    p.add_argument("--dir", help="where a started broker keeps its data (default: the system's temp dir)")
    p.add_argument(
        "--timeout", type=_positive_float, default=120.0, help="bound of each wait, s (default 120)"
    )
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE ('-' for stdout)")
    p.set_defaults(handler=run_load_command, load_parser=p)


def settings_from_args(args: argparse.Namespace) -> LoadSettings:
    """The :class:`LoadSettings` of parsed ``streamcore bench load`` arguments."""
    return LoadSettings(
        rate=args.rate,
        duration_s=args.duration,
        producers=args.producers,
        consumers=args.consumers,
        size=args.size,
        partitions=args.partitions,
        acks=args.acks,
        linger_ms=args.linger_ms,
        interval_s=args.interval,
        timeout_s=args.timeout,
        topic=args.topic,
        producer_config=tuple(args.producer_config),
    )


def describe_broker(bootstrap: str, timeout_s: float = 30.0) -> dict[str, str]:
    """The broker's own settings (DescribeConfigs on its broker resource), e.g.
    ``streamcore.fsync`` and ``streamcore.profile`` of a streamcore broker: what the run
    really measured, whatever was asked for."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    node = min(admin.list_topics(timeout=timeout_s).brokers)
    resource = ConfigResource(ResourceType.BROKER, str(node))
    entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(
        timeout=timeout_s
    )
    return {name: entry.value for name, entry in entries.items() if entry.value is not None}


@contextlib.contextmanager
def _streamcore_broker(fsync: str, profile: str | None, parent: str | None) -> Iterator[Any]:
    from streamcore.bench.processes import streamcore_broker_process

    env = {"STREAMCORE_STORAGE_PROFILE": profile} if profile else {}
    with tempfile.TemporaryDirectory(prefix="streamcore-bench-load-", dir=parent) as data_dir:
        server = streamcore_broker_process(Path(data_dir) / "data", fsync=fsync, env=env).start()
        try:
            yield server
        finally:
            server.stop()


def run_load_command(args: argparse.Namespace) -> int:
    """Run ``streamcore bench load`` from parsed ``args``; print, write JSON; exit status."""
    parser: argparse.ArgumentParser | None = getattr(args, "load_parser", None)

    def usage_error(message: str) -> int:
        if parser is not None:
            parser.error(message)  # exits with status 2
        print(f"streamcore bench load: error: {message}", file=sys.stderr)
        return 2

    if args.bootstrap and args.profile:
        return usage_error(
            "--profile sets up the broker this command starts; it cannot be used with --bootstrap"
        )
    if args.bootstrap and args.fsync:
        return usage_error(
            "--fsync sets up the broker this command starts; it cannot be used with --bootstrap"
        )
    settings = settings_from_args(args)
    if settings.consumers > settings.partitions and args.topic is None:
        print(
            f"note: {settings.consumers} consumers share {settings.partitions} partitions; "
            f"{settings.consumers - settings.partitions} will have none",
            file=sys.stderr,
        )
    to_stdout = args.json == "-"
    live: TextIO = sys.stderr if to_stdout else sys.stdout
    fsync = args.fsync or "interval"
    profiles: list[str | None] = list(args.profile) if args.profile else [None]
    header = (
        f"streamcore {__version__} bench load: {settings.producers} producer(s) x {settings.consumers} "
        f"consumer(s), {settings.size:,} B values, "
        + (f"{settings.rate:,.0f} rec/s offered" if settings.rate > 0 else "unpaced")
        + f", {settings.duration_s:g} s, acks={settings.acks}, linger.ms={settings.linger_ms:g}; "
        "confluent-kafka; MB = 10^6 B; ack = produce() to acknowledgement, e2e = produce() to receipt"
    )
    print(header, file=live, flush=True)
    from streamcore.bench.environment import collect_environment

    report: dict[str, Any] = {
        "benchmark": "load",
        "streamcore": __version__,
        "parameters": {
            **asdict(settings),
            "bootstrap": args.bootstrap,
            "fsync": None if args.bootstrap else fsync,
            "profiles": args.profile,
            "rounds": args.rounds,
        },
        "runs": [],
        "environment": collect_environment(),
    }
    for rnd in range(args.rounds):
        # Rotate the order of the profiles from round to round (no profile always first).
        order = profiles[rnd % len(profiles) :] + profiles[: rnd % len(profiles)]
        for profile in order:
            if args.bootstrap:
                print(f"bootstrap {args.bootstrap}", file=live, flush=True)
                result = run_load(args.bootstrap, settings, out=live)
                result["broker"] = {"started": False}
            else:
                with _streamcore_broker(fsync, profile, args.dir) as server:
                    label = f"profile={profile or 'medium (default)'}"
                    print(
                        f"[round {rnd + 1}/{args.rounds}] streamcore broker on {server.bootstrap}, "
                        f"fsync={fsync}, {label}",
                        file=live,
                        flush=True,
                    )
                    described = describe_broker(server.bootstrap, settings.timeout_s)
                    result = run_load(server.bootstrap, settings, broker_pid=server.pid, out=live)
                    result["broker"] = {
                        "started": True,
                        "command": server.argv,
                        "fsync": described.get("streamcore.fsync", fsync),
                        "profile": described.get("streamcore.profile", profile or "medium"),
                        "peak_rss_bytes": server.peak_rss_bytes(),
                    }
            result["round"] = rnd + 1
            report["runs"].append(result)
            print(format_totals(result), file=live, flush=True)
            print(file=live, flush=True)
    if args.profile:
        table = render_profile_table(report["runs"])
        report["profile_table"] = table
        print(
            f"storage.profile comparison, fsync={fsync} (medians of {args.rounds} round(s)):",
            file=live,
        )
        print(table, file=live, flush=True)
    if to_stdout:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
    return 0
