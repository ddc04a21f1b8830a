"""A transaction over the wire against a started broker, as a client's requests make it:
InitProducerId, AddPartitionsToTxn, transactional Produce, Fetch and ListOffsets at both
isolation levels, EndTxn commit and abort, DescribeProducers, OffsetFetch require_stable,
and the refusals of the produce path (client control batches, batches outside a
transaction). Runs on both builds; the third-party clients are in test_clients.py."""

from __future__ import annotations

from typing import Any

import pytest

from broker.wire_client import WireClient, create_topic, fetch_request, fetched_partition, produce_request
from streamcore.broker.transactions import build_marker
from streamcore.codec import decode_batches, encode_batch
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

E = ErrorCode
TXN = "wire-tx"


@pytest.fixture
def client(streamcore_broker_factory: Any):
    broker = streamcore_broker_factory()
    with WireClient(broker.bootstrap_servers) as c:
        create_topic(c, "t", 2)
        yield c


def init(c: WireClient, txn: str = TXN) -> tuple[int, int]:
    r = c.request(m.InitProducerIdRequest(transactional_id=txn, transaction_timeout_ms=60_000), 4)
    assert r.error_code == 0, r
    return r.producer_id, r.producer_epoch


def add_partitions(c: WireClient, pid: int, epoch: int, *partitions: int) -> None:
    r = c.request(
        m.AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=TXN,
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[
                m.AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name="t", partitions=list(partitions))
            ],
        ),
        3,
    )
    codes = [p.partition_error_code for t in r.results_by_topic_v3_and_below for p in t.results_by_partition]
    assert codes == [0] * len(partitions), r


def txn_produce(c: WireClient, partition: int, values: list[bytes], pid: int, epoch: int, seq: int) -> Any:
    records = encode_batch(
        values, producer_id=pid, producer_epoch=epoch, base_sequence=seq, transactional=True
    )
    req = produce_request("t", partition, records)
    req.transactional_id = TXN
    r = c.request(req, 9)
    return r.responses[0].partition_responses[0]


def end(c: WireClient, pid: int, epoch: int, commit: bool) -> int:
    r = c.request(
        m.EndTxnRequest(transactional_id=TXN, producer_id=pid, producer_epoch=epoch, committed=commit), 3
    )
    return int(r.error_code)


def fetch(c: WireClient, partition: int, isolation: int) -> Any:
    req = fetch_request("t", partition, 0)
    req.isolation_level = isolation
    return fetched_partition(c.request(req, 12), "t", partition)


def latest(c: WireClient, partition: int, isolation: int) -> int:
    r = c.request(
        m.ListOffsetsRequest(
            replica_id=-1,
            isolation_level=isolation,
            topics=[
                m.ListOffsetsRequest_ListOffsetsTopic(
                    name="t",
                    partitions=[
                        m.ListOffsetsRequest_ListOffsetsPartition(partition_index=partition, timestamp=-1)
                    ],
                )
            ],
        ),
        5,
    )
    part = r.topics[0].partitions[0]
    assert part.error_code == 0
    return int(part.offset)


def values(records: Any) -> list[bytes | None]:
    return [r.value for b in decode_batches(bytes(records or b"")) if not b.is_control for r in b.records]


