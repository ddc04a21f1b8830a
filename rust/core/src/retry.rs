//! Retry backoff and duration parsing, the same rules as `streamcore.retry`.
//!
//! # Backoff formula (all integer microseconds)
//!
//! With `e = min(attempt, MAX_EXPONENT)`:
//! * fixed: `min(max_delay, interval)`
//! * linear: `min(max_delay, interval * (attempt + 1))`
//! * exponential: `min(max_delay, floor(interval * m**e))`, where `m = p / q` is the
//!   exact fraction of the multiplier's shortest decimal form (1.7 is 17/10; the same
//!   digits Python's `repr(float)` prints), so the result has no floating-point
//!   rounding at all. The exponent stops at 63: later attempts reuse attempt 63's
//!   delay (any practical policy has reached `max_delay` long before).
//!
//! Multiplier 2.0 is a shift and 1.5 is `interval * 3**e >> e` from a table of powers
//! of three; both give exactly the general formula's result (tested for every
//! exponent). Other multipliers use a small exact big-integer product.
//!
//! # Durations
//!
//! `"<digits>[unit]"` with unit `ms`, `s`, `m` or `h` (any ASCII case), ASCII blanks
//! allowed around and between; no unit means milliseconds. The result is whole
//! milliseconds, at most `i64::MAX`. There is no cache here: parsing is a few byte
//! comparisons, cheaper than hashing the string for a lookup (see benches/retry.rs);
//! the Python side caches because its regex parse costs more than a dict lookup.

use std::fmt;

/// Largest exponent the exponential strategy uses.
pub const MAX_EXPONENT: u32 = 63;

/// How the delay grows with the attempt number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Fixed,
    Linear,
    Exponential,
}

impl Strategy {
    /// `"fixed"`, `"linear"` or `"exponential"` (exact, lowercase).
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "fixed" => Some(Strategy::Fixed),
            "linear" => Some(Strategy::Linear),
            "exponential" => Some(Strategy::Exponential),
            _ => None,
        }
    }
}

/// A multiplier as the exact fraction `p / q` (lowest terms) of its shortest decimal
/// form: 1.7 is 17/10, not the binary double nearest 1.7, so `1s * 1.7` is exactly
/// 1.7 s. (The shortest decimal is what `repr(float)` prints in Python.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub p: u64,
    pub q: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Ratio {
    /// Ratio of a finite `f64 >= 1.0`; `None` otherwise.
    pub fn from_f64(m: f64) -> Option<Ratio> {
        // Also rules out NaN, which compares false.
        if !(m.is_finite() && m >= 1.0) {
            return None;
        }
        // Shortest round-trip digits, e.g. "1.7e0", "2e0", "1e21".
        let text = format!("{m:e}");
        let (mantissa, exp) = text.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
        let p: u64 = digits.parse().ok()?; // at most 17 significant digits
                                           // value = p * 10**scale
        let scale = exp - (digits.len() as i32 - 1);
        if scale >= 0 {
            // An integer multiplier. One too big for u64 caps every exponential delay
            // after attempt 0 anyway, so saturating keeps the results exact.
            let p = 10u64
                .checked_pow(scale as u32)
                .and_then(|f| p.checked_mul(f))
                .unwrap_or(u64::MAX);
            Some(Ratio { p, q: 1 })
        } else {
            // m >= 1 with <= 17 digits: scale >= -16, so 10**-scale fits.
            let q = 10u64.pow((-scale) as u32);
            let g = gcd(p, q);
            Some(Ratio { p: p / g, q: q / g })
        }
    }
}

/// Why a backoff policy could not be built.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyError {
    /// The multiplier is not a finite number >= 1.0.
    BadMultiplier(f64),
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadMultiplier(m) => {
                write!(
                    f,
                    "retry multiplier must be a finite number >= 1.0, got {m}"
                )
            }
        }
    }
}

impl std::error::Error for PolicyError {}

const fn pow3_table() -> [u128; 64] {
    let mut t = [0u128; 64];
    let mut v = 1u128;
    let mut i = 0;
    while i < 64 {
        t[i] = v;
        v *= 3;
        i += 1;
    }
    t
}

/// `3**k` for `k` in 0..64 (3**63 < 2**101).
static POW3: [u128; 64] = pow3_table();

