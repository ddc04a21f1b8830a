//! `streamcore._native`: thin PyO3 bindings over `streamcore_core`.
//!
//! Each native capability is a submodule (`_native.crc32c`, `_native.record_batch`,
//! `_native.buffer_pool`, `_native.wal`, `_native.metrics`, `_native.classifier`)
//! with the same public names as its pure-Python twin in `streamcore._reference`.
//! `streamcore._impl` picks between them. Retry backoff and duration parsing are not
//! native: the client uses the Python `streamcore.retry`, the one home of both.
//!
//! Shared plumbing, one module each: [`buffer`] (any buffer-protocol object as
//! `&[u8]`), [`gil`] (when to release the GIL), [`errors`] (every exception class and
//! the conversion of core errors) and [`module`] (submodule registration).
use pyo3::prelude::*;

mod buffer;
mod errors;
mod gil;
mod module;

mod buffer_pool;
mod classifier;
mod cleaner;
mod crc32c;
mod metrics;
mod partitioner;
mod producer_accumulator;
mod record_batch;
mod search;
mod wal;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    module::add_submodule(m, "crc32c", crc32c::build)?;
    module::add_submodule(m, "record_batch", record_batch::build)?;
    module::add_submodule(m, "buffer_pool", buffer_pool::build)?;
    module::add_submodule(m, "wal", wal::build)?;
    module::add_submodule(m, "metrics", metrics::build)?;
    module::add_submodule(m, "classifier", classifier::build)?;
    module::add_submodule(m, "cleaner", cleaner::build)?;
    module::add_submodule(m, "partitioner", partitioner::build)?;
    module::add_submodule(m, "accumulator", producer_accumulator::build)?;
    module::add_submodule(m, "search", search::build)?;
    Ok(())
}
