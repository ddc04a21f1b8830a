//! `streamcore._native`: thin PyO3 bindings over `streamcore_core`.
//!
//! Each native capability is a submodule (`_native.crc32c`, `_native.record_batch`,
//! `_native.buffer_pool`, `_native.wal`, `_native.metrics`, `_native.classifier`, `_native.retry`) with the same public names as its
//! pure-Python twin in `streamcore._reference`. `streamcore._impl` picks between them.
use pyo3::prelude::*;

mod buffer_pool;
mod classifier;
mod crc32c;
mod errors;
mod metrics;
mod record_batch;
mod retry;
mod wal;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    crc32c::register(m)?;
    record_batch::register(m)?;
    buffer_pool::register(m)?;
    wal::register(m)?;
    metrics::register(m)?;
    classifier::register(m)?;
    retry::register(m)?;
    Ok(())
}
