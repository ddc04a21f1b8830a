//! Transaction state while the cleaner walks a log (Kafka's `CleanedTransactionMetadata`).
//!
//! The caller hands the pass the partition's aborted transactions (producer id, first
//! offset, offset of the ABORT marker: the aborted-transaction index). Walking the
//! batches in offset order, the tracker answers for each one whether it may be
//! discarded:
//!
//! * a transactional data batch is *aborted* when an aborted transaction of its
//!   producer has started at or before the batch's last offset and its marker comes
//!   after the batch; the batch's records go and the transaction is marked as seen in
//!   this pass. Any other transactional batch belongs to a committed transaction (the
//!   cleaner never reads past the first unstable offset), and marks its producer as
//!   having committed data before its next COMMIT marker;
//! * an ABORT marker may go once no batch of its transaction was seen in this pass (an
//!   earlier pass removed them all); while one was, the marker stays and its index
//!   entry is reported as retained (Kafka's cleaned transaction index);
//! * a COMMIT marker may go once no batch of its transaction was seen in this pass;
//! * a control batch left without records by an earlier pass may go; one of another
//!   control type (or an unreadable key) stays.
//!
//! "May go" only makes a marker eligible: the pass then keeps it for
//! `delete.retention.ms` more through the batch's delete horizon, like a tombstone.
//!
//! Kafka activates an aborted transaction when the walk reaches its first offset and
//! ends it at the producer's next ABORT marker. Here each producer's transactions are
//! matched by offset range as well (a batch is aborted only while below its
//! transaction's marker offset), which gives the same answers on a consistent index
//! and cannot take a later committed transaction for an aborted one if an index entry
//! outlived its marker.

use std::collections::{HashMap, HashSet};

use crate::record_batch::header::BatchHeader;

/// One aborted transaction of one producer (offsets inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of its ABORT marker.
    pub last_offset: i64,
}

/// Kafka's control record types the cleaner acts on.
const CONTROL_ABORT: i16 = 0;
const CONTROL_COMMIT: i16 = 1;

/// The type a control record key names (`int16 version, int16 type`), None when the
/// key is missing or shorter than 4 bytes.
pub fn control_type(key: Option<&[u8]>) -> Option<i16> {
    match key {
        Some(k) if k.len() >= 4 => Some(i16::from_be_bytes([k[2], k[3]])),
        _ => None,
    }
}

/// The aborted transactions of one producer, in first-offset order.
struct ProducerTxns {
    entries: Vec<AbortedTxn>,
    /// Whether a batch of each entry was seen in this pass.
    seen: Vec<bool>,
    /// Whether each entry's marker was read in this pass.
    ended: Vec<bool>,
    /// Entries `[0, next)` have started (first offset reached).
    next: usize,
}

impl ProducerTxns {
    /// The latest started entry after moving up to `offset`, if any.
    fn current(&mut self, offset: i64) -> Option<usize> {
        while self.next < self.entries.len() && self.entries[self.next].first_offset <= offset {
            self.next += 1;
        }
        self.next.checked_sub(1)
    }
}

/// What the walk knows about transactions (see the module docs).
pub struct TxnTracker {
    producers: HashMap<i64, ProducerTxns>,
    /// Producers with committed transactional data seen since their last COMMIT marker.
    committed: HashSet<i64>,
}

impl TxnTracker {
    /// A tracker over `aborted` (any order; duplicates are harmless).
    pub fn new(aborted: &[AbortedTxn]) -> Self {
        let mut sorted = aborted.to_vec();
        sorted.sort_unstable_by_key(|t| (t.producer_id, t.first_offset, t.last_offset));
        sorted.dedup();
        let mut producers: HashMap<i64, ProducerTxns> = HashMap::new();
        for t in sorted {
            let p = producers
                .entry(t.producer_id)
                .or_insert_with(|| ProducerTxns {
                    entries: Vec::new(),
                    seen: Vec::new(),
                    ended: Vec::new(),
                    next: 0,
                });
            p.entries.push(t);
            p.seen.push(false);
            p.ended.push(false);
        }
        TxnTracker {
            producers,
            committed: HashSet::new(),
        }
    }

    /// A data batch was read: true when it belongs to an aborted transaction.
    pub fn on_data_batch(&mut self, h: &BatchHeader) -> bool {
        if !h.is_transactional() {
            return false;
        }
        let last = h.last_offset();
        if let Some(p) = self.producers.get_mut(&h.producer_id) {
            if let Some(i) = p.current(last) {
                if last < p.entries[i].last_offset && !p.ended[i] {
                    p.seen[i] = true;
                    return true;
                }
            }
        }
        self.committed.insert(h.producer_id);
        false
    }

