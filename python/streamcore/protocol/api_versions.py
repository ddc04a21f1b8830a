"""What the broker advertises in ApiVersions, and per-API facts derived from the specs.

``ADVERTISED`` is hand-written: each range starts at the lowest version we can
decode and answer, because older clients test for exact versions in the answer, and
stops where a newer version would need a feature we do not have (mostly topic IDs
replacing topic names). The clients this table is checked against:

* librdkafka 2.x, including Debian's 2.0.x in kcat (before 2.11.1 it tests ranges
  for exact versions): Produce v0 must be inside the range or it turns gzip/snappy/lz4
  off; Produce >= 3 with Fetch >= 4 enables message format v2; Produce >= 7 with
  Fetch >= 10 enables zstd; InitProducerId v0 enables idempotence; its consumer
  group feature needs FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup
  ranges that contain v0, OffsetCommit overlapping v1-2 and OffsetFetch containing v1.
* kafka-python 3.x infers the broker version from the highest matching probe in
  ``kafka/protocol/broker_version_data.py``; ListOffsets v10 makes it infer 4.0, so
  it keeps idempotence, zstd and headers on.
* aiokafka 0.14 infers 2.4+ from Produce max >= 8, then sends fixed versions:
  Metadata v0/v1, ListOffsets v1+, OffsetCommit v2, OffsetFetch v1+, Fetch v4+.
* the Java client 3.x/4.x negotiates the highest common version; 4.x needs at least
  Produce 3, Fetch 4, ListOffsets 1, OffsetCommit 2, OffsetFetch 1, CreateTopics 2,
  DeleteTopics 1, DescribeConfigs 1, OffsetForLeaderEpoch 2.
"""

from __future__ import annotations

from typing import Any

from streamcore.protocol.messages import (
    REQUESTS,
    RESPONSES,
    ApiVersionsResponse_ApiVersion,
)

__all__ = [
    "ADVERTISED",
    "API_NAMES",
    "REQUEST_CLASSES",
    "RESPONSE_CLASSES",
    "FLEXIBLE_FROM",
    "flexible_from",
    "is_supported",
    "api_version_entries",
]

REQUEST_CLASSES: dict[int, Any] = dict(REQUESTS)
"""Generated request class per api key."""

RESPONSE_CLASSES: dict[int, Any] = dict(RESPONSES)
"""Generated response class per api key."""

API_NAMES: dict[int, str] = {k: c.__name__.removesuffix("Request") for k, c in REQUESTS.items()}
"""Api key -> name ("Produce", "Fetch", ...)."""

flexible_from: dict[int, int] = {
    k: c.FLEXIBLE_FROM for k, c in sorted(REQUEST_CLASSES.items()) if c.FLEXIBLE_FROM is not None
}
"""Api key -> first flexible version (request header v2, compact encodings, tagged fields)."""

FLEXIBLE_FROM = flexible_from

