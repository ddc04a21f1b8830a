"""``Log.batch_headers``: the header fields of each batch from an offset, without reading records."""

from __future__ import annotations

import pytest

from streamcore.codec import encode_batch, validate_batch
from streamcore.errors import OffsetOutOfRangeError
from streamcore.storage import BatchHeader, Log


def _batches() -> list[bytes]:
    return [
        encode_batch([b"a", b"b", b"c"]),
        encode_batch([b"d"], producer_id=4, producer_epoch=2, base_sequence=0),
        encode_batch([b"e", b"f"], producer_id=4, producer_epoch=2, base_sequence=1, compression="gzip"),
    ]


def test_headers_match_what_validation_reads_from_the_batches_with_assigned_offsets(tmp_path):
    batches = _batches()
    with Log(tmp_path / "p", fsync="never", segment_bytes=1024) as log:
        for b in batches:
            log.append(b)
        headers = list(log.batch_headers())
    assert all(type(h) is BatchHeader for h in headers)
    assert [h.base_offset for h in headers] == [0, 3, 4]
    for h, b in zip(headers, batches, strict=True):
        info = validate_batch(b)
        # baseOffset is assigned by the log; the CRC does not cover it, so it is unchanged.
        assert {f: getattr(h, f) for f in info._fields if f != "base_offset"} == {
            f: getattr(info, f) for f in info._fields if f != "base_offset"
        }
        assert h.magic == 2


def test_headers_start_at_the_batch_holding_from_offset_and_cross_segments(tmp_path):
    with Log(tmp_path / "p", fsync="never", segment_bytes=1024) as log:
        for _ in range(40):
            log.append(encode_batch([b"x" * 100, b"y"]))
        assert log.segment_count > 1
        assert [h.base_offset for h in log.batch_headers()] == list(range(0, 80, 2))
        assert [h.base_offset for h in log.batch_headers(51)] == list(range(50, 80, 2))
        assert list(log.batch_headers(log.high_watermark)) == []


def test_an_empty_log_has_no_headers_and_an_offset_past_the_end_is_out_of_range(tmp_path):
    with Log(tmp_path / "p", fsync="never") as log:
        assert list(log.batch_headers()) == []
        log.append(encode_batch([b"a"]))
        with pytest.raises(OffsetOutOfRangeError):
            list(log.batch_headers(5))
