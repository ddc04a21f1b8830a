//! How appends complete: the result of an append, the writer's ways of reporting
//! it (a blocking [`Waiter`], a callback run on the notifier thread or one run by the
//! writer itself) and the
//! hooks the embedding layer gives the writer thread.

use std::sync::{Arc, Condvar, Mutex};

use super::error::WalError;
use super::lock;

/// What an append returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendResult {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Wall-clock time of the write (ms since the epoch).
    pub log_append_time_ms: i64,
}

/// The outcome of one append, delivered to its [`Completion`].
pub type AppendOutcome = Result<AppendResult, WalError>;

/// A callback run by the writer thread with the outcome of one append.
pub type Callback = Box<dyn FnOnce(AppendOutcome) + Send>;

/// How the writer reports one append's outcome.
pub enum Completion {
    /// Wakes a thread blocked in [`Waiter::wait`].
    Waiter(Arc<Slot<AppendOutcome>>),
    /// Runs on the log's notifier thread, which the writer hands each group's
    /// callbacks to (inside [`WalHooks::run_callbacks`] when set), so that a slow
    /// callback context (e.g. waiting for Python's GIL) never delays the next write.
    Callback(Callback),
    /// Runs on the writer thread itself, right after the batch's group (before any
    /// later group of the log is written), with no hop to the notifier thread. Only
    /// for callbacks that hand the outcome on and return (push it to a queue, write a
    /// byte to a pipe): one that waits delays every log the writer thread serves.
    Inline(Callback),
}

/// A one-shot value handed from the writer to a waiting thread.
pub struct Slot<T> {
    /// (value, a waiter sleeps on `ready`)
    value: Mutex<(Option<T>, bool)>,
    ready: Condvar,
}

impl<T> Slot<T> {
    pub(super) fn new() -> Self {
        Slot {
            value: Mutex::new((None, false)),
            ready: Condvar::new(),
        }
    }

    pub(super) fn put(&self, v: T) {
        let mut g = lock(&self.value);
        g.0 = Some(v);
        // Waking costs a syscall: only when someone sleeps.
        if g.1 {
            drop(g);
            self.ready.notify_one();
        }
    }

    /// True once a value was put (and not yet taken).
    pub(super) fn is_ready(&self) -> bool {
        lock(&self.value).0.is_some()
    }

    pub(super) fn take(&self) -> T {
        let mut g = lock(&self.value);
        loop {
            if let Some(v) = g.0.take() {
                return v;
            }
            g.1 = true;
            g = self.ready.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The pending outcome of a queued append (see [`Wal::enqueue`]).
pub struct Waiter {
    pub(super) slot: Arc<Slot<AppendOutcome>>,
}

impl Waiter {
    /// Blocks until the writer has written (and, under fsync=always, fsynced) the batch.
    pub fn wait(self) -> AppendOutcome {
        self.slot.take()
    }
}

/// Runs a batch of callbacks (given as one closure) inside whatever context they need.
pub type CallbackRunner = Box<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

/// Told, once, why the log went offline.
pub type OfflineHook = Box<dyn Fn(&str) + Send + Sync>;

/// Hooks the embedding layer (the Python binding) gives the writer thread.
#[derive(Default)]
pub struct WalHooks {
    /// Wraps the running of a group's [`Completion::Callback`]s on the notifier
    /// thread (e.g. to take Python's GIL once per group instead of once per callback).
    pub run_callbacks: Option<CallbackRunner>,
    /// Called once, from the writer thread, when the log goes offline.
    pub on_offline: Option<OfflineHook>,
}
