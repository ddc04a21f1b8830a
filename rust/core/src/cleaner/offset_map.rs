//! The offset map: key digest -> latest offset of that key in the dirty range, in a
//! fixed amount of memory (Kafka's SkimpyOffsetMap), and the pass that fills it.
//!
//! Memory is one table of `memory_bytes / 24` slots (16-byte digest + 8-byte
//! offset), open addressing with linear probing; an all-zero digest marks an empty
//! slot. The map is "full" at `floor(slots * load_factor)` entries. The filling pass
//! stops at the first keyed record it cannot add once full (even one whose key is
//! already there, as Kafka does), so the cleaner cleans up to the offset reached
//! and the rest of the dirty range waits for the next run.

use std::path::PathBuf;

use super::input::{segment_files, BatchReader};
use super::key_hash::{key_hash, HASH_BYTES};
use super::throttle::{Clock, Throttle};
use super::txn::{AbortedTxn, TxnTracker};
use crate::record_batch::{decode_batch, DecodeOptions};
use crate::wal::WalError;

/// Bytes of one slot: the digest and a big-endian offset.
pub const ENTRY_BYTES: usize = HASH_BYTES + 8;
/// Kafka's `log.cleaner.io.buffer.load.factor` default.
pub const DEFAULT_LOAD_FACTOR: f64 = 0.9;

/// Key digest -> latest offset, in fixed memory.
pub struct OffsetMap {
    table: Vec<u8>,
    slots: usize,
    max_entries: usize,
    entries: usize,
    latest_offset: i64,
    full: bool,
    bytes_read: u64,
    records_read: u64,
}

impl OffsetMap {
    /// An empty map using `memory_bytes` of table, full at `load_factor` (0 < f <= 1).
    pub fn new(memory_bytes: u64, load_factor: f64) -> Result<Self, WalError> {
        if !(load_factor > 0.0 && load_factor <= 1.0) {
            return Err(WalError::InvalidArgument(format!(
                "load_factor must be in (0, 1], not {load_factor}"
            )));
        }
        let slots = (memory_bytes / ENTRY_BYTES as u64) as usize;
        let max_entries = (slots as f64 * load_factor) as usize;
        if max_entries < 1 {
            return Err(WalError::InvalidArgument(format!(
                "memory_bytes {memory_bytes} holds no entry at load factor {load_factor} \
                 ({ENTRY_BYTES} bytes per slot)"
            )));
        }
        let table =
            vec![
                0u8;
                slots
                    .checked_mul(ENTRY_BYTES)
                    .ok_or_else(|| WalError::InvalidArgument("memory_bytes too large".into()))?
            ];
        Ok(OffsetMap {
            table,
            slots,
            max_entries,
            entries: 0,
            latest_offset: -1,
            full: false,
            bytes_read: 0,
            records_read: 0,
        })
    }

    /// Slots in the table.
    pub fn slots(&self) -> usize {
        self.slots
    }
    /// Entries at which the map counts as full.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }
    /// Distinct key digests held.
    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
    /// The last offset the map covers (-1 before anything was mapped): every record
    /// at or below it was seen by the filling pass.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
    /// Whether the filling pass stopped early because the map filled up.
    pub fn full(&self) -> bool {
        self.full
    }
    /// Bytes of batches the filling pass read.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }
    /// Records the filling pass read (keyed or not, in the dirty range or not).
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    #[inline]
    fn probe_start(&self, hash: &[u8; HASH_BYTES]) -> usize {
        let mut b = [0u8; 8];
        b.copy_from_slice(&hash[..8]);
        (u64::from_le_bytes(b) % self.slots as u64) as usize
    }

    /// Finds the slot holding `hash`, or else the empty slot where it would go (None
    /// when every slot holds another digest, possible at load factor 1.0).
    #[inline]
    fn find(&self, hash: &[u8; HASH_BYTES]) -> Result<usize, Option<usize>> {
        let mut slot = self.probe_start(hash);
        for _ in 0..self.slots {
            let at = slot * ENTRY_BYTES;
            let stored = &self.table[at..at + HASH_BYTES];
            if stored == hash {
                return Ok(at);
            }
            if stored.iter().all(|&b| b == 0) {
                return Err(Some(at));
            }
            slot += 1;
            if slot == self.slots {
                slot = 0;
            }
        }
        Err(None)
    }

    /// Records `offset` as the latest for the key with digest `hash`; false (and no
    /// change) when the digest is new and no slot is free. The filling pass stops at
    /// `max_entries`, so it always finds room.
    pub fn put_hash(&mut self, hash: &[u8; HASH_BYTES], offset: i64) -> bool {
        let at = match self.find(hash) {
            Ok(at) => at,
            Err(Some(at)) => {
                self.table[at..at + HASH_BYTES].copy_from_slice(hash);
                self.entries += 1;
                at
            }
            Err(None) => return false,
        };
        self.table[at + HASH_BYTES..at + ENTRY_BYTES].copy_from_slice(&offset.to_be_bytes());
        self.latest_offset = offset;
        true
    }

    /// The latest offset recorded for `key`, or -1.
    pub fn get(&self, key: &[u8]) -> i64 {
        self.get_hash(&key_hash(key))
    }

