"""Transaction state while the cleaner walks a log (Kafka's ``CleanedTransactionMetadata``).

The twin of ``rust/core/src/cleaner/txn.rs``; see its module docs for the rules:
records of aborted transactions (from the partition's aborted-transaction index)
go; a COMMIT/ABORT marker may go once no batch of its transaction was seen in this
pass; an ABORT marker kept because its transaction still had batches is reported as
the output's index entry. Each producer's aborted transactions are matched by offset
range (a batch is aborted only while below its transaction's marker), which gives
Kafka's answers on a consistent index and cannot take a later committed transaction
for an aborted one if an index entry outlived its marker.
"""

from __future__ import annotations

from collections.abc import Iterable

from streamcore._reference._batch_header import TRANSACTIONAL_FLAG

__all__ = ["AbortedTxn", "TxnTracker", "control_type"]

#: (producer id, first offset, offset of the ABORT marker)
AbortedTxn = tuple[int, int, int]

_CONTROL_ABORT = 0
_CONTROL_COMMIT = 1


def control_type(key: bytes | None) -> int | None:
    """The type a control record key names (``int16 version, int16 type``); None when
    the key is missing or shorter than 4 bytes."""
    if key is None or len(key) < 4:
        return None
    return int.from_bytes(key[2:4], "big", signed=True)


class _ProducerTxns:
    __slots__ = ("ended", "entries", "next", "seen")

    def __init__(self) -> None:
        self.entries: list[AbortedTxn] = []
        self.seen: list[bool] = []
        self.ended: list[bool] = []
        #: entries [0, next) have started (first offset reached)
        self.next = 0

    def current(self, offset: int) -> int | None:
        entries = self.entries
        while self.next < len(entries) and entries[self.next][1] <= offset:
            self.next += 1
        return self.next - 1 if self.next else None


class TxnTracker:
    """What the walk knows about transactions, over ``aborted`` (any order)."""

    def __init__(self, aborted: Iterable[AbortedTxn]) -> None:
        self._producers: dict[int, _ProducerTxns] = {}
        self._committed: set[int] = set()
        for t in sorted(set(aborted), key=lambda t: (t[0], t[1], t[2])):
            p = self._producers.get(t[0])
            if p is None:
                p = self._producers[t[0]] = _ProducerTxns()
            p.entries.append(t)
            p.seen.append(False)
            p.ended.append(False)

    def on_data_batch(self, attributes: int, producer_id: int, last_offset: int) -> bool:
        """A data batch was read: True when it belongs to an aborted transaction."""
        if not attributes & TRANSACTIONAL_FLAG:
            return False
        p = self._producers.get(producer_id)
        if p is not None:
            i = p.current(last_offset)
            if i is not None and last_offset < p.entries[i][2] and not p.ended[i]:
                p.seen[i] = True
                return True
        self._committed.add(producer_id)
        return False

    def on_control_batch(
        self, producer_id: int, base_offset: int, last_offset: int, has_records: bool, first_key: bytes | None
    ) -> tuple[bool, AbortedTxn | None]:
        """A control batch was read: whether it may be discarded, and the aborted
        transaction whose index entry stays with it."""
        p = self._producers.get(producer_id)
        i = p.current(last_offset) if p is not None else None
        if not has_records:
            # Emptied by an earlier pass: its transaction's data was gone then.
            return True, None
        kind = control_type(first_key)
        if kind == _CONTROL_ABORT:
            if p is not None and i is not None and not p.ended[i] and p.entries[i][2] >= base_offset:
                p.ended[i] = True
                if p.seen[i]:
                    return False, p.entries[i]
            return True, None
        if kind == _CONTROL_COMMIT:
            if producer_id in self._committed:
                self._committed.discard(producer_id)
                return False, None
            return True, None
        return False, None

    def is_aborted(self, attributes: int, producer_id: int, last_offset: int) -> bool:
        """Whether a data batch is aborted, recording nothing (the offset map's pass)."""
        if not attributes & TRANSACTIONAL_FLAG:
            return False
        p = self._producers.get(producer_id)
        if p is None:
            return False
        i = p.current(last_offset)
        return i is not None and last_offset < p.entries[i][2]
