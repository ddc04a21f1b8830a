"""KIP-227 incremental fetch sessions.

A consumer that fetches many partitions can open a session (Fetch v7+): the
broker remembers the partitions and their fetch positions, the client then
sends only what changed, and the broker answers only partitions with something
new. Per request, :meth:`FetchSessionCache.new_context` turns the request's
(session id, session epoch, partitions, forgotten partitions) into a
:class:`FetchContext` that says which partitions to read and, per partition,
whether it belongs in the response.

Request kinds (``session_epoch``):

* ``-1`` (FINAL): a full fetch without a session; a non-zero ``session_id`` is closed.
* ``0`` (INITIAL): a full fetch that opens a new session (a non-zero
  ``session_id`` is closed first). When the cache is full and nothing can be
  evicted the fetch is served without a session (response session id 0).
* ``> 0``: incremental; the session must exist (else FETCH_SESSION_ID_NOT_FOUND,
  70) and the epoch must be the one expected next (else
  INVALID_FETCH_SESSION_EPOCH, 71). Listed partitions are added or updated,
  forgotten ones removed. A session opened with topic ids (Fetch v13+) must
  keep using them and vice versa (FETCH_SESSION_TOPIC_ID_ERROR, 106).

Eviction when the cache holds ``max_slots`` sessions: first the least recently
used session if it has been idle for ``eviction_ms``; otherwise the session with
the fewest partitions (least recently used among equals), but only when the new
session has more partitions than it -- so a few large consumers are not pushed
out by many small ones. This follows Kafka's FetchSessionCache (without its
follower privilege, as there are no followers here).

An incremental response includes a partition when it returns records or an
error, or when its high watermark, last stable offset or log start offset
changed since the session last reported it. Included partitions move to the end
of the session's order, so partitions share ``max_bytes`` fairly over time.

Partition keys are whatever the handler uses to name a partition --
``(topic_name, partition)`` before Fetch v13, ``(topic_id, partition)`` after.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from streamcore.errors import ErrorCode

__all__ = [
    "FetchPartition",
    "FetchContext",
    "FetchSession",
    "FetchSessionCache",
    "FINAL_EPOCH",
    "INITIAL_EPOCH",
]

FINAL_EPOCH = -1
INITIAL_EPOCH = 0
_INT32_MAX = 2**31 - 1

_NONE = ErrorCode.NO_ERROR.code


@dataclass
class FetchPartition:
    """What the client asked of one partition (offsets in records, sizes in bytes)."""

    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1
    last_fetched_epoch: int = -1


@dataclass
class _Cached:
    request: FetchPartition
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1


@dataclass
class FetchSession:
    """One cached session: its id, the epoch expected next and its partitions (in serving order)."""

    session_id: int
    next_epoch: int
    uses_topic_ids: bool
    created_ms: int
    last_used_ms: int
    partitions: OrderedDict[Hashable, _Cached] = field(default_factory=OrderedDict)


def _next_epoch(epoch: int) -> int:
    return 1 if epoch >= _INT32_MAX else epoch + 1


class FetchContext:
    """How to serve one Fetch request.

    ``error_code`` != 0: answer just that top-level error (no partitions).
    Otherwise read the partitions from :meth:`partitions` and, for each, call
    :meth:`should_include` with what was read; put it in the response when it
    returns True. ``session_id`` goes in the response.
    """

    def __init__(
        self,
        *,
        error_code: int = _NONE,
        session_id: int = 0,
        incremental: bool = False,
        session: FetchSession | None = None,
        partitions: Sequence[tuple[Hashable, FetchPartition]] = (),
    ) -> None:
        self.error_code = error_code
        self.session_id = session_id
        self.incremental = incremental
        self._session = session
        self._partitions = list(partitions)

    def partitions(self) -> list[tuple[Hashable, FetchPartition]]:
        """(key, request) pairs to read, in the order to serve them."""
        if self._session is not None:
            return [(k, c.request) for k, c in self._session.partitions.items()]
        return list(self._partitions)

    def should_include(
        self,
        key: Hashable,
        *,
        error_code: int = _NONE,
        high_watermark: int,
        last_stable_offset: int = -1,
        log_start_offset: int = -1,
        has_records: bool = False,
    ) -> bool:
        """Whether partition ``key`` belongs in the response; remembers what was reported.

        Full fetches include every partition; incremental ones only those with
        records, an error, or a changed high watermark / last stable / log start offset.
        """
        session = self._session
        cached = session.partitions.get(key) if session is not None else None
        if cached is None:
            return not self.incremental
        changed = (
            cached.high_watermark != high_watermark
            or (last_stable_offset >= 0 and cached.last_stable_offset != last_stable_offset)
            or cached.log_start_offset != log_start_offset
        )
        cached.high_watermark = high_watermark
        cached.last_stable_offset = last_stable_offset
        cached.log_start_offset = log_start_offset
        if not self.incremental:
            return True
        include = changed or has_records or error_code != _NONE
        if include:
            assert session is not None
            session.partitions.move_to_end(key)
        return include


class FetchSessionCache:
    """At most ``max_slots`` fetch sessions; see the module doc for eviction.

    ``eviction_ms``: a session idle this long may be evicted by any new one.
    ``clock_ms``: monotonic milliseconds (tests pass their own).
    """

    def __init__(
        self,
        max_slots: int = 1000,
        eviction_ms: int = 120_000,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.max_slots = max_slots
        self.eviction_ms = eviction_ms
        self._clock = clock_ms or (lambda: int(time.monotonic() * 1000))
        self._sessions: dict[int, FetchSession] = {}
        self._rng = random.Random()
        #: Sessions evicted to make room (count).
        self.evictions = 0
        #: Full fetches served without a session because nothing could be evicted (count).
        self.sessionless_fallbacks = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        """The cached session with this id, or None."""
        return self._sessions.get(session_id)

    def remove(self, session_id: int) -> bool:
        """Drop a session; True if it existed."""
        return self._sessions.pop(session_id, None) is not None

    def forget_partitions(self, predicate: Callable[[Hashable], bool]) -> None:
        """Remove matching partitions from every session (e.g. a deleted topic's)."""
        for session in self._sessions.values():
            for key in [k for k in session.partitions if predicate(k)]:
                del session.partitions[key]

    def new_context(
        self,
        session_id: int,
        session_epoch: int,
        partitions: Sequence[tuple[Hashable, FetchPartition]],
        forgotten: Iterable[Hashable] = (),
        *,
        uses_topic_ids: bool = False,
    ) -> FetchContext:
        """Interpret one Fetch request's session fields; see the module doc."""
        now = self._clock()
        if session_epoch in (FINAL_EPOCH, INITIAL_EPOCH):
            if session_id != 0:
                self._sessions.pop(session_id, None)
            if session_epoch == FINAL_EPOCH:
                return FetchContext(partitions=partitions)
            session = self._create(partitions, uses_topic_ids, now)
            if session is None:
                return FetchContext(partitions=partitions)
            return FetchContext(session_id=session.session_id, session=session)

        session = self._sessions.get(session_id)
        if session is None:
            return FetchContext(error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND.code)
        if session.next_epoch != session_epoch:
            return FetchContext(error_code=ErrorCode.INVALID_FETCH_SESSION_EPOCH.code)
        if session.uses_topic_ids != uses_topic_ids:
            return FetchContext(error_code=ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR.code)
        for key, request in partitions:
            cached = session.partitions.get(key)
            if cached is None:
                session.partitions[key] = _Cached(request)
            else:
                cached.request = request
        for key in forgotten:
            session.partitions.pop(key, None)
        session.next_epoch = _next_epoch(session_epoch)
        session.last_used_ms = now
        return FetchContext(session_id=session.session_id, incremental=True, session=session)

    def _create(
        self, partitions: Sequence[tuple[Hashable, FetchPartition]], uses_topic_ids: bool, now: int
    ) -> FetchSession | None:
        if self.max_slots <= 0:
            self.sessionless_fallbacks += 1
            return None
        size = len(partitions)
        if len(self._sessions) >= self.max_slots and not self._evict_for(size, now):
            self.sessionless_fallbacks += 1
            return None
        session_id = 0
        while session_id == 0 or session_id in self._sessions:
            session_id = self._rng.randint(1, _INT32_MAX)
        session = FetchSession(session_id, 1, uses_topic_ids, now, now)
        for key, request in partitions:
            session.partitions[key] = _Cached(request)
        self._sessions[session_id] = session
        return session

    def _evict_for(self, new_size: int, now: int) -> bool:
        lru = min(self._sessions.values(), key=lambda s: s.last_used_ms)
        if lru.last_used_ms <= now - self.eviction_ms:
            victim = lru
        else:
            victim = min(self._sessions.values(), key=lambda s: (len(s.partitions), s.last_used_ms))
            if new_size <= len(victim.partitions):
                return False
        del self._sessions[victim.session_id]
        self.evictions += 1
        return True
