"""Pipelined requests on one connection are answered in the order they were sent."""

from __future__ import annotations

import time
from typing import Any

from streamcore.protocol import messages as m

from .wire_client import WireClient, create_topic, fetch_request, fetched_partition, records_of, request_frame

PIPELINED = 50


def test_pipelined_requests_behind_a_long_poll_are_answered_in_order(client: WireClient) -> None:
    create_topic(client, "pipe")
    # A fetch that parks for its max_wait, then metadata requests that could be answered at once.
    sent = [client.send(fetch_request("pipe", 0, 0, max_wait_ms=1000, min_bytes=1), 12)]
    for _ in range(PIPELINED - 1):
        sent.append(
            client.send(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name="pipe")]), 12)
        )
    answers = [client.recv() for _ in range(PIPELINED)]
    assert [cid for cid, _ in answers] == sent
    first = answers[0][1]
    assert isinstance(first, m.FetchResponse)
    assert records_of(fetched_partition(first, "pipe", 0).records) == []
    for _, meta in answers[1:]:
        assert isinstance(meta, m.MetadataResponse)
        assert [(t.name, len(t.partitions)) for t in meta.topics] == [("pipe", 1)]


def test_a_burst_in_one_write_is_dispatched_within_max_inflight_and_answered_in_order(
    streamcore_broker_factory: Any,
) -> None:
    broker = streamcore_broker_factory(limits_max_inflight_per_connection=2)
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "burst")
        # Long polls that each hold a slot for 200 ms, then metadata, all in one write.
        frames = []
        for i in range(6):
            req: Any = (
                fetch_request("burst", 0, 0, max_wait_ms=200, min_bytes=1)
                if i % 2 == 0
                else m.MetadataRequest(topics=None)
            )
            cid = 100 + i
            frames.append(request_frame(req, 12, cid))
            c.pending.append((cid, req.API_KEY, 12))
        c.send_raw(b"".join(frames))
        answers = [c.recv() for _ in range(6)]
        assert [cid for cid, _ in answers] == [100 + i for i in range(6)]
        for i, (_, body) in enumerate(answers):
            assert isinstance(body, m.FetchResponse if i % 2 == 0 else m.MetadataResponse)
        server = broker.runtime._server
        # Everything answered: nothing of this connection is left in the request budget. (The
        # broker's thread gives the bytes back just after writing the last answer.)
        deadline = time.monotonic() + 10
        while server.memory.used and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.memory.used == 0
