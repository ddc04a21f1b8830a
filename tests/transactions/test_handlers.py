"""The six transaction handlers called directly on a broker state (wire encodings checked)."""

from __future__ import annotations

import pytest

from streamcore.broker.authorizer import AclOperation, ResourceType
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import (
    add_offsets_to_txn,
    add_partitions_to_txn,
    describe_transactions,
    end_txn,
    list_transactions,
    txn_offset_commit,
)
from streamcore.broker.transactions import TxnState
from streamcore.errors import ErrorCode
from streamcore.protocol.messages import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnRequest_AddPartitionsToTxnTopic,
    AddPartitionsToTxnRequest_AddPartitionsToTxnTransaction,
    DescribeTransactionsRequest,
    EndTxnRequest,
    ListTransactionsRequest,
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic,
)

from .harness import attach, close, open_state, produce, run, txn_batch

E = ErrorCode
NONE = 0
TID = "tx"


class DenyList:
    """An authorizer refusing exactly the listed (operation, resource type, name)."""

    def __init__(self, *refused: tuple[int, int, str]) -> None:
        self.refused = set(refused)

    def allows(self, ctx, operation, resource_type, name) -> bool:
        return (operation, resource_type, name) not in self.refused


@pytest.fixture
def broker(tmp_path):
    state = open_state(tmp_path / "data")
    state.topics.create_topic("t", 2)
    state.topics.create_topic("in", 1)
    coord = attach(state)
    state.authorizer = None
    yield state, coord
    close(state)


def call(module, state, request, version):
    """Decode the request as a client would send it at ``version``, run the handler and
    encode its answer at that version (what the server does)."""
    request = type(request).decode(request.encode(version), version)
    ctx = RequestContext(module.API_KEY, version, 1, "test", "127.0.0.1:1")
    result = module.handle(state, ctx, request)
    response = run(result) if hasattr(result, "__await__") else result
    return type(response).decode(response.encode(version), version)


def init(coord, tid=TID):
    result = run(coord.init_producer_id(tid, 60_000))
    assert result.error_code == NONE
    return result.producer_id, result.producer_epoch


def add_v3(pid, epoch, parts, tid=TID):
    by_topic: dict[str, list[int]] = {}
    for topic, p in parts:
        by_topic.setdefault(topic, []).append(p)
    return AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=tid,
        v3_and_below_producer_id=pid,
        v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[
            AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name=t, partitions=ps)
            for t, ps in by_topic.items()
        ],
    )


def flat(topic_results):
    return {
        (t.name, p.partition_index): p.partition_error_code
        for t in topic_results
        for p in t.results_by_partition
    }


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_add_partitions_client_versions(broker, version):
    state, coord = broker
    pid, epoch = init(coord)
    resp = call(add_partitions_to_txn, state, add_v3(pid, epoch, [("t", 0), ("t", 1)]), version)
    assert flat(resp.results_by_topic_v3_and_below) == {("t", 0): NONE, ("t", 1): NONE}
    assert coord.metadata(TID).partitions == {("t", 0), ("t", 1)}
    # A stale epoch: PRODUCER_FENCED from v2, INVALID_PRODUCER_EPOCH before.
    resp = call(add_partitions_to_txn, state, add_v3(pid, epoch + 5, [("t", 0)]), version)
    fenced = E.PRODUCER_FENCED.code if version >= 2 else E.INVALID_PRODUCER_EPOCH.code
    assert flat(resp.results_by_topic_v3_and_below) == {("t", 0): fenced}


def test_add_partitions_unknown_partition_fails_the_request(broker):
    state, coord = broker
    pid, epoch = init(coord)
    resp = call(add_partitions_to_txn, state, add_v3(pid, epoch, [("t", 0), ("t", 7), ("nope", 0)]), 3)
    assert flat(resp.results_by_topic_v3_and_below) == {
        ("t", 0): E.OPERATION_NOT_ATTEMPTED.code,
        ("t", 7): E.UNKNOWN_TOPIC_OR_PARTITION.code,
        ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION.code,
    }
    assert coord.metadata(TID).state is TxnState.EMPTY


