"""The record shape every interop test produces, and the checks every consume must pass.

Record ``i`` has key ``k-{i}``, value ``v-{i}`` and header ``seq = "{i}"`` (the format of
interop/java's ClientCheck). A consumed record is (partition, offset, key, value, seq),
with seq None when the client cannot send per-record headers (kcat).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

Consumed = tuple[int, int, bytes | None, bytes | None, int | None]

MESSAGES = 10_000
MORE = 100


def key(i: int) -> bytes:
    return b"k-%d" % i


def value(i: int) -> bytes:
    return b"v-%d" % i


def seq_of(consumed: Consumed) -> int:
    """The record number, from the key (the header is checked separately)."""
    k = consumed[2]
    assert k is not None and k.startswith(b"k-"), f"unexpected key {k!r}"
    return int(k[2:])


def check_consumed(records: Sequence[Consumed], expected: Iterable[int], *, what: str) -> None:
    """Exactly the records ``expected``, each intact, in order within each partition."""
    want = sorted(expected)
    seqs = [seq_of(r) for r in records]
    counts = Counter(seqs)
    dups = sorted(s for s, n in counts.items() if n > 1)
    assert not dups, f"{what}: {len(dups)} records delivered more than once, e.g. {dups[:5]}"
    missing = sorted(set(want) - set(seqs))
    extra = sorted(set(seqs) - set(want))
    assert not missing and not extra, (
        f"{what}: {len(records)} records; missing {len(missing)} (e.g. {missing[:5]}), "
        f"unexpected {len(extra)} (e.g. {extra[:5]})"
    )
    last: dict[int, tuple[int, int]] = {}
    for r in records:
        partition, offset, k, v, header_seq = r
        s = seq_of(r)
        assert v == value(s), f"{what}: record {s} has value {v!r}"
        if header_seq is not None:
            assert header_seq == s, f"{what}: record {s} has header seq {header_seq}"
        if partition in last:
            prev_offset, prev_seq = last[partition]
            assert offset > prev_offset, f"{what}: partition {partition} offset {offset} after {prev_offset}"
            assert s > prev_seq, f"{what}: partition {partition} record {s} after {prev_seq} (produce order)"
        last[partition] = (offset, s)


def partitions_used(records: Sequence[Consumed]) -> set[int]:
    return {r[0] for r in records}
