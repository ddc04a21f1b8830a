//! Tests of the WAL: round trips, group commit, recovery, retention, roll,
//! backpressure, offline, and the on-disk layout.

use super::*;
use std::fs;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> Self {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!(
            "streamcore-wal-test-{}-{tag}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&p);
        TempDir(p)
    }
    pub(super) fn path(&self) -> &Path {
        &self.0
    }
    pub(super) fn file(&self, base: i64, suffix: &str) -> PathBuf {
        self.0.join(format!("{base:020}{suffix}"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A v2 batch of `records` records with `payload` filler bytes and a valid CRC.
pub(super) fn batch(records: i32, max_ts: i64, payload: usize) -> Vec<u8> {
    let total = HEADER_LEN + payload;
    let mut b = vec![0u8; total];
    b[8..12].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b[16] = 2;
    b[23..27].copy_from_slice(&(records - 1).to_be_bytes());
    b[27..35].copy_from_slice(&max_ts.to_be_bytes());
    b[35..43].copy_from_slice(&max_ts.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[57..61].copy_from_slice(&records.to_be_bytes());
    for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
        *x = (i * 7 + payload) as u8;
    }
    let crc = crate::crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

pub(super) fn cfg(fsync: FsyncPolicy) -> WalConfig {
    WalConfig {
        fsync,
        ..WalConfig::default()
    }
}

fn open(dir: &TempDir, c: WalConfig) -> Wal {
    Wal::open(dir.path(), c, WalHooks::default()).expect("open")
}

/// Simulates a crash after a clean close: no marker, recovery point `rp`.
pub(super) fn forget_clean_close(dir: &TempDir, rp: i64) {
    let _ = fs::remove_file(dir.path().join(CLEAN_SHUTDOWN_NAME));
    checkpoint::write(
        dir.path(),
        &Checkpoint {
            log_start_offset: 0,
            recovery_point: rp,
        },
    )
    .unwrap();
}

#[test]
fn append_assigns_consecutive_offsets_and_read_returns_patched_batches() {
    let d = TempDir::new("roundtrip");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    let b1 = batch(3, 1000, 100);
    let b2 = batch(5, 2000, 50);
    let r1 = wal.append(&b1).unwrap();
    let r2 = wal.append(&b2).unwrap();
    assert_eq!((r1.base_offset, r1.last_offset), (0, 2));
    assert_eq!((r2.base_offset, r2.last_offset), (3, 7));
    assert!(r1.log_append_time_ms > 1_600_000_000_000);
    assert_eq!(wal.high_watermark(), 8);
    let data = wal.read(0, 1 << 20).unwrap();
    let mut expect = b1.clone();
    let mut b2p = b2.clone();
    b2p[..8].copy_from_slice(&3i64.to_be_bytes());
    expect.extend_from_slice(&b2p);
    assert_eq!(data, expect);
    // The batch holding offset 5 starts at 3; max_bytes 1 still yields one batch.
    assert_eq!(wal.read(5, 1).unwrap(), b2p);
    assert_eq!(wal.read(0, 1).unwrap(), b1);
    assert!(wal.read(8, 100).unwrap().is_empty());
    assert!(matches!(
        wal.read(9, 100),
        Err(WalError::OffsetOutOfRange(_))
    ));
    let spans = wal.read_spans(0, 1 << 20).unwrap();
    assert_eq!(spans.len(), 1);
    assert_eq!((spans[0].position, spans[0].length), (0, data.len() as u64));
    wal.close().unwrap();
    assert!(d.path().join(CLEAN_SHUTDOWN_NAME).exists());
    assert_eq!(
        fs::read_to_string(d.path().join(CHECKPOINT_NAME)).unwrap(),
        "version 1\nlog_start_offset 0\nrecovery_point 8\n"
    );
    let wal = open(&d, cfg(FsyncPolicy::Never));
    assert!(!d.path().join(CLEAN_SHUTDOWN_NAME).exists());
    assert_eq!(wal.high_watermark(), 8);
    assert_eq!(wal.read(0, 1 << 20).unwrap(), expect);
    assert_eq!(wal.append(&b1).unwrap().base_offset, 8);
}

#[test]
fn append_rejects_batches_with_bad_framing() {
    let d = TempDir::new("framing");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    let mut b = batch(1, 0, 10);
    assert!(matches!(
        wal.append(&b[..40]),
        Err(WalError::CorruptBatch(_))
    ));
    b[16] = 1;
    assert!(matches!(wal.append(&b), Err(WalError::CorruptBatch(_))));
    let mut b = batch(1, 0, 10);
    b.push(0);
    assert!(matches!(wal.append(&b), Err(WalError::CorruptBatch(_))));
    assert_eq!(wal.high_watermark(), 0);
}

#[test]
fn concurrent_appends_are_group_committed_with_unique_offsets() {
    let d = TempDir::new("group");
    let wal = Arc::new(open(&d, cfg(FsyncPolicy::Always)));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| wal.append(&batch(2, 5, 30)).unwrap().base_offset)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<i64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(offsets, (0..400).map(|i| i * 2).collect::<Vec<_>>());
    let s = wal.stats();
    assert_eq!(s.appends, 400);
    assert!(s.groups <= 400);
    assert!(s.fsyncs >= s.groups);
    assert_eq!(wal.recovery_point(), 800);
    // Steady state reuses queue buffers: far fewer allocations than appends.
    assert!(s.buffer_pool.allocations < 100, "{:?}", s.buffer_pool);
}

#[test]
fn recovery_truncates_every_torn_tail_length_to_the_last_whole_batch() {
    let d = TempDir::new("torn");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    for i in 0..3 {
        wal.append(&batch(2, i, 40)).unwrap();
    }
    let last = batch(4, 9, 30);
    wal.append(&last).unwrap();
    wal.close().unwrap();
    drop(wal);
    let log = d.file(0, ".log");
    let full = fs::read(&log).unwrap();
    let good = full.len() - last.len();
    for cut in 1..=last.len() {
        fs::write(&log, &full[..full.len() - cut]).unwrap();
        forget_clean_close(&d, 0);
        let wal = open(&d, cfg(FsyncPolicy::Never));
        assert_eq!(wal.high_watermark(), 6, "cut {cut}");
        assert_eq!(wal.size_bytes(), good as u64);
        drop(wal);
        assert_eq!(fs::metadata(&log).unwrap().len(), good as u64);
    }
}

#[test]
fn recovery_truncates_at_a_tail_batch_with_a_bad_crc() {
    let d = TempDir::new("badcrc");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    for i in 0..4 {
        wal.append(&batch(1, i, 100)).unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let log = d.file(0, ".log");
    let mut data = fs::read(&log).unwrap();
    let n = data.len();
    data[n - 5] ^= 0xFF;
    fs::write(&log, &data).unwrap();
    forget_clean_close(&d, 2);
    let wal = open(&d, cfg(FsyncPolicy::Never));
    assert_eq!(wal.high_watermark(), 3);
    assert_eq!(wal.size_bytes(), 3 * 161);
    // The index of the scanned segment is rebuilt to match.
    assert_eq!(fs::read(d.file(0, ".index")).unwrap().len(), 8);
}

#[test]
fn corruption_below_the_recovery_point_is_an_error_naming_file_and_byte() {
    let d = TempDir::new("belowrp");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    for i in 0..4 {
        wal.append(&batch(1, i, 100)).unwrap();
    }
    wal.close().unwrap();
    drop(wal);
    let log = d.file(0, ".log");
    let mut data = fs::read(&log).unwrap();
    data[161 + 80] ^= 1;
    fs::write(&log, &data).unwrap();
    forget_clean_close(&d, 4);
    let err = Wal::open(d.path(), cfg(FsyncPolicy::Never), WalHooks::default())
        .err()
        .expect("open must fail");
    let msg = err.to_string();
    assert!(matches!(err, WalError::Storage(_)));
    assert!(msg.contains("00000000000000000000.log"), "{msg}");
    assert!(msg.contains("byte 161"), "{msg}");
    // Nothing was truncated.
    assert_eq!(fs::metadata(&log).unwrap().len(), 4 * 161);
}

#[test]
fn segments_roll_by_size_and_reads_cross_segment_boundaries() {
    let d = TempDir::new("roll");
    let c = WalConfig {
        segment_bytes: 3 * 161,
        ..cfg(FsyncPolicy::Interval)
    };
    let wal = open(&d, c.clone());
    for i in 0..10 {
        wal.append(&batch(1, i, 100)).unwrap();
    }
    assert_eq!(wal.segment_count(), 4);
    for base in [0, 3, 6, 9] {
        assert!(d.file(base, ".log").exists());
        assert!(d.file(base, ".index").exists());
        assert!(d.file(base, ".timeindex").exists());
    }
    assert_eq!(wal.read(2, 3 * 161).unwrap().len(), 3 * 161);
    let spans = wal.read_spans(2, 3 * 161).unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!((spans[0].position, spans[0].length), (2 * 161, 161));
    assert_eq!((spans[1].position, spans[1].length), (0, 2 * 161));
    wal.close().unwrap();
    drop(wal);
    forget_clean_close(&d, 0);
    let wal = open(&d, c);
    assert_eq!((wal.high_watermark(), wal.segment_count()), (10, 4));
}

#[test]
fn segments_roll_by_age() {
    let d = TempDir::new("age");
    let c = WalConfig {
        segment_ms: Some(20),
        ..cfg(FsyncPolicy::Never)
    };
    let wal = open(&d, c);
    wal.append(&batch(1, 0, 10)).unwrap();
    wal.append(&batch(1, 0, 10)).unwrap();
    std::thread::sleep(Duration::from_millis(40));
    wal.append(&batch(1, 0, 10)).unwrap();
    assert_eq!(wal.segment_count(), 2);
    assert!(d.file(2, ".log").exists());
}

use std::time::Duration;

#[test]
fn retention_by_size_and_time_deletes_oldest_whole_segments_and_moves_log_start() {
    let d = TempDir::new("retention");
    let c = WalConfig {
        segment_bytes: 2 * 161,
        ..cfg(FsyncPolicy::Never)
    };
    let wal = open(&d, c.clone());
    for i in 0..7 {
        wal.append(&batch(1, 1000 + i, 100)).unwrap();
    }
    assert_eq!(wal.segment_count(), 4);
    // Time: segments [0,1] (max ts 1001) and [2,3] (1003) are older than 1003.5.
    assert_eq!(wal.apply_retention(Some(10), None, Some(1013)).unwrap(), 1);
    assert_eq!(wal.log_start_offset(), 2);
    assert!(!d.file(0, ".log").exists());
    assert!(matches!(
        wal.read(1, 100),
        Err(WalError::OffsetOutOfRange(_))
    ));
    // Size: 5 batches left (805 bytes); keep >= 322 bytes => delete two segments.
    assert_eq!(wal.apply_retention(None, Some(322), None).unwrap(), 1);
    assert_eq!(wal.apply_retention(None, Some(161), None).unwrap(), 1);
    assert_eq!(wal.log_start_offset(), 6);
    // The active segment is never deleted.
    assert_eq!(wal.apply_retention(None, Some(0), None).unwrap(), 0);
    assert_eq!(wal.segment_count(), 1);
    wal.close().unwrap();
    let leftovers: Vec<_> = fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".deleted"))
        .collect();
    assert!(leftovers.is_empty());
    drop(wal);
    let wal = open(&d, c);
    assert_eq!((wal.log_start_offset(), wal.high_watermark()), (6, 7));
}

#[test]
fn full_queue_answers_backpressure_with_a_throttle_time() {
    let d = TempDir::new("backpressure");
    let c = WalConfig {
        queue_depth: 2,
        ..cfg(FsyncPolicy::Never)
    };
    let wal = open(&d, c);
    // Stall the writer so that queued appends stay queued.
    let gate = lock(&wal.shared.writer_gate);
    let w1 = wal.enqueue(&batch(1, 0, 10)).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    wal.submit(
        &batch(1, 0, 10),
        Completion::Callback(Box::new(move |r| done_tx.send(r).unwrap())),
    )
    .unwrap();
    match wal.enqueue(&batch(1, 0, 10)) {
        Err(WalError::Backpressure {
            throttle_time_ms, ..
        }) => assert!(throttle_time_ms >= 1),
        other => panic!("expected backpressure, got {:?}", other.map(|_| ())),
    }
    assert_eq!(wal.stats().backpressure_rejections, 1);
    assert!(wal.stats().queue_depth <= 2);
    drop(gate);
    assert_eq!(w1.wait().unwrap().base_offset, 0);
    assert_eq!(done_rx.recv().unwrap().unwrap().base_offset, 1);
    assert_eq!(wal.append(&batch(1, 0, 10)).unwrap().base_offset, 2);
}

#[test]
fn callbacks_run_in_order_on_a_thread_other_than_the_writer() {
    let d = TempDir::new("callbacks");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    let (tx, rx) = mpsc::channel();
    for _ in 0..50 {
        let tx = tx.clone();
        wal.submit(
            &batch(2, 0, 10),
            Completion::Callback(Box::new(move |r| {
                let name = std::thread::current().name().map(str::to_owned);
                tx.send((r.unwrap().base_offset, name)).unwrap();
            })),
        )
        .unwrap();
    }
    let got: Vec<_> = (0..50).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(
        got.iter().map(|g| g.0).collect::<Vec<_>>(),
        (0..50).map(|i| 2 * i).collect::<Vec<_>>()
    );
    assert_eq!(got[0].1.as_deref(), Some("streamcore-wal-notify"));
}

#[test]
fn inline_callbacks_run_in_order_on_the_writer_thread() {
    let d = TempDir::new("inline");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    let (tx, rx) = mpsc::channel();
    for i in 0..50 {
        let tx = tx.clone();
        let done = move |r: AppendOutcome| {
            let name = std::thread::current().name().map(str::to_owned);
            tx.send((r.unwrap().base_offset, name)).unwrap();
        };
        // Inline and notifier callbacks on one log: each kind keeps offset order.
        let c = if i % 5 == 0 {
            Completion::Callback(Box::new(done))
        } else {
            Completion::Inline(Box::new(done))
        };
        wal.submit(&batch(2, 0, 10), c).unwrap();
    }
    let got: Vec<_> = (0..50).map(|_| rx.recv().unwrap()).collect();
    let offsets = |notify: bool| -> Vec<i64> {
        got.iter()
            .filter(|g| (g.1.as_deref() == Some("streamcore-wal-notify")) == notify)
            .map(|g| g.0)
            .collect()
    };
    assert_eq!(offsets(true), (0..10).map(|i| 10 * i).collect::<Vec<_>>());
    let inline = offsets(false);
    assert_eq!(inline.len(), 40);
    assert!(inline.windows(2).all(|w| w[0] < w[1]));
    // Run by a writer thread of the pool, not by the notifier.
    assert!(got.iter().filter(|g| g.0 % 10 != 0).all(|g| g
        .1
        .as_deref()
        .is_some_and(|n| n.starts_with("streamcore-wal-") && n != "streamcore-wal-notify")));
}

#[test]
fn lent_batches_are_written_as_copied_ones_and_released_before_their_outcome() {
    let d = TempDir::new("lent");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    let d2 = TempDir::new("lent-copied");
    let copied = open(&d2, cfg(FsyncPolicy::Never));
    // The owner reports its drop; the callback checks it came first.
    struct Owner(Arc<AtomicUsize>);
    impl Drop for Owner {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let released = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let batches: Vec<Vec<u8>> = (0..20)
        .map(|i| batch(1 + i % 3, 1000 + i as i64, 50))
        .collect();
    for (i, b) in batches.iter().enumerate() {
        let (tx, seen) = (tx.clone(), released.clone());
        let done = Completion::Inline(Box::new(move |r: AppendOutcome| {
            tx.send((r.unwrap().base_offset, seen.load(Ordering::SeqCst), i))
                .unwrap();
        }));
        let owner: LentOwner = Box::new(Owner(released.clone()));
        unsafe { wal.submit_lent(b.as_ptr(), b.len(), owner, done) }.unwrap();
        copied.append(b).unwrap();
    }
    let got: Vec<_> = (0..20).map(|_| rx.recv().unwrap()).collect();
    // Each batch's owner was dropped before its outcome was delivered.
    assert!(got.iter().all(|&(_, seen, i)| seen > i));
    assert_eq!(released.load(Ordering::SeqCst), 20);
    // The same bytes on disk as the copying path, and the caller's memory untouched.
    let hw = wal.high_watermark();
    assert_eq!(hw, copied.high_watermark());
    assert_eq!(
        wal.read(0, 1 << 20).unwrap(),
        copied.read(0, 1 << 20).unwrap()
    );
    assert!(batches.iter().all(|b| b[..8] == [0u8; 8]));
    // A refused lend drops its owner at once.
    let before = released.load(Ordering::SeqCst);
    let short = [0u8; 20];
    let owner: LentOwner = Box::new(Owner(released.clone()));
    let refused = unsafe {
        wal.submit_lent(
            short.as_ptr(),
            short.len(),
            owner,
            Completion::Inline(Box::new(|_| panic!("never delivered"))),
        )
    };
    assert!(matches!(refused, Err(WalError::CorruptBatch(_))));
    assert_eq!(released.load(Ordering::SeqCst), before + 1);
}

#[test]
fn an_inline_callback_that_panics_leaves_the_writer_serving() {
    let d = TempDir::new("inline-panic");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    wal.submit(
        &batch(1, 0, 10),
        Completion::Inline(Box::new(|_| panic!("a callback's own bug"))),
    )
    .unwrap();
    assert_eq!(wal.append(&batch(1, 0, 10)).unwrap().base_offset, 1);
}

#[test]
fn failed_write_takes_the_log_offline_for_every_later_append() {
    let d = TempDir::new("offline");
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let hooks = WalHooks {
        run_callbacks: None,
        on_offline: Some(Box::new(move |_m: &str| {
            c2.fetch_add(1, Ordering::SeqCst);
        })),
    };
    let wal = Wal::open(d.path(), cfg(FsyncPolicy::Always), hooks).unwrap();
    wal.append(&batch(1, 0, 10)).unwrap();
    wal.fail_next_io();
    let err = wal.append(&batch(1, 0, 10)).unwrap_err();
    assert!(
        matches!(err, WalError::Offline(ref m) if m.contains("injected")),
        "{err}"
    );
    assert!(wal.is_offline());
    assert!(matches!(
        wal.append(&batch(1, 0, 10)),
        Err(WalError::Offline(_))
    ));
    assert!(matches!(wal.flush(), Err(WalError::Offline(_))));
    assert_eq!(wal.high_watermark(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    wal.close().unwrap();
    assert!(!d.path().join(CLEAN_SHUTDOWN_NAME).exists());
}

#[test]
fn index_files_hold_big_endian_entries_every_interval_bytes() {
    let d = TempDir::new("index");
    let c = WalConfig {
        index_interval_bytes: 300,
        ..cfg(FsyncPolicy::Never)
    };
    let wal = open(&d, c);
    // 161-byte batches at 0,161,322,483,644; timestamps 5,4,7,8,9.
    for ts in [5, 4, 7, 8, 9] {
        wal.append(&batch(2, ts, 100)).unwrap();
    }
    wal.close().unwrap();
    let idx = fs::read(d.file(0, ".index")).unwrap();
    let mut expect = Vec::new();
    for (rel, pos) in [(0u32, 0u32), (4, 322), (8, 644)] {
        expect.extend_from_slice(&rel.to_be_bytes());
        expect.extend_from_slice(&pos.to_be_bytes());
    }
    assert_eq!(idx, expect);
    let tix = fs::read(d.file(0, ".timeindex")).unwrap();
    let mut expect = Vec::new();
    for (ts, rel) in [(5i64, 0u32), (7, 4), (9, 8)] {
        expect.extend_from_slice(&ts.to_be_bytes());
        expect.extend_from_slice(&rel.to_be_bytes());
    }
    assert_eq!(tix, expect);
}

#[test]
fn offset_for_timestamp_finds_first_batch_with_max_timestamp_at_or_after() {
    let d = TempDir::new("ts");
    let c = WalConfig {
        segment_bytes: 2 * 161,
        index_interval_bytes: 1,
        ..cfg(FsyncPolicy::Never)
    };
    let wal = open(&d, c.clone());
    for ts in [10, 30, 20, 40, 50] {
        wal.append(&batch(1, ts, 100)).unwrap();
    }
    assert_eq!(wal.offset_for_timestamp(0).unwrap(), Some((0, 10)));
    assert_eq!(wal.offset_for_timestamp(15).unwrap(), Some((1, 30)));
    assert_eq!(wal.offset_for_timestamp(31).unwrap(), Some((3, 40)));
    assert_eq!(wal.offset_for_timestamp(50).unwrap(), Some((4, 50)));
    assert_eq!(wal.offset_for_timestamp(51).unwrap(), None);
    wal.close().unwrap();
    drop(wal);
    let wal = open(&d, c);
    assert_eq!(wal.offset_for_timestamp(31).unwrap(), Some((3, 40)));
}

#[test]
fn open_removes_stray_files_and_flush_advances_the_recovery_point() {
    let d = TempDir::new("stray");
    fs::create_dir_all(d.path()).unwrap();
    for name in [
        "checkpoint.tmp",
        "00000000000000000005.log.deleted",
        "x.cleaned",
    ] {
        fs::write(d.path().join(name), b"junk").unwrap();
    }
    let wal = open(&d, cfg(FsyncPolicy::Never));
    for name in [
        "checkpoint.tmp",
        "00000000000000000005.log.deleted",
        "x.cleaned",
    ] {
        assert!(!d.path().join(name).exists(), "{name}");
    }
    wal.append(&batch(1, 0, 10)).unwrap();
    assert_eq!(wal.recovery_point(), 0);
    wal.flush().unwrap();
    assert_eq!(wal.recovery_point(), 1);
    assert!(wal.stats().fsyncs >= 1);
}

#[test]
fn append_after_close_is_refused() {
    let d = TempDir::new("closed");
    let wal = open(&d, cfg(FsyncPolicy::Never));
    wal.close().unwrap();
    wal.close().unwrap();
    assert!(matches!(
        wal.append(&batch(1, 0, 10)),
        Err(WalError::Storage(ref m)) if m.contains("closed")
    ));
    assert!(matches!(wal.flush(), Err(WalError::Storage(_))));
    assert!(matches!(wal.read(0, 10), Err(WalError::Storage(_))));
}
