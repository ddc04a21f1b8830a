use super::*;
use crate::compression::Codec;
use crate::crc32c;
use crate::error::CodecError;

/// Three records built by kafka-python 3.0.12's DefaultRecordBatchBuilder (magic 2, no
/// compression): (ts 1000, key b"k", value b"v", [("h", b"x")]), (1005, None, None,
/// [("e", None)]), (990, None, b"hello", []).
const KAFKA_PYTHON_BATCH: &str = "0000000000000000000000540000000002ebb2c12600000000000200000000000003e800000000000003edffffffffffffffffffffffffffff0000000318000000026b0276020268027812000a0201010202650116001304010a68656c6c6f00";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn sample_batch(opts: &EncodeOptions) -> Vec<u8> {
    let values = [Some(&b"v"[..]), None, Some(&b"hello"[..])];
    let keys = [Some(&b"k"[..]), None, None];
    let headers = vec![
        vec![Header {
            key: b"h",
            value: Some(b"x"),
        }],
        vec![Header {
            key: b"e",
            value: None,
        }],
        vec![],
    ];
    let ts = [1000i64, 1005, 990];
    let recs = RecordsIn {
        values: &values,
        keys: Some(&keys),
        headers: Some(&headers),
        timestamps: Timestamps::Each(&ts),
    };
    encode_batch(&recs, opts).unwrap()
}

fn kafka_python_options() -> EncodeOptions {
    EncodeOptions {
        partition_leader_epoch: 0,
        ..EncodeOptions::default()
    }
}

fn simple_batch(n: usize, codec: Codec) -> Vec<u8> {
    let payload: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let values: Vec<Option<&[u8]>> = payload.iter().map(|v| Some(v.as_slice())).collect();
    let recs = RecordsIn {
        values: &values,
        keys: None,
        headers: None,
        timestamps: Timestamps::Same(1_700_000_000_000),
    };
    let opts = EncodeOptions {
        compression: codec,
        ..EncodeOptions::default()
    };
    encode_batch(&recs, &opts).unwrap()
}

#[test]
fn uncompressed_encode_is_byte_identical_to_kafka_python() {
    assert_eq!(
        sample_batch(&kafka_python_options()),
        unhex(KAFKA_PYTHON_BATCH)
    );
}

#[test]
fn decode_reads_back_every_field() {
    let data = sample_batch(&EncodeOptions {
        base_offset: 100,
        ..EncodeOptions::default()
    });
    let b = decode_batch(&data, &DecodeOptions::default()).unwrap();
    assert_eq!(b.header.base_offset, 100);
    assert_eq!(b.header.partition_leader_epoch, -1);
    assert_eq!(b.header.record_count, 3);
    assert_eq!(b.header.last_offset(), 102);
    assert_eq!(b.header.first_timestamp, 1000);
    assert_eq!(b.header.max_timestamp, 1005);
    assert_eq!(b.entries.len(), 3);
    let e = &b.entries[0];
    assert_eq!(b.offset_of(e), 100);
    assert_eq!(b.timestamp_of(e), 1000);
    assert_eq!(b.field(e.key_start, e.key_len), Some(&b"k"[..]));
    assert_eq!(b.field(e.value_start, e.value_len), Some(&b"v"[..]));
    assert_eq!(e.headers_count, 1);
    let h = &b.headers[e.headers_start];
    assert_eq!(&b.records[h.key_start..h.key_start + h.key_len], b"h");
    assert_eq!(b.field(h.value_start, h.value_len), Some(&b"x"[..]));
    let e = &b.entries[1];
    assert_eq!(b.field(e.key_start, e.key_len), None);
    assert_eq!(b.field(e.value_start, e.value_len), None);
    assert_eq!(b.headers[e.headers_start].value_len, -1);
    let e = &b.entries[2];
    assert_eq!(b.timestamp_of(e), 990);
    assert_eq!(b.offset_of(e), 102);
    assert_eq!(e.headers_count, 0);
}

#[test]
fn validate_returns_the_header() {
    let data = sample_batch(&EncodeOptions::default());
    let h = validate_batch(&data, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
    assert_eq!(h.record_count, 3);
    assert_eq!(h.magic, 2);
    assert_eq!(h.total_len(), data.len());
}

#[test]
fn every_codec_round_trips_and_validates() {
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let data = simple_batch(2000, codec);
        let h = validate_batch(&data, DEFAULT_MAX_DECOMPRESSED_BYTES).unwrap();
        assert_eq!(h.codec(), Some(codec));
        let b = decode_batch(&data, &DecodeOptions::default()).unwrap();
        assert_eq!(b.entries.len(), 2000);
        let e = &b.entries[1999];
        assert_eq!(
            b.field(e.value_start, e.value_len),
            Some(&b"value-1999"[..])
        );
    }
}

