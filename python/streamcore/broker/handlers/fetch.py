"""Fetch (1): read record batches, long-polling until min_bytes or max_wait.

Advertised v4-v12. v4 is the first version whose records are message format v2 and
carries last_stable_offset (reported whatever the isolation level: the offset of the
first open transaction's first batch, else the high watermark) and aborted
transactions: with isolation_level read_committed (1) a partition answers only whole
batches starting below its last stable offset, with the aborted transactions among
them (producer id, first offset) so that the consumer drops their batches; v5 log
start offsets; v7 incremental fetch sessions
(KIP-227); v11 rack ids / preferred read replica (always -1: one broker); v12 is
flexible. v13 would name topics by id.

Limits, as Kafka applies them: each partition gets at most partition_max_bytes and
the response at most max_bytes (itself at most the broker's ``limits.fetch_max_bytes``,
Kafka's fetch.max.bytes), except that the first batch of the first partition
with data is returned whole even when it is larger (KIP-74), so a consumer can
always make progress.

With a consumer byte-rate quota (``streamcore.broker.quotas``), max_bytes is also capped
at what the quota allows over its measuring span, and a fetch whose record bytes would
bring the client over its quota is answered without any partition (the bytes are not
counted; an incremental session stays where it was) with the throttle time in
throttle_time_ms, as Kafka's throttled response; the server mutes the connection for it.

With an authorizer, a partition of a topic the sender may not READ (a replica's fetch:
without CLUSTER_ACTION on the cluster) answers TOPIC_AUTHORIZATION_FAILED and is not
read; the other partitions are served, long poll included, as in Kafka.

Reading (docs/broker.md, "The fetch path"): the partitions' reads run on a small pool of
threads, one fetch's partitions in order on one thread, so the event loop never waits for
the disk. One exception keeps a hot fetch off the pool: a partition served by sendfile
needs only its batch headers read, and those are read on the loop with
``RWF_NOWAIT`` (``os.preadv``), which the kernel answers only from the page cache; the
first header that is not cached sends that partition and the ones after it to the pool.
The hop to a thread costs more than such a fetch (measured: about a fifth of the broker's
consume CPU with 100-byte records). A
record set leaves the frame the encoder builds (``headers.OutOfLine``) and goes to the
socket on its own: on a connection without TLS, for batches this process has checked
(read_committed: those below the last stable offset), as open segment-file ranges
that the server sends with ``os.sendfile`` (``FileRecords``; no user-space copy);
otherwise as the one buffer ``Log.read`` filled (``BufferRecords``), after checking its
batches (framing, CRC32C, offsets) so that damage is answered with an error rather than
passed on; on a connection without TLS, batches that such a read has just checked go by
sendfile too (the buffer is dropped), when the file ranges hold exactly them. A long
poll woken by an append reads again only the partitions whose high watermark, log start
or last stable offset moved. The record sets, and the record of
which batches this process has checked, live in ``broker/fetch_records.py``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.fetch_records import (
    BufferRecords,
    FileRecords,
    WouldBlock,
    note_checked,
    open_files,
    trusted,
)
from streamcore.broker.fetch_sessions import FetchContext, FetchPartition
from streamcore.broker.quotas import FETCH, user_of
from streamcore.broker.state import current_listener
from streamcore.broker.topics import TopicError
from streamcore.broker.transactions import committed_prefix
from streamcore.errors import ErrorCode, OffsetOutOfRangeError, StorageError
from streamcore.protocol.headers import OutOfLine
from streamcore.protocol.messages import (
    FetchRequest,
    FetchResponse,
    FetchResponse_AbortedTransaction,
    FetchResponse_FetchableTopicResponse,
    FetchResponse_PartitionData,
)

if TYPE_CHECKING:
    from streamcore.broker.context import RequestContext
    from streamcore.broker.state import BrokerState

__all__ = ["API_KEY", "REQUEST", "BufferRecords", "FileRecords", "handle"]

API_KEY = 1
REQUEST = FetchRequest

_OUT_OF_RANGE = ErrorCode.OFFSET_OUT_OF_RANGE.code
_CORRUPT = ErrorCode.CORRUPT_MESSAGE.code
_STORAGE = ErrorCode.KAFKA_STORAGE_ERROR.code
_UNKNOWN = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
_READ = int(AclOperation.READ)
_TOPIC = int(ResourceType.TOPIC)

# Threads that read for fetches: reads of one fetch run in order on one of them, so a
# few cover a 2-core machine; more would only add contention on the disk.
_READ_THREADS = 4
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _read_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_READ_THREADS, thread_name_prefix="streamcore-fetch")
        return _pool


def handle(
    state: BrokerState, ctx: RequestContext, request: FetchRequest
) -> FetchResponse | Awaitable[FetchResponse]:
    """The response, at once when the first read answers it, else an awaitable of it."""
    return _fetch(state, ctx, request)


class _Job:
    """One partition to read: what the loop decided, what the read thread found."""

    __slots__ = (
        "committed_lso",
        "error",
        "files",
        "index",
        "key",
        "offset",
        "partition_max_bytes",
        "plog",
        "records",
        "reported",
        "signature",
        "upper",
    )

    def __init__(
        self,
        index: int,
        key: tuple[str, int],
        plog: Any,
        offset: int,
        partition_max_bytes: int,
        committed_lso: int | None,
        files: bool,
        signature: tuple[int, int, int],
    ) -> None:
        self.index = index
        self.key = key
        self.plog = plog
        self.offset = offset
        self.partition_max_bytes = partition_max_bytes
        #: read_committed: the last stable offset to stop at; None: read_uncommitted.
        self.committed_lso = committed_lso
        self.files = files
        #: (high watermark, log start, last stable offset) when the job was made.
        self.signature = signature
        self.records: OutOfLine | None = None
        self.error = 0
        #: read_committed: the offset after the last batch kept (for the aborted list).
        self.upper = -1
        self.reported = False


def _read_one(logs: Any, job: _Job, limit: int) -> None:
    """Read ``job``'s partition with at most ``limit`` bytes (KIP-74: at least one batch)."""
    plog, offset = job.plog, job.offset
    want = max(limit, 1)
    try:
        if job.files and trusted(plog, offset):
            files = open_files(plog, offset, want, stop_before=job.committed_lso)
            if files is not None:
                job.records = files
                if job.committed_lso is not None:
                    job.upper = files.end_offset
                return
        data = plog.read(offset, want)
    except OffsetOutOfRangeError:
        job.error = _OUT_OF_RANGE
        return
    except (StorageError, OSError) as exc:
        job.error = _STORAGE
        # A log that went offline or was replaced meanwhile is not damage; anything
        # else (an I/O error reading a segment) is reported once and counted.
        if not plog.is_offline and logs.get(job.key) is plog:
            logs.report_read_failure(job.key, offset, exc)
        return
    # Damage is never passed on: a consumer would fail on it with a less useful error.
    damage = logs.check_read(job.key, plog, offset, want, data)
    if damage is not None:
        job.error = _STORAGE if damage.missing else _CORRUPT
        return
    end = note_checked(plog, data)
    if job.committed_lso is not None:
        # Only whole batches below the LSO, and the aborted transactions among them
        # (the consumer drops their batches).
        data, job.upper = committed_prefix(data, job.committed_lso)
        end = job.upper
    if job.files and len(data):
        # Checked now, so the same batches may go by sendfile: sending this buffer
        # would copy it into the socket, which was a third of the loop thread's time on
        # the first read of a log after a restart.
        files = _checked_as_files(plog, offset, want, job.committed_lso, len(data), end)
        if files is not None:
            job.records = files
            return
    job.records = BufferRecords(data)


