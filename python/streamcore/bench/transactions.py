"""Transactional produce throughput against idempotent produce, and commit latency.

The load client is confluent-kafka (librdkafka), like the other broker benchmarks.
One run produces ``records`` values of ``size`` bytes to a new one-partition topic
in one of three modes:

- ``idempotent``: ``enable.idempotence=true`` (acks=all), no transactional id, one
  ``flush()`` at the end: the baseline a transactional producer is compared with.
- ``flush``: the same idempotent producer, but ``flush()`` after every ``txn_size``
  records: the cost of waiting for acknowledgements at the same points where a
  transactional producer commits, without any transaction protocol.
- ``transactional``: ``transactional.id`` set; ``init_transactions()`` (untimed),
  then ``begin_transaction()``, ``txn_size`` records, ``commit_transaction()``, until
  every record is sent. ``commit_transaction()`` first waits for the transaction's
  records still in flight, then the broker writes the commit markers; its duration is
  the commit latency.

records/s and MB/s (value bytes, 1 MB = 10^6 B) run from the first ``produce()`` to
the end of the last ``flush()`` or commit. Every run writes ``records`` records even
when ``txn_size`` does not divide it (the last transaction is shorter), after one
untimed warm-up record (flushed, or committed in a transaction of its own) that gets
the producer id and the connections in place.

``streamcore bench transactions`` (options, broker processes, printing) is in
:mod:`streamcore.bench.cli`; this module measures and renders.
"""

from __future__ import annotations

import statistics
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from streamcore.bench.broker import create_topic, message_values, new_name, percentile
from streamcore.bench.progress import ProgressBar

__all__ = [
    "MODES",
    "render_markdown_table",
    "render_transaction_rows",
    "run_transaction_benchmark",
    "run_transactional_produce",
    "summarize_runs",
]

#: The produce modes compared, in table order.
MODES = ("idempotent", "flush", "transactional")

_MB = 1e6
_CHECK_EVERY = 1024

#: A clock of a broker's CPU seconds (user + system), or None where it cannot be read.
CpuClock = Callable[[], "float | None"]


def _confluent_kafka() -> Any:
    try:
        import confluent_kafka
    except ImportError as exc:
        raise RuntimeError(
            "the transactions benchmark uses confluent-kafka as load client: pip install confluent-kafka"
        ) from exc
    return confluent_kafka


def _summary(values_ms: Sequence[float]) -> dict[str, float | None] | None:
    if not values_ms:
        return None
    ordered = sorted(values_ms)
    return {"p50": percentile(ordered, 50), "p99": percentile(ordered, 99), "max": float(ordered[-1])}


