"""The workloads of ``streamcore bench compare``, each run against one started broker.

Every workload takes a :class:`Target` (the broker's bootstrap address and process
id) and the run's :class:`Settings`, creates its own topics with fresh names, and
returns a flat dict of figures (None where a figure could not be measured). Rates
use 1 MB = 1e6 bytes of record values; "broker CPU s/GB" is the broker process
tree's user+system CPU time during the workload divided by the gigabytes (1e9 bytes)
of values produced. Every loop is bounded in count and in time (``timeout_s``).

* :func:`join` — a new consumer group's time from ``subscribe`` to its first record,
  ``joins`` times on a one-record topic (the first is the broker's first group ever);
* :func:`tight` — confluent-kafka's tight produce loop of 100 B values (acks=1,
  linger 5 ms, no delivery callbacks) into one partition, then one consumer reads
  them all back;
* :func:`java` — Kafka's ProducerPerformance (1 KiB, 4 partitions, acks=1, batch.size
  256 KiB, linger 5 ms) then ConsumerPerformance over the same records;
* :func:`latency` — a fixed rate of 1 KiB records (acks=all, 4 partitions; by
  default half of the maximum delivery-report rate, :func:`latency_max_rate`)
  offered for a few seconds while a consumer process reads: produce latency (librdkafka's produce() to delivery
  report) and end-to-end latency (receipt minus record timestamp) percentiles. With
  ``Settings.fsync == "always"`` its topics get ``flush.messages=1``, so that Apache
  Kafka too fsyncs each append before answering (streamcore's broker runs with
  ``--fsync always``; the topic setting is stored and has no effect there);
* :func:`fanout` — N producer processes and M consumer processes (one group) over a
  16-partition topic of 1 KiB records, all at once.
"""

from __future__ import annotations

import json
import logging
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from streamcore.bench.broker import create_topic, new_name, percentile, run_consume, run_produce
from streamcore.bench.processes import cpu_seconds
from streamcore.bench.progress import ProgressBar

__all__ = [
    "FANOUT_PARTITIONS",
    "FSYNC_ALWAYS_TOPIC_CONFIG",
    "JAVA_PRODUCER_PROPS",
    "WORKLOADS",
    "Settings",
    "Target",
    "create_topic_with_config",
    "fanout",
    "histogram_percentiles",
    "java",
    "join",
    "latency",
    "latency_max_rate",
    "scaled",
    "tight",
]

_MB = 1e6
_GB = 1e9

TIGHT_RECORDS = 1_000_000
TIGHT_SIZE = 100
JAVA_RECORDS = 1_000_000
JAVA_SIZE = 1024
JAVA_PARTITIONS = 4
#: The producer settings of the Java workload (besides bootstrap.servers).
JAVA_PRODUCER_PROPS = {"acks": "1", "batch.size": 262144, "linger.ms": 5}
LATENCY_PROBE_RECORDS = 200_000
LATENCY_SECONDS = 10.0
LATENCY_SIZE = 1024
LATENCY_PARTITIONS = 4
LATENCY_LINGER_MS = 1
FANOUT_RECORDS = 500_000
FANOUT_SIZE = 1024
FANOUT_PARTITIONS = 16
#: A consumer that receives nothing for this long (a group join included) gives up.
STALL_S = 60.0
#: Topic settings of the latency run under fsync=always: Kafka's flush.messages=1 fsyncs
#: the log after every append, before the produce request is answered (Kafka's
#: log.flush.interval.messages as a topic override), which is what streamcore's
#: storage.fsync=always does for every topic.
FSYNC_ALWAYS_TOPIC_CONFIG = {"flush.messages": "1"}

WORKER = Path(__file__).resolve().parent / "worker.py"


@dataclass(frozen=True)
class Target:
    """A started broker: where clients connect, and the process whose CPU time is counted."""

    name: str
    bootstrap: str
    pid: int