    /// A control batch was read, with the key of its first record (`None`: the batch
    /// has no record). Returns whether it may be discarded, and the aborted
    /// transaction whose index entry stays with it (an ABORT marker kept because
    /// batches of its transaction were seen).
    pub fn on_control_batch(
        &mut self,
        h: &BatchHeader,
        first_key: Option<Option<&[u8]>>,
    ) -> (bool, Option<AbortedTxn>) {
        let last = h.last_offset();
        let current = self
            .producers
            .get_mut(&h.producer_id)
            .and_then(|p| p.current(last).map(|i| (i, p)));
        let Some(key) = first_key else {
            // Emptied by an earlier pass: its transaction's data was gone then.
            return (true, None);
        };
        match control_type(key) {
            Some(CONTROL_ABORT) => match current {
                Some((i, p)) if !p.ended[i] && p.entries[i].last_offset >= h.base_offset => {
                    p.ended[i] = true;
                    if p.seen[i] {
                        (false, Some(p.entries[i]))
                    } else {
                        (true, None)
                    }
                }
                _ => (true, None),
            },
            Some(CONTROL_COMMIT) => (!self.committed.remove(&h.producer_id), None),
            _ => (false, None),
        }
    }

    /// Whether a data batch is aborted, without recording anything (the offset map's
    /// pass: aborted records must not be mapped).
    pub fn is_aborted(&mut self, h: &BatchHeader) -> bool {
        if !h.is_transactional() {
            return false;
        }
        let last = h.last_offset();
        match self.producers.get_mut(&h.producer_id) {
            Some(p) => match p.current(last) {
                Some(i) => last < p.entries[i].last_offset,
                None => false,
            },
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::header::{ATTR_CONTROL, ATTR_TRANSACTIONAL, MAGIC_V2};

    fn header(base: i64, n: i32, pid: i64, control: bool) -> BatchHeader {
        BatchHeader {
            base_offset: base,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: MAGIC_V2,
            crc: 0,
            attributes: ATTR_TRANSACTIONAL | if control { ATTR_CONTROL } else { 0 },
            last_offset_delta: n - 1,
            first_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: n,
        }
    }

    const ABORT: &[u8] = &[0, 0, 0, 0];
    const COMMIT: &[u8] = &[0, 0, 0, 1];

    #[test]
    fn aborted_batches_are_known_and_their_marker_stays_while_they_were_seen() {
        let t = AbortedTxn {
            producer_id: 7,
            first_offset: 10,
            last_offset: 14,
        };
        let mut tr = TxnTracker::new(&[t]);
        assert!(tr.on_data_batch(&header(10, 2, 7, false)));
        assert!(!tr.on_data_batch(&header(12, 2, 8, false)));
        assert_eq!(
            tr.on_control_batch(&header(14, 1, 7, true), Some(Some(ABORT))),
            (false, Some(t))
        );
        // The producer's next transaction is not aborted.
        assert!(!tr.on_data_batch(&header(15, 1, 7, false)));
        // A second pass that no longer sees the data may drop the marker.
        let mut again = TxnTracker::new(&[t]);
        assert_eq!(
            again.on_control_batch(&header(14, 1, 7, true), Some(Some(ABORT))),
            (true, None)
        );
    }

    #[test]
    fn a_commit_marker_stays_while_its_data_was_seen() {
        let mut tr = TxnTracker::new(&[]);
        assert!(!tr.on_data_batch(&header(0, 1, 3, false)));
        let commit = header(1, 1, 3, true);
        assert_eq!(
            tr.on_control_batch(&commit, Some(Some(COMMIT))),
            (false, None)
        );
        assert_eq!(
            tr.on_control_batch(&commit, Some(Some(COMMIT))),
            (true, None)
        );
    }

    #[test]
    fn empty_and_unknown_control_batches() {
        let mut tr = TxnTracker::new(&[]);
        let c = header(0, 1, 3, true);
        assert_eq!(tr.on_control_batch(&c, None), (true, None));
        assert_eq!(
            tr.on_control_batch(&c, Some(Some(&[0, 0, 0, 2]))),
            (false, None)
        );
        assert_eq!(tr.on_control_batch(&c, Some(None)), (false, None));
    }

    #[test]
    fn an_entry_that_outlived_its_marker_does_not_abort_later_transactions() {
        let stale = AbortedTxn {
            producer_id: 7,
            first_offset: 0,
            last_offset: 3,
        };
        let mut tr = TxnTracker::new(&[stale]);
        assert!(!tr.on_data_batch(&header(5, 1, 7, false)));
        assert!(!tr.is_aborted(&header(5, 1, 7, false)));
    }
}