@pytest.mark.parametrize("version", [4, 5])
def test_add_partitions_batched_and_verify_only(broker, version):
    state, coord = broker
    pid, epoch = init(coord, "a")
    pid_b, epoch_b = init(coord, "b")
    req = AddPartitionsToTxnRequest(
        transactions=[
            AddPartitionsToTxnRequest_AddPartitionsToTxnTransaction(
                transactional_id="a",
                producer_id=pid,
                producer_epoch=epoch,
                topics=[AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name="t", partitions=[0])],
            ),
            AddPartitionsToTxnRequest_AddPartitionsToTxnTransaction(
                transactional_id="b",
                producer_id=pid_b,
                producer_epoch=epoch_b,
                verify_only=True,
                topics=[AddPartitionsToTxnRequest_AddPartitionsToTxnTopic(name="t", partitions=[1])],
            ),
        ]
    )
    resp = call(add_partitions_to_txn, state, req, version)
    assert resp.error_code == NONE
    got = {r.transactional_id: flat(r.topic_results) for r in resp.results_by_transaction}
    assert got == {"a": {("t", 0): NONE}, "b": {("t", 1): E.TRANSACTION_ABORTABLE.code}}
    assert coord.metadata("b").state is TxnState.EMPTY  # verification adds nothing
    state.authorizer = DenyList((AclOperation.CLUSTER_ACTION, ResourceType.CLUSTER, "kafka-cluster"))
    resp = call(add_partitions_to_txn, state, req, version)
    assert resp.error_code == E.CLUSTER_AUTHORIZATION_FAILED.code


def test_a_whole_consume_transform_produce_round(broker):
    state, coord = broker
    pid, epoch = init(coord)
    assert flat(
        call(add_partitions_to_txn, state, add_v3(pid, epoch, [("t", 0)]), 3).results_by_topic_v3_and_below
    ) == {("t", 0): NONE}
    run(produce(state, "t", 0, txn_batch(pid, epoch, 0, [b"out"]), transactional_id=TID))
    add = AddOffsetsToTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id="g")
    assert call(add_offsets_to_txn, state, add, 3).error_code == NONE
    commit = TxnOffsetCommitRequest(
        transactional_id=TID,
        group_id="g",
        producer_id=pid,
        producer_epoch=epoch,
        topics=[
            TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic(
                name="in",
                partitions=[
                    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=42, committed_metadata="m"
                    ),
                    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                        partition_index=3, committed_offset=1
                    ),
                ],
            )
        ],
    )
    resp = call(txn_offset_commit, state, commit, 3)
    codes = {(t.name, p.partition_index): p.error_code for t in resp.topics for p in t.partitions}
    assert codes == {("in", 0): NONE, ("in", 3): E.UNKNOWN_TOPIC_OR_PARTITION.code}
    assert state.offsets.fetch("g") == {}  # pending
    assert state.offsets.pending_partitions("g") == {("in", 0)}
    assert coord.lso("__consumer_offsets", 0) < state.topics.offsets_log().high_watermark
    described = call(
        describe_transactions, state, DescribeTransactionsRequest(transactional_ids=[TID, "zz"]), 0
    )
    first, second = described.transaction_states
    assert (first.transaction_state, first.producer_id, first.error_code) == ("Ongoing", pid, NONE)
    assert sorted((t.topic, t.partitions) for t in first.topics) == [("__consumer_offsets", [0]), ("t", [0])]
    assert second.error_code == E.TRANSACTIONAL_ID_NOT_FOUND.code
    end = EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=True)
    assert call(end_txn, state, end, 3).error_code == NONE
    assert state.offsets.fetch("g")[("in", 0)].offset == 42
    assert coord.lso("__consumer_offsets", 0) == state.topics.offsets_log().high_watermark
    assert coord.lso("t", 0) == state.topics.log("t", 0).high_watermark