@dataclass(frozen=True)
class Settings:
    """What every workload of one run shares.

    ``scale`` multiplies record counts and the latency run's duration (1.0 = the
    sizes in this module's docstring); ``timeout_s`` bounds each step;
    ``perf_classpath`` is needed by :func:`java` only; ``latency_rate`` fixes the
    offered load of :func:`latency` (records/s) instead of half the measured maximum.
    """

    scale: float = 1.0
    timeout_s: float = 300.0
    producers: int = 4
    consumers: int = 4
    joins: int = 5
    latency_rate: float | None = None
    latency_seconds: float | None = None
    perf_classpath: str | None = None
    log4j_config: Path | None = None
    progress: bool | None = False
    python: str = sys.executable
    #: streamcore's storage.fsync in this run; "always" makes :func:`latency` ask every
    #: broker for an fsync per append (see :data:`FSYNC_ALWAYS_TOPIC_CONFIG`).
    fsync: str = "interval"


def scaled(count: int, scale: float, minimum: int = 100) -> int:
    """``count`` × ``scale``, rounded, at least ``minimum``."""
    return max(minimum, int(round(count * scale)))


def _cpu(target: Target) -> float | None:
    return cpu_seconds(target.pid)


def _per_gb(cpu_after: float | None, cpu_before: float | None, nbytes: int) -> float | None:
    if cpu_after is None or cpu_before is None or nbytes <= 0:
        return None
    return (cpu_after - cpu_before) / (nbytes / _GB)


def create_topic_with_config(
    bootstrap: str, topic: str, partitions: int, config: Mapping[str, str], timeout_s: float
) -> None:
    """Create ``topic`` (replication 1) with topic-level ``config``; raise if the broker refuses."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config))
    admin.create_topics([new], operation_timeout=timeout_s, request_timeout=timeout_s)[topic].result(
        timeout=timeout_s
    )


def histogram_percentiles(histogram: Mapping[int, int], scale: float = 0.1) -> dict[str, float | None]:
    """Nearest-rank p50/p99/p999 and max of a histogram ``{bucket: count}``; bucket × ``scale`` = value."""
    total = sum(histogram.values())
    out: dict[str, float | None] = {"p50": None, "p99": None, "p999": None, "max": None}
    if total == 0:
        return out
    buckets = sorted(histogram.items())
    for key, q in (("p50", 50.0), ("p99", 99.0), ("p999", 99.9)):
        rank = max(1, min(total, -int(-q * total // 100)))
        seen = 0
        for bucket, count in buckets:
            seen += count
            if seen >= rank:
                out[key] = bucket * scale
                break
    out["max"] = buckets[-1][0] * scale
    return out


# --- join -----------------------------------------------------------------------


def join(target: Target, settings: Settings) -> dict[str, Any]:
    """New-group join: ``joins`` fresh groups each read the one record of a topic."""
    topic = new_name("compare-join")
    create_topic(target.bootstrap, topic, 1, timeout_s=settings.timeout_s)
    run_produce(target.bootstrap, 1, 16, acks=1, topic=topic, progress=False, timeout_s=settings.timeout_s)
    times = []
    for _ in range(max(1, settings.joins)):
        got = run_consume(
            target.bootstrap, topic, 1, latency=False, progress=False, timeout_s=settings.timeout_s
        )
        times.append(got["first_message_s"])
    return {
        "first_join_s": times[0],
        "join_s": statistics.median(times),
        "join_max_s": max(times),
        "joins": len(times),
    }


# --- confluent tight loop ----------------------------------------------------------


def tight(target: Target, settings: Settings) -> dict[str, Any]:
    """confluent-kafka's tight produce loop (100 B, 1 partition), then one consumer reads it back."""
    records = scaled(TIGHT_RECORDS, settings.scale, 1000)
    topic = new_name("compare-tight")
    create_topic(target.bootstrap, topic, 1, timeout_s=settings.timeout_s)
    cpu0 = _cpu(target)
    produced = run_produce(
        target.bootstrap,
        records,
        TIGHT_SIZE,
        acks=1,
        linger_ms=5,
        topic=topic,
        delivery_reports=False,
        progress=settings.progress,
        timeout_s=settings.timeout_s,
    )
    cpu1 = _cpu(target)
    nbytes = records * TIGHT_SIZE
    figures: dict[str, Any] = {
        "records": records,
        "size": TIGHT_SIZE,
        "produce_records_per_s": produced["msgs_per_s"],
        "produce_mb_per_s": produced["mb_per_s"],
        "produce_cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "produce_cpu_s_per_gb": _per_gb(cpu1, cpu0, nbytes),
    }
    try:
        consumed = _consume_all(target.bootstrap, topic, records, settings)
    except (TimeoutError, RuntimeError) as exc:
        # Keep the produce figures: the consume half failing says nothing about them.
        figures["consume_error"] = f"{type(exc).__name__}: {exc}"[:600]
        return figures
    cpu2 = _cpu(target)
    consume_rate = consumed["received"] / consumed["fetch_seconds"]
    return {
        **figures,
        "consume_records_per_s": consume_rate,
        "consume_mb_per_s": consume_rate * TIGHT_SIZE / _MB,
        "consume_cpu_s": None if cpu2 is None or cpu1 is None else cpu2 - cpu1,
        "consume_cpu_s_per_gb": _per_gb(cpu2, cpu1, nbytes),
        "consume_join_s": consumed["join_seconds"],
        "received": consumed["received"],
    }