def run_transactional_produce(
    bootstrap: str,
    records: int,
    size: int,
    mode: str,
    txn_size: int | None = None,
    *,
    topic: str | None = None,
    linger_ms: float = 5.0,
    timeout_s: float = 300.0,
    progress: bool | None = None,
    broker_cpu: CpuClock | None = None,
) -> dict[str, Any]:
    """Produce ``records`` values of ``size`` bytes in ``mode`` (see :data:`MODES`); return figures.

    ``txn_size``: records per transaction (``transactional``) or between flushes
    (``flush``); ignored by ``idempotent``. ``topic`` None = a new one-partition topic.
    ``broker_cpu``: returns the broker's CPU seconds so far; the run reports the
    difference over the timed part. ``timeout_s`` bounds the run (TimeoutError).

    Returned keys: ``records``, ``delivered``, ``failed``, ``seconds``,
    ``records_per_s``, ``mb_per_s``, ``syncs`` (commits or flushes),
    ``sync_ms`` (every commit or flush duration, ms), ``sync_latency_ms``
    (``p50``/``p99``/``max`` of those, or None), ``init_s`` (``init_transactions()``),
    ``broker_cpu_s`` and the parameters.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if records < 1:
        raise ValueError(f"records must be >= 1, got {records}")
    if mode != "idempotent" and (txn_size is None or txn_size < 1):
        raise ValueError(f"mode {mode} needs txn_size >= 1, got {txn_size}")
    ck = _confluent_kafka()
    if topic is None:
        topic = new_name("bench-txn")
        create_topic(bootstrap, topic, 1, min(timeout_s, 60.0))
    values = message_values(records, size)
    nvalues = len(values)
    counts = {"delivered": 0, "failed": 0}
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is None:
            counts["delivered"] += 1
            return
        counts["failed"] += 1
        if len(failures) < 10:
            failures.append(str(err))

    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "on_delivery": on_delivery,
        # log_level 3: librdkafka's notes about the broker closing at the end stay off stderr.
        "log_level": 3,
    }
    if mode == "transactional":
        config["transactional.id"] = new_name("bench-txn-id")
    producer = ck.Producer(config)
    init_s: float | None = None
    setup_s = min(timeout_s, 60.0)
    if mode == "transactional":
        started = time.perf_counter()
        producer.init_transactions(setup_s)
        init_s = time.perf_counter() - started
    # Untimed warm-up: one record, flushed or committed in a transaction of its own. An
    # idempotent producer gets its producer id and connections lazily, after the first
    # produce() (hundreds of ms with librdkafka's timers), which would otherwise land in
    # the first timed flush; the transactional producer got its id in init_transactions().
    if mode == "transactional":
        producer.begin_transaction()
        producer.produce(topic, values[0])
        producer.commit_transaction(setup_s)
    else:
        producer.produce(topic, values[0])
        if producer.flush(setup_s):
            raise TimeoutError(f"{mode}: the warm-up record was not delivered within {setup_s} s")
    if counts["failed"]:
        raise RuntimeError(f"{mode}: the warm-up record failed: {failures}")
    counts["delivered"] = 0
    chunk = records if mode == "idempotent" else int(txn_size or records)
    produce, poll = producer.produce, producer.poll
    sync_ms: array[float] = array("d")
    bar = ProgressBar(records, f"{mode} {chunk if mode != 'idempotent' else ''}".rstrip(), enabled=progress)
    cpu_before = broker_cpu() if broker_cpu is not None else None
    start = time.perf_counter()
    deadline = start + timeout_s

    def remaining() -> float:
        left = deadline - time.perf_counter()
        if left <= 0:
            raise TimeoutError(f"{mode}: {sent} of {records} records sent after {timeout_s} s")
        return left

    sent = 0
    while sent < records:
        end = min(records, sent + chunk)
        if mode == "transactional":
            producer.begin_transaction()
        while sent < end:
            try:
                produce(topic, values[sent % nvalues])
            except BufferError:
                # librdkafka's queue is full: serve delivery reports until there is room.
                poll(0.005)
                remaining()
                continue
            sent += 1
            if sent % _CHECK_EVERY == 0:
                poll(0)
                bar.update(sent)
                remaining()
        synced = time.perf_counter()
        if mode == "transactional":
            producer.commit_transaction(remaining())
        else:
            left = producer.flush(remaining())
            if left:
                raise TimeoutError(f"{mode}: {left} records not delivered after {timeout_s} s")
        sync_ms.append((time.perf_counter() - synced) * 1000.0)
    seconds = time.perf_counter() - start
    cpu_after = broker_cpu() if broker_cpu is not None else None
    producer.poll(0)  # the last delivery reports
    bar.close(sent)
    del producer  # closes its connections before the caller may stop the broker
    timed_syncs = sync_ms if mode != "idempotent" else array("d")
    return {
        "mode": mode,
        "txn_size": None if mode == "idempotent" else chunk,
        "bootstrap": bootstrap,
        "topic": topic,
        "records": records,
        "size": size,
        "linger_ms": linger_ms,
        "delivered": counts["delivered"],
        "failed": counts["failed"],
        "failure_examples": failures,
        "seconds": seconds,
        "records_per_s": records / seconds,
        "mb_per_s": records * size / seconds / _MB,
        "syncs": len(sync_ms),
        "sync_ms": list(timed_syncs),
        "sync_latency_ms": _summary(timed_syncs),
        "init_s": init_s,
        "broker_cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    }


def _cases(txn_sizes: Sequence[int]) -> list[tuple[str, int | None]]:
    cases: list[tuple[str, int | None]] = [("idempotent", None)]
    for n in txn_sizes:
        cases += [("flush", n), ("transactional", n)]
    return cases


def summarize_runs(broker: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One table row from the rounds of one (mode, txn_size): medians of the rates and of the
    broker CPU, percentiles over every commit/flush of every round."""
    first = runs[0]
    syncs = [x for r in runs for x in r["sync_ms"]]
    cpu = [r["broker_cpu_s"] for r in runs if r["broker_cpu_s"] is not None]
    return {
        "broker": broker,
        "mode": first["mode"],
        "txn_size": first["txn_size"],
        "rounds": len(runs),
        "records": first["records"],
        "size": first["size"],
        "records_per_s": statistics.median(r["records_per_s"] for r in runs),
        "mb_per_s": statistics.median(r["mb_per_s"] for r in runs),
        "syncs": len(syncs),
        "sync_latency_ms": _summary(syncs),
        "broker_cpu_s": statistics.median(cpu) if cpu else None,
        "failed": sum(r["failed"] for r in runs),
    }