/// `min(cap, interval << e)`.
#[inline]
fn shift_capped(interval: u64, e: u32, cap: u64) -> u64 {
    if interval == 0 {
        return 0;
    }
    if e > interval.leading_zeros() {
        // interval << e would need more than 64 bits: above any u64 cap.
        return cap;
    }
    (interval << e).min(cap)
}

/// `min(cap, interval * 3**e >> e)`, `e <= 63`.
#[inline]
fn three_halves_capped(interval: u64, e: u32, cap: u64) -> u64 {
    match (interval as u128).checked_mul(POW3[e as usize]) {
        Some(prod) => (prod >> e).min(cap as u128) as u64,
        // The product is >= 2**128, so after dropping at most 63 bits it still
        // exceeds every u64 cap.
        None => cap,
    }
}

/// Little-endian base-2**64 natural numbers, just what the general formula needs.
struct Big(Vec<u64>);

impl Big {
    fn from_u64(v: u64) -> Big {
        Big(vec![v])
    }

    fn mul_small(&self, m: u64) -> Big {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut carry: u128 = 0;
        for &limb in &self.0 {
            let v = (limb as u128) * (m as u128) + carry;
            out.push(v as u64);
            carry = v >> 64;
        }
        if carry != 0 {
            out.push(carry as u64);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.len() > 1 && self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn bit_len(&self) -> u64 {
        match self.0.iter().rposition(|&l| l != 0) {
            Some(i) => i as u64 * 64 + (64 - self.0[i].leading_zeros() as u64),
            None => 0,
        }
    }

    /// `self <= other` (both trimmed).
    fn le(&self, other: &Big) -> bool {
        if self.0.len() != other.0.len() {
            return self.0.len() < other.0.len();
        }
        for (a, b) in self.0.iter().rev().zip(other.0.iter().rev()) {
            if a != b {
                return a < b;
            }
        }
        true
    }
}

/// `min(cap, floor(interval * p**e / q**e))` in exact big-integer arithmetic; `e <= 63`.
fn general_capped(interval: u64, r: Ratio, e: u32, cap: u64) -> u64 {
    if interval == 0 || cap == 0 {
        return 0;
    }
    // Small numbers first: while interval * p**j and q**j fit in u128 the quotient is
    // one u128 division, and the value usually reaches the cap before they overflow.
    let (mut n, mut d) = (interval as u128, 1u128);
    let mut j = 0;
    while j < e {
        match (n.checked_mul(r.p as u128), d.checked_mul(r.q as u128)) {
            (Some(n2), Some(d2)) => {
                (n, d) = (n2, d2);
                j += 1;
                // Non-decreasing in j (p/q >= 1): past the cap, it stays past.
                if n / d >= cap as u128 {
                    return cap;
                }
            }
            _ => break,
        }
    }
    if j == e {
        return (n / d).min(cap as u128) as u64;
    }
    let mut num = Big::from_u64(interval);
    let mut den = Big::from_u64(1);
    for _ in 0..e {
        num = num.mul_small(r.p);
        den = den.mul_small(r.q);
        // p/q >= 1, so the value never shrinks from one step to the next: once it is
        // at least 2**64 (above any cap) the answer is the cap.
        if num.bit_len() > den.bit_len() + 64 {
            return cap;
        }
    }
    // floor(num / den) >= cap  <=>  num >= cap * den
    if den.mul_small(cap).le(&num) {
        return cap;
    }
    // The quotient is below cap < 2**64: find it bit by bit from the top.
    let mut q = 0u64;
    for bit in (0..64).rev() {
        let cand = q | (1u64 << bit);
        if den.mul_small(cand).le(&num) {
            q = cand;
        }
    }
    q
}

/// The delay before retry number `attempt` (0 = the first retry), in microseconds,
/// by the formula in the module docs. `Ratio` is the multiplier (ignored unless
/// exponential).
pub fn backoff_us(
    strategy: Strategy,
    interval_us: u64,
    multiplier: Ratio,
    max_delay_us: u64,
    attempt: u64,
) -> u64 {
    match strategy {
        Strategy::Fixed => interval_us.min(max_delay_us),
        Strategy::Linear => {
            ((interval_us as u128) * (attempt as u128 + 1)).min(max_delay_us as u128) as u64
        }
        Strategy::Exponential => {
            let e = attempt.min(MAX_EXPONENT as u64) as u32;
            match multiplier {
                Ratio { p: 2, q: 1 } => shift_capped(interval_us, e, max_delay_us),
                Ratio { p: 3, q: 2 } => three_halves_capped(interval_us, e, max_delay_us),
                r => general_capped(interval_us, r, e, max_delay_us),
            }
        }
    }
}

/// The general exact formula with no fast path (what the fast paths must equal).
pub fn backoff_us_general(interval_us: u64, multiplier: Ratio, max_delay_us: u64, e: u32) -> u64 {
    general_capped(interval_us, multiplier, e.min(MAX_EXPONENT), max_delay_us)
}

/// A retry policy with its first 64 delays precomputed.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    strategy: Strategy,
    interval_us: u64,
    multiplier: Ratio,
    max_delay_us: u64,
    table: [u64; 64],
}

impl RetryPolicy {
    pub fn new(
        strategy: Strategy,
        interval_us: u64,
        multiplier: f64,
        max_delay_us: u64,
    ) -> Result<Self, PolicyError> {
        let ratio = Ratio::from_f64(multiplier).ok_or(PolicyError::BadMultiplier(multiplier))?;
        let table = std::array::from_fn(|k| {
            backoff_us(strategy, interval_us, ratio, max_delay_us, k as u64)
        });
        Ok(RetryPolicy {
            strategy,
            interval_us,
            multiplier: ratio,
            max_delay_us,
            table,
        })
    }