class _Keep(logging.Handler):
    """Appends each record's message to a list (at most 100 kept)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__()
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage()[-300:])
        del self.into[:-100]


def _consume_all(bootstrap: str, topic: str, records: int, settings: Settings) -> dict[str, Any]:
    """A new group reads ``records`` records of ``topic``; the join and the reading timed apart.

    Like ConsumerPerformance, the reading time starts when the group assigns the
    partitions (the join has a workload of its own), so it covers fetching only.
    """
    import confluent_kafka as ck

    assigned: list[float] = []
    client_errors: list[str] = []
    # librdkafka's log lines name causes its error callback does not (such as a Fetch
    # answer over receive.message.max.bytes): keep the last few for the report, off stderr.
    log = logging.getLogger(f"streamcore.bench.compare.{topic}")
    log.propagate = False
    log.addHandler(_Keep(client_errors))

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        assigned.append(time.perf_counter())

    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": new_name("compare-tight"),
            "auto.offset.reset": "earliest",
            "logger": log,
            "log_level": 3,
            "error_cb": lambda err: client_errors.append(str(err)),
        }
    )
    received = 0
    bar = ProgressBar(records, "consume", enabled=settings.progress)
    try:
        start = time.perf_counter()
        deadline = start + settings.timeout_s
        progressed = start
        consumer.subscribe([topic], on_assign=on_assign)
        while received < records:
            now = time.perf_counter()
            if now > deadline or now - progressed > STALL_S:
                last = "; ".join(dict.fromkeys(client_errors[-4:])) or "none"
                raise TimeoutError(
                    f"consume: {received} of {records} received, none in the last "
                    f"{now - progressed:.0f} s; last client errors: {last}"
                )
            before = received
            for msg in consumer.consume(min(10_000, records - received), 0.2):
                if msg.error() is None:
                    received += 1
            if received > before:
                progressed = time.perf_counter()
            bar.update(received)
        end = time.perf_counter()
        bar.close(received)
    finally:
        consumer.close()
    joined = assigned[0] if assigned else start
    return {
        "received": received,
        "seconds": end - start,
        "join_seconds": joined - start,
        "fetch_seconds": max(end - joined, 1e-9),
    }


# --- Kafka's Java perf tools ------------------------------------------------------


def java(target: Target, settings: Settings) -> dict[str, Any]:
    """ProducerPerformance then ConsumerPerformance (1 KiB, 4 partitions) from kafka-tools."""
    from streamcore.bench.peers.java_perf import run_consumer_performance, run_producer_performance

    if settings.perf_classpath is None:
        raise RuntimeError("the Java workload needs Kafka's perf tools (java, mvn; interop/perf/pom.xml)")
    records = scaled(JAVA_RECORDS, settings.scale, 1000)
    topic = new_name("compare-java")
    create_topic(target.bootstrap, topic, JAVA_PARTITIONS, timeout_s=settings.timeout_s)
    cpu0 = _cpu(target)
    produced = run_producer_performance(
        settings.perf_classpath,
        target.bootstrap,
        topic,
        records,
        JAVA_SIZE,
        JAVA_PRODUCER_PROPS,
        log4j_config=settings.log4j_config,
        timeout_s=settings.timeout_s,
    )
    cpu1 = _cpu(target)
    consumed = run_consumer_performance(
        settings.perf_classpath,
        target.bootstrap,
        topic,
        records,
        new_name("compare-java"),
        log4j_config=settings.log4j_config,
        timeout_s=settings.timeout_s,
    )
    cpu2 = _cpu(target)
    nbytes = records * JAVA_SIZE
    lat = produced["latency_ms"]
    return {
        "records": records,
        "size": JAVA_SIZE,
        "produce_records_per_s": produced["records_per_s"],
        "produce_mb_per_s": produced["records_per_s"] * JAVA_SIZE / _MB,
        "produce_p50_ms": lat["p50"],
        "produce_p99_ms": lat["p99"],
        "produce_p999_ms": lat["p999"],
        "produce_avg_ms": lat["avg"],
        "produce_cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "produce_cpu_s_per_gb": _per_gb(cpu1, cpu0, nbytes),
        # The fetch figures exclude the group join, like the tight loop's consume rate.
        "consume_records_per_s": consumed["fetch_records_per_s"],
        "consume_mb_per_s": consumed["fetch_records_per_s"] * JAVA_SIZE / _MB,
        "consume_rebalance_s": consumed["rebalance_ms"] / 1000.0,
        "consume_cpu_s": None if cpu2 is None or cpu1 is None else cpu2 - cpu1,
        "consume_cpu_s_per_gb": _per_gb(cpu2, cpu1, nbytes),
    }


# --- worker processes ----------------------------------------------------------------


class _Worker:
    """A worker.py process whose JSON lines arrive on a queue (read by a thread)."""

    def __init__(self, python: str, args: list[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [python, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        threading.Thread(target=self._keep_stderr, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue
        self.events.put({"event": "exit"})

    def _keep_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self._stderr) < 200:
                self._stderr.append(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next event, or None at ``deadline`` (time.monotonic())."""
        try:
            return self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def wait_for(self, kind: str, deadline: float) -> dict[str, Any]:
        """Skip events until one of ``kind``; RuntimeError on exit, error or ``deadline``."""
        while True:
            event = self.next_event(deadline)
            if event is None:
                raise TimeoutError(f"{self.name}: no {kind!r} before the deadline; {self.stderr_tail()}")
            if event["event"] == kind:
                return event
            if event["event"] in ("exit", "error"):
                raise RuntimeError(f"{self.name}: {event.get('error', 'exited')}; {self.stderr_tail()}")

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-800:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _consumer(settings: Settings, target: Target, topic: str, group: str, name: str) -> _Worker:
    args = ["consume", "--bootstrap", target.bootstrap, "--topic", topic, "--group", group]
    args += ["--timeout", str(settings.timeout_s * 2)]
    return _Worker(settings.python, args, name)