def _checked_as_files(
    plog: Any, offset: int, want: int, stop_before: int | None, length: int, end: int
) -> FileRecords | None:
    """The ``length`` bytes of batches from ``offset`` up to ``end`` that a copying read
    just checked, as open file ranges; None unless the ranges hold exactly those (same
    byte count, same end offset: not after a compaction swap or a truncation in between)."""
    try:
        files = open_files(plog, offset, want, stop_before=stop_before)
    except (OffsetOutOfRangeError, StorageError, OSError):
        return None
    if files is None:
        return None
    if len(files) == length and files.end_offset == end:
        return files
    files.close()
    return None


def _read_jobs(
    logs: Any,
    jobs: list[_Job],
    max_bytes: int,
    previous: dict[int, _Job],
    total: int = 0,
    on_loop: bool = False,
) -> tuple[int, int]:
    """Read ``jobs`` in order within ``max_bytes``, ``total`` bytes being taken already.

    Returns (the bytes of records read in all, how many of ``jobs`` were done). A job
    whose partition has the same signature as in ``previous`` (the last round of a long
    poll) takes that round's result instead of reading again. Runs on a read thread and
    does every job; touches only the logs and the log manager's thread-safe reporting.
    ``on_loop``: runs on the event loop and stops at the first job that would need more
    than page-cached batch headers (a copying read, or a header not cached), which the
    caller hands with the rest to a read thread.
    """
    for done, job in enumerate(jobs):
        limit = min(job.partition_max_bytes, max_bytes - total)
        if limit <= 0 and total > 0:
            continue
        before = previous.get(job.index)
        if (
            before is not None
            and before.signature == job.signature
            and before.offset == job.offset
            and not before.error
            and before.records is not None
            and len(before.records) <= max(limit, 1)
        ):
            job.records, job.upper = before.records, before.upper
            before.records = None  # now the new job's (not closed with the old round)
        elif on_loop:
            if not (job.files and trusted(job.plog, job.offset)):
                return total, done
            try:
                files = open_files(job.plog, job.offset, max(limit, 1), True, job.committed_lso)
            except (WouldBlock, OffsetOutOfRangeError, StorageError, OSError):
                return total, done  # not cached, or an error the copying read reports
            if files is None:
                return total, done  # the copying read says why
            job.records = files
            if job.committed_lso is not None:
                job.upper = files.end_offset
        else:
            _read_one(logs, job, limit)
        records = job.records
        if records is None:
            continue
        if total > 0 and len(records) > limit:
            # Only the response's first batch may exceed the limits (KIP-74).
            records.close()
            job.records = None
            continue
        total += len(records)
    return total, len(jobs)


