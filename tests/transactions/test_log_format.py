"""``__transaction_state`` records: Kafka's key and value layouts, versions 0 and 1."""

from __future__ import annotations

import struct

import pytest

from streamcore.broker.transactions.log_format import (
    LogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    encode_value_v1,
)
from streamcore.broker.transactions.metadata import TxnState, TxnTransit


def transit(state: TxnState, parts=frozenset(), start: int = 111) -> TxnTransit:
    return TxnTransit(42, -1, 3, -1, 60_000, state, frozenset(parts), start, 222)


def test_key_layout():
    assert encode_key("my-app") == b"\x00\x00\x00\x06my-app"
    assert decode_key(encode_key("é-id")) == "é-id"
    assert decode_key(b"\x00\x01\x00\x01x") is None  # unknown key version: not ours


def test_value_v0_bytes_for_an_ongoing_transaction():
    raw = encode_value(transit(TxnState.ONGOING, {("b", 1), ("a", 2), ("a", 0)}))
    expected = (
        struct.pack(">hqhib", 0, 42, 3, 60_000, 1)
        + struct.pack(">i", 2)  # two topics, sorted
        + b"\x00\x01a"
        + struct.pack(">iii", 2, 0, 2)
        + b"\x00\x01b"
        + struct.pack(">ii", 1, 1)
        + struct.pack(">qq", 222, 111)
    )
    assert raw == expected
    value = decode_value(raw)
    assert value.state is TxnState.ONGOING
    assert value.partitions == {("a", 0), ("a", 2), ("b", 1)}
    assert (value.producer_id, value.producer_epoch, value.timeout_ms) == (42, 3, 60_000)
    assert (value.last_update_ms, value.start_ms) == (222, 111)


def test_empty_has_null_partitions():
    raw = encode_value(transit(TxnState.EMPTY, start=-1))
    assert raw[17:21] == b"\xff\xff\xff\xff"  # after the 17-byte head
    assert decode_value(raw).partitions == frozenset()
    with pytest.raises(ValueError):
        encode_value(transit(TxnState.EMPTY, {("a", 0)}))


@pytest.mark.parametrize("state", list(TxnState))
def test_every_state_round_trips(state):
    parts = frozenset() if state is TxnState.EMPTY else frozenset({("t", 5)})
    value = decode_value(encode_value(transit(state, parts)))
    assert value.transit() == transit(state, parts)


def test_value_v1_with_tagged_fields_is_read():
    value = LogValue(
        42, 3, 60_000, TxnState.PREPARE_COMMIT, frozenset({("t", 0), ("u", 9)}), 222, 111, 41, 43, 2
    )
    raw = encode_value_v1(value)
    assert raw[:2] == b"\x00\x01"
    assert decode_value(raw) == value
    plain = LogValue(42, 3, 60_000, TxnState.EMPTY, frozenset(), 222, -1)
    assert decode_value(encode_value_v1(plain)) == plain


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x02" + b"\x00" * 40,  # unknown version
        struct.pack(">hqhib", 0, 1, 0, 100, 9) + struct.pack(">iqq", -1, 0, 0),  # unknown state
        struct.pack(">hqhib", 0, 1, 0, 100, 1) + struct.pack(">i", 1) + b"\x00\x05ab",  # truncated
    ],
)
def test_malformed_values_raise_value_error(raw):
    with pytest.raises(ValueError):
        decode_value(raw)
