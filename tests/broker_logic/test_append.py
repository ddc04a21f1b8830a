"""``broker.append.Appender``: the one step from a validated batch to a partition log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamcore.broker.append import Appender
from streamcore.broker.delayed_fetch import DelayedFetch
from streamcore.broker.producer_state import ProducerStateManager
from streamcore.codec import encode_batch, validate_batch
from streamcore.errors import ErrorCode, KafkaError, LogOfflineError, StorageError
from streamcore.storage import AppendResult, Log

P = ("t", 0)


class _Fetches(DelayedFetch):
    def __init__(self) -> None:
        super().__init__()
        self.notified: list[tuple[str, int]] = []

    def notify(self, topic: str, partition: int) -> None:
        self.notified.append((topic, partition))
        super().notify(topic, partition)


@pytest.fixture
def log(tmp_path):
    with Log(tmp_path / "t-0", fsync="always") as plog:
        yield plog


def _idempotent(seq: int, n: int = 2, pid: int = 7, epoch: int = 0) -> bytes:
    return encode_batch(
        [b"r%d" % i for i in range(n)], producer_id=pid, producer_epoch=epoch, base_sequence=seq
    )


def _append(appender: Appender, log: Log, batch: bytes) -> asyncio.Future[AppendResult]:
    return appender.append(*P, log, batch, validate_batch(batch))


def test_a_plain_batch_lands_and_wakes_waiting_fetches(log):
    fetches = _Fetches()
    appender = Appender(ProducerStateManager(), fetches)

    async def main() -> AppendResult:
        return await _append(appender, log, encode_batch([b"a", b"b"]))

    result = asyncio.run(main())
    assert type(result) is AppendResult
    assert (result.base_offset, result.last_offset) == (0, 1)
    assert fetches.notified == [P]


def test_a_retried_idempotent_batch_is_answered_with_its_first_offsets(log):
    producers = ProducerStateManager()
    appender = Appender(producers, _Fetches())

    async def main() -> tuple[AppendResult, AppendResult]:
        first = await _append(appender, log, _idempotent(0))
        again = await _append(appender, log, _idempotent(0))
        return first, again

    first, again = asyncio.run(main())
    assert (again.base_offset, again.last_offset) == (first.base_offset, first.last_offset) == (0, 1)
    assert log.high_watermark == 2  # written once
    assert producers.last_sequence(P, 7) == 1


def test_a_sequence_gap_is_refused_before_anything_is_queued(log):
    appender = Appender(ProducerStateManager(), _Fetches())

    async def main() -> None:
        await _append(appender, log, _idempotent(0))
        with pytest.raises(KafkaError) as info:
            _append(appender, log, _idempotent(5))
        assert info.value.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER

    asyncio.run(main())
    assert log.high_watermark == 2


def test_a_client_hanging_up_mid_append_still_leaves_the_batch_deduplicated(log):
    producers = ProducerStateManager()
    appender = Appender(producers, _Fetches())

    async def main() -> AppendResult:
        async def handler() -> AppendResult:
            return await _append(appender, log, _idempotent(0))

        task = asyncio.ensure_future(handler())
        await asyncio.sleep(0)  # the append is queued
        task.cancel()  # what a connection loss does to its request's task
        with pytest.raises(asyncio.CancelledError):
            await task
        # A later append completing means the abandoned one was written before it.
        await _append(appender, log, encode_batch([b"later"]))
        await asyncio.sleep(0)  # done-callbacks run one loop turn after the future settles
        # The sequence record completed with the write: the client's retry is a duplicate.
        return await _append(appender, log, _idempotent(0))

    retry = asyncio.run(main())
    assert (retry.base_offset, retry.last_offset) == (0, 1)
    assert log.high_watermark == 3


class _FailingLog:
    """A log whose appends are queued, then settled by the test as the WAL settles them:
    the ``on_written`` hook first, then the future."""

    def __init__(self) -> None:
        self.queued: list[tuple[asyncio.Future[AppendResult], Any]] = []
        self.lent: list[bool] = []

    def append_async(
        self, batch: bytes, *, lend: bool = False, on_written: Any = None
    ) -> asyncio.Future[AppendResult]:
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self.queued.append((fut, on_written))
        self.lent.append(lend)
        return fut

    def fail(self, index: int, exc: BaseException) -> None:
        fut, on_written = self.queued[index]
        if on_written is not None:
            on_written(None, exc)
        fut.set_exception(exc)

    def succeed(self, index: int, result: AppendResult) -> None:
        fut, on_written = self.queued[index]
        if on_written is not None:
            on_written(result, None)
        fut.set_result(result)


def test_a_failed_write_withdraws_its_sequence_so_the_retry_is_accepted():
    producers = ProducerStateManager()
    appender = Appender(producers, _Fetches())
    failing = _FailingLog()

    async def main() -> None:
        fut = _append(appender, failing, _idempotent(0))  # type: ignore[arg-type]
        failing.fail(0, LogOfflineError("write failed"))
        with pytest.raises(LogOfflineError):
            await fut
        assert producers.last_sequence(P, 7) is None
        # The retry is a new batch, not an in-flight duplicate.
        _append(appender, failing, _idempotent(0))  # type: ignore[arg-type]
        assert len(failing.queued) == 2
        failing.succeed(1, AppendResult(0, 1, -1))
        await asyncio.sleep(0)
        assert producers.last_sequence(P, 7) == 1
        # Produce record sets are lent to the WAL (the request frame is never written).
        assert failing.lent == [True, True]

    asyncio.run(main())


def test_an_append_the_log_refuses_at_once_withdraws_its_sequence(tmp_path):
    producers = ProducerStateManager()
    appender = Appender(producers, _Fetches())
    plog = Log(tmp_path / "t-0", fsync="always")
    plog.close()

    async def main() -> None:
        with pytest.raises(StorageError):
            _append(appender, plog, _idempotent(0))

    asyncio.run(main())
    assert producers.last_sequence(P, 7) is None
