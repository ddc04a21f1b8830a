"""A broker state with a transaction coordinator attached, for the transaction tests.

Until the broker wires ``state.transactions`` itself, :func:`attach` does what
``BrokerState.open`` will: the ``__transaction_state`` log (here a Log of its own in
the data directory), the per-partition state, the marker appender, the coordinator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamcore.broker.config import load_config
from streamcore.broker.state import BrokerState
from streamcore.broker.transactions import (
    TransactionalPartitions,
    TransactionCoordinator,
    TransactionSettings,
    make_marker_appender,
)
from streamcore.codec import decode_batches, encode_batch, validate_batch
from streamcore.storage import Log


class Clock:
    """A wall clock tests move by hand (ms)."""

    def __init__(self, now: int = 1_700_000_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def open_state(data_dir: Path, **cli: object) -> BrokerState:
    cfg = load_config(
        None,
        env={"STREAMCORE_STORAGE_FSYNC": "never"},
        cli={"data_dir": str(data_dir), "listeners.host": "127.0.0.1", "listeners.port": 0, **cli},
    )
    state = BrokerState(cfg)
    state.open()
    return state


def attach(
    state: BrokerState,
    *,
    clock: Callable[[], int] | None = None,
    settings: TransactionSettings | None = None,
    append_marker: Any = None,
) -> TransactionCoordinator:
    """Give ``state`` a loaded coordinator as ``state.transactions`` (returned)."""
    state_log = Log(Path(state.config.data_dir) / "__transaction_state-0", fsync="never", lock=False)
    coordinator = TransactionCoordinator(
        state_log,
        producer_ids=state.producer_ids,
        partitions=TransactionalPartitions(state.topics.log),
        append_marker=append_marker or make_marker_appender(state.topics),
        offsets=state.offsets,
        on_partition_change=state.delayed.notify,
        settings=settings,
        clock=clock,
    )
    coordinator.load()
    state.transactions = coordinator  # type: ignore[attr-defined]
    return coordinator


def close(state: BrokerState) -> None:
    coordinator = getattr(state, "transactions", None)
    if coordinator is not None:
        coordinator.close()
        coordinator._log.close()
    state.close()


def txn_batch(
    producer_id: int, epoch: int, seq: int, values: list[bytes], *, transactional: bool = True
) -> bytes:
    return encode_batch(
        values,
        keys=[b"k"] * len(values),
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=seq,
        transactional=transactional,
    )


async def produce(
    state: BrokerState,
    topic: str,
    partition: int,
    batch: bytes,
    *,
    transactional_id: str | None = None,
    api_version: int = 12,
) -> int:
    """Append ``batch`` the way the Produce handler will; returns its base offset."""
    log = state.topics.log(topic, partition)
    info = validate_batch(batch)
    if info.producer_id >= 0:
        fut = state.transactions.append(  # type: ignore[attr-defined]
            topic,
            partition,
            log,
            batch,
            info,
            transactional_id=transactional_id,
            api_version=api_version,
            appender=state.appender,
        )
    else:
        fut = state.appender.append(topic, partition, log, batch, info)
    return (await fut).base_offset


def batches(log: Any, from_offset: int = 0) -> list[Any]:
    """Every batch of ``log`` from ``from_offset``, decoded."""
    out: list[Any] = []
    position = from_offset
    while position < log.high_watermark:
        got = decode_batches(log.read(position, 1 << 20))
        out.extend(got)
        position = got[-1].last_offset + 1
    return out


def run(coro: Any) -> Any:
    return asyncio.run(coro)


#: Bound on a wait for the coordinator's own tasks (markers, Complete* records): they
#: append through the WAL's writer thread, which a loaded runner can hold back for
#: seconds. A poll, so a passing test waits only as long as the work takes.
PATIENCE_S = 30.0


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition()`` holds; fails after PATIENCE_S."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {PATIENCE_S} s: {what}"
        await asyncio.sleep(0.01)