#[test]
fn decompression_cap_is_an_error() {
    let data = simple_batch(2000, Codec::Zstd);
    let err = validate_batch(&data, 1000).unwrap_err();
    assert!(
        matches!(err, CodecError::DecompressedTooLarge { cap: 1000, .. }),
        "{err}"
    );
}

#[test]
fn flags_and_producer_fields_are_written() {
    let opts = EncodeOptions {
        producer_id: 7,
        producer_epoch: 3,
        base_sequence: 42,
        transactional: true,
        control: true,
        log_append_time: true,
        ..EncodeOptions::default()
    };
    let data = sample_batch(&opts);
    let b = decode_batch(&data, &DecodeOptions::default()).unwrap();
    assert!(b.header.is_transactional() && b.header.is_control());
    assert_eq!(b.header.timestamp_type(), 1);
    assert_eq!(
        (
            b.header.producer_id,
            b.header.producer_epoch,
            b.header.base_sequence
        ),
        (7, 3, 42)
    );
    // Log-append time: every record reports the batch's max timestamp.
    assert!(b.entries.iter().all(|e| b.timestamp_of(e) == 1005));
}

#[test]
fn empty_and_mismatched_inputs_are_argument_errors() {
    let recs = RecordsIn {
        values: &[],
        keys: None,
        headers: None,
        timestamps: Timestamps::Same(0),
    };
    assert_eq!(
        encode_batch(&recs, &EncodeOptions::default()),
        Err(CodecError::EmptyBatch)
    );
    let values = [Some(&b"a"[..])];
    let recs = RecordsIn {
        values: &values,
        keys: Some(&[]),
        headers: None,
        timestamps: Timestamps::Same(0),
    };
    assert!(encode_batch(&recs, &EncodeOptions::default())
        .unwrap_err()
        .is_argument_error());
}

#[test]
fn decode_batches_stops_at_partial_tail() {
    let one = simple_batch(3, Codec::None);
    let two = simple_batch(5, Codec::Lz4);
    let mut data = one.clone();
    data.extend_from_slice(&two);
    data.extend_from_slice(&one[..30]);
    let batches = decode_batches(&data, &DecodeOptions::default()).unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[1].at, one.len());
    assert_eq!(batches[1].entries.len(), 5);
    data.truncate(one.len() + two.len() + 5);
    assert_eq!(
        decode_batches(&data, &DecodeOptions::default())
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn bad_crc_is_reported_with_both_values() {
    let mut data = simple_batch(3, Codec::None);
    // Corrupt a value byte (the last byte is the header count, which must stay valid).
    let in_value = data.len() - 2;
    data[in_value] ^= 0xff;
    let err = decode_batch(&data, &DecodeOptions::default()).unwrap_err();
    assert!(
        err.to_string().starts_with("bad CRC32C: stored 0x"),
        "{err}"
    );
    // verify_crc=false skips the check.
    let opts = DecodeOptions {
        verify_crc: false,
        ..DecodeOptions::default()
    };
    assert!(decode_batch(&data, &opts).is_ok());
}

#[test]
fn wrong_magic_trailing_bytes_and_short_input_are_errors() {
    let mut data = simple_batch(3, Codec::None);
    data[16] = 1;
    assert_eq!(
        decode_batch(&data, &DecodeOptions::default())
            .unwrap_err()
            .to_string(),
        "magic 1 at byte 16: only magic 2 is supported"
    );
    let mut data = simple_batch(3, Codec::None);
    data.push(0);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::TrailingBytes { extra: 1, .. })
    ));
    assert!(matches!(
        decode_batch(&data[..5], &DecodeOptions::default()),
        Err(CodecError::Truncated { .. })
    ));
}

fn recrc(data: &mut [u8]) {
    let crc = crc32c::crc32c(&data[21..]);
    data[17..21].copy_from_slice(&crc.to_be_bytes());
}

#[test]
fn record_count_mismatches_are_errors() {
    let mut data = simple_batch(3, Codec::None);
    data[57..61].copy_from_slice(&4i32.to_be_bytes());
    recrc(&mut data);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::TooFewRecords {
            declared: 4,
            found: 3,
            ..
        })
    ));
    data[57..61].copy_from_slice(&2i32.to_be_bytes());
    recrc(&mut data);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::DataAfterLastRecord { declared: 2, .. })
    ));
    data[57..61].copy_from_slice(&(-3i32).to_be_bytes());
    recrc(&mut data);
    assert_eq!(
        decode_batch(&data, &DecodeOptions::default())
            .unwrap_err()
            .to_string(),
        "negative record count -3 at byte 57"
    );
}

