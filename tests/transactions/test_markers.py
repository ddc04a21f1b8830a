"""COMMIT/ABORT control batches: built as Kafka's EndTransactionMarker, decodable by any reader."""

from __future__ import annotations

import pytest

from streamcore.broker.transactions.markers import Marker, build_marker, parse_marker
from streamcore.broker.transactions.read_committed import committed_prefix
from streamcore.codec import decode_batch, encode_batch, validate_batch
from streamcore.codec.batch_header import CONTROL_FLAG, TRANSACTIONAL_FLAG


@pytest.mark.parametrize(("commit", "kind"), [(True, 1), (False, 0)])
def test_marker_layout(commit, kind):
    raw = build_marker(1234, 7, commit=commit, coordinator_epoch=5, timestamp_ms=99)
    info = validate_batch(raw)  # a batch the broker's own validation accepts (CRC, counts)
    assert info.attributes & (CONTROL_FLAG | TRANSACTIONAL_FLAG) == CONTROL_FLAG | TRANSACTIONAL_FLAG
    assert info.attributes & 0x07 == 0  # never compressed
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (1234, 7, -1)
    batch = decode_batch(raw)
    assert batch.is_control and batch.is_transactional
    (record,) = batch.records
    assert record.key == bytes([0, 0, 0, kind])
    assert record.value == b"\x00\x00\x00\x00\x00\x05"
    assert record.timestamp_ms == 99
    assert parse_marker(raw) == Marker(1234, 7, commit, 5, 0)


def test_parse_marker_refuses_other_batches():
    with pytest.raises(ValueError):
        parse_marker(
            encode_batch(
                [b"x"], keys=[b"\x00\x00\x00\x01"], producer_id=1, producer_epoch=0, transactional=True
            )
        )
    with pytest.raises(ValueError):
        # a control batch of another control type (Kafka's leader-change records are type 2)
        parse_marker(
            encode_batch(
                [b"\x00\x00\x00\x00\x00\x00"],
                keys=[b"\x00\x00\x00\x02"],
                producer_id=1,
                producer_epoch=0,
                transactional=True,
                control=True,
            )
        )
    with pytest.raises(ValueError):
        parse_marker(b"")


def test_committed_prefix_keeps_whole_batches_below_the_end():
    a = bytearray(encode_batch([b"1", b"2"]))
    b = bytearray(encode_batch([b"3"]))
    c = bytearray(encode_batch([b"4", b"5", b"6"]))
    # Offsets as the log assigns them: a = 10-11, b = 12, c = 13-15.
    for buf, base in ((a, 10), (b, 12), (c, 13)):
        buf[0:8] = base.to_bytes(8, "big")
    data = bytes(a + b + c)
    assert committed_prefix(data, 16) == (data, 16)
    prefix, upper = committed_prefix(data, 13)
    assert bytes(prefix) == bytes(a + b) and upper == 13
    prefix, upper = committed_prefix(data, 12)
    assert bytes(prefix) == bytes(a) and upper == 12
    prefix, upper = committed_prefix(data, 10)
    assert bytes(prefix) == b"" and upper == -1
