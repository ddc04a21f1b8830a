"""How ``poll`` turns buffered record batches into ConsumerRecords (``ConsumerCore.collect``).

No broker: decoded batches are put in a partition's buffer by hand. A batch taken
whole is read by iterating it (its records built one at a time), a batch taken in
part through its ``records`` list; both must give the same records and positions,
whatever ``max_records`` cuts, wherever the position starts and with holes in the
offsets (a compacted or truncated log).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from streamcore.client.config import build_config
from streamcore.client.consumer import ConsumerCore
from streamcore.client.fetcher import PartitionState
from streamcore.client.types import ConsumerRecord, TopicPartition
from streamcore.codec import decode_batches, encode_batch

TP = TopicPartition("t", 3)


def _batches(rng: random.Random) -> tuple[list[Any], list[ConsumerRecord]]:
    """Decoded batches with gaps between them, and every record they hold."""
    batches, expected = [], []
    base = rng.randrange(0, 5)
    for _ in range(rng.randrange(1, 6)):
        n = rng.randrange(1, 12)
        values = [rng.randbytes(rng.randrange(0, 6)) for _ in range(n)]
        keys = [rng.choice([None, rng.randbytes(3)]) for _ in range(n)]
        headers = [rng.choice([None, [("h", b"v")]]) for _ in range(n)]
        data = encode_batch(values, keys, headers, [1000 + i for i in range(n)], base_offset=base)
        (batch,) = decode_batches(data)
        batches.append(batch)
        for i in range(n):
            expected.append(
                ConsumerRecord(
                    TP.topic, TP.partition, base + i, 1000 + i, keys[i], values[i], headers[i] or []
                )
            )
        base += n + rng.randrange(0, 3)  # offsets missing between batches
    return batches, expected


def _core(**settings: Any) -> ConsumerCore:
    return ConsumerCore(build_config("consumer", "127.0.0.1:1", None, settings))


@pytest.mark.parametrize("seed", range(40))
def test_collect_returns_every_record_once_in_order_whatever_the_cuts(seed: int) -> None:
    rng = random.Random(seed)
    batches, expected = _batches(rng)
    core = _core()
    st = PartitionState(TP)
    core.states[TP] = st
    # Start at the first offset, before it (records deleted), or inside the log.
    start = rng.choice([batches[0].base_offset, 0, expected[rng.randrange(len(expected))].offset])
    st.position = start
    # As the fetcher buffers them: batches that hold the position or come after it.
    st.batches.extend(b for b in batches if b.last_offset >= start)
    st.buffered = sum(1 for r in expected if r.offset >= start)
    st.fetch_offset = batches[-1].last_offset + 1
    if rng.random() < 0.3:
        for b in batches:
            assert len(b.records) == len(b)  # some batches' records already built
    got: list[ConsumerRecord] = []
    for _ in range(200):
        chunk = core.collect(rng.randrange(1, 15))
        if not chunk:
            break
        got.extend(chunk)
        # The position is always just past the last record returned.
        assert st.position == chunk[-1].offset + 1 or not st.batches
    want = [r for r in expected if r.offset >= start]
    assert got == want
    assert all(type(r) is ConsumerRecord for r in got)
    assert st.position == batches[-1].last_offset + 1
    assert not st.batches and st.buffered == 0


def test_collect_runs_the_deserializers_on_whole_and_partial_batches() -> None:
    values = [b"1", None, b"3", b"4"]
    keys = [b"a", b"b", None, b"d"]
    (batch,) = decode_batches(encode_batch(values, keys, None, [5, 6, 7, 8], base_offset=10))
    (second,) = decode_batches(encode_batch(values, keys, None, [5, 6, 7, 8], base_offset=14))
    core = _core(key_deserializer=lambda k: k.decode().upper(), value_deserializer=lambda v: int(v))
    st = PartitionState(TP)
    core.states[TP] = st
    st.position = 10
    st.batches.extend([batch, second])
    st.buffered = 8
    whole = core.collect(5)  # the first batch whole, then one record of the second
    rest = core.collect(10)
    want_values = [1, None, 3, 4]
    want_keys = ["A", "B", None, "D"]
    assert [(r.offset, r.key, r.value) for r in whole + rest] == [
        (10 + i, want_keys[i % 4], want_values[i % 4]) for i in range(8)
    ]
    assert st.position == 18
