"""The one Python description of the record batch v2 header (``_reference/_batch_header``).

The codec and the reference WAL both read headers through it, so these tests pin
it against batches that both codecs write and against the decoder's view of them.
"""

from __future__ import annotations

import pytest
from crc32c import crc32c

from streamcore import _impl
from streamcore._reference import _batch_header as bh
from streamcore._reference import record_batch as reference_codec


def _codecs():
    yield pytest.param(reference_codec, id="reference")
    yield pytest.param(_impl.record_batch, id="active")


@pytest.mark.parametrize("codec", list(_codecs()))
def test_parse_header_agrees_with_the_decoder_on_every_field(codec):
    data = codec.encode_batch(
        [b"a", None, b"ccc"],
        [None, b"k", b"kk"],
        None,
        [1_000, 3_000, 2_000],
        compression="gzip",
        base_offset=40,
        producer_id=7,
        producer_epoch=3,
        base_sequence=11,
        transactional=True,
        partition_leader_epoch=5,
    )
    h = bh.parse_header(data)
    batch = reference_codec.decode_batch(data)
    assert h == (
        batch.base_offset,
        batch.batch_length,
        batch.partition_leader_epoch,
        batch.magic,
        batch.crc,
        batch.attributes,
        batch.last_offset - batch.base_offset,
        batch.first_timestamp,
        batch.max_timestamp,
        batch.producer_id,
        batch.producer_epoch,
        batch.base_sequence,
        batch.record_count,
    )
    assert h.magic == bh.MAGIC
    assert h.attributes & bh.CODEC_MASK == 1
    assert h.attributes & bh.TRANSACTIONAL_FLAG
    assert not h.attributes & (bh.CONTROL_FLAG | bh.LOG_APPEND_TIME_FLAG)
    assert (h.last_offset_delta, h.first_timestamp, h.max_timestamp, h.record_count) == (2, 1_000, 3_000, 3)
    assert bh.pack_header(h) == data[: bh.HEADER_SIZE]
    assert bh.PREFIX.unpack_from(data) == h[:9]


def test_field_offsets_point_at_their_fields():
    data = reference_codec.encode_batch([b"v"], None, None, [123], base_offset=9, base_sequence=77)
    assert data[bh.MAGIC_AT] == bh.MAGIC
    assert int.from_bytes(data[bh.CRC_AT : bh.CRC_AT + 4], "big") == crc32c(data[bh.CRC_START :])
    assert int.from_bytes(data[bh.MAX_TIMESTAMP_AT : bh.MAX_TIMESTAMP_AT + 8], "big") == 123
    assert int.from_bytes(data[bh.BASE_SEQUENCE_AT : bh.BASE_SEQUENCE_AT + 4], "big") == 77
    assert int.from_bytes(data[bh.RECORDS_COUNT_AT : bh.RECORDS_COUNT_AT + 4], "big") == 1
    assert bh.PREFIX_SIZE == bh.PRODUCER_ID_AT


def test_batch_size_frames_back_to_back_batches_from_their_first_12_bytes():
    first = reference_codec.encode_batch([b"x" * 10, b"y"], None, None, [1, 2])
    second = reference_codec.encode_batch([b"z" * 300], None, None, [3])
    log = first + second
    assert bh.batch_size(log) == len(first)
    assert bh.batch_size(log[: bh.LOG_OVERHEAD]) == len(first)
    assert bh.batch_size(log, len(first)) == len(second)
    assert bh.batch_length(log, len(first)) == len(second) - bh.LOG_OVERHEAD


def test_patching_the_base_offset_keeps_the_crc_valid():
    buf = bytearray(reference_codec.encode_batch([b"a", b"b"], None, None, [5, 6]))
    bh.patch_base_offset(buf, 1 << 40)
    batch = reference_codec.decode_batch(bytes(buf))  # checks the CRC
    assert [r.offset for r in batch] == [1 << 40, (1 << 40) + 1]
    assert bh.parse_header(buf).base_offset == 1 << 40