def _wait_assigned(consumers: list[_Worker], partitions: int, deadline: float) -> None:
    """Return once every consumer holds partitions and together they hold all ``partitions``.

    An eager rebalance revokes everything before assigning, so that state is reached
    only in a generation that includes every consumer; it must also hold for half a
    second with no new event, in case another rebalance follows.
    """
    held = [0] * len(consumers)
    stable_since: float | None = None
    while True:
        now = time.monotonic()
        if now > deadline:
            raise TimeoutError(f"consumer group not assigned {partitions} partitions in time: held {held}")
        changed = False
        for i, worker in enumerate(consumers):
            while True:
                try:
                    event = worker.events.get_nowait()
                except queue.Empty:
                    break
                changed = True
                if event["event"] == "assigned":
                    held[i] = int(event["partitions"])
                elif event["event"] == "revoked":
                    held[i] = 0
                elif event["event"] in ("exit", "error"):
                    raise RuntimeError(f"{worker.name} ended while joining: {worker.stderr_tail()}")
        settled = all(held) and sum(held) == partitions
        if not settled or changed:
            stable_since = now if settled else None
        elif stable_since is not None and now - stable_since >= 0.5:
            return
        time.sleep(0.02)


# --- fixed-rate latency --------------------------------------------------------------


def _paced_produce(
    bootstrap: str, topic: str, rate: float, seconds: float, timeout_s: float
) -> dict[str, Any]:
    """Offer ``rate`` records/s of 1 KiB for ``seconds``; per-record produce latency."""
    import confluent_kafka as ck

    latencies: list[float] = []
    failures = [0]

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures[0] += 1
            return
        lat = msg.latency()
        if lat is not None:
            latencies.append(lat * 1000.0)

    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": LATENCY_LINGER_MS,
            "on_delivery": on_delivery,
            "log_level": 3,
        }
    )
    producer.list_topics(topic, timeout=min(30.0, timeout_s))  # connect before the clock starts
    value = bytes(range(256)) * (LATENCY_SIZE // 256) + b"\0" * (LATENCY_SIZE % 256)
    total = max(1, int(rate * seconds))
    produce, poll = producer.produce, producer.poll
    sent = 0
    start = time.perf_counter()
    deadline = start + timeout_s
    while sent < total:
        now = time.perf_counter()
        if now > deadline:
            raise TimeoutError(f"latency: {sent} of {total} records offered within {timeout_s} s")
        due = min(total, int((now - start) * rate) + 1)
        while sent < due:
            try:
                produce(topic, value)
            except BufferError:
                poll(0.001)
                break
            sent += 1
        poll(0)
        wait = start + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, 0.002))
    offered_s = time.perf_counter() - start
    remaining = producer.flush(max(0.0, deadline - time.perf_counter()))
    if remaining:
        raise TimeoutError(f"latency: {remaining} records not delivered within {timeout_s} s")
    ordered = sorted(latencies)
    return {
        "records": total,
        "achieved_records_per_s": total / offered_s,
        "failed": failures[0],
        "p50": percentile(ordered, 50),
        "p99": percentile(ordered, 99),
        "p999": percentile(ordered, 99.9),
        "max": ordered[-1] if ordered else None,
    }


