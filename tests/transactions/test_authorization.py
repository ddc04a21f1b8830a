"""Transactional ids under an AclAuthorizer: InitProducerId and Produce need WRITE on the
id, FindCoordinator DESCRIBE (which WRITE implies), each refused with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED as in Kafka. Handlers are called on a started
broker's loop with a chosen principal, and each response is encoded at its version."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from broker.wire_client import produce_request
from streamcore.broker.authorizer import AclAuthorizer, AclBinding
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import find_coordinator, init_producer_id, produce
from streamcore.codec import encode_batch
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

DENIED = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code
ALICE = "User:alice"


class Calls:
    def __init__(self, broker: Any, authorizer: AclAuthorizer) -> None:
        self.broker = broker
        self.state = broker.runtime.state
        self.state.authorizer = authorizer
        self.authorizer = authorizer

    def __call__(self, module: Any, request: Any, version: int) -> Any:
        ctx = RequestContext(module.API_KEY, version, 1, "txn-acl-test", "127.0.0.1:40000", ALICE)

        async def run() -> Any:
            result = module.handle(self.state, ctx, request)
            return await result if inspect.isawaitable(result) else result

        response = asyncio.run_coroutine_threadsafe(run(), self.broker._loop).result(30)
        return type(response).decode(response.encode(version), version)

    def allow(self, op: str, rtype: str, name: str) -> None:
        assert self.authorizer.create([AclBinding.of(rtype, name, "LITERAL", ALICE, "*", op, "ALLOW")]) == [
            None
        ]


@pytest.fixture
def call(streamcore_broker_factory: Any, tmp_path: Any) -> Calls:
    (tmp_path / "acls").mkdir()
    broker = streamcore_broker_factory()
    broker.runtime.state.topics.create_topic("t", 1)
    return Calls(broker, AclAuthorizer(tmp_path / "acls"))


def test_init_producer_id_and_find_coordinator_need_the_transactional_id(call: Calls) -> None:
    init = m.InitProducerIdRequest(transactional_id="tx", transaction_timeout_ms=60_000)
    find = m.FindCoordinatorRequest(key_type=1, coordinator_keys=["tx"])
    assert call(init_producer_id, init, 4).error_code == DENIED
    assert call(find_coordinator, find, 4).coordinators[0].error_code == DENIED
    assert call(find_coordinator, m.FindCoordinatorRequest(key="tx", key_type=1), 3).error_code == DENIED
    # WRITE on the topic is not enough, WRITE on another id neither.
    call.allow("WRITE", "TOPIC", "t")
    call.allow("WRITE", "TRANSACTIONAL_ID", "other")
    assert call(init_producer_id, init, 4).error_code == DENIED
    call.allow("WRITE", "TRANSACTIONAL_ID", "tx")
    r = call(init_producer_id, init, 4)
    assert r.error_code == 0 and r.producer_id >= 0
    assert call(find_coordinator, find, 4).coordinators[0].error_code == 0


def test_produce_with_a_transactional_id_needs_write_on_it(call: Calls) -> None:
    call.allow("WRITE", "TOPIC", "t")
    call.allow("CREATE", "CLUSTER", "kafka-cluster")
    records = encode_batch([b"v"], producer_id=3, producer_epoch=0, base_sequence=0, transactional=True)
    req = produce_request("t", 0, records)
    req.transactional_id = "tx"
    auto = m.ProduceRequest_TopicProduceData(
        name="auto-created", partition_data=[m.ProduceRequest_PartitionProduceData(index=0, records=records)]
    )
    req.topic_data.append(auto)
    r = call(produce, req, 9)
    # Every partition is refused, and nothing is looked up or created.
    assert [t.partition_responses[0].error_code for t in r.responses] == [DENIED, DENIED]
    assert call.state.topics.get("auto-created") is None
    # Allowed on the id, the batch reaches the transaction checks: producer 3 is not the
    # id's producer.
    call.allow("WRITE", "TRANSACTIONAL_ID", "tx")
    r = call(produce, req, 9)
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING.code