    /// The latest offset recorded for the digest `hash`, or -1.
    pub fn get_hash(&self, hash: &[u8; HASH_BYTES]) -> i64 {
        match self.find(hash) {
            Ok(at) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.table[at + HASH_BYTES..at + ENTRY_BYTES]);
                i64::from_be_bytes(b)
            }
            Err(_) => -1,
        }
    }

    fn advance_latest(&mut self, offset: i64) {
        if offset > self.latest_offset {
            self.latest_offset = offset;
        }
    }
}

/// Fills `map` with every keyed record at offsets `start_offset <= o < end_offset` of
/// the given segments (paths of `<base:020>.log` files in order), reading at most
/// as fast as `throttle` allows.
///
/// With `aborted` (the partition's aborted transactions), records of aborted
/// transactions are not mapped (they must not supersede anything) and committed
/// transactional records are mapped like any others; control batches are never
/// mapped. Without it (`None`), control and transactional batches are not mapped:
/// their outcome is unknown, so records they would supersede are kept. After each
/// whole segment the map covers up to the next segment's base (or the last batch of
/// the last segment), capped at `end_offset - 1`. When the map fills, the pass stops
/// and `map.full()` is set; `map.latest_offset()` is then the last offset mapped.
pub fn build_offset_map<C: Clock>(
    segment_paths: &[PathBuf],
    start_offset: i64,
    end_offset: i64,
    map: &mut OffsetMap,
    throttle: &mut Throttle<C>,
    max_decompressed_bytes: usize,
    aborted: Option<&[AbortedTxn]>,
) -> Result<(), WalError> {
    if start_offset < 0 || end_offset < start_offset {
        return Err(WalError::InvalidArgument(format!(
            "need 0 <= start_offset <= end_offset, not {start_offset} and {end_offset}"
        )));
    }
    let segments = segment_files(segment_paths)?;
    let mut txn = aborted.map(TxnTracker::new);
    let opts = DecodeOptions {
        verify_crc: true,
        max_decompressed_bytes,
    };
    let mut buf = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        let next_base = segments.get(i + 1).map(|s| s.base_offset);
        if next_base.is_some_and(|b| b <= start_offset) {
            continue; // wholly below the dirty range
        }
        if seg.base_offset >= end_offset {
            break;
        }
        let mut reader = BatchReader::open(&seg.path)?;
        let mut segment_end = seg.base_offset;
        while let Some(at) = reader.next_into(&mut buf)? {
            let batch = decode_batch(&buf, &opts).map_err(|e| {
                WalError::CorruptBatch(format!(
                    "cleaner: {} batch at byte {at}: {e}",
                    seg.path.display()
                ))
            })?;
            map.bytes_read += buf.len() as u64;
            throttle.account(buf.len() as u64);
            let h = batch.header;
            if h.base_offset >= end_offset {
                break;
            }
            segment_end = h.next_offset();
            if h.last_offset() < start_offset {
                continue;
            }
            let mapped = match txn.as_mut() {
                None => !(h.is_control() || h.is_transactional()),
                Some(t) => {
                    if !h.is_control() && t.is_aborted(&h) {
                        map.records_read += batch.entries.len() as u64;
                        false
                    } else {
                        !h.is_control()
                    }
                }
            };
            if mapped {
                for e in &batch.entries {
                    let offset = batch.offset_of(e);
                    map.records_read += 1;
                    if offset < start_offset || offset >= end_offset {
                        continue;
                    }
                    let Some(key) = batch.field(e.key_start, e.key_len) else {
                        continue;
                    };
                    if map.entries >= map.max_entries {
                        map.full = true;
                        return Ok(());
                    }
                    map.put_hash(&key_hash(key), offset);
                }
            }
            map.advance_latest(h.last_offset().min(end_offset - 1));
        }
        // Offsets between batches (gaps left by earlier cleaning) count as covered.
        let covered = next_base.unwrap_or(segment_end).min(end_offset) - 1;
        map.advance_latest(covered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_then_get_and_overwrite_keeps_one_entry() {
        let mut m = OffsetMap::new(24 * 10, 0.9).unwrap();
        assert_eq!((m.slots(), m.max_entries()), (10, 9));
        m.put_hash(&key_hash(b"a"), 5);
        m.put_hash(&key_hash(b"b"), 6);
        m.put_hash(&key_hash(b"a"), 7);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get(b"a"), 7);
        assert_eq!(m.get(b"b"), 6);
        assert_eq!(m.get(b"c"), -1);
        assert_eq!(m.latest_offset(), 7);
    }

    #[test]
    fn probing_wraps_around_the_table() {
        let mut m = OffsetMap::new(24 * 3, 1.0).unwrap();
        for (i, k) in [b"x", b"y", b"z"].iter().enumerate() {
            m.put_hash(&key_hash(*k), i as i64);
        }
        assert_eq!((m.get(b"x"), m.get(b"y"), m.get(b"z")), (0, 1, 2));
        // Every slot taken: a missing key is still answered, not probed forever.
        assert_eq!(m.get(b"w"), -1);
        assert!(!m.put_hash(&key_hash(b"w"), 9));
        assert!(m.put_hash(&key_hash(b"x"), 9));
    }

    #[test]
    fn too_little_memory_or_a_bad_load_factor_is_refused() {
        assert!(OffsetMap::new(23, 0.9).is_err());
        assert!(OffsetMap::new(24, 0.5).is_err());
        assert!(OffsetMap::new(2400, 0.0).is_err());
        assert!(OffsetMap::new(2400, 1.5).is_err());
    }
}
