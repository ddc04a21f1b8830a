//! The cleaner's I/O rate limit (`log.cleaner.io.max.bytes.per.second`).
//!
//! The cleaner reports every batch it reads or writes; once a check interval has
//! passed, the throttle compares the bytes seen in that interval with the allowed
//! rate and sleeps long enough to bring the interval's average back to it. This is
//! how Kafka's cleaner throttler behaves (300 ms interval), so a burst shorter than
//! the interval is never delayed, and the limit holds on average.

use std::time::{Duration, Instant};

/// How often the throttle compares the observed rate with the limit (ms).
pub const CHECK_INTERVAL_MS: u64 = 300;

/// Time source of a [`Throttle`]; tests drive a fake one.
pub trait Clock {
    /// Monotonic time (ns).
    fn now_ns(&mut self) -> u64;
    /// Sleeps for `ms` milliseconds.
    fn sleep_ms(&mut self, ms: u64);
}

/// The process's monotonic clock and `thread::sleep`.
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now_ns(&mut self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
    fn sleep_ms(&mut self, ms: u64) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

/// A bytes-per-second limit on the cleaner's reads and writes; `None` never sleeps.
pub struct Throttle<C: Clock = SystemClock> {
    rate: Option<f64>,
    clock: C,
    period_start_ns: u64,
    observed: f64,
    slept_ms: u64,
}

impl Throttle<SystemClock> {
    /// A throttle at `bytes_per_second` (None: unlimited) on the system clock.
    pub fn new(bytes_per_second: Option<f64>) -> Self {
        Throttle::with_clock(bytes_per_second, SystemClock::default())
    }
}

impl<C: Clock> Throttle<C> {
    /// A throttle on the given clock.
    pub fn with_clock(bytes_per_second: Option<f64>, mut clock: C) -> Self {
        let start = clock.now_ns();
        Throttle {
            rate: bytes_per_second,
            clock,
            period_start_ns: start,
            observed: 0.0,
            slept_ms: 0,
        }
    }

    /// Total time spent sleeping so far (ms).
    pub fn slept_ms(&self) -> u64 {
        self.slept_ms
    }

    /// Accounts `bytes` of I/O and sleeps if the current interval ran too fast.
    pub fn account(&mut self, bytes: u64) {
        let Some(rate) = self.rate else {
            return;
        };
        self.observed += bytes as f64;
        let now = self.clock.now_ns();
        let elapsed_ns = now.saturating_sub(self.period_start_ns);
        if elapsed_ns <= CHECK_INTERVAL_MS * 1_000_000 || self.observed <= 0.0 {
            return;
        }
        let observed_rate = self.observed * 1e9 / elapsed_ns as f64;
        if observed_rate > rate {
            // The sleep that makes observed / (elapsed + sleep) equal the rate.
            let elapsed_ms = elapsed_ns / 1_000_000;
            let sleep = (self.observed / (rate / 1000.0) - elapsed_ms as f64).round();
            if sleep > 0.0 {
                self.clock.sleep_ms(sleep as u64);
                self.slept_ms += sleep as u64;
            }
        }
        self.period_start_ns = self.clock.now_ns();
        self.observed = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that advances only when told to, recording sleeps.
    struct FakeClock {
        now: u64,
        sleeps: Vec<u64>,
    }

    impl Clock for &mut FakeClock {
        fn now_ns(&mut self) -> u64 {
            self.now
        }
        fn sleep_ms(&mut self, ms: u64) {
            self.sleeps.push(ms);
            self.now += ms * 1_000_000;
        }
    }

    #[test]
    fn no_limit_never_sleeps() {
        let mut c = FakeClock {
            now: 0,
            sleeps: vec![],
        };
        let mut t = Throttle::with_clock(None, &mut c);
        for _ in 0..10 {
            t.account(1 << 30);
        }
        assert_eq!(t.slept_ms(), 0);
        assert!(t.clock.sleeps.is_empty());
    }

    #[test]
    fn within_one_interval_nothing_sleeps_then_the_excess_is_slept_off() {
        let mut c = FakeClock {
            now: 0,
            sleeps: vec![],
        };
        {
            let mut t = Throttle::with_clock(Some(1_000_000.0), &mut c);
            // 1 MB/s: 600 kB inside the interval is not checked yet.
            t.account(600_000);
            assert_eq!(t.slept_ms(), 0);
        }
        // Fresh throttle: 400 ms pass, 1 MB seen, so 1000 - 400 = 600 ms of sleep.
        c.now = 0;
        let mut t = Throttle::with_clock(Some(1_000_000.0), &mut c);
        t.clock.now = 400_000_000;
        t.account(1_000_000);
        assert_eq!(t.slept_ms(), 600);
    }

    #[test]
    fn a_slow_interval_does_not_sleep_and_starts_a_new_period() {
        let mut c = FakeClock {
            now: 0,
            sleeps: vec![],
        };
        let mut t = Throttle::with_clock(Some(1_000_000.0), &mut c);
        t.clock.now = 1_000_000_000;
        t.account(500_000);
        assert_eq!(t.slept_ms(), 0);
        // The next period starts at 1 s: 2 MB by 1.5 s is 4 MB/s, so sleep 1500 ms.
        t.clock.now = 1_500_000_000;
        t.account(2_000_000);
        assert_eq!(t.slept_ms(), 1500);
    }
}