def _close_jobs(jobs: list[_Job]) -> None:
    for job in jobs:
        if job.records is not None:
            job.records.close()
            job.records = None


class _Round:
    """One read of every wanted partition: the partition data of the response (in the
    order wanted), the jobs, and how far the reading got."""

    __slots__ = ("data", "done", "error", "jobs", "previous", "total")

    def __init__(
        self,
        data: list[FetchResponse_PartitionData],
        jobs: list[_Job],
        error: bool,
        previous: dict[int, _Job],
    ) -> None:
        self.data = data
        self.jobs = jobs
        #: Whether any partition had an error (unknown, offline, or a failed read).
        self.error = error
        #: The jobs of the round before (a long poll's), whose unchanged results move here.
        self.previous = previous
        #: Bytes of records read so far, and how many of ``jobs`` are done.
        self.total = 0
        self.done = 0


def _start_round(
    state: BrokerState,
    wanted: list[tuple[tuple[str, int], FetchPartition]],
    max_bytes: int,
    denied: set[str] | None,
    read_committed: bool,
    files: bool,
    previous: dict[int, _Job] | None,
) -> _Round:
    """Decide what to read of every wanted partition, and read on the loop what can be.

    Partitions of the ``denied`` topics get TOPIC_AUTHORIZATION_FAILED without being read;
    ``read_committed`` stops each partition at its last stable offset; ``files``: record
    sets may be FileRecords (the connection can sendfile); ``previous``: the jobs of the
    last round, whose unchanged partitions are not read again. One fetch's partitions
    are read in order, each within what the earlier ones left of ``max_bytes``: here on
    the loop while only cached headers are needed; the rest (``done`` < the number of
    jobs) by :func:`_read_rest` on a read thread. :func:`_end_round` completes the data.
    """
    out: list[FetchResponse_PartitionData] = []
    error = False
    tm = state.topics
    transactions = state.transactions
    jobs: list[_Job] = []
    for index, ((topic, partition), req) in enumerate(wanted):
        pd = FetchResponse_PartitionData(partition_index=partition, records=b"")
        out.append(pd)
        if denied and topic in denied:
            # Not an error of the read: the allowed partitions still long-poll, as in Kafka.
            pd.error_code = _DENIED
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            continue
        try:
            plog = tm.log(topic, partition)
        except TopicError as exc:
            pd.error_code = exc.error_code
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            error = True
            continue
        if plog.is_offline:
            # Kafka answers an offline log's partitions with the storage error, data or not.
            pd.error_code = _STORAGE
            pd.high_watermark = pd.last_stable_offset = pd.log_start_offset = -1
            error = True
            continue
        hw = plog.high_watermark
        # Kafka reports the last stable offset whatever the isolation level.
        lso = transactions.lso_of_log(topic, partition, plog, hw)
        pd.high_watermark, pd.last_stable_offset = hw, lso
        pd.log_start_offset = start = plog.log_start_offset
        offset = req.fetch_offset
        if offset == hw:
            continue
        if read_committed and lso <= offset < hw:
            continue  # nothing stable to read yet: the fetch waits for a marker
        jobs.append(
            _Job(
                index,
                (topic, partition),
                plog,
                offset,
                req.partition_max_bytes,
                lso if read_committed else None,
                files,
                (hw, start, lso),
            )
        )
    rnd = _Round(out, jobs, error, previous or {})
    if jobs:
        rnd.total, rnd.done = _read_jobs(tm.logs, jobs, max_bytes, rnd.previous, 0, True)
    return rnd


