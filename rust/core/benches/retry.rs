//! Retry hot paths, each beside the naive version it replaces, in the same run:
//!
//! * 1000 delay calculations: exact integer backoff (shift for 2.0, powers-of-three
//!   table for 1.5, a policy's precomputed table) vs `f64::powi` on every call;
//! * 3000 duration parses of "30s"/"5m"/"1h": parsing every call vs a parse-once
//!   RwLock'd HashMap cache (the parser is a few byte comparisons: this measures
//!   whether a cache lookup is cheaper than the parse at all; it is not, so the
//!   library has no cache on the Rust side);
//! * 2000 metric operations: one `inc_pair` on atomics vs two separately locked
//!   increments (attempt, then category);
//! * 1000 categorizations of real client error texts: one aho-corasick pass vs
//!   lowercasing the message and testing each pattern with `contains`.
//!
//! Run: `cargo bench -p streamcore-core --bench retry -- --warm-up-time 1 --measurement-time 2`
//! (each figure is for the whole batch of 1000/2000/3000 operations).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Mutex, OnceLock, RwLock};

use criterion::{criterion_group, criterion_main, Criterion};
use streamcore_core::classifier::{self, PATTERNS, UNKNOWN};
use streamcore_core::metrics::CounterArray;
use streamcore_core::retry::{backoff_us, parse_duration_ms, Ratio, RetryPolicy, Strategy};

const INTERVAL_US: u64 = 1_000_000;
const MAX_DELAY_US: u64 = 120_000_000;

fn naive_delay_us(multiplier: f64, attempt: u32) -> u64 {
    let d = INTERVAL_US as f64 * multiplier.powi(attempt as i32);
    d.min(MAX_DELAY_US as f64) as u64
}

fn delays(c: &mut Criterion) {
    let mut g = c.benchmark_group("delay_1000");
    for m in [2.0f64, 1.5, 1.7] {
        let ratio = Ratio::from_f64(m).expect("valid multiplier");
        let policy = RetryPolicy::new(Strategy::Exponential, INTERVAL_US, m, MAX_DELAY_US)
            .expect("valid policy");
        g.bench_function(format!("naive_powi_x{m}"), |b| {
            b.iter(|| {
                let mut s = 0u64;
                for i in 0..1000u32 {
                    s = s.wrapping_add(naive_delay_us(black_box(m), black_box(i % 16)));
                }
                s
            })
        });
        g.bench_function(format!("exact_backoff_x{m}"), |b| {
            b.iter(|| {
                let mut s = 0u64;
                for i in 0..1000u64 {
                    s = s.wrapping_add(backoff_us(
                        Strategy::Exponential,
                        INTERVAL_US,
                        black_box(ratio),
                        MAX_DELAY_US,
                        black_box(i % 16),
                    ));
                }
                s
            })
        });
        g.bench_function(format!("policy_table_x{m}"), |b| {
            b.iter(|| {
                let mut s = 0u64;
                for i in 0..1000u64 {
                    s = s.wrapping_add(black_box(&policy).delay_us(black_box(i % 16)));
                }
                s
            })
        });
    }
    g.finish();
}

/// The parse-once cache the Python side uses, done the usual Rust way (a process-wide
/// RwLock'd HashMap), to show whether it beats parsing.
fn parse_duration_cached(text: &str) -> u64 {
    static CACHE: OnceLock<RwLock<HashMap<String, u64>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(&ms) = cache.read().unwrap_or_else(|e| e.into_inner()).get(text) {
        return ms;
    }
    let ms = parse_duration_ms(text).unwrap_or(0);
    cache
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(text.to_string(), ms);
    ms
}

fn durations(c: &mut Criterion) {
    let texts = ["30s", "5m", "1h"];
    let mut g = c.benchmark_group("duration_3000");
    g.bench_function("parse_every_call", |b| {
        b.iter(|| {
            let mut s = 0u64;
            for _ in 0..1000 {
                for t in texts {
                    s = s.wrapping_add(parse_duration_ms(black_box(t)).unwrap_or(0));
                }
            }
            s
        })
    });
    g.bench_function("rwlock_hashmap_cache", |b| {
        b.iter(|| {
            let mut s = 0u64;
            for _ in 0..1000 {
                for t in texts {
                    s = s.wrapping_add(parse_duration_cached(black_box(t)));
                }
            }
            s
        })
    });
    g.finish();
}

fn metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("metrics_2000");
    let locked: Mutex<[u64; 10]> = Mutex::new([0; 10]);
    g.bench_function("naive_two_locked_increments", |b| {
        b.iter(|| {
            for i in 0..2000usize {
                let cat = 2 + black_box(i) % 8;
                locked.lock().unwrap_or_else(|e| e.into_inner())[0] += 1;
                locked.lock().unwrap_or_else(|e| e.into_inner())[cat] += 1;
            }
        })
    });
    let cells = CounterArray::new(10);
    g.bench_function("atomic_inc_pair", |b| {
        b.iter(|| {
            for i in 0..2000usize {
                cells.inc_pair(0, 2 + black_box(i) % 8);
            }
        })
    });
    g.finish();
}

const REAL_TEXTS: &[&str] = &[
    "Broker: Unknown topic or partition",
    "Local: Timed out",
    "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)",
    "Broker: Topic authorization failed",
    "Local: Queue full",
    "Broker: Not leader for partition",
    "KafkaTimeoutError: Failed to update metadata after 60.0 secs.",
    "NoBrokersAvailable",
    "UnknownTopicOrPartitionError",
    "[Error 6] NotLeaderForPartitionError",
    "org.apache.kafka.common.errors.TimeoutException: Topic t not present in metadata after 60000 ms.",
    "org.apache.kafka.common.errors.TopicAuthorizationException: Not authorized to access topics: [t]",
    "org.apache.kafka.common.errors.NetworkException: The server disconnected before a response was received.",
    "org.apache.kafka.common.errors.RecordTooLargeException: The message is 2000000 bytes when serialized which is larger than 1048576, which is the value of the max.request.size configuration.",
    "Local: Operation in progress",
    "java.lang.IllegalStateException: Cannot perform operation after producer has been closed",
];

/// Lowercase the message, then test each pattern in priority order with `contains`.
fn naive_classify(message: &str) -> u8 {
    let lower = message.to_lowercase();
    for (p, cat) in PATTERNS {
        if lower.contains(p) {
            return *cat;
        }
    }
    UNKNOWN
}

fn categorization(c: &mut Criterion) {
    let msgs: Vec<&str> = (0..1000)
        .map(|i| REAL_TEXTS[i % REAL_TEXTS.len()])
        .collect();
    // The two must agree on these texts, or the comparison means nothing.
    for m in &msgs {
        assert_eq!(naive_classify(m), classifier::classify(m), "{m}");
    }
    let mut g = c.benchmark_group("categorize_1000");
    g.bench_function("naive_lowercase_contains", |b| {
        b.iter(|| {
            let mut s = 0u32;
            for m in &msgs {
                s += naive_classify(black_box(m)) as u32;
            }
            s
        })
    });
    let cls = classifier::classifier();
    g.bench_function("aho_corasick_one_pass", |b| {
        b.iter(|| {
            let mut s = 0u32;
            for m in &msgs {
                s += cls.classify(black_box(m)) as u32;
            }
            s
        })
    });
    g.finish();
}

criterion_group!(benches, delays, durations, metrics, categorization);
criterion_main!(benches);
