//! The one place the binding releases the GIL.
//!
//! Work on bytes below [`RELEASE_THRESHOLD_BYTES`] runs with the GIL held: releasing
//! and re-taking it costs more than such work takes. Calls that may block (waiting
//! for the WAL writer, file I/O, fsync) always release it, or a writer thread that
//! needs the GIL for its callbacks could wait on us forever.
use pyo3::Python;

/// Below this many bytes of work the GIL stays held (about a microsecond of copying
/// or checksumming).
pub(crate) const RELEASE_THRESHOLD_BYTES: usize = 16 * 1024;

/// What a call is about to do, which decides whether releasing the GIL pays.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Work {
    /// Pure computation over about this many bytes.
    Bytes(usize),
    /// May block on another thread, a lock or the disk.
    Blocking,
}

/// Runs `f`, with the GIL released unless `work` is too small to pay for it.
#[inline]
pub(crate) fn run<T: Send, F: Send + FnOnce() -> T>(py: Python<'_>, work: Work, f: F) -> T {
    match work {
        Work::Bytes(n) if n < RELEASE_THRESHOLD_BYTES => f(),
        _ => py.detach(f),
    }
}