async def _read_rest(state: BrokerState, rnd: _Round, max_bytes: int) -> None:
    """Read the jobs of ``rnd`` the loop left on a read thread. Cancelled (the client went
    away), the read thread still finishes; the files of its jobs are closed when they
    are collected."""
    loop = asyncio.get_running_loop()
    read = functools.partial(
        _read_jobs, state.topics.logs, rnd.jobs[rnd.done :], max_bytes, rnd.previous, rnd.total
    )
    rnd.total, _ = await loop.run_in_executor(_read_pool(), read)
    rnd.done = len(rnd.jobs)


def _end_round(state: BrokerState, rnd: _Round) -> dict[int, _Job]:
    """Put what the jobs of ``rnd`` read into its partition data; close what the round
    before held and this one did not take. Returns this round's jobs by index."""
    for old in rnd.previous.values():
        if old.records is not None:
            old.records.close()
            old.records = None
    out = rnd.data
    transactions = state.transactions
    for job in rnd.jobs:
        pd = out[job.index]
        if job.error:
            pd.error_code = job.error
            rnd.error = True
            continue
        if job.records is None:
            continue
        if job.committed_lso is not None:
            topic, partition = job.key
            pd.aborted_transactions = [
                FetchResponse_AbortedTransaction(producer_id=pid, first_offset=first)
                for pid, first in transactions.aborted_transactions(topic, partition, job.offset, job.upper)
            ]
        pd.records = job.records
    return {job.index: job for job in rnd.jobs}


async def _read(
    state: BrokerState,
    wanted: list[tuple[tuple[str, int], FetchPartition]],
    max_bytes: int,
    denied: set[str] | None = None,
    read_committed: bool = False,
    files: bool = False,
    previous: dict[int, _Job] | None = None,
) -> tuple[list[FetchResponse_PartitionData], int, bool, dict[int, _Job]]:
    """Read every wanted partition once (see :func:`_start_round`). Returns (partition
    data in the order wanted, bytes of records, whether any partition read had an error,
    this round's jobs by index)."""
    rnd = _start_round(state, wanted, max_bytes, denied, read_committed, files, previous)
    if rnd.done < len(rnd.jobs):
        await _read_rest(state, rnd, max_bytes)
    jobs = _end_round(state, rnd)
    return rnd.data, rnd.total, rnd.error, jobs


def _count_fetched(state: BrokerState, topic: str, records: object) -> None:
    metrics = state.metrics
    kind = type(records)
    if kind is BufferRecords:
        metrics.fetched(topic, cast("BufferRecords", records).data)
    elif kind is FileRecords:
        records = cast("FileRecords", records)
        # The bytes are never in memory; the record count came from the batch headers.
        cells: Any = metrics._fetched.get(topic)
        if cells is None:
            metrics.fetched(topic, b"")
            cells = metrics._fetched[topic]
        cells[0].inc(len(records))
        cells[1].inc(records.records)
    else:
        metrics.fetched(topic, cast("bytes", records))


def _sendfile_capable() -> tuple[bool, bool]:
    """(records may be OutOfLine: the request came through a server connection, which
    sends them; FileRecords too: that connection has no TLS)."""
    listener = current_listener.get()
    if listener is None:
        return False, False  # called directly (tests, tools): plain bytes records
    return True, getattr(listener, "ssl_context", True) is None