# api key -> (min, max) version the broker answers.
ADVERTISED: dict[int, tuple[int, int]] = {
    # Produce: v0-2 only so librdkafka < 2.11.1 keeps compression on (KAFKA-18659; Kafka
    # 4.x advertises them for the same reason). They carry message format v0/v1, which
    # we do not store: like Kafka 4.x, the broker should reject a v0-2 request with
    # UNSUPPORTED_VERSION. v13 replaces topic names with topic IDs.
    0: (0, 12),
    # Fetch: v4 is the first version whose records are message format v2 (Kafka 4.0's
    # baseline too); >= 10 lets librdkafka use zstd. v13 replaces names with topic IDs.
    1: (4, 12),
    # ListOffsets: v0 is gone from the spec; v1 is what librdkafka probes for
    # time-based lookups. v10 (KIP-1075 timeout field) makes kafka-python infer 4.0;
    # v11 adds an earliest-pending-upload query for tiered storage, which we lack.
    2: (1, 10),
    # Metadata: every spec version; aiokafka bootstraps with v0. Topic IDs in v10+
    # responses may be the zero UUID.
    3: (0, 13),
    # OffsetCommit: v2 is the spec's floor (librdkafka wants overlap with v1-2); v10
    # switches to topic IDs.
    8: (2, 9),
    # OffsetFetch: v1 is the spec's floor (librdkafka wants v1); v10 uses topic IDs.
    9: (1, 9),
    # FindCoordinator: from v0 (librdkafka feature probe); v4+ batches keys.
    10: (0, 6),
    # JoinGroup, Heartbeat, LeaveGroup, SyncGroup: full ranges; v0 is librdkafka's probe.
    11: (0, 9),
    12: (0, 4),
    13: (0, 5),
    14: (0, 5),
    # DescribeGroups, ListGroups: full ranges.
    15: (0, 6),
    16: (0, 5),
    # SaslHandshake: v0 is followed by raw SASL tokens (kafka-python and older clients
    # when they negotiate it), v1 by SaslAuthenticate. On a listener without SASL it
    # answers UNSUPPORTED_SASL_MECHANISM with no mechanisms, so a client configured for
    # SASL fails at once instead of waiting for an exchange.
    17: (0, 1),
    # SaslAuthenticate: v1 carries the session lifetime (KIP-368), v2 is flexible.
    36: (0, 2),
    # ApiVersions: full range; a request above v4 gets the v0 downgrade answer.
    18: (0, 4),
    # CreateTopics, DeleteTopics, DescribeConfigs: spec floors (Kafka 4.0's too) to max.
    19: (2, 7),
    20: (1, 6),
    32: (1, 4),
    # InitProducerId: v0 is librdkafka's idempotence probe; v6 adds two-phase commit
    # fields (KIP-939) we do not implement.
    22: (0, 5),
    # OffsetForLeaderEpoch: spec floor to max.
    23: (2, 4),
    # DescribeCluster: full range.
    60: (0, 2),
    # Admin APIs, each over its whole spec range (Kafka 4.0's ranges; DescribeLogDirs v0
    # is gone from the spec, v4 adds the volume's total and usable bytes).
    21: (0, 2),  # DeleteRecords
    33: (0, 2),  # AlterConfigs
    35: (1, 4),  # DescribeLogDirs
    37: (0, 3),  # CreatePartitions
    42: (0, 2),  # DeleteGroups
    44: (0, 1),  # IncrementalAlterConfigs
    47: (0, 0),  # OffsetDelete
    61: (0, 0),  # DescribeProducers
    # DescribeClientQuotas, AlterClientQuotas: full ranges (v1 is flexible).
    48: (0, 1),
    49: (0, 1),
    50: (0, 0),  # DescribeUserScramCredentials
    51: (0, 0),  # AlterUserScramCredentials
    # DescribeAcls, CreateAcls, DeleteAcls: v1-v3 (Kafka 4 dropped v0); v2 is flexible.
    # Without an authorizer they answer SECURITY_DISABLED, as Kafka does.
    29: (1, 3),
    30: (1, 3),
    31: (1, 3),
    # Transactions, protocol version 1: EndTxn v5 and TxnOffsetCommit v5 belong to
    # KIP-890 part 2 (an epoch bump per transaction), which is not implemented.
    # AddPartitionsToTxn v4-5 are the broker-to-broker batched/verify-only forms.
    24: (0, 5),  # AddPartitionsToTxn
    25: (0, 4),  # AddOffsetsToTxn
    26: (0, 4),  # EndTxn
    28: (0, 4),  # TxnOffsetCommit
    65: (0, 0),  # DescribeTransactions
    66: (0, 2),  # ListTransactions
}


def is_supported(api_key: int, api_version: int) -> bool:
    """True if the broker advertises ``api_version`` of ``api_key``."""
    rng = ADVERTISED.get(api_key)
    return rng is not None and rng[0] <= api_version <= rng[1]


def api_version_entries() -> list[ApiVersionsResponse_ApiVersion]:
    """The advertised ranges as ApiVersionsResponse entries, sorted by api key."""
    return [
        ApiVersionsResponse_ApiVersion(api_key=k, min_version=lo, max_version=hi)
        for k, (lo, hi) in sorted(ADVERTISED.items())
    ]


def _check_table() -> None:
    # A range the generated classes cannot decode would be a broken promise to clients.
    for key, (lo, hi) in ADVERTISED.items():
        req, resp = REQUEST_CLASSES[key], RESPONSE_CLASSES[key]
        if not (
            req.MIN_VERSION <= lo <= hi <= req.MAX_VERSION
            and resp.MIN_VERSION <= lo <= hi <= resp.MAX_VERSION
        ):
            raise RuntimeError(f"ADVERTISED[{key}] = {(lo, hi)} is outside the generated classes' versions")


_check_table()
