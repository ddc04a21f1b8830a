//! End-to-end tests of the cleaner over segment files written with the codec.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::compression::Codec;
use crate::record_batch::{
    decode_batch, encode_batch, DecodeOptions, EncodeOptions, RecordsIn, Timestamps,
};

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!(
            "streamcore-cleaner-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(p.join("out")).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

type Rec<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
/// (offset, key, value) of a record read back.
type Got = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn encode(base: i64, recs: &[Rec<'_>], ts: i64, opts: EncodeOptions) -> Vec<u8> {
    let keys: Vec<Option<&[u8]>> = recs.iter().map(|r| r.0).collect();
    let values: Vec<Option<&[u8]>> = recs.iter().map(|r| r.1).collect();
    encode_batch(
        &RecordsIn {
            values: &values,
            keys: Some(&keys),
            headers: None,
            timestamps: Timestamps::Same(ts),
        },
        &EncodeOptions {
            base_offset: base,
            ..opts
        },
    )
    .unwrap()
}

fn write_segment(dir: &Path, base: i64, batches: &[Vec<u8>]) -> PathBuf {
    let p = dir.join(format!("{base:020}.log"));
    fs::write(&p, batches.concat()).unwrap();
    p
}

fn opts(now_ms: i64) -> CleanOptions {
    CleanOptions {
        delete_retention_ms: 1000,
        now_ms,
        segment_bytes: 1 << 30,
        max_decompressed_bytes: 1 << 26,
        producer_last_offsets: None,
        aborted_transactions: None,
    }
}

/// (offset, key, value) of every record in a file, checking each batch's CRC.
fn read_all(path: &Path) -> Vec<Got> {
    let data = fs::read(path).unwrap();
    let mut out = vec![];
    let mut at = 0;
    while at < data.len() {
        let len = i32::from_be_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize + 12;
        let b = decode_batch(&data[at..at + len], &DecodeOptions::default()).unwrap();
        for e in &b.entries {
            out.push((
                b.offset_of(e),
                b.field(e.key_start, e.key_len).map(|x| x.to_vec()),
                b.field(e.value_start, e.value_len).map(|x| x.to_vec()),
            ));
        }
        at += len;
    }
    out
}

fn clean(paths: &[PathBuf], dir: &Path, now_ms: i64) -> CleanResult {
    let mut map = OffsetMap::new(1 << 16, 0.9).unwrap();
    let mut t = Throttle::new(None);
    build_offset_map(paths, 0, i64::MAX, &mut map, &mut t, 1 << 26, None).unwrap();
    clean_segments(paths, &map, &opts(now_ms), &dir.join("out"), &mut t).unwrap()
}

#[test]
fn only_the_latest_record_per_key_survives_with_its_offset() {
    let d = TempDir::new("latest");
    let o = EncodeOptions::default();
    let s0 = write_segment(
        &d.0,
        0,
        &[
            encode(
                0,
                &[(Some(b"a"), Some(b"1")), (Some(b"b"), Some(b"1"))],
                10,
                o,
            ),
            encode(2, &[(Some(b"a"), Some(b"2")), (None, Some(b"x"))], 20, o),
        ],
    );
    let s1 = write_segment(
        &d.0,
        4,
        &[encode(
            4,
            &[(Some(b"c"), Some(b"1")), (Some(b"a"), Some(b"3"))],
            30,
            o,
        )],
    );
    let r = clean(&[s0, s1], &d.0, 0);
    assert_eq!(r.segments.len(), 1);
    let got = read_all(&r.segments[0].path);
    let want: Vec<Got> = vec![
        (1, Some(b"b".to_vec()), Some(b"1".to_vec())),
        (4, Some(b"c".to_vec()), Some(b"1".to_vec())),
        (5, Some(b"a".to_vec()), Some(b"3".to_vec())),
    ];
    assert_eq!(got, want);
    assert_eq!(r.stats.superseded_removed, 2);
    assert_eq!(r.stats.keyless_removed, 1);
}

#[test]
fn a_rewritten_batch_keeps_base_and_last_offset_and_producer_fields() {
    let d = TempDir::new("fields");
    let o = EncodeOptions {
        producer_id: 7,
        producer_epoch: 3,
        base_sequence: 40,
        compression: Codec::Gzip,
        ..EncodeOptions::default()
    };
    let b0 = encode(
        10,
        &[
            (Some(b"k"), Some(b"old")),
            (Some(b"j"), Some(b"v")),
            (Some(b"k"), Some(b"x")),
        ],
        5,
        o,
    );
    let s = write_segment(&d.0, 10, &[b0]);
    let r = clean(&[s], &d.0, 0);
    let data = fs::read(&r.segments[0].path).unwrap();
    let b = decode_batch(&data, &DecodeOptions::default()).unwrap();
    let h = b.header;
    assert_eq!(
        (h.base_offset, h.last_offset_delta, h.record_count),
        (10, 2, 2)
    );
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (7, 3, 40)
    );
    assert_eq!(h.codec(), Some(Codec::Gzip));
    let offsets: Vec<i64> = b.entries.iter().map(|e| b.offset_of(e)).collect();
    assert_eq!(offsets, vec![11, 12]);
}

#[test]
fn tombstones_get_a_horizon_then_vanish_after_it() {
    let d = TempDir::new("tomb");
    let o = EncodeOptions::default();
    let s = write_segment(
        &d.0,
        0,
        &[encode(
            0,
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"a"), None),
                (Some(b"b"), Some(b"2")),
            ],
            1,
            o,
        )],
    );
    let r1 = clean(std::slice::from_ref(&s), &d.0, 5_000);
    let data = fs::read(&r1.segments[0].path).unwrap();
    let h = decode_batch(&data, &DecodeOptions::default())
        .unwrap()
        .header;
    assert_ne!(h.attributes & ATTR_DELETE_HORIZON, 0);
    assert_eq!(h.first_timestamp, 6_000);
    assert_eq!(read_all(&r1.segments[0].path).len(), 2);
    // Clean the cleaned output again: before the horizon the tombstone stays.
    let again = d.0.join("again");
    fs::create_dir_all(again.join("out")).unwrap();
    let s2 = again.join(format!("{:020}.log", 0));
    fs::copy(&r1.segments[0].path, &s2).unwrap();
    let r2 = clean(std::slice::from_ref(&s2), &again, 5_999);
    assert_eq!(read_all(&r2.segments[0].path).len(), 2);
    let r3 = clean(&[s2], &again, 6_000);
    let left = read_all(&r3.segments[0].path);
    assert_eq!(left, vec![(2, Some(b"b".to_vec()), Some(b"2".to_vec()))]);
    assert_eq!(r3.stats.tombstones_removed, 1);
}