class _Plan:
    """What one Fetch request asks, settled before the first read."""

    __slots__ = (
        "context",
        "denied",
        "files",
        "limited",
        "max_bytes",
        "out_of_line",
        "quota_user",
        "read_committed",
        "readable",
        "started",
        "wanted",
    )

    context: FetchContext
    denied: set[str] | None
    #: Record sets may be FileRecords (the connection has no TLS).
    files: bool
    #: A consumer byte-rate quota applies.
    limited: bool
    #: max_bytes after the broker's limit and the quota.
    max_bytes: int
    #: Record sets may be OutOfLine (the request came through a server connection).
    out_of_line: bool
    quota_user: str
    read_committed: bool
    readable: list[tuple[tuple[str, int], FetchPartition]]
    #: time.perf_counter() when the request was taken up (s).
    started: float
    wanted: list[tuple[tuple[str, int], FetchPartition]]


def _fetch(
    state: BrokerState, ctx: RequestContext, request: FetchRequest
) -> FetchResponse | Awaitable[FetchResponse]:
    """The response at once when the first read answers it (the usual case of a busy
    consumer: records cached, headers in the page cache), else an awaitable of it
    (reads on a read thread, or a long poll). Answering at once spares the task, the
    coroutine and the callbacks a response that waits needs."""
    plan = _plan(state, ctx, request)
    if isinstance(plan, FetchResponse):
        return plan
    rnd = _start_round(state, plan.wanted, plan.max_bytes, plan.denied, plan.read_committed, plan.files, None)
    if rnd.done < len(rnd.jobs):
        return _fetch_later(state, ctx, request, plan, rnd)
    jobs = _end_round(state, rnd)
    if _waits(request, plan, rnd.total, rnd.error):
        return _fetch_later(state, ctx, request, plan, None, (rnd.data, rnd.total, rnd.error, jobs))
    return _answer(state, ctx, request, plan, rnd.data, rnd.total, jobs)


def _waits(request: FetchRequest, plan: _Plan, total: int, error: bool) -> bool:
    """Whether the fetch long-polls: too few bytes, a wait allowed, no error, and a
    partition the sender may read (none: answered at once, as Kafka does)."""
    return total < request.min_bytes and request.max_wait_ms > 0 and not error and bool(plan.readable)


async def _fetch_later(
    state: BrokerState,
    ctx: RequestContext,
    request: FetchRequest,
    plan: _Plan,
    rnd: _Round | None,
    first: tuple[list[FetchResponse_PartitionData], int, bool, dict[int, _Job]] | None = None,
) -> FetchResponse:
    """The rest of a fetch that waits: ``rnd``'s reads on a read thread, then (``first``:
    the round already read) the long poll."""
    if rnd is not None:
        await _read_rest(state, rnd, plan.max_bytes)
        jobs = _end_round(state, rnd)
        data, total, error = rnd.data, rnd.total, rnd.error
    else:
        assert first is not None
        data, total, error, jobs = first
    if _waits(request, plan, total, error):
        deadline = time.monotonic() + request.max_wait_ms / 1000.0
        keys = [key for key, _ in plan.readable]
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            woken = await state.delayed.wait_for(keys, None, remaining_ms)
            data, total, error, jobs = await _read(
                state, plan.wanted, plan.max_bytes, plan.denied, plan.read_committed, plan.files, jobs
            )
            if not woken or total >= request.min_bytes or error:
                break
    return _answer(state, ctx, request, plan, data, total, jobs)


