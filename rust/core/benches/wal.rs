//! WAL benchmarks: fsync=never append throughput of 16 KiB batches, fsync=always group
//! commit with 1 vs 64 appender threads, and the recovery scan of a log without a
//! clean-shutdown marker.
//!
//! `cargo bench -p streamcore-core --bench wal` (scratch files go to $TMPDIR).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use streamcore_core::record_batch::{HEADER_LEN, LOG_OVERHEAD};
use streamcore_core::wal::{
    FsyncPolicy, Wal, WalConfig, WalHooks, CHECKPOINT_NAME, CLEAN_SHUTDOWN_NAME,
};

/// A v2 batch of `total` bytes (one record's worth of filler) with a valid CRC.
fn batch(total: usize) -> Vec<u8> {
    let mut b = vec![0u8; total];
    b[8..12].copy_from_slice(&((total - LOG_OVERHEAD) as i32).to_be_bytes());
    b[16] = 2;
    b[27..35].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b[35..43].copy_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    for (i, x) in b[HEADER_LEN..].iter_mut().enumerate() {
        *x = i as u8;
    }
    let crc = streamcore_core::crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn scratch(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "streamcore-wal-bench-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

fn open(dir: &Path, fsync: FsyncPolicy) -> Wal {
    let cfg = WalConfig {
        fsync,
        queue_depth: 100_000,
        ..WalConfig::default()
    };
    Wal::open(dir, cfg, WalHooks::default()).expect("open")
}

fn append_never(c: &mut Criterion) {
    let dir = scratch("never");
    let wal = open(&dir, FsyncPolicy::Never);
    let b = batch(16 * 1024);
    let mut g = c.benchmark_group("wal_append_fsync_never");
    g.throughput(Throughput::Bytes(b.len() as u64));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    g.bench_function("16KiB_one_appender", |bench| {
        bench.iter(|| wal.append(&b).expect("append"))
    });
    g.finish();
    drop(wal);
    let _ = fs::remove_dir_all(&dir);
}

/// Time for `threads` appenders to append `per_thread` 1 KiB batches each.
fn group_commit_run(wal: &Arc<Wal>, threads: usize, per_thread: u64) -> Duration {
    let b = Arc::new(batch(1024));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, b) = (wal.clone(), b.clone());
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    wal.append(&b).expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("appender");
    }
    start.elapsed()
}

fn group_commit_always(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append_fsync_always_1KiB");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for threads in [1usize, 64] {
        let dir = scratch(&format!("always{threads}"));
        let wal = Arc::new(open(&dir, FsyncPolicy::Always));
        // One iteration = one append by each thread; throughput in appends.
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("{threads}_appenders"), |bench| {
            bench.iter_custom(|iters| group_commit_run(&wal, threads, iters))
        });
        drop(wal);
        let _ = fs::remove_dir_all(&dir);
    }
    g.finish();
}

fn recovery_scan(c: &mut Criterion) {
    let dir = scratch("recovery");
    let size: u64 = 256 << 20;
    {
        let wal = open(&dir, FsyncPolicy::Never);
        let b = batch(16 * 1024);
        for _ in 0..size / b.len() as u64 {
            wal.enqueue(&b).expect("enqueue");
        }
        wal.close().expect("close");
    }
    let mut g = c.benchmark_group("wal_recovery");
    g.throughput(Throughput::Bytes(size));
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.bench_function("256MiB_no_marker_recovery_point_0", |bench| {
        bench.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let _ = fs::remove_file(dir.join(CLEAN_SHUTDOWN_NAME));
                fs::write(
                    dir.join(CHECKPOINT_NAME),
                    "version 1\nlog_start_offset 0\nrecovery_point 0\n",
                )
                .expect("checkpoint");
                let start = Instant::now();
                let wal = open(&dir, FsyncPolicy::Never);
                total += start.elapsed();
                wal.close().expect("close");
            }
            total
        })
    });
    g.finish();
    let _ = fs::remove_dir_all(&dir);
}

criterion_group!(benches, append_never, group_commit_always, recovery_scan);
criterion_main!(benches);