#[test]
fn the_last_batch_of_a_producer_stays_as_an_empty_header() {
    let d = TempDir::new("empty");
    let p = EncodeOptions {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: 0,
        ..EncodeOptions::default()
    };
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &[(Some(b"a"), Some(b"1"))], 1, p),
            encode(
                1,
                &[(Some(b"a"), Some(b"2"))],
                2,
                EncodeOptions {
                    base_sequence: 1,
                    ..p
                },
            ),
            encode(2, &[(Some(b"a"), Some(b"3"))], 3, EncodeOptions::default()),
        ],
    );
    let r = clean(&[s], &d.0, 0);
    let data = fs::read(&r.segments[0].path).unwrap();
    let first = decode_batch(&data[..61], &DecodeOptions::default()).unwrap();
    let h = first.header;
    assert_eq!(
        (
            h.base_offset,
            h.record_count,
            h.producer_id,
            h.base_sequence
        ),
        (1, 0, 9, 1)
    );
    assert_eq!((h.first_timestamp, h.max_timestamp), (-1, 2));
    assert_eq!(r.stats.empty_batches_retained, 1);
    assert_eq!(
        read_all(&r.segments[0].path),
        vec![(2, Some(b"a".to_vec()), Some(b"3".to_vec()))]
    );
}

#[test]
fn a_full_map_stops_the_dirty_range_at_the_offset_reached() {
    let d = TempDir::new("full");
    let recs: Vec<Vec<u8>> = (0..20).map(|i| format!("k{i}").into_bytes()).collect();
    let rs: Vec<Rec<'_>> = recs
        .iter()
        .map(|k| (Some(k.as_slice()), Some(&b"v"[..])))
        .collect();
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &rs[..10], 1, EncodeOptions::default()),
            encode(10, &rs[10..], 1, EncodeOptions::default()),
        ],
    );
    // 5 slots at load factor 1.0: five keys fit, the sixth stops the pass.
    let mut map = OffsetMap::new(5 * ENTRY_BYTES as u64, 1.0).unwrap();
    build_offset_map(
        &[s],
        0,
        i64::MAX,
        &mut map,
        &mut Throttle::new(None),
        1 << 26,
        None,
    )
    .unwrap();
    assert!(map.full());
    assert_eq!((map.len(), map.latest_offset()), (5, 4));
}

