"""Pipelined requests on one connection are answered in the order they were sent."""

from __future__ import annotations

from streamcore.protocol import messages as m

from .wire_client import WireClient, create_topic, fetch_request, fetched_partition, records_of

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