def _plan(state: BrokerState, ctx: RequestContext, request: FetchRequest) -> _Plan | FetchResponse:
    """The session, limits and permissions of ``request``; a FetchResponse when the
    session fields are refused."""
    plan = _Plan()
    plan.started = time.perf_counter()
    version = ctx.api_version
    requested = [
        (
            (t.topic, p.partition),
            FetchPartition(
                fetch_offset=p.fetch_offset,
                partition_max_bytes=p.partition_max_bytes,
                current_leader_epoch=p.current_leader_epoch,
                log_start_offset=p.log_start_offset,
                last_fetched_epoch=p.last_fetched_epoch,
            ),
        )
        for t in request.topics
        for p in t.partitions
    ]
    if version >= 7:
        context = state.fetch_sessions.new_context(
            request.session_id,
            request.session_epoch,
            requested,
            [(f.topic, p) for f in request.forgotten_topics_data for p in f.partitions],
        )
        if context.error_code:
            state.metrics.error(context.error_code)
            return FetchResponse(error_code=context.error_code, session_id=0, responses=[])
    else:
        context = FetchContext(partitions=requested)
    plan.context = context
    # Sessions key partitions by any hashable; Fetch's keys are always (topic, partition).
    plan.wanted = wanted = cast("list[tuple[tuple[str, int], FetchPartition]]", context.partitions())

    # Kafka clamps the client's max_bytes to the broker's fetch.max.bytes: a client cannot
    # make one response hold more than the operator allows.
    max_bytes = min(
        request.max_bytes if request.max_bytes > 0 else 0x7FFFFFFF, state.config.limits.fetch_max_bytes
    )
    quotas = state.quotas
    plan.quota_user = quota_user = user_of(ctx.principal)
    plan.limited = limited = quotas.enabled[FETCH] and request.replica_id < 0
    if limited:
        window_bytes = quotas.max_fetch_bytes(quota_user, ctx.client_id)
        if window_bytes is not None:
            max_bytes = min(max_bytes, window_bytes)
    plan.max_bytes = max_bytes
    denied: set[str] | None = None
    authorizer = getattr(state, "authorizer", None)
    if authorizer is not None:
        denied = set()
        if request.replica_id >= 0 and not authorizer.allows_cluster(ctx, AclOperation.CLUSTER_ACTION):
            denied.update(topic for (topic, _), _ in wanted)
        else:
            for topic in {topic for (topic, _), _ in wanted}:
                if not authorizer.allows(ctx, _READ, _TOPIC, topic):
                    denied.add(topic)
    plan.denied = denied
    plan.read_committed = request.isolation_level == 1
    plan.out_of_line, plan.files = _sendfile_capable()
    # Only partitions the sender may read are waited on.
    plan.readable = [w for w in wanted if w[0][0] not in denied] if denied else wanted
    return plan


def _answer(
    state: BrokerState,
    ctx: RequestContext,
    request: FetchRequest,
    plan: _Plan,
    data: list[FetchResponse_PartitionData],
    total: int,
    jobs: dict[int, _Job],
) -> FetchResponse:
    """The response to ``request`` of the last round's ``data`` (``total`` bytes of records)."""
    context = plan.context
    quotas = state.quotas
    if plan.limited and total:
        throttle_ms = quotas.record(FETCH, plan.quota_user, ctx.client_id, total)
        if throttle_ms:
            # Kafka's throttled answer: no partitions, the bytes not counted, a session
            # opened by this request not kept.
            quotas.unrecord(FETCH, plan.quota_user, ctx.client_id, total)
            _close_jobs(list(jobs.values()))
            ctx.throttle_ms = throttle_ms
            session_id = context.session_id
            if not context.incremental and session_id:
                state.fetch_sessions.remove(session_id)
                session_id = 0
            state.metrics.fetch_latency_us.observe(int((time.perf_counter() - plan.started) * 1e6))
            return FetchResponse(
                throttle_time_ms=throttle_ms, error_code=0, session_id=session_id, responses=[]
            )

    out_of_line = plan.out_of_line
    responses: list[FetchResponse_FetchableTopicResponse] = []
    last_topic = None
    current: FetchResponse_FetchableTopicResponse | None = None
    for ((topic, _partition), _req), pd in zip(plan.wanted, data, strict=True):
        records = pd.records
        if not out_of_line and type(records) is BufferRecords:
            pd.records = records = records.data
        if not context.should_include(
            (topic, pd.partition_index),
            error_code=pd.error_code,
            high_watermark=pd.high_watermark,
            last_stable_offset=pd.last_stable_offset,
            log_start_offset=pd.log_start_offset,
            has_records=bool(records),
        ):
            if isinstance(records, OutOfLine):
                records.close()
            continue
        if pd.error_code:
            state.metrics.error(pd.error_code)
        elif records:
            _count_fetched(state, topic, records)
        if topic != last_topic or current is None:
            current = FetchResponse_FetchableTopicResponse(topic=topic, partitions=[])
            responses.append(current)
            last_topic = topic
        current.partitions.append(pd)
    state.metrics.fetch_latency_us.observe(int((time.perf_counter() - plan.started) * 1e6))
    return FetchResponse(error_code=0, session_id=context.session_id, responses=responses)
