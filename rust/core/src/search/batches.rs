//! The documents a read_committed consumer would see in a run of log batches.
//!
//! The indexer reads the log in chunks of whole batches; turning such a chunk into
//! documents here, without Python objects, lets the binding do all of it (decode,
//! filter, analyze, write) with the GIL released. The pure-Python twin is
//! `_reference/search/batches.py`; both follow the same rules.
use crate::error::CodecError;
use crate::record_batch::{decode_batches, DecodeOptions};

use super::Doc;

/// An aborted transaction: its producer id and the first and last offsets of its
/// records (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedSpan {
    pub producer_id: i64,
    pub first: i64,
    pub last: i64,
}

/// What [`documents`] found in a chunk.
#[derive(Debug, Clone)]
pub struct ChunkDocs {
    pub docs: Vec<Doc>,
    /// Where reading goes on: the end (last offset + 1) of the chunk's last batch,
    /// capped at `high`; None when the chunk holds no complete batch.
    pub end: Option<u64>,
}

/// The documents of the records with offsets in `[low, high)` of the batches in
/// `data`, leaving out control batches and the batches of aborted transactions
/// (a transactional batch whose producer has an aborted span covering its base
/// offset), as a read_committed consumer does.
pub fn documents(
    data: &[u8],
    partition: u64,
    low: u64,
    high: u64,
    aborted: &[AbortedSpan],
) -> Result<ChunkDocs, CodecError> {
    let batches = decode_batches(data, &DecodeOptions::default())?;
    let end = batches
        .last()
        .map(|b| (b.header.next_offset().max(0) as u64).min(high));
    let mut docs = Vec::new();
    for batch in &batches {
        let h = &batch.header;
        if h.is_control() || h.last_offset() < low as i64 || h.base_offset >= high as i64 {
            continue;
        }
        if h.is_transactional()
            && aborted.iter().any(|s| {
                s.producer_id == h.producer_id
                    && s.first <= h.base_offset
                    && h.base_offset <= s.last
            })
        {
            continue;
        }
        for e in &batch.entries {
            let offset = batch.offset_of(e);
            if offset < low as i64 || offset >= high as i64 {
                continue;
            }
            docs.push(Doc {
                partition,
                offset: offset as u64,
                timestamp: batch.timestamp_of(e),
                key: batch.field(e.key_start, e.key_len).map(<[u8]>::to_vec),
                value: batch.field(e.value_start, e.value_len).map(<[u8]>::to_vec),
            });
        }
    }
    Ok(ChunkDocs { docs, end })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::{encode_batch, EncodeOptions, RecordsIn, Timestamps};

    fn batch(base: i64, n: usize, attrs: Attrs) -> Vec<u8> {
        let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
        let values: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("v{}", base + i as i64).into_bytes())
            .collect();
        let stamps: Vec<i64> = (0..n).map(|i| 1_000 + i as i64).collect();
        let key_refs: Vec<Option<&[u8]>> = keys.iter().map(|k| Some(k.as_slice())).collect();
        let value_refs: Vec<Option<&[u8]>> = values.iter().map(|v| Some(v.as_slice())).collect();
        let records = RecordsIn {
            values: &value_refs,
            keys: Some(&key_refs),
            headers: None,
            timestamps: Timestamps::Each(&stamps),
        };
        encode_batch(
            &records,
            &EncodeOptions {
                base_offset: base,
                producer_id: attrs.producer_id,
                transactional: attrs.transactional,
                control: attrs.control,
                ..EncodeOptions::default()
            },
        )
        .unwrap()
    }

    #[derive(Default, Clone, Copy)]
    struct Attrs {
        producer_id: i64,
        transactional: bool,
        control: bool,
    }

    fn offsets(c: &ChunkDocs) -> Vec<u64> {
        c.docs.iter().map(|d| d.offset).collect()
    }

    #[test]
    fn keeps_the_range_and_caps_the_end() {
        let mut data = batch(10, 3, Attrs::default());
        data.extend(batch(13, 3, Attrs::default()));
        let c = documents(&data, 4, 11, 15, &[]).unwrap();
        assert_eq!(offsets(&c), vec![11, 12, 13, 14]);
        assert_eq!(c.end, Some(15));
        assert_eq!(c.docs[0].partition, 4);
        assert_eq!(c.docs[0].value.as_deref(), Some(&b"v11"[..]));
        assert_eq!(c.docs[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(c.docs[0].timestamp, 1_001);
        let all = documents(&data, 0, 0, u64::MAX >> 1, &[]).unwrap();
        assert_eq!(all.end, Some(16));
    }

    #[test]
    fn leaves_out_control_and_aborted_batches() {
        let txn = Attrs {
            producer_id: 7,
            transactional: true,
            control: false,
        };
        let mut data = batch(0, 2, txn);
        data.extend(batch(
            2,
            1,
            Attrs {
                control: true,
                ..txn
            },
        ));
        data.extend(batch(3, 2, Attrs::default()));
        let aborted = [AbortedSpan {
            producer_id: 7,
            first: 0,
            last: 2,
        }];
        let c = documents(&data, 0, 0, 100, &aborted).unwrap();
        assert_eq!(offsets(&c), vec![3, 4]);
        assert_eq!(c.end, Some(5));
        // Another producer's abort does not hide producer 7's records.
        let other = [AbortedSpan {
            producer_id: 8,
            ..aborted[0]
        }];
        let c = documents(&data, 0, 0, 100, &other).unwrap();
        assert_eq!(offsets(&c), vec![0, 1, 3, 4]);
    }

    #[test]
    fn empty_and_partial_input_has_no_end_and_corrupt_input_errs() {
        assert_eq!(documents(&[], 0, 0, 10, &[]).unwrap().end, None);
        let b = batch(0, 2, Attrs::default());
        assert_eq!(
            documents(&b[..b.len() - 1], 0, 0, 10, &[]).unwrap().end,
            None
        );
        let mut bad = b.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert!(documents(&bad, 0, 0, 10, &[]).is_err());
    }
}
