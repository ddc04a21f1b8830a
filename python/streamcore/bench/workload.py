"""Deterministic inputs for the codec benchmarks (same seed, same bytes, every run)."""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["CodecWorkload", "make_codec_workload", "zigzag_varint"]

# Record values are text assembled from this vocabulary so that compression codecs
# see data with the redundancy of typical JSON events (roughly 2-4x compressible)
# rather than random bytes, which no codec shrinks.
_WORDS = (
    b'{"user":',
    b'"event":',
    b'"click"',
    b'"view"',
    b'"purchase"',
    b'"ts":',
    b'"session":',
    b'"country":',
    b'"DE"',
    b'"US"',
    b'"FR"',
    b'"amount":',
    b"true",
    b"false",
    b"null",
    b",",
    b"}",
)

_BASE_TIMESTAMP_MS = 1_700_000_000_000
CRC_LARGE_BYTES = 1024 * 1024
CRC_SMALL_BYTES = 100


@dataclass(frozen=True)
class CodecWorkload:
    """Inputs shared by every implementation in one benchmark run.

    ``values``/``keys``/``timestamps_ms``: one record batch's records.
    ``crc_large``/``crc_small``: CRC inputs (1 MiB and 100 bytes).
    ``varints``: signed 32-bit integers of mixed encoded width (1 to 5 bytes);
    ``varint_buffer``: the same integers zigzag-varint encoded back to back.
    """

    values: list[bytes]
    keys: list[bytes]
    timestamps_ms: list[int]
    crc_large: bytes
    crc_small: bytes
    varints: list[int]
    varint_buffer: bytes

    @property
    def record_count(self) -> int:
        """Number of records in one batch."""
        return len(self.values)


def zigzag_varint(n: int) -> bytes:
    """Zigzag varint of a signed 32-bit ``n`` (the Kafka record encoding)."""
    z = ((n << 1) ^ (n >> 31)) & 0xFFFFFFFF
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _value(rng: random.Random, size: int, serial: int) -> bytes:
    parts = [b"%d" % serial]
    length = len(parts[0])
    while length < size:
        word = rng.choice(_WORDS) if rng.random() < 0.7 else b"%d" % rng.randrange(1_000_000)
        parts.append(word)
        length += len(word)
    return b"".join(parts)[:size]


def make_codec_workload(records: int = 1000, value_size: int = 100, seed: int = 20240611) -> CodecWorkload:
    """Build the inputs for ``records`` records of ``value_size`` bytes each.

    Keys are short (``key-<n>``, 12 bytes) as Kafka keys usually are; timestamps are
    one millisecond apart.
    """
    if records < 1:
        raise ValueError(f"records must be >= 1, got {records}")
    if value_size < 0:
        raise ValueError(f"value_size must be >= 0, got {value_size}")
    rng = random.Random(seed)
    values = [_value(rng, value_size, i) for i in range(records)]
    keys = [b"key-%08d" % i for i in range(records)]
    timestamps = [_BASE_TIMESTAMP_MS + i for i in range(records)]
    crc_large = rng.randbytes(CRC_LARGE_BYTES)
    crc_small = rng.randbytes(CRC_SMALL_BYTES)
    # One in four of each width, signs mixed, so no single fast path dominates.
    limits = (63, 8191, 1_048_575, 2**31 - 1)
    varints = []
    for i in range(1000):
        magnitude = rng.randint(0, limits[i % 4])
        varints.append(-magnitude - 1 if rng.random() < 0.5 and magnitude < 2**31 - 1 else magnitude)
    varint_buffer = b"".join(zigzag_varint(v) for v in varints)
    return CodecWorkload(values, keys, timestamps, crc_large, crc_small, varints, varint_buffer)
