//! Fixed-size reusable byte buffers.
//!
//! A [`BufferPool`] hands out [`PooledBuf`]s of one capacity; dropping a `PooledBuf`
//! gives its allocation back to the pool (kept only while fewer than `max_buffers`
//! are pooled). Counters are atomics so [`BufferPool::stats`] never blocks writers.
//!
//! [`SizedPools`] groups power-of-two pools so that variable-size payloads (the WAL's
//! queued batch copies) also reuse allocations once the workload is steady.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of a pool (or the sum over several pools).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `get` calls served from a pooled buffer.
    pub hits: u64,
    /// `get` calls that found the pool empty.
    pub misses: u64,
    /// Buffers allocated (by misses, and by oversized requests in [`SizedPools`]).
    pub allocations: u64,
    /// Buffers handed out and not yet dropped.
    pub in_use: u64,
    /// Buffers currently kept for reuse.
    pub pooled: u64,
}

impl PoolStats {
    fn add(&mut self, o: &PoolStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.allocations += o.allocations;
        self.in_use += o.in_use;
        self.pooled += o.pooled;
    }
}

#[derive(Debug)]
struct Inner {
    size: usize,
    max: usize,
    free: Mutex<Vec<Vec<u8>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    allocations: AtomicU64,
    in_use: AtomicU64,
}

impl Inner {
    fn take(&self) -> Vec<u8> {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(v) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                v
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.allocations.fetch_add(1, Ordering::Relaxed);
                Vec::with_capacity(self.size)
            }
        }
    }

    fn give_back(&self, mut v: Vec<u8>) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        // Only buffers of the pool's own capacity are kept: a caller that grew one
        // would otherwise leak oversized allocations into every later user.
        if v.capacity() != self.size {
            return;
        }
        v.clear();
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.max {
            free.push(v);
        }
    }

    fn stats(&self) -> PoolStats {
        PoolStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            allocations: self.allocations.load(Ordering::Relaxed),
            in_use: self.in_use.load(Ordering::Relaxed),
            pooled: self.free.lock().unwrap_or_else(|e| e.into_inner()).len() as u64,
        }
    }
}

/// A pool of byte buffers of one fixed capacity (`buffer_size` bytes).
#[derive(Clone, Debug)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

impl BufferPool {
    /// A pool of `size`-byte buffers keeping at most `max_buffers` for reuse.
    pub fn new(size: usize, max_buffers: usize) -> Self {
        BufferPool {
            inner: Arc::new(Inner {
                size,
                max: max_buffers,
                free: Mutex::new(Vec::new()),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                allocations: AtomicU64::new(0),
                in_use: AtomicU64::new(0),
            }),
        }
    }

    /// Capacity of every buffer, in bytes.
    pub fn buffer_size(&self) -> usize {
        self.inner.size
    }

    /// Most buffers kept for reuse.
    pub fn max_buffers(&self) -> usize {
        self.inner.max
    }

    /// A buffer of exactly `buffer_size` bytes (contents unspecified: zero when new,
    /// whatever the previous user left when reused).
    pub fn get(&self) -> PooledBuf {
        let mut v = self.inner.take();
        // A reused Vec was cleared, so this zero-fills it: a fixed-size buffer must
        // never expose uninitialised memory, and one memset per get is cheap.
        v.resize(self.inner.size, 0);
        PooledBuf {
            buf: v,
            pool: Some(self.inner.clone()),
        }
    }

    /// An empty buffer (length 0, capacity `buffer_size`) to fill with
    /// [`PooledBuf::extend_from_slice`]; avoids zeroing bytes about to be overwritten.
    pub fn get_empty(&self) -> PooledBuf {
        PooledBuf {
            buf: self.inner.take(),
            pool: Some(self.inner.clone()),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> PoolStats {
        self.inner.stats()
    }
}

/// A buffer borrowed from a pool; returns there on drop. Derefs to its bytes.
#[derive(Debug)]
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: Option<Arc<Inner>>,
}

impl PooledBuf {
    /// A buffer owned by no pool (for payloads larger than any pool's buffers).
    pub fn unpooled(data: &[u8]) -> Self {
        PooledBuf {
            buf: data.to_vec(),
            pool: None,
        }
    }

    /// Appends `data`; the caller keeps within the capacity to stay allocation-free.
    pub fn extend_from_slice(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.give_back(std::mem::take(&mut self.buf));
        }
    }
}