def latency_max_rate(target: Target, settings: Settings) -> float:
    """The maximum delivery-report rate of 1 KiB records (acks=all), in records/s.

    Measured on a fresh topic shaped like the one :func:`latency` measures (4
    partitions, the same topic settings), so half of it is half of what that topic takes.
    """
    topic_config = FSYNC_ALWAYS_TOPIC_CONFIG if settings.fsync == "always" else {}
    probe_topic = new_name("compare-probe")
    create_topic_with_config(
        target.bootstrap, probe_topic, LATENCY_PARTITIONS, topic_config, settings.timeout_s
    )
    probe = run_produce(
        target.bootstrap,
        scaled(LATENCY_PROBE_RECORDS, settings.scale, 1000),
        LATENCY_SIZE,
        acks="all",
        linger_ms=LATENCY_LINGER_MS,
        topic=probe_topic,
        progress=settings.progress,
        timeout_s=settings.timeout_s,
    )
    return float(probe["msgs_per_s"])


def latency(target: Target, settings: Settings) -> dict[str, Any]:
    """A fixed offered rate: produce and end-to-end percentiles.

    The rate is ``settings.latency_rate`` (``bench compare`` sets it to half of the
    lowest maximum among the brokers it runs, so that all are offered the same load),
    or else half of this broker's own maximum (:func:`latency_max_rate`).
    """
    topic_config = FSYNC_ALWAYS_TOPIC_CONFIG if settings.fsync == "always" else {}
    topic = new_name("compare-latency")
    create_topic_with_config(target.bootstrap, topic, LATENCY_PARTITIONS, topic_config, settings.timeout_s)
    max_rate = None
    if settings.latency_rate is None:
        max_rate = latency_max_rate(target, settings)
        rate = max_rate / 2
    else:
        rate = settings.latency_rate
    seconds = settings.latency_seconds or max(1.0, LATENCY_SECONDS * settings.scale)
    deadline = time.monotonic() + settings.timeout_s
    consumer = _consumer(settings, target, topic, new_name("compare-latency"), "latency consumer")
    try:
        _wait_assigned([consumer], LATENCY_PARTITIONS, deadline)
        produced = _paced_produce(target.bootstrap, topic, rate, seconds, settings.timeout_s)
        consumer.send(f"stop {produced['records']}")
        done = consumer.wait_for("done", time.monotonic() + settings.timeout_s)
    finally:
        consumer.stop()
    if done["records"] < produced["records"]:
        errors = "; ".join(done.get("client_errors", [])[-3:]) or "none"
        raise RuntimeError(
            f"latency: the consumer read {done['records']} of {produced['records']} records "
            f"(its last client errors: {errors})"
        )
    e2e = histogram_percentiles({int(k): v for k, v in done["latency_tenths_ms"].items()})
    return {
        "max_records_per_s": max_rate,
        "offered_records_per_s": rate,
        "topic_config": dict(topic_config),
        "achieved_records_per_s": produced["achieved_records_per_s"],
        "seconds": seconds,
        "records": produced["records"],
        "size": LATENCY_SIZE,
        "produce_p50_ms": produced["p50"],
        "produce_p99_ms": produced["p99"],
        "produce_p999_ms": produced["p999"],
        "produce_max_ms": produced["max"],
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "e2e_p999_ms": e2e["p999"],
        "e2e_max_ms": e2e["max"],
    }


