"""Per-request authorization of every handler, on a started broker with an AclAuthorizer.

Handlers are called with RequestContexts of chosen principals and hosts on the broker's
own event loop (the server would build the same context after authentication), and each
response is encoded at the request's version, so what is checked is also what a client
would receive. The codes and the order of checks are Kafka's (KafkaApis/ControllerApis,
AuthHelper); the CreateAcls/DescribeAcls/DeleteAcls handlers are called the same way.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

import pytest

from broker.wire_client import batch
from streamcore.broker.authorizer import AclAuthorizer, AclBinding, AclOperation, ResourceType
from streamcore.broker.context import RequestContext
from streamcore.broker.handlers import alter_configs as alter_configs_handler
from streamcore.broker.handlers import (
    create_acls,
    create_partitions,
    create_topics,
    delete_acls,
    delete_groups,
    delete_records,
    delete_topics,
    describe_acls,
    describe_cluster,
    describe_configs,
    describe_groups,
    describe_log_dirs,
    describe_producers,
    fetch,
    find_coordinator,
    heartbeat,
    incremental_alter_configs,
    init_producer_id,
    join_group,
    leave_group,
    list_groups,
    list_offsets,
    metadata,
    offset_commit,
    offset_delete,
    offset_fetch,
    offset_for_leader_epoch,
    produce,
    sync_group,
)
from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED.code
GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED.code
CLUSTER_DENIED = ErrorCode.CLUSTER_AUTHORIZATION_FAILED.code
ADMIN, ALICE, BOB = "User:admin", "User:alice", "User:bob"


class Harness:
    """A started broker with an AclAuthorizer and a way to call handlers as someone."""

    def __init__(self, broker: Any, authorizer: AclAuthorizer | None) -> None:
        self.broker = broker
        self.state = broker.runtime.state
        self.authorizer = authorizer
        self.state.authorizer = authorizer

    def call(
        self, module: Any, request: Any, version: int, principal: str = ALICE, host: str = "127.0.0.1"
    ) -> Any:
        ctx = RequestContext(module.API_KEY, version, 7, "acl-test", f"{host}:40000", principal)

        async def run() -> Any:
            result = module.handle(self.state, ctx, request)
            if inspect.isawaitable(result):
                result = await result
            return result

        response = asyncio.run_coroutine_threadsafe(run(), self.broker._loop).result(30)
        if response is not None:
            # What a client would get: the response must encode at the request's version.
            response = type(response).decode(response.encode(version), version)
        return response

    def allow(self, principal: str, op: str, rtype: str, name: str, pattern: str = "LITERAL") -> None:
        self.add(principal, op, rtype, name, pattern, "ALLOW")

    def add(self, principal: str, op: str, rtype: str, name: str, pattern: str, perm: str) -> None:
        assert self.authorizer is not None
        assert self.authorizer.create([AclBinding.of(rtype, name, pattern, principal, "*", op, perm)]) == [
            None
        ]

    def create_topic(self, name: str, partitions: int = 1) -> None:
        r = self.call(
            create_topics,
            m.CreateTopicsRequest(
                topics=[
                    m.CreateTopicsRequest_CreatableTopic(
                        name=name, num_partitions=partitions, replication_factor=1
                    )
                ]
            ),
            7,
            ADMIN,
        )
        assert r.topics[0].error_code == 0, r


@pytest.fixture
def h(streamcore_broker_factory, tmp_path):
    broker = streamcore_broker_factory(auto_create=True)
    harness = Harness(broker, AclAuthorizer(tmp_path / "acls", super_users=[ADMIN]))
    harness.create_topic("orders", 2)
    harness.create_topic("secret")
    return harness


@pytest.fixture(autouse=True)
def _acl_dir(tmp_path):
    (tmp_path / "acls").mkdir()


def produce_req(*topics: str) -> m.ProduceRequest:
    return m.ProduceRequest(
        acks=-1,
        timeout_ms=5000,
        topic_data=[
            m.ProduceRequest_TopicProduceData(
                name=t, partition_data=[m.ProduceRequest_PartitionProduceData(index=0, records=batch([b"v"]))]
            )
            for t in topics
        ],
    )


# -- ACL administration ---------------------------------------------------------------------


def creation(
    principal: str = ALICE, op: int = AclOperation.READ, **kw: Any
) -> m.CreateAclsRequest_AclCreation:
    fields = {
        "resource_type": int(ResourceType.TOPIC),
        "resource_name": "orders",
        "resource_pattern_type": 3,
        "principal": principal,
        "host": "*",
        "operation": int(op),
        "permission_type": 3,
    }
    fields.update(kw)
    return m.CreateAclsRequest_AclCreation(**fields)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_acl_apis_answer_security_disabled_without_authorizer(streamcore_broker_factory, version):
    h = Harness(streamcore_broker_factory(), None)
    r = h.call(create_acls, m.CreateAclsRequest(creations=[creation(), creation()]), version)
    assert [x.error_code for x in r.results] == [ErrorCode.SECURITY_DISABLED.code] * 2
    r = h.call(
        describe_acls,
        m.DescribeAclsRequest(resource_type_filter=1, pattern_type_filter=1, operation=1, permission_type=1),
        version,
    )
    assert r.error_code == ErrorCode.SECURITY_DISABLED.code
    r = h.call(
        delete_acls,
        m.DeleteAclsRequest(
            filters=[
                m.DeleteAclsRequest_DeleteAclsFilter(
                    resource_type_filter=1, pattern_type_filter=1, operation=1, permission_type=1
                )
            ]
        ),
        version,
    )
    assert [x.error_code for x in r.filter_results] == [ErrorCode.SECURITY_DISABLED.code]


def any_filter(**kw: Any) -> dict[str, Any]:
    fields = {
        "resource_type_filter": 1,
        "resource_name_filter": None,
        "pattern_type_filter": 1,
        "principal_filter": None,
        "host_filter": None,
        "operation": 1,
        "permission_type": 1,
    }
    fields.update(kw)
    return fields


@pytest.mark.parametrize("version", [1, 2, 3])
def test_create_describe_delete_acls(h, version):
    # Only ALTER on the cluster may create or delete, DESCRIBE on it describe.
    r = h.call(create_acls, m.CreateAclsRequest(creations=[creation()]), version, ALICE)
    assert r.results[0].error_code == CLUSTER_DENIED
    assert (
        h.call(describe_acls, m.DescribeAclsRequest(**any_filter()), version, ALICE).error_code
        == CLUSTER_DENIED
    )
    r = h.call(
        delete_acls,
        m.DeleteAclsRequest(filters=[m.DeleteAclsRequest_DeleteAclsFilter(**any_filter())]),
        version,
        ALICE,
    )
    assert r.filter_results[0].error_code == CLUSTER_DENIED
    assert h.authorizer.acls() == ()

    r = h.call(
        create_acls,
        m.CreateAclsRequest(
            creations=[
                creation(),
                creation(op=AclOperation.WRITE, resource_pattern_type=4, resource_name="ord"),
                creation(resource_pattern_type=2),  # MATCH is for filters only
                creation(resource_type=1),  # ANY
                creation(resource_type=4, resource_name="other-cluster"),
                creation(resource_name=""),
                creation(principal="alice"),
                creation(operation=1),
                creation(permission_type=0),
                creation(host="not-an-ip"),
                creation(resource_type=99),
            ]
        ),
        version,
        ADMIN,
    )
    assert [x.error_code for x in r.results] == [0, 0] + [ErrorCode.INVALID_REQUEST.code] * 9
    assert "kafka-cluster" in r.results[4].error_message
    # Applied at once: alice may now read "orders" and write "ord*".
    assert h.authorizer.authorize(ALICE, "127.0.0.1", AclOperation.READ, ResourceType.TOPIC, "orders")
    assert h.authorizer.authorize(ALICE, "127.0.0.1", AclOperation.WRITE, ResourceType.TOPIC, "ordinal")

    # A user with DESCRIBE on the cluster can list them; ALTER implies DESCRIBE.
    h.allow(BOB, "DESCRIBE", "CLUSTER", "kafka-cluster")
    r = h.call(describe_acls, m.DescribeAclsRequest(**any_filter()), version, BOB)
    assert r.error_code == 0
    got = {
        (x.resource_type, x.resource_name, x.pattern_type, a.principal, a.operation)
        for x in r.resources
        for a in x.acls
    }
    assert got == {(2, "orders", 3, ALICE, 3), (2, "ord", 4, ALICE, 4), (4, "kafka-cluster", 3, BOB, 8)}
    r = h.call(
        describe_acls,
        m.DescribeAclsRequest(
            **any_filter(resource_type_filter=2, resource_name_filter="orders", pattern_type_filter=2)
        ),
        version,
        BOB,
    )
    assert sorted((x.resource_name, x.pattern_type) for x in r.resources) == [("ord", 4), ("orders", 3)]
    r = h.call(describe_acls, m.DescribeAclsRequest(**any_filter(pattern_type_filter=0)), version, BOB)
    assert r.error_code == ErrorCode.INVALID_REQUEST.code

    # Delete: one filter per result, with the bindings it removed; bad filters alone fail.
    h.allow(BOB, "ALTER", "CLUSTER", "kafka-cluster")
    r = h.call(
        delete_acls,
        m.DeleteAclsRequest(
            filters=[
                m.DeleteAclsRequest_DeleteAclsFilter(**any_filter(principal_filter=ALICE, operation=3)),
                m.DeleteAclsRequest_DeleteAclsFilter(**any_filter(resource_type_filter=0)),
                m.DeleteAclsRequest_DeleteAclsFilter(**any_filter(resource_name_filter="nothing")),
            ]
        ),
        version,
        BOB,
    )
    assert [x.error_code for x in r.filter_results] == [0, ErrorCode.INVALID_REQUEST.code, 0]
    assert [(a.resource_name, a.principal, a.operation) for a in r.filter_results[0].matching_acls] == [
        ("orders", ALICE, 3)
    ]
    assert r.filter_results[2].matching_acls == []
    assert not h.authorizer.authorize(ALICE, "127.0.0.1", AclOperation.READ, ResourceType.TOPIC, "orders")
    assert len(h.authorizer.acls()) == 3


# -- data-plane checks ----------------------------------------------------------------------


def test_produce_needs_write(h):
    h.allow(ALICE, "WRITE", "TOPIC", "orders")
    r = h.call(produce, produce_req("orders", "secret", "never-created"), 9)
    codes = {t.name: t.partition_responses[0].error_code for t in r.responses}
    # Denied whether the topic exists or not; nothing is auto-created without CREATE.
    assert codes == {"orders": 0, "secret": TOPIC_DENIED, "never-created": TOPIC_DENIED}
    assert h.state.topics.get("never-created") is None
    h.allow(ALICE, "WRITE", "TOPIC", "new-", "PREFIXED")
    r = h.call(produce, produce_req("new-one"), 9)
    assert r.responses[0].partition_responses[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
    h.allow(ALICE, "CREATE", "TOPIC", "new-", "PREFIXED")
    r = h.call(produce, produce_req("new-one"), 9)
    assert r.responses[0].partition_responses[0].error_code == 0
    # The super user writes anywhere; DENY beats a wildcard ALLOW.
    assert (
        h.call(produce, produce_req("secret"), 9, ADMIN).responses[0].partition_responses[0].error_code == 0
    )
    h.allow(BOB, "WRITE", "TOPIC", "*")
    h.add(BOB, "WRITE", "TOPIC", "secret", "LITERAL", "DENY")
    r = h.call(produce, produce_req("orders", "secret"), 9, BOB)
    assert [t.partition_responses[0].error_code for t in r.responses] == [0, TOPIC_DENIED]


def fetch_req(*topics: str) -> m.FetchRequest:
    return m.FetchRequest(
        replica_id=-1,
        max_wait_ms=50,
        min_bytes=1,
        max_bytes=1 << 20,
        topics=[
            m.FetchRequest_FetchTopic(
                topic=t,
                partitions=[
                    m.FetchRequest_FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
                ],
            )
            for t in topics
        ],
    )


def test_fetch_needs_read_and_still_serves_the_rest(h):
    h.call(produce, produce_req("orders", "secret"), 9, ADMIN)
    h.allow(ALICE, "READ", "TOPIC", "orders")
    r = h.call(fetch, fetch_req("orders", "secret"), 11)
    by = {t.topic: t.partitions[0] for t in r.responses}
    assert by["orders"].error_code == 0 and len(by["orders"].records) > 0
    assert by["secret"].error_code == TOPIC_DENIED and not by["secret"].records
    # Only unreadable partitions: answered at once with the error (no long poll on them).
    r = h.call(fetch, fetch_req("secret"), 4)
    assert r.responses[0].partitions[0].error_code == TOPIC_DENIED
    # A replica's fetch needs CLUSTER_ACTION.
    req = fetch_req("orders")
    req.replica_id = 1
    assert h.call(fetch, req, 11).responses[0].partitions[0].error_code == TOPIC_DENIED


def test_list_offsets_and_leader_epoch_need_describe(h):
    h.allow(ALICE, "READ", "TOPIC", "orders")  # READ implies DESCRIBE
    req = m.ListOffsetsRequest(
        replica_id=-1,
        topics=[
            m.ListOffsetsRequest_ListOffsetsTopic(
                name=n,
                partitions=[m.ListOffsetsRequest_ListOffsetsPartition(partition_index=0, timestamp=-1)],
            )
            for n in ("orders", "secret", "missing")
        ],
    )
    r = h.call(list_offsets, req, 7)
    assert [t.partitions[0].error_code for t in r.topics] == [0, TOPIC_DENIED, TOPIC_DENIED]
    assert r.topics[1].partitions[0].offset == -1
    req = m.OffsetForLeaderEpochRequest(
        replica_id=-1,
        topics=[
            m.OffsetForLeaderEpochRequest_OffsetForLeaderTopic(
                topic=n,
                partitions=[
                    m.OffsetForLeaderEpochRequest_OffsetForLeaderPartition(partition=0, leader_epoch=0)
                ],
            )
            for n in ("orders", "secret")
        ],
    )
    r = h.call(offset_for_leader_epoch, req, 4)
    assert [t.partitions[0].error_code for t in r.topics] == [0, TOPIC_DENIED]
    h.allow(ALICE, "CLUSTER_ACTION", "CLUSTER", "kafka-cluster")
    r = h.call(offset_for_leader_epoch, req, 4)
    assert [t.partitions[0].error_code for t in r.topics] == [0, 0]


def test_metadata_lists_only_describable_topics(h):
    h.allow(ALICE, "DESCRIBE", "TOPIC", "orders")
    r = h.call(metadata, m.MetadataRequest(topics=None), 12)
    assert [t.name for t in r.topics] == ["orders"]
    assert h.call(metadata, m.MetadataRequest(topics=[]), 0).topics[0].name == "orders"
    # By name: denied whether or not the topic exists, with no topic id.
    r = h.call(
        metadata,
        m.MetadataRequest(
            topics=[m.MetadataRequest_MetadataRequestTopic(name=n) for n in ("orders", "secret", "ghost")],
            allow_auto_topic_creation=False,
        ),
        12,
    )
    assert [(t.name, t.error_code) for t in r.topics] == [
        ("orders", 0),
        ("secret", TOPIC_DENIED),
        ("ghost", TOPIC_DENIED),
    ]
    assert r.topics[1].topic_id == bytes(16) and r.topics[1].partitions == []
    # By id: the id is echoed, the name is not.
    secret_id = h.state.topics.get("secret").topic_id.bytes
    r = h.call(
        metadata,
        m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name=None, topic_id=secret_id)]),
        12,
    )
    assert (r.topics[0].error_code, r.topics[0].name, r.topics[0].topic_id) == (TOPIC_DENIED, None, secret_id)
    # Auto-creation needs CREATE on the cluster or the topic, besides DESCRIBE.
    h.allow(ALICE, "DESCRIBE", "TOPIC", "auto-", "PREFIXED")
    req = m.MetadataRequest(
        topics=[m.MetadataRequest_MetadataRequestTopic(name="auto-1")], allow_auto_topic_creation=True
    )
    assert h.call(metadata, req, 12).topics[0].error_code == TOPIC_DENIED
    assert h.state.topics.get("auto-1") is None
    h.allow(ALICE, "CREATE", "CLUSTER", "kafka-cluster")
    r = h.call(metadata, req, 12)
    assert r.topics[0].error_code == 0 and h.state.topics.get("auto-1") is not None
    # Authorized operations (v8+): DESCRIBE only on "orders" -> bit 8.
    r = h.call(
        metadata,
        m.MetadataRequest(
            topics=[m.MetadataRequest_MetadataRequestTopic(name="orders")],
            include_topic_authorized_operations=True,
            include_cluster_authorized_operations=True,
        ),
        10,
    )
    assert r.topics[0].topic_authorized_operations == 1 << 8
    assert r.cluster_authorized_operations == 0  # no DESCRIBE on the cluster


def join_req(group_id: str) -> m.JoinGroupRequest:
    return m.JoinGroupRequest(
        group_id=group_id,
        session_timeout_ms=10000,
        rebalance_timeout_ms=10000,
        member_id="",
        protocol_type="consumer",
        protocols=[m.JoinGroupRequest_JoinGroupRequestProtocol(name="range", metadata=b"")],
    )


def test_group_apis_need_group_permissions(h):
    h.allow(ALICE, "READ", "TOPIC", "orders")
    r = h.call(find_coordinator, m.FindCoordinatorRequest(key="g1", key_type=0), 3)
    assert (r.error_code, r.node_id) == (GROUP_DENIED, -1)
    r = h.call(find_coordinator, m.FindCoordinatorRequest(key_type=0, coordinator_keys=["g1", "g2"]), 4)
    assert [c.error_code for c in r.coordinators] == [GROUP_DENIED, GROUP_DENIED]
    assert h.call(join_group, join_req("g1"), 7).error_code == GROUP_DENIED
    assert (
        h.call(sync_group, m.SyncGroupRequest(group_id="g1", generation_id=1, member_id="m"), 5).error_code
        == GROUP_DENIED
    )
    assert (
        h.call(heartbeat, m.HeartbeatRequest(group_id="g1", generation_id=1, member_id="m"), 4).error_code
        == GROUP_DENIED
    )
    assert (
        h.call(leave_group, m.LeaveGroupRequest(group_id="g1", member_id="m"), 2).error_code == GROUP_DENIED
    )
    commit = m.OffsetCommitRequest(
        group_id="g1",
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            m.OffsetCommitRequest_OffsetCommitRequestTopic(
                name=n,
                partitions=[
                    m.OffsetCommitRequest_OffsetCommitRequestPartition(partition_index=0, committed_offset=1)
                ],
            )
            for n in ("orders", "secret")
        ],
    )
    r = h.call(offset_commit, commit, 8)
    assert [t.partitions[0].error_code for t in r.topics] == [GROUP_DENIED, GROUP_DENIED]

    # READ on the group (DESCRIBE implied): group calls pass, topics are checked one by one.
    h.allow(ALICE, "READ", "GROUP", "g", "PREFIXED")
    r = h.call(find_coordinator, m.FindCoordinatorRequest(key="g1", key_type=0), 3)
    assert r.error_code == 0 and r.node_id == h.state.node_id
    r = h.call(offset_commit, commit, 8)
    assert [t.partitions[0].error_code for t in r.topics] == [0, TOPIC_DENIED]
    fetch_offsets = m.OffsetFetchRequest(
        group_id="g1",
        topics=[
            m.OffsetFetchRequest_OffsetFetchRequestTopic(name=n, partition_indexes=[0])
            for n in ("orders", "secret")
        ],
    )
    for version in (1, 7):
        r = h.call(offset_fetch, fetch_offsets, version)
        by = {t.name: t.partitions[0] for t in r.topics}
        assert (by["orders"].committed_offset, by["orders"].error_code) == (1, 0)
        assert (by["secret"].committed_offset, by["secret"].error_code) == (-1, TOPIC_DENIED)
    # All committed partitions (null topics): unauthorized topics are left out.
    h.call(offset_commit, commit, 8, ADMIN)
    r = h.call(offset_fetch, m.OffsetFetchRequest(group_id="g1", topics=None), 7)
    assert [t.name for t in r.topics] == ["orders"]
    r = h.call(
        offset_fetch,
        m.OffsetFetchRequest(
            groups=[
                m.OffsetFetchRequest_OffsetFetchRequestGroup(group_id=g, topics=None) for g in ("g1", "other")
            ]
        ),
        8,
    )
    assert [(g.group_id, g.error_code, [t.name for t in g.topics]) for g in r.groups] == [
        ("g1", 0, ["orders"]),
        ("other", GROUP_DENIED, []),
    ]
    # v1 carries a denied group on every partition asked for; v2+ at the top.
    fetch_other = m.OffsetFetchRequest(group_id="other", topics=fetch_offsets.topics)
    assert {t.partitions[0].error_code for t in h.call(offset_fetch, fetch_other, 1).topics} == {GROUP_DENIED}
    r = h.call(offset_fetch, fetch_other, 5)
    assert (r.error_code, r.topics) == (GROUP_DENIED, [])


def test_group_admin_apis(h):
    commit = m.OffsetCommitRequest(
        group_id="g1",
        generation_id_or_member_epoch=-1,
        member_id="",
        topics=[
            m.OffsetCommitRequest_OffsetCommitRequestTopic(
                name=n,
                partitions=[
                    m.OffsetCommitRequest_OffsetCommitRequestPartition(partition_index=0, committed_offset=1)
                ],
            )
            for n in ("orders", "secret")
        ],
    )
    for g in ("g1", "g2", "h1"):
        # A member-less group is listed while it has committed offsets only once it has
        # existed in the coordinator: join (at once: no initial rebalance delay) and leave.
        joined = h.call(join_group, join_req(g), 3, ADMIN)
        assert joined.error_code == 0
        assert (
            h.call(
                leave_group, m.LeaveGroupRequest(group_id=g, member_id=joined.member_id), 2, ADMIN
            ).error_code
            == 0
        )
        commit.group_id = g
        assert h.call(offset_commit, commit, 8, ADMIN).topics[0].partitions[0].error_code == 0
    h.allow(ALICE, "DESCRIBE", "GROUP", "g", "PREFIXED")
    r = h.call(list_groups, m.ListGroupsRequest(), 4)
    assert sorted(g.group_id for g in r.groups) == ["g1", "g2"]
    assert sorted(g.group_id for g in h.call(list_groups, m.ListGroupsRequest(), 4, ADMIN).groups) == [
        "g1",
        "g2",
        "h1",
    ]
    h.allow(BOB, "DESCRIBE", "CLUSTER", "kafka-cluster")
    assert sorted(g.group_id for g in h.call(list_groups, m.ListGroupsRequest(), 4, BOB).groups) == [
        "g1",
        "g2",
        "h1",
    ]

    r = h.call(
        describe_groups, m.DescribeGroupsRequest(groups=["g1", "h1"], include_authorized_operations=True), 5
    )
    assert [(g.group_id, g.error_code) for g in r.groups] == [("g1", 0), ("h1", GROUP_DENIED)]
    assert r.groups[0].authorized_operations == 1 << int(AclOperation.DESCRIBE)

    assert [
        x.error_code for x in h.call(delete_groups, m.DeleteGroupsRequest(groups_names=["g2"]), 2).results
    ] == [GROUP_DENIED]
    h.allow(ALICE, "DELETE", "GROUP", "g2")
    assert [
        x.error_code for x in h.call(delete_groups, m.DeleteGroupsRequest(groups_names=["g2"]), 2).results
    ] == [0]

    od = m.OffsetDeleteRequest(
        group_id="g1",
        topics=[
            m.OffsetDeleteRequest_OffsetDeleteRequestTopic(
                name=n, partitions=[m.OffsetDeleteRequest_OffsetDeleteRequestPartition(partition_index=0)]
            )
            for n in ("orders", "secret")
        ],
    )
    assert h.call(offset_delete, od, 0).error_code == GROUP_DENIED
    h.allow(ALICE, "DELETE", "GROUP", "g1")
    h.allow(ALICE, "READ", "TOPIC", "orders")
    r = h.call(offset_delete, od, 0)
    assert r.error_code == 0
    assert [t.partitions[0].error_code for t in r.topics] == [0, TOPIC_DENIED]
    left = h.state.offsets.fetch("g1", None)
    assert ("secret", 0) in left and ("orders", 0) not in left


def test_topic_admin_apis(h):
    def create(name: str, version: int = 7) -> Any:
        req = m.CreateTopicsRequest(
            topics=[m.CreateTopicsRequest_CreatableTopic(name=name, num_partitions=1, replication_factor=1)]
        )
        return h.call(create_topics, req, version).topics[0]

    r = create("t1")
    assert (r.error_code, r.error_message) == (TOPIC_DENIED, "Authorization failed.")
    h.allow(ALICE, "CREATE", "TOPIC", "t", "PREFIXED")
    r = create("t1")
    # Created, but its configs are not shown without DESCRIBE_CONFIGS.
    assert (r.error_code, r.topic_config_error_code, r.configs, r.num_partitions) == (0, TOPIC_DENIED, [], 1)
    h.allow(ALICE, "DESCRIBE_CONFIGS", "TOPIC", "t2")
    r = create("t2")
    assert (r.error_code, r.topic_config_error_code) == (0, 0) and r.configs

    cp = m.CreatePartitionsRequest(
        topics=[m.CreatePartitionsRequest_CreatePartitionsTopic(name="t1", count=3, assignments=None)],
        timeout_ms=5000,
    )
    assert h.call(create_partitions, cp, 2).results[0].error_code == TOPIC_DENIED
    h.allow(ALICE, "ALTER", "TOPIC", "t1")
    assert h.call(create_partitions, cp, 2).results[0].error_code == 0

    dr = m.DeleteRecordsRequest(
        topics=[
            m.DeleteRecordsRequest_DeleteRecordsTopic(
                name="t1",
                partitions=[m.DeleteRecordsRequest_DeleteRecordsPartition(partition_index=0, offset=0)],
            )
        ],
        timeout_ms=5000,
    )
    assert h.call(delete_records, dr, 2).topics[0].partitions[0].error_code == TOPIC_DENIED

    # DeleteTopics: DESCRIBE first (no existence leak), then existence, then DELETE.
    def delete(*names: str, version: int = 5) -> list[tuple[str | None, int]]:
        req = m.DeleteTopicsRequest(topic_names=list(names), timeout_ms=5000)
        return [(x.name, x.error_code) for x in h.call(delete_topics, req, version).responses]

    assert delete("secret", "ghost") == [("secret", TOPIC_DENIED), ("ghost", TOPIC_DENIED)]
    # t1: ALTER implies DESCRIBE; "t-ghost": CREATE does not imply DESCRIBE.
    h.allow(ALICE, "DESCRIBE", "TOPIC", "t-ghost")
    assert delete("t1", "t-ghost") == [
        ("t1", TOPIC_DENIED),
        ("t-ghost", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code),
    ]
    # By id: the name is hidden without DESCRIBE.
    secret_id = h.state.topics.get("secret").topic_id.bytes
    r = h.call(
        delete_topics,
        m.DeleteTopicsRequest(
            topics=[m.DeleteTopicsRequest_DeleteTopicState(name=None, topic_id=secret_id)], timeout_ms=5000
        ),
        6,
    )
    assert (r.responses[0].name, r.responses[0].error_code) == (None, TOPIC_DENIED)
    h.allow(ALICE, "DELETE", "TOPIC", "t1")
    assert delete("t1") == [("t1", 0)]
    # DELETE on the cluster deletes any topic.
    h.allow(BOB, "DELETE", "CLUSTER", "kafka-cluster")
    r = h.call(delete_topics, m.DeleteTopicsRequest(topic_names=["secret"], timeout_ms=5000), 5, BOB)
    assert r.responses[0].error_code == 0
    assert h.state.topics.get("secret") is None


def test_config_apis(h):
    resources = [
        m.DescribeConfigsRequest_DescribeConfigsResource(
            resource_type=2, resource_name="orders", configuration_keys=None
        ),
        m.DescribeConfigsRequest_DescribeConfigsResource(
            resource_type=4, resource_name="", configuration_keys=None
        ),
        m.DescribeConfigsRequest_DescribeConfigsResource(
            resource_type=32, resource_name="g1", configuration_keys=None
        ),
    ]
    r = h.call(describe_configs, m.DescribeConfigsRequest(resources=resources), 4)
    assert [x.error_code for x in r.results] == [TOPIC_DENIED, CLUSTER_DENIED, GROUP_DENIED]
    h.allow(ALICE, "ALTER_CONFIGS", "TOPIC", "orders")  # implies DESCRIBE_CONFIGS
    h.allow(ALICE, "DESCRIBE_CONFIGS", "CLUSTER", "kafka-cluster")
    r = h.call(describe_configs, m.DescribeConfigsRequest(resources=resources[:2]), 4)
    assert [x.error_code for x in r.results] == [0, 0] and r.results[0].configs

    def alter(module: Any, rtype: int, name: str, version: int) -> int:
        if module is incremental_alter_configs:
            req = m.IncrementalAlterConfigsRequest(
                resources=[
                    m.IncrementalAlterConfigsRequest_AlterConfigsResource(
                        resource_type=rtype,
                        resource_name=name,
                        configs=[
                            m.IncrementalAlterConfigsRequest_AlterableConfig(
                                name="retention.ms", config_operation=0, value="1000"
                            )
                        ],
                    )
                ]
            )
        else:
            req = m.AlterConfigsRequest(
                resources=[
                    m.AlterConfigsRequest_AlterConfigsResource(
                        resource_type=rtype,
                        resource_name=name,
                        configs=[m.AlterConfigsRequest_AlterableConfig(name="retention.ms", value="1000")],
                    )
                ]
            )
        return h.call(module, req, version).responses[0].error_code

    for module, version in ((incremental_alter_configs, 1), (alter_configs_handler, 2)):
        assert alter(module, 2, "orders", version) == 0
        assert alter(module, 2, "secret", version) == TOPIC_DENIED
        assert alter(module, 4, "", version) == CLUSTER_DENIED
    assert h.state.topics.describe_configs("orders")["retention.ms"].value == "1000"


def test_cluster_apis(h):
    r = h.call(describe_log_dirs, m.DescribeLogDirsRequest(topics=None), 4)
    assert (r.error_code, r.results) == (CLUSTER_DENIED, [])
    r = h.call(describe_cluster, m.DescribeClusterRequest(include_cluster_authorized_operations=True), 0)
    assert (r.error_code, r.cluster_authorized_operations) == (0, 0)
    h.allow(ALICE, "DESCRIBE", "CLUSTER", "kafka-cluster")
    h.allow(ALICE, "ALTER", "CLUSTER", "kafka-cluster")
    assert h.call(describe_log_dirs, m.DescribeLogDirsRequest(topics=None), 4).error_code == 0
    r = h.call(describe_cluster, m.DescribeClusterRequest(include_cluster_authorized_operations=True), 0)
    assert r.cluster_authorized_operations == (1 << 7) | (1 << 8)

    # InitProducerId: IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
    req = m.InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1
    )
    assert h.call(init_producer_id, req, 4).error_code == CLUSTER_DENIED
    h.allow(ALICE, "WRITE", "TOPIC", "logs-", "PREFIXED")
    r = h.call(init_producer_id, req, 4)
    assert r.error_code == 0 and r.producer_id >= 0
    assert h.call(init_producer_id, req, 4, BOB).error_code == CLUSTER_DENIED
    h.allow(BOB, "IDEMPOTENT_WRITE", "CLUSTER", "kafka-cluster")
    assert h.call(init_producer_id, req, 4, BOB).error_code == 0

    dp = m.DescribeProducersRequest(
        topics=[m.DescribeProducersRequest_TopicRequest(name="orders", partition_indexes=[0, 1])]
    )
    r = h.call(describe_producers, dp, 0)
    assert [p.error_code for p in r.topics[0].partitions] == [TOPIC_DENIED, TOPIC_DENIED]
    h.allow(ALICE, "READ", "TOPIC", "orders")
    assert [p.error_code for p in h.call(describe_producers, dp, 0).topics[0].partitions] == [0, 0]


def test_hosts_are_matched(h):
    assert h.authorizer.create(
        [AclBinding.of("TOPIC", "orders", "LITERAL", ALICE, "10.1.1.1", "WRITE", "ALLOW")]
    ) == [None]
    assert (
        h.call(produce, produce_req("orders"), 9, host="10.1.1.1")
        .responses[0]
        .partition_responses[0]
        .error_code
        == 0
    )
    r = h.call(produce, produce_req("orders"), 9, host="127.0.0.1")
    assert r.responses[0].partition_responses[0].error_code == TOPIC_DENIED


def test_allow_everyone_if_no_acl_found(streamcore_broker_factory, tmp_path):
    h = Harness(
        streamcore_broker_factory(), AclAuthorizer(tmp_path / "acls", allow_everyone_if_no_acl_found=True)
    )
    h.create_topic("open")
    h.create_topic("closed")
    h.allow(BOB, "WRITE", "TOPIC", "closed")
    r = h.call(produce, produce_req("open", "closed"), 9)
    assert [t.partition_responses[0].error_code for t in r.responses] == [0, TOPIC_DENIED]


def test_no_authorizer_changes_nothing(streamcore_broker_factory):
    h = Harness(streamcore_broker_factory(), None)
    h.create_topic("orders")
    r = h.call(produce, produce_req("orders", "auto"), 9, "User:nobody")
    assert [t.partition_responses[0].error_code for t in r.responses] == [0, 0]
    r = h.call(metadata, m.MetadataRequest(topics=None), 12, "User:nobody")
    assert sorted(t.name for t in r.topics) == ["auto", "orders"]
    assert uuid.UUID(bytes=r.topics[0].topic_id)
