//! A queued batch: the WAL's own copy, or memory its caller lends until the write.
//!
//! Copying each batch into the queue was about 4 % of the broker's CPU when receiving
//! large Produce requests (one `memmove` of every byte). A caller that can promise
//! the memory stays put and unchanged until the batch is written (the broker's
//! request frame, which nothing writes to once received) lends it instead. The
//! writer never writes into lent memory: the base offset it assigns is kept in the
//! buffer's own first 8 bytes and written from there.
use std::io::IoSlice;
use std::ops::Deref;

use crate::buffer_pool::PooledBuf;
use crate::record_batch::header;

/// What keeps lent memory valid; dropped (on a writer thread) once the batch was
/// written or failed, before its append's outcome is delivered.
pub type LentOwner = Box<dyn Send>;

/// One batch in the queue.
pub enum BatchBuf {
    /// A copy in the WAL's buffer pool; the base offset is patched in place.
    Copied(PooledBuf),
    /// The caller's memory (see [`BatchBuf::lent`]).
    Lent(Lent),
}

/// Lent memory, its owner, and the batch's first 8 bytes as they are written.
pub struct Lent {
    ptr: *const u8,
    len: usize,
    head: [u8; 8],
    _owner: LentOwner,
}

// SAFETY: `ptr` is only read, and the constructor's contract keeps the memory valid
// and unchanged for as long as the owner, which moves with it, lives.
unsafe impl Send for Lent {}

impl BatchBuf {
    /// Lends `len` bytes at `ptr` (a whole batch, at least 8 bytes long).
    ///
    /// # Safety
    /// The memory must stay valid, and must not be written by anyone, for as long
    /// as `owner` lives.
    pub unsafe fn lent(ptr: *const u8, len: usize, owner: LentOwner) -> BatchBuf {
        assert!(len >= 8, "a lent batch holds at least its base offset");
        let mut head = [0u8; 8];
        // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
        head.copy_from_slice(unsafe { std::slice::from_raw_parts(ptr, 8) });
        BatchBuf::Lent(Lent {
            ptr,
            len,
            head,
            _owner: owner,
        })
    }

    /// Stores the base offset the writer assigned (for lent memory, in `head`).
    pub fn set_base_offset(&mut self, base: i64) {
        match self {
            BatchBuf::Copied(b) => header::set_base_offset(b, base),
            BatchBuf::Lent(l) => l.head = base.to_be_bytes(),
        }
    }

    /// The batch as written, as one or two slices.
    pub fn io_slices<'a>(&'a self, out: &mut Vec<IoSlice<'a>>) {
        match self {
            BatchBuf::Copied(b) => out.push(IoSlice::new(b)),
            BatchBuf::Lent(l) => {
                out.push(IoSlice::new(&l.head));
                out.push(IoSlice::new(&self[8..]));
            }
        }
    }
}

impl Deref for BatchBuf {
    type Target = [u8];

    /// The batch's bytes; for lent memory the first 8 are the caller's, not the
    /// assigned base offset (readers of the queue use header fields after them).
    fn deref(&self) -> &[u8] {
        match self {
            BatchBuf::Copied(b) => b,
            // SAFETY: see `BatchBuf::lent`: valid and unchanged while the owner lives.
            BatchBuf::Lent(l) => unsafe { std::slice::from_raw_parts(l.ptr, l.len) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn lent_memory_is_written_with_the_assigned_base_offset_and_never_changed() {
        let data: Vec<u8> = (0u8..40).collect();
        let dropped = Arc::new(AtomicBool::new(false));
        let mut b =
            unsafe { BatchBuf::lent(data.as_ptr(), data.len(), Box::new(Flag(dropped.clone()))) };
        b.set_base_offset(0x0102_0304_0506_0708);
        let mut slices = Vec::new();
        b.io_slices(&mut slices);
        let written: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(&written[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&written[8..], &data[8..]);
        assert_eq!(&b[..], &data[..]);
        drop(slices);
        assert!(!dropped.load(Ordering::SeqCst));
        drop(b);
        assert!(dropped.load(Ordering::SeqCst));
        assert_eq!(data, (0u8..40).collect::<Vec<u8>>());
    }
}