# --- N producers x M consumers -----------------------------------------------------


def fanout(target: Target, settings: Settings) -> dict[str, Any]:
    """N producer processes and M consumer processes over 16 partitions, all at once."""
    producers_n, consumers_n = max(1, settings.producers), max(1, settings.consumers)
    total = scaled(FANOUT_RECORDS, settings.scale, 100 * producers_n)
    shares = [total // producers_n + (1 if i < total % producers_n else 0) for i in range(producers_n)]
    topic = new_name("compare-fanout")
    group = new_name("compare-fanout")
    create_topic(target.bootstrap, topic, FANOUT_PARTITIONS, timeout_s=settings.timeout_s)
    deadline = time.monotonic() + settings.timeout_s
    workers: list[_Worker] = []
    try:
        consumers = [
            _consumer(settings, target, topic, group, f"consumer {i + 1}") for i in range(consumers_n)
        ]
        workers += consumers
        _wait_assigned(consumers, FANOUT_PARTITIONS, deadline)
        producers = []
        for i, share in enumerate(shares):
            args = ["produce", "--bootstrap", target.bootstrap, "--topic", topic]
            args += ["--messages", str(share), "--size", str(FANOUT_SIZE), "--acks", "1", "--linger-ms", "5"]
            args += ["--timeout", str(settings.timeout_s)]
            producers.append(_Worker(settings.python, args, f"producer {i + 1}"))
        workers += producers
        for worker in producers:
            worker.wait_for("ready", deadline)
        cpu0 = _cpu(target)
        for worker in producers:
            worker.send("go")
        deadline = time.monotonic() + settings.timeout_s
        produced = [worker.wait_for("done", deadline) for worker in producers]
        for worker in consumers:
            worker.send("stop")
        consumed = [worker.wait_for("done", deadline) for worker in consumers]
        cpu1 = _cpu(target)
    finally:
        for worker in workers:
            worker.stop()
    sent = sum(p["records"] for p in produced)
    received = sum(c["records"] for c in consumed)
    if received < sent:
        raise RuntimeError(f"fanout: consumers read {received} of {sent} records")
    start = min(p["start"] for p in produced)
    produce_s = max(p["end"] for p in produced) - start
    consume_s = max(c["last"] for c in consumed if c["last"] is not None) - start
    histogram: Counter[int] = Counter()
    for c in consumed:
        histogram.update({int(k): v for k, v in c["latency_tenths_ms"].items()})
    e2e = histogram_percentiles(histogram)
    return {
        "producers": producers_n,
        "consumers": consumers_n,
        "partitions": FANOUT_PARTITIONS,
        "records": sent,
        "received": received,
        "size": FANOUT_SIZE,
        "produce_records_per_s": sent / produce_s,
        "produce_mb_per_s": sent * FANOUT_SIZE / produce_s / _MB,
        "consume_records_per_s": received / consume_s,
        "consume_mb_per_s": received * FANOUT_SIZE / consume_s / _MB,
        "e2e_p50_ms": e2e["p50"],
        "e2e_p99_ms": e2e["p99"],
        "e2e_p999_ms": e2e["p999"],
        "cpu_s": None if cpu1 is None or cpu0 is None else cpu1 - cpu0,
        "cpu_s_per_gb": _per_gb(cpu1, cpu0, sent * FANOUT_SIZE),
    }


#: Workload name -> function, in the order a round runs them.
WORKLOADS: dict[str, Callable[[Target, Settings], dict[str, Any]]] = {
    "join": join,
    "tight": tight,
    "java": java,
    "latency": latency,
    "fanout": fanout,
}