def test_commit_then_abort_as_each_isolation_level_sees_them(client: WireClient) -> None:
    c = client
    pid, epoch = init(c)
    add_partitions(c, pid, epoch, 0)
    assert txn_produce(c, 0, [b"a", b"b"], pid, epoch, 0).error_code == 0
    # Open: read_committed stops at the transaction's first offset; the LSO says so at
    # both isolation levels.
    committed, uncommitted = fetch(c, 0, 1), fetch(c, 0, 0)
    assert (committed.high_watermark, committed.last_stable_offset) == (2, 0)
    assert values(committed.records) == [] and values(uncommitted.records) == [b"a", b"b"]
    assert uncommitted.last_stable_offset == 0
    assert (latest(c, 0, 0), latest(c, 0, 1)) == (2, 0)
    dp = c.request(
        m.DescribeProducersRequest(
            topics=[m.DescribeProducersRequest_TopicRequest(name="t", partition_indexes=[0])]
        ),
        0,
    )
    [producer] = dp.topics[0].partitions[0].active_producers
    assert (producer.producer_id, producer.current_txn_start_offset) == (pid, 0)

    assert end(c, pid, epoch, commit=True) == 0
    committed = fetch(c, 0, 1)
    assert (committed.high_watermark, committed.last_stable_offset) == (3, 3)
    batches = decode_batches(bytes(committed.records))
    assert [b.is_control for b in batches] == [False, True]
    assert values(committed.records) == [b"a", b"b"] and committed.aborted_transactions in ([], None)
    assert (latest(c, 0, 0), latest(c, 0, 1)) == (3, 3)

    # The next transaction is aborted: read_committed gets its batch with the aborted
    # transaction listed (the consumer drops it), offset 3 onwards.
    add_partitions(c, pid, epoch, 0)
    assert txn_produce(c, 0, [b"x"], pid, epoch, 2).error_code == 0
    assert end(c, pid, epoch, commit=False) == 0
    committed = fetch(c, 0, 1)
    assert committed.last_stable_offset == committed.high_watermark == 5
    assert [(a.producer_id, a.first_offset) for a in committed.aborted_transactions] == [(pid, 3)]
    # A partition outside both transactions has nothing and no LSO lag.
    other = fetch(c, 1, 1)
    assert (other.high_watermark, other.last_stable_offset, values(other.records)) == (0, 0, [])


def test_a_transactional_batch_outside_a_transaction_is_refused(client: WireClient) -> None:
    pid, epoch = init(client)
    # Not added to the transaction: INVALID_TXN_STATE (Produce v9 predates TRANSACTION_ABORTABLE).
    resp = txn_produce(client, 0, [b"a"], pid, epoch, 0)
    assert resp.error_code == E.INVALID_TXN_STATE.code
    # A fenced epoch (PRODUCER_FENCED from v2, as Kafka answers).
    init(client)
    add_partitions_fenced = client.request(
        m.AddPartitionsToTxnRequest(
            v3_and_below_transactional_id=TXN,
            v3_and_below_producer_id=pid,
            v3_and_below_producer_epoch=epoch,
            v3_and_below_topics=[
                m.AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name="t", partitions=[0])
            ],
        ),
        3,
    )
    [topic] = add_partitions_fenced.results_by_topic_v3_and_below
    assert topic.results_by_partition[0].partition_error_code == E.PRODUCER_FENCED.code


def test_a_client_control_batch_is_an_invalid_record(client: WireClient) -> None:
    pid, epoch = init(client)
    add_partitions(client, pid, epoch, 0)
    # A COMMIT marker is the coordinator's to write, never a producer's.
    req = produce_request("t", 0, build_marker(pid, epoch, commit=True))
    req.transactional_id = TXN
    r = client.request(req, 9)
    assert r.responses[0].partition_responses[0].error_code == E.INVALID_RECORD.code
    assert fetch(client, 0, 0).high_watermark == 0


def test_require_stable_offset_fetch_waits_for_the_transaction(client: WireClient) -> None:
    c = client
    pid, epoch = init(c)
    r = c.request(
        m.AddOffsetsToTxnRequest(transactional_id=TXN, producer_id=pid, producer_epoch=epoch, group_id="g"), 3
    )
    assert r.error_code == 0
    r = c.request(
        m.TxnOffsetCommitRequest(
            transactional_id=TXN,
            group_id="g",
            producer_id=pid,
            producer_epoch=epoch,
            topics=[
                m.TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic(
                    name="t",
                    partitions=[
                        m.TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                            partition_index=0, committed_offset=7
                        )
                    ],
                )
            ],
        ),
        3,
    )
    assert r.topics[0].partitions[0].error_code == 0

    def offset_fetch(stable: bool) -> tuple[int, int]:
        resp = c.request(
            m.OffsetFetchRequest(
                group_id="g",
                topics=[m.OffsetFetchRequest_OffsetFetchRequestTopic(name="t", partition_indexes=[0])],
                require_stable=stable,
            ),
            7,
        )
        part = resp.topics[0].partitions[0]
        return int(part.error_code), int(part.committed_offset)

    assert offset_fetch(True) == (E.UNSTABLE_OFFSET_COMMIT.code, -1)
    assert offset_fetch(False) == (0, -1)  # not visible before the commit
    assert end(c, pid, epoch, commit=True) == 0
    assert offset_fetch(True) == (0, 7)
