"""The documents a read_committed consumer would see in a run of log batches.

Twin of ``rust/core/src/search/batches.rs``: the indexer hands the index a chunk of
whole batches read from the log, and this turns it into documents, leaving out
control batches and the batches of aborted transactions.
"""

from __future__ import annotations

from collections.abc import Iterable

from streamcore._reference.record_batch import decode_batches

__all__ = ["Doc", "documents"]

_CONTROL = 0x20
_TRANSACTIONAL = 0x10

#: (partition, offset, timestamp_ms, key, value)
Doc = tuple[int, int, int, bytes | None, bytes | None]


def documents(
    data: bytes | bytearray | memoryview,
    partition: int,
    low: int,
    high: int,
    aborted: Iterable[tuple[int, int, int]] = (),
) -> tuple[list[Doc], int | None]:
    """(documents, end) of the records with offsets in ``[low, high)`` of ``data``.

    ``aborted``: (producer id, first offset, last offset) of aborted transactions; a
    transactional batch whose base offset one of its producer's spans covers is left
    out, as are control batches. ``end`` is where reading goes on: the end (last
    offset + 1) of the last whole batch, capped at ``high``; None when ``data`` holds
    no whole batch. Raises CorruptRecordError for a malformed batch.
    """
    spans: dict[int, list[tuple[int, int]]] = {}
    for producer_id, first, last in aborted:
        spans.setdefault(producer_id, []).append((first, last))
    batches = decode_batches(data)
    end = min(batches[-1].last_offset + 1, high) if batches else None
    docs: list[Doc] = []
    for batch in batches:
        if batch.attributes & _CONTROL or batch.last_offset < low or batch.base_offset >= high:
            continue
        if batch.attributes & _TRANSACTIONAL:
            own = spans.get(batch.producer_id)
            if own and any(first <= batch.base_offset <= last for first, last in own):
                continue
        for record in batch:
            if low <= record.offset < high:
                docs.append((partition, record.offset, record.timestamp_ms, record.key, record.value))
    return docs, end
