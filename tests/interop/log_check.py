"""Read a topic's stored batches over the wire to check what an idempotent producer left in the log."""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

# tests/ is on sys.path (pytest inserts the rootdir of the test packages).
from broker.wire_client import WireClient, fetch_request, fetched_partition
from streamcore.codec import decode_batches


def log_batches(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every record batch stored in ``topic``, read with raw fetches."""
    out = []
    with WireClient(bootstrap) as c:
        for p in range(partitions):
            offset = 0
            while True:
                resp = c.request(fetch_request(topic, p, offset, max_bytes=4 << 20), 12)
                part = fetched_partition(resp, topic, p)
                assert part.error_code == 0
                batches = decode_batches(part.records or b"")
                if not batches:
                    break
                out.extend((p, b) for b in batches)
                offset = batches[-1].last_offset + 1
                if offset >= part.high_watermark:
                    break
    return out


def check_exactly_once_log(
    bootstrap: str, topic: str, expected_keys: list[bytes], *, producers: int = 1, partitions: int = 3
) -> None:
    """The log holds each expected record exactly once, written by ``producers`` idempotent
    producers whose sequences run from 0 without a gap in every partition."""
    batches = log_batches(bootstrap, topic, partitions)
    keys = Counter(r.key for _, b in batches for r in b.records)
    want = Counter(expected_keys)
    assert keys == want, (
        f"log differs: {sum((keys - want).values())} extra, {sum((want - keys).values())} missing"
    )
    ids = {b.producer_id for _, b in batches}
    assert len(ids) == producers and min(ids) >= 0, (
        f"batches not from {producers} idempotent producer(s): {ids}"
    )
    for p in range(partitions):
        for pid in ids:
            expected = 0
            for q, b in batches:
                if q == p and b.producer_id == pid:
                    assert b.base_sequence == expected, (
                        f"partition {p} producer {pid}: sequence {b.base_sequence}, expected {expected}"
                    )
                    expected += len(b.records)


_CODECS = ("none", "gzip", "snappy", "lz4", "zstd")


def stored_codecs(bootstrap: str, topic: str, partitions: int = 3) -> Counter[str]:
    """Records stored in ``topic`` per compression codec (read from batch headers only).

    The broker keeps batches as produced, so this shows whether a client really compressed
    (old librdkafka silently stops compressing when it dislikes the advertised versions).
    """
    codecs: Counter[str] = Counter()
    with WireClient(bootstrap) as c:
        for p in range(partitions):
            offset = 0
            while True:
                resp = c.request(fetch_request(topic, p, offset, max_bytes=8 << 20), 12)
                part = fetched_partition(resp, topic, p)
                assert part.error_code == 0
                data = part.records or b""
                pos, last = 0, -1
                # batch header: baseOffset i64, batchLength i32, leaderEpoch i32, magic i8, crc u32,
                # attributes i16, lastOffsetDelta i32
                while len(data) - pos >= 27:
                    base, length = struct.unpack_from(">qi", data, pos)
                    if pos + 12 + length > len(data):
                        break
                    (attributes,) = struct.unpack_from(">h", data, pos + 21)
                    (last_delta,) = struct.unpack_from(">i", data, pos + 23)
                    codecs[_CODECS[attributes & 0x07]] += last_delta + 1
                    last = base + last_delta
                    pos += 12 + length
                if last < 0 or last + 1 >= part.high_watermark:
                    break
                offset = last + 1
    return codecs


def assert_compressed_with(bootstrap: str, topic: str, codec: str) -> None:
    """Nearly every stored record was compressed with ``codec``.

    Clients send a batch uncompressed when compressing does not make it smaller (a lone
    small record), so a few "none" records are allowed; any other codec is not.
    """
    counts = stored_codecs(bootstrap, topic)
    total = sum(counts.values())
    assert set(counts) <= {codec, "none"}, f"stored codecs {dict(counts)}, asked for {codec}"
    assert counts[codec] >= 0.9 * total, f"only {counts[codec]} of {total} records stored as {codec}"