    /// Delay before retry `attempt` in microseconds (a table lookup below 64).
    #[inline]
    pub fn delay_us(&self, attempt: u64) -> u64 {
        if attempt < 64 {
            self.table[attempt as usize]
        } else {
            backoff_us(
                self.strategy,
                self.interval_us,
                self.multiplier,
                self.max_delay_us,
                attempt,
            )
        }
    }

    /// Delay before retry `attempt` in whole milliseconds (rounded down).
    #[inline]
    pub fn delay_ms(&self, attempt: u64) -> u64 {
        self.delay_us(attempt) / 1000
    }
}

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    Malformed(String),
    OutOfRange(String),
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Malformed(t) => write!(
                f,
                "invalid duration {t:?}: expected a whole number with unit ms, s, m or h \
                 (e.g. '100ms', '30s', '5m', '1h'); a bare number is milliseconds"
            ),
            DurationError::OutOfRange(t) => {
                write!(
                    f,
                    "duration {t:?} is out of range (at most {} ms)",
                    i64::MAX
                )
            }
        }
    }
}

impl std::error::Error for DurationError {}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Parses a duration into whole milliseconds (grammar in the module docs).
pub fn parse_duration_ms(text: &str) -> Result<u64, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    let start = i;
    let mut value: Option<u64> = Some(0);
    while i < b.len() && b[i].is_ascii_digit() {
        value = value
            .and_then(|v| v.checked_mul(10))
            .and_then(|v| v.checked_add((b[i] - b'0') as u64));
        i += 1;
    }
    if i == start {
        return Err(malformed());
    }
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    let unit_start = i;
    while i < b.len() && b[i].is_ascii_alphabetic() {
        i += 1;
    }
    let unit = &b[unit_start..i];
    let factor: u64 = if unit.is_empty() || unit.eq_ignore_ascii_case(b"ms") {
        1
    } else if unit.eq_ignore_ascii_case(b"s") {
        1_000
    } else if unit.eq_ignore_ascii_case(b"m") {
        60_000
    } else if unit.eq_ignore_ascii_case(b"h") {
        3_600_000
    } else {
        return Err(malformed());
    };
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    if i != b.len() {
        return Err(malformed());
    }
    value
        .and_then(|v| v.checked_mul(factor))
        .filter(|&ms| ms <= i64::MAX as u64)
        .ok_or_else(|| DurationError::OutOfRange(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratio(m: f64) -> Ratio {
        Ratio::from_f64(m).unwrap()
    }

    #[test]
    fn ratio_is_the_exact_fraction() {
        assert_eq!(ratio(2.0), Ratio { p: 2, q: 1 });
        assert_eq!(ratio(1.5), Ratio { p: 3, q: 2 });
        assert_eq!(ratio(1.0), Ratio { p: 1, q: 1 });
        assert_eq!(ratio(1.25), Ratio { p: 5, q: 4 });
        assert_eq!(ratio(1.7), Ratio { p: 17, q: 10 });
        assert_eq!(ratio(3.0), Ratio { p: 3, q: 1 });
        assert_eq!(ratio(1e21), Ratio { p: u64::MAX, q: 1 });
        assert_eq!(
            ratio(1.0000000000000002),
            Ratio {
                p: 5000000000000001,
                q: 5000000000000000
            }
        );
        assert!(Ratio::from_f64(0.5).is_none());
        assert!(Ratio::from_f64(f64::NAN).is_none());
        assert!(Ratio::from_f64(f64::INFINITY).is_none());
    }

    #[test]
    fn fast_paths_equal_the_general_formula_for_every_exponent() {
        let caps = [u64::MAX, 120_000_000, 1];
        for interval in [
            0u64,
            1,
            3,
            7,
            999,
            1_000_000,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ] {
            for cap in caps {
                for e in 0..=MAX_EXPONENT {
                    for m in [2.0, 1.5] {
                        let fast =
                            backoff_us(Strategy::Exponential, interval, ratio(m), cap, e as u64);
                        let slow = backoff_us_general(interval, ratio(m), cap, e);
                        assert_eq!(fast, slow, "interval {interval} m {m} e {e} cap {cap}");
                    }
                }
            }
        }
    }

    #[test]
    fn exponential_values() {
        let r = ratio(1.5);
        assert_eq!(
            backoff_us(Strategy::Exponential, 1_000_000, r, u64::MAX, 0),
            1_000_000
        );
        assert_eq!(
            backoff_us(Strategy::Exponential, 1_000_000, r, u64::MAX, 3),
            3_375_000
        );
        assert_eq!(backoff_us(Strategy::Exponential, 1, r, u64::MAX, 3), 3); // floor(3.375)
        let r = ratio(1.7);
        // 1.7 means 17/10 exactly, not the double just below it.
        assert_eq!(
            backoff_us(Strategy::Exponential, 1_000_000, r, u64::MAX, 1),
            1_700_000
        );
        assert_eq!(
            backoff_us(Strategy::Exponential, 1_000_000, r, u64::MAX, 2),
            2_890_000
        );
        assert_eq!(backoff_us(Strategy::Exponential, 3, r, u64::MAX, 2), 8); // floor(8.67)
        assert_eq!(
            backoff_us(
                Strategy::Exponential,
                1_000_000,
                ratio(2.0),
                120_000_000,
                100
            ),
            120_000_000
        );
        assert_eq!(backoff_us(Strategy::Linear, 5, r, 1_000, 2), 15);
        assert_eq!(backoff_us(Strategy::Linear, 5, r, 12, 2), 12);
        assert_eq!(backoff_us(Strategy::Fixed, 5, r, 1_000, 9), 5);
    }

    #[test]
    fn policy_table_matches_direct_computation() {
        let p = RetryPolicy::new(Strategy::Exponential, 1_000_000, 1.7, 120_000_000).unwrap();
        for k in 0..200 {
            let want = backoff_us(Strategy::Exponential, 1_000_000, ratio(1.7), 120_000_000, k);
            assert_eq!(p.delay_us(k), want);
        }
        assert_eq!(p.delay_ms(1), 1_700);
        assert!(RetryPolicy::new(Strategy::Fixed, 1, 0.9, 1).is_err());
    }

    #[test]
    fn durations_parse_to_milliseconds() {
        assert_eq!(parse_duration_ms("100ms"), Ok(100));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms(" 5 M "), Ok(300_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("250"), Ok(250));
        assert_eq!(parse_duration_ms("007s"), Ok(7_000));
        for bad in ["", "s", "1.5s", "-1s", "1d", "1 s s", "1sm", "ms", "1٣s"] {
            assert!(
                matches!(parse_duration_ms(bad), Err(DurationError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_duration_ms("99999999999999999999h"),
            Err(DurationError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_duration_ms("9223372036854775808"),
            Err(DurationError::OutOfRange(_))
        ));
        assert_eq!(
            parse_duration_ms("9223372036854775807"),
            Ok(i64::MAX as u64)
        );
    }
}
