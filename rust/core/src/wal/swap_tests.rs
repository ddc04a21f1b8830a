//! Tests of swapping cleaned segments into a live log (`swap.rs`) and of recovery
//! from each state a crash can leave a swap in.

use super::recovery::RecoveryReport;
use super::tests::{batch, cfg, forget_clean_close, TempDir};
use super::*;
use std::fs;

/// Bytes of each test batch: the 61-byte header and 100 payload bytes.
const SIZE: usize = HEADER_LEN + 100;

/// Two test batches per segment.
fn two_per_segment() -> WalConfig {
    WalConfig {
        segment_bytes: 2 * SIZE as u64,
        ..cfg(FsyncPolicy::Never)
    }
}

/// Max timestamp of the batch at `offset`.
fn ts(offset: i64) -> i64 {
    1000 + offset
}

/// Eight one-record batches at offsets 0..8: closed segments at 0, 2 and 4, the
/// active one at 6. The log is left open.
fn eight_batches(d: &TempDir) -> Wal {
    let wal = Wal::open(d.path(), two_per_segment(), WalHooks::default()).unwrap();
    for i in 0..8 {
        assert_eq!(wal.append(&batch(1, ts(i), 100)).unwrap().base_offset, i);
    }
    assert_eq!(wal.segment_count(), 4);
    wal
}

/// The stored batch at `offset` (as written: base offset patched in).
fn stored(d: &TempDir, offset: i64) -> Vec<u8> {
    let seg = fs::read(d.file(offset / 2 * 2, ".log")).unwrap();
    let at = (offset % 2) as usize * SIZE;
    seg[at..at + SIZE].to_vec()
}

/// The stored batches at `offsets`, back to back.
fn batches_at(d: &TempDir, offsets: &[i64]) -> Vec<u8> {
    offsets.iter().flat_map(|&o| stored(d, o)).collect()
}

fn cleaned_path(d: &TempDir, base: i64) -> PathBuf {
    d.file(base, ".log.cleaned")
}

/// Writes `<base>.log.cleaned` holding the stored batches at `offsets`.
fn write_cleaned(d: &TempDir, base: i64, offsets: &[i64]) -> PathBuf {
    let p = cleaned_path(d, base);
    fs::write(&p, batches_at(d, offsets)).unwrap();
    p
}

fn open_report(d: &TempDir) -> (Wal, RecoveryReport) {
    Wal::open_with_report(d.path(), two_per_segment(), WalHooks::default()).unwrap()
}

