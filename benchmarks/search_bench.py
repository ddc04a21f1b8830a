"""Search benchmark: what real-time indexing costs the produce path, and what it gives.

Run:  PYTHONPATH=python python benchmarks/search_bench.py [--records 200000] [--rounds 2]
      [--steady-s 20] [--queries 200] [--json out.json]

Each round starts two ``streamcore broker`` processes in turn on fresh data
directories, one with indexing switched off (``--no-search-index``) and one with every
topic indexed (``STREAMCORE_SEARCH_INDEX_DEFAULT=true``), alternating which goes first,
and in each:

1. produces ``--records`` JSON records (about 150 bytes: level, service, user,
   latency, a message of a few words) to a 2-partition topic as fast as one
   streamcore Producer in this process sends them, timed from the first send to the
   end of flush (records/s);
2. with indexing on: the time from that flush until the index has caught up, then a
   steady load at half the "off" rate for ``--steady-s`` seconds, sampling the
   index lag (records and seconds, from ``/search``) twice a second;
3. with indexing on: ``--queries`` queries over ``/search`` on the metrics port (a mix
   of field terms, boolean queries, phrases, numeric ranges; limit 20), their HTTP
   round-trip latency p50/p99, and the size of the index against the log's.

Produce throughput "on / off" compares the medians of the rounds. Not a test: nothing
is asserted about speed. The broker processes and this one share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(os.path.dirname(HERE), "python")
sys.path.insert(0, PYTHON_DIR)

from streamcore.client import Producer  # noqa: E402

TOPIC = "bench-logs"
LEVELS = ["debug", "info", "info", "info", "warn", "error"]
SERVICES = ["payments", "search", "checkout", "auth", "catalog", "shipping"]
WORDS = "timeout refused card declined retry user session cache miss slow query upstream reset".split()
QUERIES = [
    "level:error",
    "level:error AND service:payments",
    "service:checkout AND NOT level:debug",
    '"card declined"',
    "msg:timeout OR msg:refused",
    "latency_ms:[500 TO *]",
    "user:u42",
    "level:warn AND latency_ms:[100 TO 200]",
]


def record(rng: random.Random, n: int) -> bytes:
    return json.dumps(
        {
            "level": rng.choice(LEVELS),
            "service": rng.choice(SERVICES),
            "user": f"u{rng.randrange(1000)}",
            "latency_ms": rng.randrange(1000),
            "msg": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7))),
            "n": n,
        }
    ).encode()


class BrokerProcess:
    """A ``streamcore broker`` subprocess on a fresh data directory, port 0."""

    def __init__(self, data_dir: str, indexing: bool) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("STREAMCORE_") or k == "STREAMCORE_NO_EXTENSIONS"
        }
        env["PYTHONPATH"] = PYTHON_DIR
        argv = [sys.executable, "-m", "streamcore", "broker", "--data-dir", data_dir, "--port", "0",
                "--metrics-port", "0", "--default-partitions", "2"]  # fmt: skip
        if indexing:
            env["STREAMCORE_SEARCH_INDEX_DEFAULT"] = "true"
        else:
            argv.append("--no-search-index")
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
        )
        self.bootstrap = self.metrics = ""
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline and not self.metrics:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("the broker exited before it listened")
            if line.startswith("listening on "):
                self.bootstrap = line.split()[-1]
            elif line.startswith("metrics on "):
                self.metrics = line.split()[-1].removesuffix("/metrics")
        if not self.metrics:
            raise SystemExit("the broker did not start within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def search(base: str, query: str, limit: int = 20) -> dict[str, Any]:
    url = base + "/search?" + urllib.parse.urlencode({"topic": TOPIC, "q": query, "limit": limit})
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def produce(bootstrap: str, records: list[bytes], rate: float | None = None) -> float:
    """Send ``records`` (at ``rate`` records/s when given); return the seconds to flush."""
    with Producer(bootstrap, linger_ms=5) as p:
        started = time.perf_counter()
        for i, value in enumerate(records):
            if rate is not None and i % 500 == 0:
                ahead = started + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
            p.send(TOPIC, value)
        p.flush(300)
        return time.perf_counter() - started


def wait_caught_up(base: str, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if search(base, "", 0)["behind_records"] == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    raise SystemExit(f"the index did not catch up within {timeout_s} s")


def dir_bytes(root: str, inside_search: bool) -> int:
    total = 0
    for d in os.listdir(root):
        if not d.startswith(TOPIC + "-"):
            continue
        for path, _dirs, files in os.walk(os.path.join(root, d)):
            in_index = os.sep + "search" in path[len(root) :]
            if in_index == inside_search:
                total += sum(
                    os.path.getsize(os.path.join(path, f))
                    for f in files
                    if inside_search or f.endswith(".log")
                )
    return total


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_one(
    root: str, indexing: bool, records: list[bytes], args: argparse.Namespace, off_rate: float | None
) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="on-" if indexing else "off-", dir=root)
    broker = BrokerProcess(data_dir, indexing)
    try:
        seconds = produce(broker.bootstrap, records)
        out: dict[str, Any] = {"indexing": indexing, "records": len(records), "produce_s": seconds,
                               "produce_records_per_s": len(records) / seconds}  # fmt: skip
        if not indexing:
            return out
        out["catch_up_after_flush_s"] = wait_caught_up(broker.metrics)
        # Steady load at half the "off" rate, lag sampled twice a second meanwhile.
        rate = (off_rate or out["produce_records_per_s"]) / 2
        steady = [record(random.Random(7), len(records) + i) for i in range(int(rate * args.steady_s))]
        samples: list[tuple[int, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                answer = search(broker.metrics, "", 0)
                samples.append((answer["behind_records"], answer["behind_seconds"]))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        produce(broker.bootstrap, steady, rate)
        done.set()
        sampler.join()
        out["steady_rate_records_per_s"] = rate
        out["steady_lag_records_p50"] = percentile([s[0] for s in samples], 0.5) if samples else None
        out["steady_lag_records_max"] = max((s[0] for s in samples), default=None)
        out["steady_lag_seconds_p50"] = percentile([s[1] for s in samples], 0.5) if samples else None
        out["steady_lag_seconds_max"] = max((s[1] for s in samples), default=None)
        wait_caught_up(broker.metrics)
        total = search(broker.metrics, "", 0)
        rng = random.Random(3)
        latencies = []
        for _ in range(args.queries):
            q = rng.choice(QUERIES)
            t0 = time.perf_counter()
            search(broker.metrics, q, 20)
            latencies.append((time.perf_counter() - t0) * 1000.0)
        out["indexed_records"] = len(records) + len(steady)
        out["query_ms_p50"] = percentile(latencies, 0.5)
        out["query_ms_p99"] = percentile(latencies, 0.99)
        out["lag_after"] = total["lag"]
    finally:
        broker.stop()
    if indexing:
        index_bytes, log_bytes = dir_bytes(data_dir, True), dir_bytes(data_dir, False)
        out["index_bytes"] = index_bytes
        out["log_bytes"] = log_bytes
        out["index_to_log"] = index_bytes / log_bytes if log_bytes else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=200_000, help="records per produce run")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, alternating which goes first")
    parser.add_argument("--steady-s", type=float, default=20.0, help="seconds of steady load (indexing on)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--dir", default=None, help="where the data directories go (default: a temporary one)"
    )
    parser.add_argument("--json", default=None, help="write the results here too")
    args = parser.parse_args()
    rng = random.Random(1)
    records = [record(rng, n) for n in range(args.records)]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="streamcore-search-bench-", dir=args.dir) as root:
        off_rate: float | None = None
        for r in range(args.rounds):
            for indexing in (False, True) if r % 2 == 0 else (True, False):
                res = run_one(root, indexing, records, args, off_rate)
                if not indexing:
                    off_rate = res["produce_records_per_s"]
                res["round"] = r
                res["loadavg"] = os.getloadavg()
                print(json.dumps(res), flush=True)
                runs.append(res)
    off = statistics.median(r["produce_records_per_s"] for r in runs if not r["indexing"])
    on_runs = [r for r in runs if r["indexing"]]
    on = statistics.median(r["produce_records_per_s"] for r in on_runs)
    summary = {
        "records": args.records,
        "python": platform.python_version(),
        "implementation": "reference" if os.environ.get("STREAMCORE_NO_EXTENSIONS") == "1" else "native",
        "cpus": os.cpu_count(),
        "produce_off_records_per_s": off,
        "produce_on_records_per_s": on,
        "on_over_off": on / off,
        "catch_up_after_flush_s": statistics.median(r["catch_up_after_flush_s"] for r in on_runs),
        "steady_lag_records_max": max(r["steady_lag_records_max"] or 0 for r in on_runs),
        "steady_lag_seconds_max": max(r["steady_lag_seconds_max"] or 0 for r in on_runs),
        "query_ms_p50": statistics.median(r["query_ms_p50"] for r in on_runs),
        "query_ms_p99": max(r["query_ms_p99"] for r in on_runs),
        "index_to_log": statistics.median(r["index_to_log"] for r in on_runs),
    }
    print(json.dumps({"summary": summary}, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)


if __name__ == "__main__":
    main()
