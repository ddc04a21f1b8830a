"""What a read_committed fetch returns of the batches read from a log.

A read_committed consumer must not see batches at or above the last stable offset
(LSO): they may belong to a transaction not yet decided. The LSO is always a batch
boundary (the first batch of an open transaction, or the high watermark), so the
answer is the whole batches that start below it.
"""

from __future__ import annotations

import struct

from streamcore.codec.batch_header import BASE_OFFSET_AT, LAST_OFFSET_DELTA_AT, LOG_OVERHEAD, batch_length

__all__ = ["committed_prefix"]

_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")


def committed_prefix(data: bytes | bytearray | memoryview, end_offset: int) -> tuple[bytes | memoryview, int]:
    """The whole batches of ``data`` (back-to-back, as ``Log.read`` returns them) that
    start below ``end_offset``, and the offset after the last one kept (-1 when none is).

    The second value is the upper bound for the aborted-transactions list of the
    response (``aborted_transactions(topic, partition, fetch_offset, upper)``).
    """
    view = memoryview(data)
    pos = 0
    upper = -1
    n = len(view)
    while pos + LAST_OFFSET_DELTA_AT + 4 <= n:
        base = _I64.unpack_from(view, pos + BASE_OFFSET_AT)[0]
        size = batch_length(view, pos) + LOG_OVERHEAD
        if base >= end_offset or pos + size > n:
            break
        upper = base + _I32.unpack_from(view, pos + LAST_OFFSET_DELTA_AT)[0] + 1
        pos += size
    if pos == n:
        return data if isinstance(data, (bytes, memoryview)) else bytes(data), upper
    return view[:pos], upper
