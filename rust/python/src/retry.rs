//! `_native.retry`: the Rust mirror of `streamcore.retry`'s backoff formula and
//! duration grammar, exposed so the tests can check both give the same answers.
//! (`streamcore.retry` itself stays pure Python: a policy precomputes its delays.)
use pyo3::prelude::*;

use streamcore_core::retry as core;

use crate::errors::ConfigError;

/// Delay before retry `attempt` (0 = first retry) in integer microseconds; the same
/// formula as `streamcore.retry.backoff_us`. Raises ConfigError for an unknown
/// strategy or a multiplier that is not a finite number >= 1.0.
#[pyfunction]
fn backoff_us(
    strategy: &str,
    interval_us: u64,
    multiplier: f64,
    max_delay_us: u64,
    attempt: u64,
) -> PyResult<u64> {
    let s = core::Strategy::parse(strategy).ok_or_else(|| {
        ConfigError::new_err(format!(
            "unknown retry strategy {strategy:?}: expected exponential, fixed or linear"
        ))
    })?;
    let ratio = core::Ratio::from_f64(multiplier).ok_or_else(|| {
        ConfigError::new_err(core::PolicyError::BadMultiplier(multiplier).to_string())
    })?;
    Ok(core::backoff_us(
        s,
        interval_us,
        ratio,
        max_delay_us,
        attempt,
    ))
}

/// Whole milliseconds of a duration such as "100ms", "30s", "5m", "1h" or "250";
/// ConfigError when malformed or out of range.
#[pyfunction]
fn parse_duration_ms(text: &str) -> PyResult<u64> {
    core::parse_duration_ms(text).map_err(|e| ConfigError::new_err(e.to_string()))
}

/// Fills `_native.retry`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(backoff_us, m)?)?;
    m.add_function(wrap_pyfunction!(parse_duration_ms, m)?)?;
    m.add("MAX_EXPONENT", core::MAX_EXPONENT)?;
    m.add(
        "__all__",
        vec!["backoff_us", "parse_duration_ms", "MAX_EXPONENT"],
    )?;
    Ok(())
}