def run_transaction_benchmark(
    bootstrap: str,
    broker: str,
    *,
    records: int,
    size: int,
    txn_sizes: Sequence[int],
    rounds: int = 1,
    warmup_rounds: int = 0,
    linger_ms: float = 5.0,
    timeout_s: float = 300.0,
    progress: bool | None = None,
    broker_cpu: CpuClock | None = None,
) -> dict[str, Any]:
    """Every mode and transaction size against one broker, ``rounds`` times in turn.

    Each round runs the cases in the same order (idempotent, then per size: flush,
    transactional), each on a new topic, so a slow spell of a shared machine spreads
    over all cases instead of landing on one. ``warmup_rounds`` more rounds run first
    and are not kept (a JVM broker compiles its hot paths during the first one).
    Returns ``{"rows": [...], "runs": [...]}``: one summary row per case
    (:func:`summarize_runs`) and every single kept run.
    """
    cases = _cases(txn_sizes)
    runs: dict[tuple[str, int | None], list[dict[str, Any]]] = {c: [] for c in cases}
    for round_ in range(warmup_rounds + rounds):
        for mode, n in cases:
            result = run_transactional_produce(
                bootstrap,
                records,
                size,
                mode,
                n,
                linger_ms=linger_ms,
                timeout_s=timeout_s,
                progress=progress,
                broker_cpu=broker_cpu,
            )
            result["broker"] = broker
            if round_ >= warmup_rounds:
                runs[(mode, n)].append(result)
    rows = [summarize_runs(broker, runs[c]) for c in cases]
    every = [{k: v for k, v in r.items() if k != "sync_ms"} for c in cases for r in runs[c]]
    return {"rows": rows, "runs": every}


# --- rendering ---------------------------------------------------------------------


def render_markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A GitHub markdown table; ``align`` holds one ``l`` or ``r`` per column (default: the
    first column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [header, rule, *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def _figure(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _mode_label(row: dict[str, Any]) -> str:
    if row["mode"] == "idempotent":
        return "idempotent, one flush"
    if row["mode"] == "flush":
        return f"idempotent, flush every {row['txn_size']:,}"
    return f"transactional, {row['txn_size']:,} per txn"


def render_transaction_rows(rows: Sequence[dict[str, Any]]) -> str:
    """The summary rows of :func:`run_transaction_benchmark` as one markdown table."""
    header = [
        "broker",
        "mode",
        "records/s",
        "MB/s",
        "vs idempotent",
        "commits/flushes",
        "p50 ms",
        "p99 ms",
        "broker CPU s",
    ]
    baseline = {r["broker"]: r["records_per_s"] for r in rows if r["mode"] == "idempotent"}
    body = []
    for r in rows:
        lat = r["sync_latency_ms"] or {}
        base = baseline.get(r["broker"])
        body.append(
            [
                r["broker"],
                _mode_label(r),
                _figure(r["records_per_s"]),
                _figure(r["mb_per_s"], 1),
                "-" if not base else f"{r['records_per_s'] / base:.2f}",
                "-" if r["mode"] == "idempotent" else f"{r['syncs']:,}",
                _figure(lat.get("p50"), 2),
                _figure(lat.get("p99"), 2),
                _figure(r["broker_cpu_s"], 2),
            ]
        )
    return render_markdown_table(header, body, "llrrrrrrr")
