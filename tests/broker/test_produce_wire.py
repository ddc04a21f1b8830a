"""Produce on the wire: acks modes, refusals with the right error code, idempotent sequences."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

from streamcore.errors import ErrorCode
from streamcore.protocol import messages as m

from .wire_client import (
    WireClient,
    batch,
    create_topic,
    fetch_request,
    fetched_partition,
    produce,
    produce_request,
    records_of,
)


def _log_records(
    c: WireClient, topic: str, partition: int = 0
) -> list[tuple[int, bytes | None, bytes | None]]:
    resp = c.request(fetch_request(topic, partition, 0), 12)
    part = fetched_partition(resp, topic, partition)
    assert part.error_code == 0
    return records_of(part.records)


def test_produce_acks_1_and_all_answer_with_consecutive_base_offsets(client: WireClient) -> None:
    create_topic(client, "acks")
    first = produce(client, "acks", 0, batch([b"a", b"b", b"c"]), acks=1)
    second = produce(client, "acks", 0, batch([b"d"]), acks=-1, version=3)
    assert (first.error_code, first.base_offset) == (0, 0)
    assert (second.error_code, second.base_offset) == (0, 3)
    assert _log_records(client, "acks") == [
        (0, None, b"a"),
        (1, None, b"b"),
        (2, None, b"c"),
        (3, None, b"d"),
    ]


def test_produce_acks_0_sends_no_answer_but_appends(client: WireClient) -> None:
    create_topic(client, "acks0")
    for i in range(3):
        client.send(produce_request("acks0", 0, batch([b"v%d" % i]), acks=0), 9, expect_response=False)
    # The next answer on the connection is the metadata one: acks=0 produced none.
    cid = client.send(m.MetadataRequest(topics=[m.MetadataRequest_MetadataRequestTopic(name="acks0")]), 12)
    got_cid, meta = client.recv()
    assert got_cid == cid
    assert [t.name for t in meta.topics] == ["acks0"]
    assert _log_records(client, "acks0") == [(0, None, b"v0"), (1, None, b"v1"), (2, None, b"v2")]


def test_produce_to_a_partition_that_does_not_exist_is_unknown_topic_or_partition(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    b = streamcore_broker_factory(auto_create=False)
    with WireClient(b.bootstrap_servers) as c:
        create_topic(c, "one", partitions=1)
        missing_partition = produce(c, "one", 5, batch([b"x"]))
        missing_topic = produce(c, "nope", 0, batch([b"x"]))
    assert missing_partition.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code
    assert missing_topic.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.code


def test_batch_with_a_bad_crc_is_corrupt_message_and_not_stored(client: WireClient) -> None:
    create_topic(client, "crc")
    good = bytearray(batch([b"hello", b"world"]))
    good[-1] ^= 0xFF  # inside the CRC-covered records region
    resp = produce(client, "crc", 0, bytes(good))
    assert resp.error_code == ErrorCode.CORRUPT_MESSAGE.code
    assert _log_records(client, "crc") == []


def _message_set_v1(key: bytes, value: bytes, timestamp_ms: int) -> bytes:
    """One legacy message (magic 1) in a message set: offset, size, crc32, magic, attributes, ..."""
    body = struct.pack(">bbq", 1, 0, timestamp_ms)
    body += struct.pack(">i", len(key)) + key + struct.pack(">i", len(value)) + value
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def test_magic_1_message_set_is_unsupported_for_message_format(client: WireClient) -> None:
    create_topic(client, "magic1")
    resp = produce(client, "magic1", 0, _message_set_v1(b"k", b"legacy value", 1_700_000_000_000), version=7)
    assert resp.error_code == ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT.code
    assert _log_records(client, "magic1") == []


def test_batch_over_max_message_bytes_is_message_too_large(
    streamcore_broker_factory: Callable[..., Any],
) -> None:
    b = streamcore_broker_factory(max_message_bytes=2048)
    with WireClient(b.bootstrap_servers) as c:
        create_topic(c, "big")
        small = produce(c, "big", 0, batch([b"s" * 100]))
        big = produce(c, "big", 0, batch([b"x" * 3000]))
        assert _log_records(c, "big") == [(0, None, b"s" * 100)]
    assert small.error_code == 0
    assert big.error_code == ErrorCode.MESSAGE_SIZE_TOO_LARGE.code


def _init_producer_id(c: WireClient) -> tuple[int, int]:
    resp = c.request(m.InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000), 4)
    assert resp.error_code == 0
    assert resp.producer_id >= 0
    return resp.producer_id, resp.producer_epoch


def test_idempotent_duplicate_batch_gets_its_original_offset_and_is_stored_once(client: WireClient) -> None:
    create_topic(client, "idem")
    pid, epoch = _init_producer_id(client)
    first = batch([b"a", b"b"], producer_id=pid, producer_epoch=epoch, base_sequence=0)
    second = batch([b"c"], producer_id=pid, producer_epoch=epoch, base_sequence=2)
    r1 = produce(client, "idem", 0, first)
    r2 = produce(client, "idem", 0, second)
    again = produce(client, "idem", 0, first)  # a retry after a lost answer
    assert (r1.error_code, r1.base_offset) == (0, 0)
    assert (r2.error_code, r2.base_offset) == (0, 2)
    assert (again.error_code, again.base_offset) == (0, 0)
    assert _log_records(client, "idem") == [(0, None, b"a"), (1, None, b"b"), (2, None, b"c")]


def test_idempotent_sequence_gap_is_out_of_order_sequence_number(client: WireClient) -> None:
    create_topic(client, "gap")
    pid, epoch = _init_producer_id(client)
    ok = produce(
        client, "gap", 0, batch([b"a", b"b"], producer_id=pid, producer_epoch=epoch, base_sequence=0)
    )
    gap = produce(client, "gap", 0, batch([b"z"], producer_id=pid, producer_epoch=epoch, base_sequence=5))
    assert ok.error_code == 0
    assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code
    assert _log_records(client, "gap") == [(0, None, b"a"), (1, None, b"b")]