#[test]
fn untouched_segments_are_copied_byte_for_byte_and_transactional_batches_too() {
    let d = TempDir::new("copy");
    let t = EncodeOptions {
        producer_id: 1,
        producer_epoch: 0,
        base_sequence: 0,
        transactional: true,
        ..EncodeOptions::default()
    };
    let b0 = encode(0, &[(Some(b"a"), Some(b"1"))], 1, t);
    let b1 = encode(1, &[(Some(b"b"), Some(b"1"))], 1, EncodeOptions::default());
    let s = write_segment(&d.0, 0, &[b0.clone(), b1.clone()]);
    let r = clean(&[s], &d.0, 0);
    assert_eq!(fs::read(&r.segments[0].path).unwrap(), [b0, b1].concat());
}

#[test]
fn given_producer_offsets_replace_the_derived_ones() {
    let d = TempDir::new("given");
    let p = EncodeOptions {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: 0,
        ..EncodeOptions::default()
    };
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &[(Some(b"a"), Some(b"1"))], 1, p),
            encode(1, &[(Some(b"a"), Some(b"2"))], 1, EncodeOptions::default()),
        ],
    );
    let mut map = OffsetMap::new(1 << 12, 0.9).unwrap();
    let mut th = Throttle::new(None);
    build_offset_map(
        std::slice::from_ref(&s),
        0,
        i64::MAX,
        &mut map,
        &mut th,
        1 << 26,
        None,
    )
    .unwrap();
    let mut o = opts(0);
    o.producer_last_offsets = Some(HashMap::from([(9, 50)]));
    let r = clean_segments(&[s], &map, &o, &d.0.join("out"), &mut th).unwrap();
    assert_eq!(r.stats.empty_batches_retained, 0);
    assert_eq!(r.segments[0].batches, 1);
}

// -- transactions ------------------------------------------------------------------

fn txn_opts(pid: i64, epoch: i16) -> EncodeOptions {
    EncodeOptions {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: 0,
        transactional: true,
        ..EncodeOptions::default()
    }
}

/// A COMMIT (type 1) or ABORT (type 0) marker of `pid` at `offset`.
fn marker(offset: i64, pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let key = [0u8, 0, 0, u8::from(commit)];
    let value = [0u8, 0, 0, 0, 0, 0];
    encode(
        offset,
        &[(Some(&key), Some(&value))],
        5,
        EncodeOptions {
            base_sequence: -1,
            control: true,
            ..txn_opts(pid, epoch)
        },
    )
}

fn clean_txn(paths: &[PathBuf], dir: &Path, now_ms: i64, aborted: &[AbortedTxn]) -> CleanResult {
    let mut map = OffsetMap::new(1 << 16, 0.9).unwrap();
    let mut t = Throttle::new(None);
    build_offset_map(paths, 0, i64::MAX, &mut map, &mut t, 1 << 26, Some(aborted)).unwrap();
    let mut o = opts(now_ms);
    o.aborted_transactions = Some(aborted.to_vec());
    let out = dir.join("out");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    clean_segments(paths, &map, &o, &out, &mut t).unwrap()
}