/// Names in the directory that end with `suffix`.
fn names_ending(d: &TempDir, suffix: &str) -> Vec<String> {
    fs::read_dir(d.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect()
}

fn compacted_file(d: &TempDir) -> PathBuf {
    d.path().join(COMPACTED_OFFSET_NAME)
}

/// The batches at offsets 0..8 as [`eight_batches`] wrote them.
fn originals(d: &TempDir) -> Vec<Vec<u8>> {
    (0..8).map(|o| stored(d, o)).collect()
}

/// What the log holds after segments 0 and 2 were replaced by batches 1 and 3
/// (`orig`: [`originals`] from before), with `segments` segments in all.
fn assert_swapped(d: &TempDir, wal: &Wal, orig: &[Vec<u8>], segments: usize) {
    assert_eq!(wal.segment_count(), segments);
    assert_eq!(wal.compacted_offset(), 4);
    // Offsets 0 and 2 are gone: a fetch there returns the next batch.
    assert_eq!(wal.read(0, 1).unwrap(), orig[1]);
    assert_eq!(wal.read(1, 1).unwrap(), orig[1]);
    assert_eq!(wal.read(2, 1).unwrap(), orig[3]);
    assert_eq!(wal.read(0, 1 << 20).unwrap(), {
        let mut want = [orig[1].clone(), orig[3].clone()].concat();
        want.extend(fs::read(d.file(4, ".log")).unwrap());
        want.extend(fs::read(d.file(6, ".log")).unwrap());
        if let Ok(more) = fs::read(d.file(8, ".log")) {
            want.extend(more);
        }
        want
    });
    assert_eq!(wal.offset_for_timestamp(ts(0)).unwrap(), Some((1, ts(1))));
    assert!(!d.file(2, ".log").exists());
    assert!(!d.file(2, ".index").exists());
    assert!(!d.file(2, ".timeindex").exists());
    assert_eq!(
        fs::read(d.file(0, ".log")).unwrap(),
        [orig[1].clone(), orig[3].clone()].concat()
    );
}

#[test]
fn a_swap_replaces_the_segments_reads_step_over_the_gaps_and_both_opens_agree() {
    let d = TempDir::new("swap-ok");
    let wal = eight_batches(&d);
    let orig = originals(&d);
    let p = write_cleaned(&d, 0, &[1, 3]);
    assert!(wal.replace_segments(&p, 0, 4).unwrap());
    assert_swapped(&d, &wal, &orig, 3);
    assert_eq!(fs::read_to_string(compacted_file(&d)).unwrap(), "4\n");
    for suffix in [".deleted", ".swap", ".cleaned", ".tmp"] {
        assert_eq!(names_ending(&d, suffix), Vec::<String>::new(), "{suffix}");
    }
    // The new indexes name the first batch, which starts above the segment's base.
    assert_eq!(
        fs::read(d.file(0, ".index")).unwrap(),
        encode_index_entry(1, 0)
    );
    assert_eq!(
        fs::read(d.file(0, ".timeindex")).unwrap(),
        encode_time_entry(ts(1), 1)
    );
    // Appends go on after the swap.
    assert_eq!(wal.append(&batch(1, ts(8), 100)).unwrap().base_offset, 8);
    wal.close().unwrap();
    drop(wal);

    // A clean open trusts the new indexes.
    let (wal, r) = open_report(&d);
    assert!(r.clean);
    assert_eq!((r.swaps_completed, r.truncated_bytes), (0, 0));
    assert_eq!(wal.high_watermark(), 9);
    // Offset 8 went to a new segment.
    assert_swapped(&d, &wal, &orig, 4);
    wal.close().unwrap();
    drop(wal);

    // A crash open scanning from the start accepts the gaps below offset 4.
    forget_clean_close(&d, 0);
    let (wal, r) = open_report(&d);
    assert!(!r.clean);
    assert_eq!(r.scanned_segments, 4);
    assert_eq!((r.truncated_bytes, r.segments_deleted), (0, 0));
    assert_eq!(r.reason, None);
    assert_eq!(wal.high_watermark(), 9);
    // Offset 8 went to a new segment.
    assert_swapped(&d, &wal, &orig, 4);
}

#[test]
fn an_empty_cleaned_file_leaves_an_empty_segment_that_reads_skip() {
    let d = TempDir::new("swap-empty");
    let wal = eight_batches(&d);
    let p = write_cleaned(&d, 2, &[]);
    assert!(wal.replace_segments(&p, 2, 4).unwrap());
    assert_eq!(wal.segment_count(), 4);
    assert_eq!(wal.read(2, 1).unwrap(), stored(&d, 4));
    assert_eq!(wal.read(1, 1).unwrap(), stored(&d, 1));
    wal.close().unwrap();
    drop(wal);
    forget_clean_close(&d, 0);
    let (wal, r) = open_report(&d);
    assert_eq!((r.truncated_bytes, r.segments_deleted), (0, 0));
    assert_eq!(wal.high_watermark(), 8);
    assert_eq!(wal.read(2, 1).unwrap(), stored(&d, 4));
}

#[test]
fn bad_arguments_are_refused_and_leave_the_file_alone() {
    let d = TempDir::new("swap-args");
    let wal = eight_batches(&d);
    let p = write_cleaned(&d, 0, &[1]);
    for (base, end) in [(-1, 2), (2, 2), (4, 2)] {
        let e = wal.replace_segments(&p, base, end).unwrap_err();
        assert!(
            matches!(&e, WalError::InvalidArgument(m) if m.contains("0 <= base < end")),
            "{e:?}"
        );
    }
    // The name must be the base's, in the log's directory.
    let e = wal.replace_segments(&p, 2, 4).unwrap_err();
    assert!(
        matches!(&e, WalError::InvalidArgument(m) if m.contains("00000000000000000002.log.cleaned"))
    );
    let elsewhere = std::env::temp_dir().join("00000000000000000000.log.cleaned");
    assert!(matches!(
        wal.replace_segments(&elsewhere, 0, 2),
        Err(WalError::InvalidArgument(_))
    ));
    // A path naming the directory another way is the same file.
    let roundabout = d.path().join("..").join(d.path().file_name().unwrap());
    let e = wal
        .replace_segments(roundabout.join("00000000000000000000.log.cleaned"), 0, 8)
        .unwrap_err();
    // The active segment (base 6) is never replaced.
    assert!(matches!(&e, WalError::InvalidArgument(m) if m.contains("past the active segment")));
    assert!(p.exists());
    let missing = cleaned_path(&d, 2);
    let e = wal.replace_segments(&missing, 2, 4).unwrap_err();
    assert!(matches!(&e, WalError::InvalidArgument(m) if m.contains("no such cleaned segment")));
    assert_eq!(wal.segment_count(), 4);
    assert_eq!(wal.compacted_offset(), 0);
}

#[test]
fn segments_no_longer_the_logs_make_the_swap_return_false_and_delete_the_file() {
    let d = TempDir::new("swap-gone");
    let wal = eight_batches(&d);
    // 1 is not a segment's base.
    let p = write_cleaned(&d, 1, &[1]);
    assert!(!wal.replace_segments(&p, 1, 4).unwrap());
    assert!(!p.exists());
    // DeleteRecords removed segment 0.
    assert_eq!(wal.delete_records(2).unwrap(), 2);
    let p = write_cleaned(&d, 0, &[3]);
    assert!(!wal.replace_segments(&p, 0, 4).unwrap());
    assert!(!p.exists());
    assert_eq!(wal.segment_count(), 3);
    // A closed log swaps nothing.
    let p = write_cleaned(&d, 2, &[3]);
    wal.close().unwrap();
    assert!(!wal.replace_segments(&p, 2, 4).unwrap());
    assert!(!p.exists());
    assert!(!compacted_file(&d).exists());
}

#[test]
fn a_malformed_cleaned_file_is_a_corrupt_record_error_naming_file_byte_and_reason() {
    let d = TempDir::new("swap-bad");
    let wal = eight_batches(&d);
    let cases: [(Vec<u8>, i64, String); 4] = [
        // An offset outside [0, 4).
        (
            batches_at(&d, &[1, 5]),
            4,
            format!("at byte {SIZE}: baseOffset 5 where 2 was expected"),
        ),
        // An offset at the end of the range: accepted as the next one, then too far.
        (
            batches_at(&d, &[1, 2]),
            2,
            format!(
                "at byte {}: offsets run to 2, past the replaced range's end 2",
                2 * SIZE
            ),
        ),
        // Not strictly increasing.
        (
            batches_at(&d, &[3, 1]),
            4,
            format!("at byte {SIZE}: baseOffset 1 where 4 was expected"),
        ),
        // Bytes after the last batch.
        (
            [batches_at(&d, &[1]), vec![0; 10]].concat(),
            4,
            format!("at byte {SIZE}: batch header cut short by the end of the file"),
        ),
    ];
    for (bytes, end, want) in cases {
        let p = cleaned_path(&d, 0);
        fs::write(&p, &bytes).unwrap();
        let e = wal.replace_segments(&p, 0, end).unwrap_err();
        let WalError::CorruptBatch(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.starts_with(&format!("{}: cleaned segment is malformed", p.display())),
            "{m}"
        );
        assert!(m.ends_with(&want), "{m} / {want}");
        assert!(!p.exists());
    }
    let mut damaged = batches_at(&d, &[1]);
    damaged[SIZE - 1] ^= 1;
    let p = cleaned_path(&d, 0);
    fs::write(&p, &damaged).unwrap();
    let e = wal.replace_segments(&p, 0, 4).unwrap_err();
    assert!(matches!(&e, WalError::CorruptBatch(m) if m.contains("at byte 0: CRC32C mismatch")));
    // The log is as it was.
    assert_eq!(wal.segment_count(), 4);
    assert_eq!(wal.compacted_offset(), 0);
    assert!(!compacted_file(&d).exists());
    assert_eq!(wal.read(0, 1).unwrap(), stored(&d, 0));
}

#[test]
fn the_compacted_offset_only_rises() {
    let d = TempDir::new("swap-rises");
    let wal = eight_batches(&d);
    let p = write_cleaned(&d, 2, &[3, 5]);
    assert!(wal.replace_segments(&p, 2, 6).unwrap());
    assert_eq!(wal.compacted_offset(), 6);
    let p = write_cleaned(&d, 0, &[1]);
    assert!(wal.replace_segments(&p, 0, 2).unwrap());
    assert_eq!(wal.compacted_offset(), 6);
    assert_eq!(fs::read_to_string(compacted_file(&d)).unwrap(), "6\n");
    assert_eq!(wal.read(0, 1 << 20).unwrap().len(), 5 * SIZE);
}

#[test]
fn an_uncommitted_swap_is_rolled_back_at_open() {
    let d = TempDir::new("crash-cleaned");
    let wal = eight_batches(&d);
    wal.close().unwrap();
    drop(wal);
    let p = write_cleaned(&d, 0, &[1, 3]);
    forget_clean_close(&d, 8);
    let (wal, r) = open_report(&d);
    assert!(!p.exists());
    assert_eq!(r.swaps_completed, 0);
    assert_eq!(wal.segment_count(), 4);
    assert_eq!(wal.compacted_offset(), 0);
    assert_eq!(wal.read(0, 1).unwrap(), stored(&d, 0));
}

/// Leaves the state of a crash after the commit point of swapping batches 1 and 3
/// in for segments 0 and 2, with the first `renamed` of the replaced files already
/// renamed to `*.deleted` (a crash part way through step 3); returns the batches at
/// offsets 0..8 as they were before.
fn crash_after_commit(d: &TempDir, renamed: usize) -> Vec<Vec<u8>> {
    let wal = eight_batches(d);
    wal.close().unwrap();
    drop(wal);
    let before = originals(d);
    let content = batches_at(d, &[1, 3]);
    fs::write(compacted_file(d), "4\n").unwrap();
    fs::write(d.path().join(super::swap::swap_name(0, 4)), content).unwrap();
    let olds = [
        d.file(0, ".log"),
        d.file(0, ".index"),
        d.file(0, ".timeindex"),
        d.file(2, ".log"),
    ];
    for p in &olds[..renamed] {
        let mut to = p.clone().into_os_string();
        to.push(".deleted");
        fs::rename(p, to).unwrap();
    }
    before
}

#[test]
fn a_committed_swap_is_completed_at_open_from_every_crash_state() {
    for renamed in [0, 3, 4] {
        for rp in [0, 4, 8] {
            let d = TempDir::new(&format!("crash-swap-{renamed}-{rp}"));
            let want = crash_after_commit(&d, renamed);
            forget_clean_close(&d, rp);
            let (wal, r) = open_report(&d);
            assert_eq!(r.swaps_completed, 1, "renamed {renamed} rp {rp}");
            assert_eq!((r.truncated_bytes, r.segments_deleted), (0, 0));
            assert_eq!(wal.high_watermark(), 8);
            assert_eq!(wal.compacted_offset(), 4);
            assert_eq!(wal.segment_count(), 3);
            assert_eq!(wal.read(0, 1).unwrap(), want[1]);
            assert_eq!(wal.read(2, 1).unwrap(), want[3]);
            assert_eq!(wal.read(4, 1).unwrap(), want[4]);
            for suffix in [".deleted", ".swap"] {
                assert_eq!(names_ending(&d, suffix), Vec::<String>::new());
            }
            assert!(!d.file(2, ".log").exists());
            // The rebuilt index names the first batch, above the base.
            assert_eq!(
                fs::read(d.file(0, ".index")).unwrap(),
                encode_index_entry(1, 0)
            );
            wal.close().unwrap();
            drop(wal);
            let (wal, r) = open_report(&d);
            assert!(r.clean);
            assert_eq!(wal.read(0, 1).unwrap(), want[1]);
        }
    }
}

#[test]
fn gaps_above_the_compacted_offset_still_end_the_log() {
    let d = TempDir::new("gap-above");
    let wal = eight_batches(&d);
    let p = write_cleaned(&d, 0, &[1, 3]);
    assert!(wal.replace_segments(&p, 0, 4).unwrap());
    wal.close().unwrap();
    drop(wal);
    // The batch at offset 7 claims offset 9 (the base offset is outside the CRC).
    let mut active = fs::read(d.file(6, ".log")).unwrap();
    active[SIZE..SIZE + 8].copy_from_slice(&9i64.to_be_bytes());
    fs::write(d.file(6, ".log"), &active).unwrap();
    forget_clean_close(&d, 0);
    let (wal, r) = open_report(&d);
    assert_eq!(wal.high_watermark(), 7);
    assert_eq!(r.truncated_bytes, SIZE as u64);
    assert_eq!(r.cut_file.as_deref(), Some(d.file(6, ".log").as_path()));
    assert_eq!(
        r.reason.as_deref(),
        Some("baseOffset 9 where 7 was expected")
    );
}

#[test]
fn a_missing_segment_is_a_gap_only_up_to_the_compacted_offset() {
    for (compacted, hw) in [(4, 4), (6, 8)] {
        let d = TempDir::new(&format!("gap-between-{compacted}"));
        let wal = eight_batches(&d);
        wal.close().unwrap();
        drop(wal);
        for suffix in [".log", ".index", ".timeindex"] {
            fs::remove_file(d.file(4, suffix)).unwrap();
        }
        fs::write(compacted_file(&d), format!("{compacted}\n")).unwrap();
        forget_clean_close(&d, 0);
        let (wal, r) = open_report(&d);
        assert_eq!(wal.high_watermark(), hw, "compacted {compacted}");
        if hw == 4 {
            assert_eq!(r.segments_deleted, 1);
            assert_eq!(
                r.reason.as_deref(),
                Some("segment starts at offset 6 where 4 was expected")
            );
        } else {
            assert_eq!((r.segments_deleted, r.reason), (0, None));
            assert_eq!(wal.read(4, 1).unwrap(), wal.read(6, 1).unwrap());
        }
    }
}

#[test]
fn an_unreadable_compacted_offset_refuses_the_open_naming_the_file() {
    let d = TempDir::new("compacted-unreadable");
    let wal = eight_batches(&d);
    wal.close().unwrap();
    drop(wal);
    for text in ["four\n", "-4\n", ""] {
        fs::write(compacted_file(&d), text).unwrap();
        let e = Wal::open(d.path(), two_per_segment(), WalHooks::default())
            .err()
            .expect("open must fail");
        let WalError::Storage(m) = &e else {
            panic!("{e:?}")
        };
        assert!(
            m.contains(&compacted_file(&d).display().to_string())
                && m.contains("unreadable compacted offset"),
            "{m}"
        );
    }
}

#[test]
fn an_io_failure_after_the_commit_point_takes_the_log_offline_and_open_completes_the_swap() {
    let d = TempDir::new("swap-offline");
    let wal = eight_batches(&d);
    // A directory where segment 2's .log is to be renamed makes that rename fail.
    fs::create_dir(d.file(2, ".log.deleted")).unwrap();
    fs::write(d.file(2, ".log.deleted").join("x"), b"x").unwrap();
    let p = write_cleaned(&d, 0, &[1, 3]);
    let e = wal.replace_segments(&p, 0, 4).unwrap_err();
    let WalError::Storage(m) = &e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains("storage failure while swapping in a cleaned segment, log is offline"),
        "{m}"
    );
    assert!(wal.is_offline());
    assert!(matches!(
        wal.append(&batch(1, ts(8), 100)),
        Err(WalError::Offline(_))
    ));
    let _ = wal.close();
    drop(wal);
    fs::remove_dir_all(d.file(2, ".log.deleted")).unwrap();
    let (wal, r) = open_report(&d);
    assert_eq!(r.swaps_completed, 1);
    assert_eq!(wal.segment_count(), 3);
    assert_eq!(wal.compacted_offset(), 4);
    assert_eq!(wal.high_watermark(), 8);
    assert_eq!(names_ending(&d, ".deleted"), Vec::<String>::new());
}
