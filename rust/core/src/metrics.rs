//! Lock-free metric cells: counters, gauges, counter arrays and log-bucket histograms.
//!
//! Every cell is plain atomics updated with `Relaxed` ordering: each value is an
//! independent statistic, nobody synchronises other memory through it, and a reader
//! only needs each number to be one that some interleaving produced. A snapshot of
//! several cells (a histogram's buckets and its count) is therefore not atomic as a
//! whole; under concurrent updates the totals may disagree by the updates in flight.
//!
//! Semantics match the pure-Python twin `streamcore._reference.metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Number of histogram buckets: bucket `i` counts `2**(i-1) < v <= 2**i`, bucket 0
/// counts `v <= 1`, the last bucket also takes everything above `2**62`.
pub const HISTOGRAM_BUCKETS: usize = 64;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n` (wrapping at 2**64, which a counter of events never reaches).
    pub fn inc(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A signed integer that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn value(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `len` counters addressed by index.
#[derive(Debug)]
pub struct CounterArray(Box<[AtomicU64]>);

impl CounterArray {
    /// `len` zeroed counters (`len` may be 0; the binding rejects it with a message).
    pub fn new(len: usize) -> Self {
        CounterArray((0..len).map(|_| AtomicU64::new(0)).collect())
    }

    /// Like [`CounterArray::new`], but `None` instead of aborting when the memory
    /// cannot be had (the length comes from user input).
    pub fn try_new(len: usize) -> Option<Self> {
        let mut v: Vec<AtomicU64> = Vec::new();
        v.try_reserve_exact(len).ok()?;
        v.extend((0..len).map(|_| AtomicU64::new(0)));
        Some(CounterArray(v.into_boxed_slice()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `n` to counter `index`; `false` (and nothing counted) when out of range.
    pub fn inc(&self, index: usize, n: u64) -> bool {
        match self.0.get(index) {
            Some(c) => {
                c.fetch_add(n, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Adds one to two counters in one call (an attempt and its outcome): both indexes
    /// are checked first, so either both are counted or neither is.
    pub fn inc_pair(&self, a: usize, b: usize) -> bool {
        match (self.0.get(a), self.0.get(b)) {
            (Some(ca), Some(cb)) => {
                ca.fetch_add(1, Ordering::Relaxed);
                cb.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    pub fn values(&self) -> Vec<u64> {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }
}

/// Bucket of an observation: 0 for `v <= 1`, else `ceil(log2(v))` capped at 63.
#[inline]
pub fn bucket(value: u64) -> usize {
    if value <= 1 {
        0
    } else {
        // bit_length(v - 1) == 64 - leading_zeros(v - 1)
        ((64 - (value - 1).leading_zeros()) as usize).min(HISTOGRAM_BUCKETS - 1)
    }
}

/// Counts of non-negative integer observations in power-of-two buckets, plus sum.
#[derive(Debug)]
pub struct Histogram {
    counts: [AtomicU64; HISTOGRAM_BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

/// Why a quantile could not be computed (mirrors `math.ceil` on NaN / infinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantileError {
    NotANumber,
    Infinite,
}

impl Histogram {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one observation: one atomic add each for its bucket, the count and the sum.
    #[inline]
    pub fn observe(&self, value: u64) {
        self.counts[bucket(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// (per-bucket counts, total count, sum).
    pub fn snapshot(&self) -> ([u64; HISTOGRAM_BUCKETS], u64, u64) {
        let counts = std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed));
        (
            counts,
            self.count.load(Ordering::Relaxed),
            self.sum.load(Ordering::Relaxed),
        )
    }

    /// Upper bound of the bucket holding quantile `q` (0..1); 0 when empty.
    ///
    /// The rank is `max(1, ceil(q * count))` in f64, as the reference computes it.
    pub fn quantile(&self, q: f64) -> Result<u64, QuantileError> {
        let (counts, total, _) = self.snapshot();
        if total == 0 {
            return Ok(0);
        }
        let r = (q * total as f64).ceil();
        if r.is_nan() {
            return Err(QuantileError::NotANumber);
        }
        if r.is_infinite() {
            return Err(QuantileError::Infinite);
        }
        let rank = if r <= 1.0 {
            1
        } else if r >= u64::MAX as f64 {
            u64::MAX
        } else {
            r as u64
        };
        let mut seen = 0u64;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Ok(1u64 << i);
            }
        }
        Ok(1u64 << (HISTOGRAM_BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_power_of_two_upper_bounds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1), 0);
        assert_eq!(bucket(2), 1);
        assert_eq!(bucket(3), 2);
        assert_eq!(bucket(4), 2);
        assert_eq!(bucket(5), 3);
        assert_eq!(bucket(1 << 62), 62);
        assert_eq!(bucket((1 << 62) + 1), 63);
        assert_eq!(bucket(u64::MAX), 63);
    }

    #[test]
    fn quantile_picks_the_bucket_upper_bound() {
        let h = Histogram::new();
        assert_eq!(h.quantile(0.5), Ok(0));
        for v in [1, 2, 3, 100] {
            h.observe(v);
        }
        assert_eq!(h.quantile(0.0), Ok(1));
        assert_eq!(h.quantile(0.5), Ok(2));
        assert_eq!(h.quantile(0.75), Ok(4));
        assert_eq!(h.quantile(1.0), Ok(128));
        assert_eq!(h.quantile(7.0), Ok(1 << 63));
        assert_eq!(h.quantile(f64::NAN), Err(QuantileError::NotANumber));
        assert_eq!(h.quantile(f64::INFINITY), Err(QuantileError::Infinite));
        let (_, count, sum) = h.snapshot();
        assert_eq!((count, sum), (4, 106));
    }

    #[test]
    fn counter_array_pair_is_all_or_nothing() {
        let a = CounterArray::new(3);
        assert!(a.inc_pair(0, 2));
        assert!(!a.inc_pair(0, 3));
        assert!(a.inc(1, 5));
        assert!(!a.inc(3, 1));
        assert_eq!(a.values(), vec![1, 5, 1]);
    }
}