/// (base offset, is control, record count) of every batch of a file.
fn shape(path: &Path) -> Vec<(i64, bool, i32)> {
    let data = fs::read(path).unwrap();
    let mut out = vec![];
    let mut at = 0;
    while at < data.len() {
        let h = crate::record_batch::header::BatchHeader::parse(&data[at..]);
        out.push((h.base_offset, h.is_control(), h.record_count));
        at += h.total_len();
    }
    out
}

#[test]
fn aborted_records_go_and_never_supersede_committed_ones() {
    let d = TempDir::new("txn-abort");
    // Producer 1 commits k=a/1; producer 2 aborts k=a/2 and k=b/2; plain k=c.
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &[(Some(b"a"), Some(b"1"))], 1, txn_opts(1, 0)),
            marker(1, 1, 0, true),
            encode(
                2,
                &[(Some(b"a"), Some(b"2")), (Some(b"b"), Some(b"2"))],
                1,
                txn_opts(2, 0),
            ),
            marker(4, 2, 0, false),
            encode(5, &[(Some(b"c"), Some(b"3"))], 1, EncodeOptions::default()),
        ],
    );
    let aborted = [AbortedTxn {
        producer_id: 2,
        first_offset: 2,
        last_offset: 4,
    }];
    let r = clean_txn(std::slice::from_ref(&s), &d.0, 0, &aborted);
    let out = &r.segments[0];
    let recs = read_all(&out.path);
    let data: Vec<_> = recs
        .iter()
        .filter(|(o, _, _)| ![1, 4].contains(o))
        .cloned()
        .collect();
    assert_eq!(
        data,
        vec![
            (0, Some(b"a".to_vec()), Some(b"1".to_vec())),
            (5, Some(b"c".to_vec()), Some(b"3".to_vec())),
        ]
    );
    assert_eq!(r.stats.aborted_removed, 2);
    // Producer 2's aborted batch is its last data batch: kept as an empty header.
    // Both markers stay (their transactions' batches were seen in this pass), and the
    // ABORT marker's index entry is reported.
    assert_eq!(
        shape(&out.path),
        vec![
            (0, false, 1),
            (1, true, 1),
            (2, false, 0),
            (4, true, 1),
            (5, false, 1)
        ]
    );
    assert_eq!(out.aborted_transactions, aborted.to_vec());
    assert_eq!(r.stats.markers_removed, 0);
}

