"""The new-group join workload (see the package doc)."""

from __future__ import annotations

import statistics
from typing import Any

from streamcore.bench.broker import create_topic, new_name, run_consume, run_produce
from streamcore.bench.peers.workloads.common import (
    Settings,
    Target,
)


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