@pytest.mark.parametrize(("version", "code"), [(3, E.INVALID_TXN_STATE), (4, E.TRANSACTION_ABORTABLE)])
def test_txn_offset_commit_needs_add_offsets_first(broker, version, code):
    state, coord = broker
    pid, epoch = init(coord)
    commit = TxnOffsetCommitRequest(
        transactional_id=TID,
        group_id="g",
        producer_id=pid,
        producer_epoch=epoch,
        topics=[
            TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic(
                name="in",
                partitions=[
                    TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=1
                    )
                ],
            )
        ],
    )
    resp = call(txn_offset_commit, state, commit, version)
    assert resp.topics[0].partitions[0].error_code == code.code
    assert state.topics.offsets_log().high_watermark == 0  # nothing written
    commit.producer_epoch = epoch + 1
    resp = call(txn_offset_commit, state, commit, version)
    assert resp.topics[0].partitions[0].error_code == E.INVALID_PRODUCER_EPOCH.code


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_end_txn_versions(broker, version):
    state, coord = broker
    pid, epoch = init(coord)
    run(coord.add_partitions(TID, pid, epoch, [("t", 0)]))
    stale = EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch + 1, committed=False)
    fenced = E.PRODUCER_FENCED.code if version >= 2 else E.INVALID_PRODUCER_EPOCH.code
    assert call(end_txn, state, stale, version).error_code == fenced
    end = EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=False)
    assert call(end_txn, state, end, version).error_code == NONE
    assert coord.metadata(TID).state is TxnState.COMPLETE_ABORT


def test_authorization(broker):
    state, coord = broker
    pid, epoch = init(coord)
    state.authorizer = DenyList(
        (AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, TID),
        (AclOperation.DESCRIBE, ResourceType.TRANSACTIONAL_ID, TID),
        (AclOperation.WRITE, ResourceType.TOPIC, "t"),
    )
    resp = call(add_partitions_to_txn, state, add_v3(pid, epoch, [("t", 0)]), 3)
    assert flat(resp.results_by_topic_v3_and_below) == {
        ("t", 0): E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    }
    add = AddOffsetsToTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id="g")
    assert call(add_offsets_to_txn, state, add, 3).error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    end = EndTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, committed=True)
    assert call(end_txn, state, end, 3).error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    described = call(describe_transactions, state, DescribeTransactionsRequest(transactional_ids=[TID]), 0)
    assert described.transaction_states[0].error_code == E.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
    assert call(list_transactions, state, ListTransactionsRequest(), 2).transaction_states == []
    # Another id may write, but not to topic t.
    other_pid, other_epoch = init(coord, "other")
    resp = call(
        add_partitions_to_txn, state, add_v3(other_pid, other_epoch, [("t", 0), ("in", 0)], tid="other"), 3
    )
    assert flat(resp.results_by_topic_v3_and_below) == {
        ("t", 0): E.TOPIC_AUTHORIZATION_FAILED.code,
        ("in", 0): E.OPERATION_NOT_ATTEMPTED.code,
    }
    state.authorizer = DenyList((AclOperation.READ, ResourceType.GROUP, "g"))
    add = AddOffsetsToTxnRequest(transactional_id=TID, producer_id=pid, producer_epoch=epoch, group_id="g")
    assert call(add_offsets_to_txn, state, add, 3).error_code == E.GROUP_AUTHORIZATION_FAILED.code


@pytest.mark.parametrize("version", [0, 1, 2])
def test_list_transactions_filters(broker, version):
    state, coord = broker
    init(coord, "app-a")
    pid_b, epoch_b = init(coord, "app-b")
    init(coord, "other")
    run(coord.add_partitions("app-b", pid_b, epoch_b, [("t", 1)]))
    req = ListTransactionsRequest(state_filters=["Ongoing", "Nonsense"])
    resp = call(list_transactions, state, req, version)
    assert resp.unknown_state_filters == ["Nonsense"]
    assert [(t.transactional_id, t.producer_id, t.transaction_state) for t in resp.transaction_states] == [
        ("app-b", pid_b, "Ongoing")
    ]
    resp = call(list_transactions, state, ListTransactionsRequest(producer_id_filters=[pid_b]), version)
    assert [t.transactional_id for t in resp.transaction_states] == ["app-b"]
    if version >= 2:
        resp = call(
            list_transactions, state, ListTransactionsRequest(transactional_id_pattern="app-.*"), version
        )
        assert [t.transactional_id for t in resp.transaction_states] == ["app-a", "app-b"]
        resp = call(list_transactions, state, ListTransactionsRequest(transactional_id_pattern="["), version)
        assert resp.error_code == 128