#[test]
fn markers_get_a_horizon_once_their_data_is_gone_then_go() {
    let d = TempDir::new("txn-markers");
    // Producer 1 commits a/1 then a plain a/2 supersedes it; producer 3 writes more
    // later so that neither transactional batch is a producer's last.
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &[(Some(b"a"), Some(b"1"))], 1, txn_opts(1, 0)),
            marker(1, 1, 0, true),
            encode(2, &[(Some(b"b"), Some(b"x"))], 1, txn_opts(1, 0)),
            marker(3, 1, 0, false),
            encode(4, &[(Some(b"a"), Some(b"2"))], 1, EncodeOptions::default()),
            encode(
                5,
                &[(Some(b"z"), Some(b"1"))],
                1,
                EncodeOptions {
                    transactional: false,
                    ..txn_opts(1, 0)
                },
            ),
        ],
    );
    let aborted = [AbortedTxn {
        producer_id: 1,
        first_offset: 2,
        last_offset: 3,
    }];
    // Pass 1 removes the data (superseded a/1, aborted b/x); both markers saw their
    // transactions' batches, so they stay unchanged.
    let r1 = clean_txn(std::slice::from_ref(&s), &d.0, 1_000, &aborted);
    assert_eq!(
        shape(&r1.segments[0].path),
        vec![(1, true, 1), (3, true, 1), (4, false, 1), (5, false, 1)]
    );
    assert_eq!(r1.segments[0].aborted_transactions, aborted.to_vec());
    let s2 = d.0.join("p2");
    fs::create_dir_all(&s2).unwrap();
    let seg2 = s2.join(format!("{:020}.log", 0));
    fs::rename(&r1.segments[0].path, &seg2).unwrap();
    // Pass 2: no batch of either transaction is left: the markers get the horizon
    // (now + delete.retention.ms), and the ABORT's index entry is no longer reported.
    let r2 = clean_txn(std::slice::from_ref(&seg2), &s2, 2_000, &aborted);
    assert!(r2.segments[0].aborted_transactions.is_empty());
    let data = fs::read(&r2.segments[0].path).unwrap();
    let h = crate::record_batch::header::BatchHeader::parse(&data);
    assert!(h.is_control() && h.attributes & ATTR_DELETE_HORIZON != 0);
    assert_eq!(h.first_timestamp, 3_000);
    let seg3 = s2.join(format!("{:020}.log", 0));
    fs::rename(&r2.segments[0].path, &seg3).unwrap();
    // Before the horizon they stay; at it they go.
    let r3 = clean_txn(std::slice::from_ref(&seg3), &s2, 2_999, &aborted);
    assert_eq!(r3.stats.markers_removed, 0);
    assert_eq!(
        fs::read(&r3.segments[0].path).unwrap(),
        fs::read(&seg3).unwrap()
    );
    let r4 = clean_txn(std::slice::from_ref(&seg3), &s2, 3_000, &aborted);
    assert_eq!(r4.stats.markers_removed, 2);
    assert_eq!(
        shape(&r4.segments[0].path),
        vec![(4, false, 1), (5, false, 1)]
    );
}

#[test]
fn a_fencing_marker_is_its_producers_last_batch() {
    let d = TempDir::new("txn-fence");
    // Epoch 0 aborted by the coordinator with epoch 1: the marker carries the state.
    let s = write_segment(
        &d.0,
        0,
        &[
            encode(0, &[(Some(b"a"), Some(b"1"))], 1, txn_opts(4, 0)),
            marker(1, 4, 1, false),
        ],
    );
    let aborted = [AbortedTxn {
        producer_id: 4,
        first_offset: 0,
        last_offset: 1,
    }];
    let r = clean_txn(std::slice::from_ref(&s), &d.0, 0, &aborted);
    // The aborted batch is not the producer's last any more: it goes entirely.
    assert_eq!(shape(&r.segments[0].path), vec![(1, true, 1)]);
    let seg = d.0.join("again");
    fs::create_dir_all(&seg).unwrap();
    let p = seg.join(format!("{:020}.log", 0));
    fs::rename(&r.segments[0].path, &p).unwrap();
    let r2 = clean_txn(std::slice::from_ref(&p), &seg, 0, &aborted);
    let p2 = seg.join(format!("{:020}.log", 0));
    fs::rename(&r2.segments[0].path, &p2).unwrap();
    // Past the horizon the marker's record goes but its header stays.
    let r3 = clean_txn(std::slice::from_ref(&p2), &seg, 10_000, &aborted);
    assert_eq!(shape(&r3.segments[0].path), vec![(1, true, 0)]);
    assert_eq!(r3.stats.empty_batches_retained, 1);
}

#[test]
fn without_aborted_transactions_nothing_transactional_is_touched() {
    let d = TempDir::new("txn-legacy");
    let b0 = encode(
        0,
        &[(Some(b"a"), Some(b"1")), (Some(b"a"), Some(b"2"))],
        1,
        txn_opts(1, 0),
    );
    let b1 = marker(2, 1, 0, true);
    let s = write_segment(&d.0, 0, &[b0.clone(), b1.clone()]);
    let r = clean(&[s], &d.0, 0);
    assert_eq!(fs::read(&r.segments[0].path).unwrap(), [b0, b1].concat());
}
