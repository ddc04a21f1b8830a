"""Shared helpers for the client tests (bounded loops only)."""

from __future__ import annotations

import time
from typing import Any

from streamcore.client.types import ConsumerRecord, TopicPartition


async def consume_n(consumer: Any, n: int, timeout_s: float = 20.0) -> list[ConsumerRecord]:
    """Poll an asyncio consumer until ``n`` records arrived or ``timeout_s`` passed."""
    out: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += await consumer.poll(timeout_ms=200)
    return out


def by_partition(records: list[ConsumerRecord]) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Records grouped per partition, in the order received."""
    out: dict[TopicPartition, list[ConsumerRecord]] = {}
    for r in records:
        out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
    return out
