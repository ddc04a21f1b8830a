"""Consumer fetching: per-partition state, incremental fetch sessions (KIP-227), prefetch.

A background task keeps one Fetch in flight per leader broker for the partitions
whose buffer is below ``max_poll_records``, so the next records are on their way
while the application processes the current ones. Answers are decoded with
``streamcore.codec.decode_batches`` (one native call per partition) and buffered
as record batches; ``poll`` turns them into records (or numpy columns) on demand.

From Fetch v7 each broker gets a fetch session: the first request lists every
partition, later ones only the partitions whose fetch offset changed, plus the
ones to forget. A session error resets it to a full fetch.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from streamcore.client.types import TopicPartition
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    FetchRequest,
    FetchRequest_FetchPartition,
    FetchRequest_FetchTopic,
    FetchRequest_ForgottenTopic,
)

__all__ = ["PartitionState", "FetchSession", "BACKOFF_BASE_S", "BACKOFF_CAP_S"]

#: Per-partition error backoff: 100 ms doubling to a 30 s cap.
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 30.0

_SESSION_ERRORS = {ErrorCode.FETCH_SESSION_ID_NOT_FOUND.code, ErrorCode.INVALID_FETCH_SESSION_EPOCH.code}


class PartitionState:
    """Where one assigned partition stands: position, fetch offset, buffered batches, backoff."""

    __slots__ = (
        "tp",
        "position",
        "fetch_offset",
        "paused",
        "batches",
        "buffered",
        "epoch",
        "backoff_until",
        "attempts",
        "reset",
        "committed_checked",
        "high_watermark",
        "error",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None  # next offset poll() returns
        self.fetch_offset: int | None = None  # next offset to fetch (ahead of position by the buffer)
        self.paused = False
        self.batches: collections.deque[Any] = collections.deque()
        self.buffered = 0  # records in ``batches`` at or after position
        self.epoch = 0  # bumped by seek: answers to older fetches are dropped
        self.backoff_until = 0.0
        self.attempts = 0
        self.reset: int | None = None  # EARLIEST/LATEST to resolve, or None
        self.committed_checked = False
        self.high_watermark = -1
        self.error: BaseException | None = None  # raised by the next poll()

    def seek(self, offset: int) -> None:
        """Move to ``offset``: drop the buffer and anything in flight."""
        self.position = offset
        self.fetch_offset = offset
        self.batches.clear()
        self.buffered = 0
        self.epoch += 1
        self.reset = None
        self.error = None

    def needs_position(self) -> bool:
        """True until an offset is known (committed, reset or seek)."""
        return self.position is None or self.reset is not None

    def fetchable(self, now: float, max_buffered: int) -> bool:
        """True if a fetch for this partition should be in the next request."""
        return (
            not self.paused
            and self.fetch_offset is not None
            and self.reset is None
            and self.error is None
            and self.buffered < max_buffered
            and self.backoff_until <= now
        )

    def failed(self, now: float) -> None:
        """Back off exponentially after a partition error."""
        self.backoff_until = now + min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** min(self.attempts, 16)))
        self.attempts += 1


class FetchSession:
    """Client side of one broker's incremental fetch session."""

    def __init__(self) -> None:
        self.session_id = 0
        self.epoch = 0
        self.sent: dict[TopicPartition, int] = {}
        self.requests_full = 0
        self.requests_incremental = 0

    def reset(self) -> None:
        """Start over with a full fetch (after a session error or a lost connection)."""
        self.session_id = 0
        self.epoch = 0
        self.sent.clear()

    def build(
        self, wanted: dict[TopicPartition, int], version: int, config: Any
    ) -> tuple[FetchRequest, dict[TopicPartition, int], list[TopicPartition]]:
        """The request for ``wanted`` (partition -> fetch offset).

        Returns (request, partitions included, partitions forgotten).
        """
        incremental = version >= 7 and self.session_id != 0
        if incremental:
            include = {tp: off for tp, off in wanted.items() if self.sent.get(tp) != off}
            forgotten = [tp for tp in self.sent if tp not in wanted]
            self.requests_incremental += 1
        else:
            include = dict(wanted)
            forgotten = []
            self.requests_full += 1
        by_topic: dict[str, list[FetchRequest_FetchPartition]] = collections.defaultdict(list)
        pmax = config.max_partition_fetch_bytes
        for tp, off in include.items():
            by_topic[tp.topic].append(
                FetchRequest_FetchPartition(
                    partition=tp.partition,
                    current_leader_epoch=-1,
                    fetch_offset=off,
                    last_fetched_epoch=-1,
                    log_start_offset=-1,
                    partition_max_bytes=pmax,
                )
            )
        forgot: dict[str, list[int]] = collections.defaultdict(list)
        for tp in forgotten:
            forgot[tp.topic].append(tp.partition)
        req = FetchRequest(
            replica_id=-1,
            max_wait_ms=config.fetch_max_wait_ms,
            min_bytes=config.fetch_min_bytes,
            max_bytes=config.fetch_max_bytes,
            isolation_level=1 if config.isolation_level == "read_committed" else 0,
            session_id=self.session_id if version >= 7 else 0,
            session_epoch=(self.epoch if incremental else 0) if version >= 7 else -1,
            topics=[FetchRequest_FetchTopic(topic=t, partitions=ps) for t, ps in by_topic.items()],
            forgotten_topics_data=[
                FetchRequest_ForgottenTopic(topic=t, partitions=ps) for t, ps in forgot.items()
            ],
            rack_id="",
        )
        return req, include, forgotten

    def answered(
        self, resp: Any, version: int, include: dict[TopicPartition, int], forgotten: list[TopicPartition]
    ) -> None:
        """Advance the session after a successful answer."""
        if version < 7:
            return
        if self.session_id == 0:
            self.session_id = resp.session_id
            self.sent = dict(include) if resp.session_id else {}
            self.epoch = 1
        else:
            for tp in forgotten:
                self.sent.pop(tp, None)
            self.sent.update(include)
            self.epoch = self.epoch + 1 if self.epoch < 0x7FFFFFFF else 1

    def forget(self, tp: TopicPartition) -> None:
        """Make the next request carry ``tp`` again (after a partition error)."""
        self.sent.pop(tp, None)


def is_session_error(code: int) -> bool:
    """True for the top-level errors that mean "start a new session"."""
    return code in _SESSION_ERRORS


def now() -> float:
    """Monotonic seconds (one place, so tests could replace it)."""
    return time.monotonic()