/// Power-of-two size classes of [`BufferPool`]s, for variable-size payloads.
///
/// Class `k` holds buffers of `min_size << k` bytes; a payload goes to the smallest
/// class that fits. Payloads above `max_size` get a one-off allocation (counted in
/// `allocations` and `misses`). Each class keeps at most `budget_bytes / size`
/// buffers (at least `min_pooled`), so idle memory stays bounded.
#[derive(Clone, Debug)]
pub struct SizedPools {
    classes: Vec<BufferPool>,
    min_size: usize,
    oversized: Arc<AtomicU64>,
}

impl SizedPools {
    /// Classes from `min_size` to `max_size` bytes (both rounded up to powers of two).
    pub fn new(min_size: usize, max_size: usize, budget_bytes: usize, min_pooled: usize) -> Self {
        let min_size = min_size.max(1).next_power_of_two();
        let max_size = max_size.max(min_size).next_power_of_two();
        let mut classes = Vec::new();
        let mut size = min_size;
        while size <= max_size {
            classes.push(BufferPool::new(size, (budget_bytes / size).max(min_pooled)));
            size <<= 1;
        }
        SizedPools {
            classes,
            min_size,
            oversized: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A buffer holding a copy of `data`.
    pub fn copy_of(&self, data: &[u8]) -> PooledBuf {
        let need = data.len().max(1).next_power_of_two().max(self.min_size);
        let k = (need / self.min_size).trailing_zeros() as usize;
        match self.classes.get(k) {
            Some(pool) => {
                let mut b = pool.get_empty();
                b.extend_from_slice(data);
                b
            }
            None => {
                self.oversized.fetch_add(1, Ordering::Relaxed);
                PooledBuf::unpooled(data)
            }
        }
    }

    /// Counters summed over every class (plus one-off allocations of oversized payloads).
    pub fn stats(&self) -> PoolStats {
        let mut s = PoolStats::default();
        for c in &self.classes {
            s.add(&c.stats());
        }
        let o = self.oversized.load(Ordering::Relaxed);
        s.misses += o;
        s.allocations += o;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_returns_buffer_of_exact_size_and_reuses_it_after_drop() {
        let pool = BufferPool::new(64, 2);
        let b = pool.get();
        assert_eq!(b.len(), 64);
        drop(b);
        let b = pool.get();
        assert_eq!(b.len(), 64);
        let s = pool.stats();
        assert_eq!(
            (s.hits, s.misses, s.allocations, s.in_use, s.pooled),
            (1, 1, 1, 1, 0)
        );
        drop(b);
        assert_eq!(pool.stats().pooled, 1);
    }

    #[test]
    fn pool_keeps_at_most_max_buffers() {
        let pool = BufferPool::new(8, 2);
        let bufs: Vec<_> = (0..5).map(|_| pool.get()).collect();
        assert_eq!(pool.stats().in_use, 5);
        drop(bufs);
        let s = pool.stats();
        assert_eq!((s.in_use, s.pooled, s.allocations), (0, 2, 5));
    }

    #[test]
    fn reused_buffer_is_zero_filled_to_full_length() {
        let pool = BufferPool::new(4, 1);
        let mut b = pool.get();
        b.copy_from_slice(&[1, 2, 3, 4]);
        drop(b);
        let mut e = pool.get_empty();
        assert_eq!(e.len(), 0);
        e.extend_from_slice(&[9]);
        drop(e);
        assert_eq!(&pool.get()[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn sized_pools_pick_smallest_fitting_class_and_stop_allocating_when_steady() {
        let pools = SizedPools::new(4096, 1 << 20, 1 << 22, 4);
        for _ in 0..100 {
            let a = pools.copy_of(&[7u8; 1000]);
            let b = pools.copy_of(&[8u8; 5000]);
            assert_eq!(a.capacity(), 4096);
            assert_eq!(b.capacity(), 8192);
            assert_eq!(&a[..3], &[7, 7, 7]);
            assert_eq!(b.len(), 5000);
        }
        let s = pools.stats();
        assert_eq!(s.allocations, 2);
        assert_eq!(s.hits, 198);
        let big = pools.copy_of(&vec![1u8; (1 << 20) + 1]);
        assert_eq!(big.len(), (1 << 20) + 1);
        drop(big);
        assert_eq!(pools.stats().allocations, 3);
        assert_eq!(pools.stats().in_use, 0);
    }
}
