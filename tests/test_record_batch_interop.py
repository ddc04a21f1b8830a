"""Interoperability with kafka-python 3.0.12: byte-identical encoding, cross-decoding, murmur2.

kafka-python's DefaultRecordBatchBuilder is a faithful port of the Java
client's writer, so matching it byte for byte (uncompressed) pins our layout;
reading each other's compressed batches pins the codec framings.
"""

from __future__ import annotations

import random

import kafka.codec
import pytest
from kafka.partitioner.default import murmur2 as kafka_python_murmur2
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from streamcore import codec
from streamcore.codec.partitioner import default_partition, murmur2

CODEC_AVAILABLE = {
    "none": True,
    "gzip": kafka.codec.has_gzip(),
    "snappy": kafka.codec.has_snappy(),
    "lz4": kafka.codec.has_lz4(),
    "zstd": kafka.codec.has_zstd(),
}


def _needs(compression: str) -> None:
    if not CODEC_AVAILABLE[compression]:
        pytest.skip(f"kafka-python has no {compression} library here")


def random_records(rng: random.Random, n: int, value_size: int = 300):
    values = [None if rng.random() < 0.15 else rng.randbytes(rng.randrange(0, value_size)) for _ in range(n)]
    keys = [None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]
    headers = [
        [
            (rng.choice(["trace", "id", "\u00fcber", "k" * rng.randrange(0, 200)]),
             None if rng.random() < 0.3 else rng.randbytes(rng.randrange(0, 30)))
            for _ in range(rng.choice([0, 0, 1, 2, 5]))
        ]
        for _ in range(n)
    ]  # fmt: skip
    first = rng.randrange(0, 1 << 42)
    stamps = [first + rng.randrange(-100_000, 10_000_000) for _ in range(n)]
    return values, keys, headers, stamps


def kafka_python_batch(values, keys, headers, stamps, *, compression_type=0, transactional=False,
                       producer_id=-1, producer_epoch=-1, base_sequence=-1) -> bytes:  # fmt: skip
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression_type,
        is_transactional=transactional,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        batch_size=1 << 30,
    )
    for i, (v, k, h, t) in enumerate(zip(values, keys, headers, stamps, strict=True)):
        assert builder.append(i, t, k, v, h) is not None
    return bytes(builder.build())


def test_uncompressed_encoding_is_byte_identical_to_kafka_python():
    rng = random.Random(2024)
    for trial in range(300):
        n = rng.choice([1, 1, 2, 3, 10, 50, 200])
        values, keys, headers, stamps = random_records(rng, n)
        producer = rng.choice([(-1, -1, -1), (rng.randrange(0, 1 << 50), rng.randrange(0, 32767),
                                              rng.randrange(0, (1 << 31) - n))])  # fmt: skip
        transactional = producer[0] >= 0 and rng.random() < 0.5
        expected = kafka_python_batch(
            values, keys, headers, stamps, transactional=transactional,
            producer_id=producer[0], producer_epoch=producer[1], base_sequence=producer[2],
        )  # fmt: skip
        ours = codec.encode_batch(
            values, keys, headers, stamps, transactional=transactional, producer_id=producer[0],
            producer_epoch=producer[1], base_sequence=producer[2], partition_leader_epoch=0,
        )  # fmt: skip
        assert ours == expected, trial


def test_default_partition_leader_epoch_differs_from_kafka_python_only_in_that_field():
    values, keys, headers, stamps = random_records(random.Random(5), 20)
    expected = kafka_python_batch(values, keys, headers, stamps)
    ours = codec.encode_batch(values, keys, headers, stamps)
    assert ours[12:16] == b"\xff\xff\xff\xff"
    assert expected[12:16] == b"\x00\x00\x00\x00"
    assert ours[:12] + ours[16:] == expected[:12] + expected[16:]  # CRC starts after the epoch


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_kafka_python_reads_our_batches(compression):
    _needs(compression)
    rng = random.Random(hash(compression) & 0xFFFF)
    for n in (1, 7, 300):
        values, keys, headers, stamps = random_records(rng, n, value_size=3000)
        data = codec.encode_batch(values, keys, headers, stamps, compression=compression, base_offset=77)
        batch = DefaultRecordBatch(data)
        assert batch.validate_crc()
        assert batch.compression_type == codec.COMPRESSION_TYPES.index(compression)
        got = [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch]
        assert got == [(77 + i, stamps[i], keys[i], values[i], headers[i]) for i in range(n)]


@pytest.mark.parametrize("compression", codec.COMPRESSION_TYPES)
def test_we_read_kafka_python_batches(compression):
    _needs(compression)
    rng = random.Random(17)
    for n in (1, 5, 400):
        values, keys, headers, stamps = random_records(rng, n)
        # Repetitive values so kafka-python keeps the compressed form (it falls
        # back to uncompressed when compression does not help).
        values = [None if v is None else (v[:8] * 40) for v in values]
        data = kafka_python_batch(
            values, keys, headers, stamps,
            compression_type=codec.COMPRESSION_TYPES.index(compression),
        )  # fmt: skip
        b = codec.decode_batch(data)
        assert b.compression == compression
        assert [(r.offset, r.timestamp_ms, r.key, r.value, r.headers) for r in b] == [
            (i, stamps[i], keys[i], values[i], headers[i]) for i in range(n)
        ]
        assert tuple(codec.validate_batch(data))[-1] == n


# ------------------------------------------------------------------ partitioner

JAVA_MURMUR2_VECTORS = [
    # Kafka's UtilsTest.testMurmur2 cases (Java's signed int results).
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize("key,expected", JAVA_MURMUR2_VECTORS)
def test_murmur2_matches_the_java_client(key, expected):
    assert murmur2(key) == expected


def test_murmur2_agrees_with_kafka_python_on_random_keys():
    rng = random.Random(8)
    for _ in range(3000):
        key = rng.randbytes(rng.randrange(0, 70))
        assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF
        assert -(1 << 31) <= murmur2(key) < (1 << 31)


def test_default_partition_agrees_with_kafka_python_default_partitioner_formula():
    # DefaultPartitioner.partition: (murmur2(key) & 0x7fffffff) % len(partitions)
    rng = random.Random(9)
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(0, 40))
        n = rng.randrange(1, 200)
        assert default_partition(key, n) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % n


def test_default_partition_rejects_zero_partitions():
    with pytest.raises(ValueError):
        default_partition(b"k", 0)
