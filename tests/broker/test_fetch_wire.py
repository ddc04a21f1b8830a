"""Fetch on the wire: long polls woken by appends, min_bytes, incremental fetch sessions."""

from __future__ import annotations

import time
from typing import Any

from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    records_of,
)

# Long enough that a broker which ignores wakeups fails the data assertions below
# (it would answer empty at max_wait); the socket timeout bounds the wait.
LONG_WAIT_MS = 10_000


def test_fetch_long_poll_wakes_on_append_and_returns_the_data(broker: Any) -> None:
    with WireClient(broker.bootstrap_servers) as waiter, WireClient(broker.bootstrap_servers) as writer:
        create_topic(writer, "poll")
        waiter.send(fetch_request("poll", 0, 0, max_wait_ms=LONG_WAIT_MS, min_bytes=1), 12)
        time.sleep(0.2)  # let the fetch park first (if it does not, it still must return the data)
        assert produce(writer, "poll", 0, batch([b"wake"], keys=[b"k"])).error_code == 0
        _, resp = waiter.recv()
    part = fetched_partition(resp, "poll", 0)
    assert part.error_code == 0
    assert part.high_watermark == 1
    assert part.last_stable_offset == 1
    assert part.aborted_transactions in ([], None)
    assert records_of(part.records) == [(0, b"k", b"wake")]


def test_fetch_waits_for_min_bytes_across_appends(broker: Any) -> None:
    first = batch([b"one" * 10])
    second = batch([b"two" * 10])
    with WireClient(broker.bootstrap_servers) as waiter, WireClient(broker.bootstrap_servers) as writer:
        create_topic(writer, "minb")
        # One byte more than the first batch: an answer after the first append breaks the rule.
        waiter.send(fetch_request("minb", 0, 0, max_wait_ms=LONG_WAIT_MS, min_bytes=len(first) + 1), 12)
        time.sleep(0.2)
        assert produce(writer, "minb", 0, first).error_code == 0
        time.sleep(0.3)
        assert produce(writer, "minb", 0, second).error_code == 0
        _, resp = waiter.recv()
    part = fetched_partition(resp, "minb", 0)
    assert records_of(part.records) == [(0, None, b"one" * 10), (1, None, b"two" * 10)]


def test_fetch_below_min_bytes_answers_with_what_there_is_at_max_wait(client: WireClient) -> None:
    create_topic(client, "maxw")
    assert produce(client, "maxw", 0, batch([b"small"])).error_code == 0
    resp = client.request(fetch_request("maxw", 0, 0, max_wait_ms=300, min_bytes=1 << 20), 12)
    part = fetched_partition(resp, "maxw", 0)
    assert records_of(part.records) == [(0, None, b"small")]


def test_fetch_past_the_end_with_no_wait_is_empty(client: WireClient) -> None:
    create_topic(client, "empty")
    resp = client.request(fetch_request("empty", 0, 0, max_wait_ms=0, min_bytes=1), 12)
    part = fetched_partition(resp, "empty", 0)
    assert part.error_code == 0
    assert part.high_watermark == 0
    assert records_of(part.records) == []


def _session_fetch(session_id: int, epoch: int, *, max_wait_ms: int, min_bytes: int) -> m.FetchRequest:
    """An incremental fetch that adds, changes and forgets nothing."""
    return m.FetchRequest(
        replica_id=-1,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=1 << 20,
        session_id=session_id,
        session_epoch=epoch,
        topics=[],
    )


def test_incremental_fetch_session_sends_only_changed_partitions(client: WireClient) -> None:
    create_topic(client, "sess")
    # Full fetch that asks for a new session (id 0, epoch 0).
    full = client.request(fetch_request("sess", 0, 0, session_id=0, session_epoch=0), 12)
    assert full.error_code == 0
    assert full.session_id != 0
    assert fetched_partition(full, "sess", 0).high_watermark == 0
    session = full.session_id

    # Epoch 1, nothing added or changed, no new data: no partitions in the answer.
    quiet = client.request(_session_fetch(session, 1, max_wait_ms=0, min_bytes=0), 12)
    assert quiet.error_code == 0
    assert quiet.session_id == session
    assert [p for t in quiet.responses for p in t.partitions] == []

    # New data on the session's partition shows up without naming it again.
    assert produce(client, "sess", 0, batch([b"new"])).error_code == 0
    fresh = client.request(_session_fetch(session, 2, max_wait_ms=LONG_WAIT_MS, min_bytes=1), 12)
    assert fresh.session_id == session
    assert records_of(fetched_partition(fresh, "sess", 0).records) == [(0, None, b"new")]