/// Region offset of record `k`'s offset delta in a batch built by `simple_batch`
/// (one-byte length, attributes and timestamp delta).
fn offset_delta_at(data: &[u8], k: usize) -> usize {
    let mut p = HEADER_LEN;
    for _ in 0..k {
        p += 1 + (data[p] >> 1) as usize;
    }
    p + 3
}

#[test]
fn offset_deltas_must_increase_within_last_offset_delta() {
    let mut data = simple_batch(3, Codec::None);
    let od = offset_delta_at(&data, 1);
    assert_eq!(data[od], 2); // zigzag(1)
    data[od] = 4; // zigzag(2): the third record's 2 is then not above it
    recrc(&mut data);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::OffsetDeltaOutOfOrder {
            previous: 2,
            found: 2,
            ..
        })
    ));
    let mut data = simple_batch(3, Codec::None);
    let od = offset_delta_at(&data, 2);
    data[od] = 6; // zigzag(3) > lastOffsetDelta 2
    recrc(&mut data);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::OffsetDeltaOutOfOrder {
            found: 3,
            last_offset_delta: 2,
            ..
        })
    ));
}

#[test]
fn compacted_gaps_decode_but_do_not_validate() {
    let mut data = simple_batch(2, Codec::None);
    let od = offset_delta_at(&data, 1);
    data[od] = 4; // zigzag(2)
    data[23..27].copy_from_slice(&2i32.to_be_bytes());
    recrc(&mut data);
    let b = decode_batch(&data, &DecodeOptions::default()).unwrap();
    assert_eq!(b.offset_of(&b.entries[1]), 2);
    assert_eq!(b.header.last_offset(), 2);
    assert!(matches!(
        validate_batch(&data, DEFAULT_MAX_DECOMPRESSED_BYTES),
        Err(CodecError::LastOffsetDeltaMismatch { declared: 2, .. })
    ));
}

#[test]
fn validate_rejects_an_empty_batch() {
    let mut data = simple_batch(1, Codec::None);
    data.truncate(HEADER_LEN);
    data[8..12].copy_from_slice(&MIN_BATCH_LENGTH.to_be_bytes());
    data[23..27].copy_from_slice(&(-1i32).to_be_bytes());
    data[57..61].copy_from_slice(&0i32.to_be_bytes());
    recrc(&mut data);
    assert!(decode_batch(&data, &DecodeOptions::default())
        .unwrap()
        .entries
        .is_empty());
    assert!(matches!(
        validate_batch(&data, DEFAULT_MAX_DECOMPRESSED_BYTES),
        Err(CodecError::NoRecords { .. })
    ));
}

/// Every truncation and every single-byte corruption of valid batches yields a value
/// (never a panic), and truncations are always errors.
#[test]
fn malformed_inputs_return_errors_not_panics() {
    let opts = DecodeOptions {
        verify_crc: false,
        max_decompressed_bytes: 1 << 20,
    };
    for codec in [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ] {
        let data = sample_batch(&EncodeOptions {
            compression: codec,
            ..EncodeOptions::default()
        });
        for cut in 0..data.len() {
            assert!(decode_batch(&data[..cut], &opts).is_err());
            assert!(validate_batch(&data[..cut], 1 << 20).is_err());
            assert!(decode_batches(&data[..cut], &opts).unwrap().is_empty());
        }
        for i in 0..data.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = data.clone();
                bad[i] ^= flip;
                let _ = decode_batch(&bad, &opts);
                let _ = decode_batches(&bad, &opts);
                recrc(&mut bad);
                let _ = validate_batch(&bad, 1 << 20);
            }
        }
    }
}

#[test]
fn huge_declared_counts_do_not_preallocate() {
    let mut data = simple_batch(1, Codec::None);
    data[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    recrc(&mut data);
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::TooFewRecords { found: 1, .. })
    ));
}

#[test]
fn non_utf8_header_key_is_an_error() {
    let values = [Some(&b"v"[..])];
    let headers = vec![vec![Header {
        key: b"\xff\xfe",
        value: None,
    }]];
    let recs = RecordsIn {
        values: &values,
        keys: None,
        headers: Some(&headers),
        timestamps: Timestamps::Same(5),
    };
    let data = encode_batch(&recs, &EncodeOptions::default()).unwrap();
    assert!(matches!(
        decode_batch(&data, &DecodeOptions::default()),
        Err(CodecError::HeaderKeyNotUtf8 { .. })
    ));
}
