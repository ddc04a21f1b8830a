//! `_native.record_batch`: Kafka record batch v2 encode/decode/validate over
//! `streamcore_core::record_batch`. Only converts types: Python inputs are borrowed
//! as byte slices while the GIL is held, the codec runs with the GIL released for
//! large inputs, and results are built straight into Python objects.
//!
//! [`encode`] holds `encode_batch`, [`decode`] the `RecordBatch` class with the
//! decode and validate functions, [`types`] the result classes `Record` and
//! `BatchInfo`, which are the reference twin's own classes.
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use streamcore_core::error::CodecError;
use streamcore_core::record_batch as rb;

use crate::errors::CorruptRecordError;

mod decode;
mod encode;
mod types;

/// Inputs/outputs at least this large are processed with the GIL released; below it
/// the release costs more than it frees.
const DETACH_BYTES: usize = 16 * 1024;

const CODEC_NAMES: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// The single conversion of codec errors: bad arguments are ValueError, malformed
/// data is CorruptRecordError (message names the problem and the byte offset).
fn codec_err(e: CodecError) -> PyErr {
    if e.is_argument_error() {
        PyValueError::new_err(e.to_string())
    } else {
        CorruptRecordError::new_err(e.to_string())
    }
}

fn run_detached<T: Send, F: Send + FnOnce() -> T>(py: Python<'_>, big: bool, f: F) -> T {
    if big {
        py.detach(f)
    } else {
        f()
    }
}

fn truthy(v: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match v {
        None => Ok(default),
        Some(v) => v.is_truthy(),
    }
}

/// Adds the `record_batch` submodule to `_native`.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "record_batch")?;
    m.add("Record", types::record_type(py)?)?;
    m.add("BatchInfo", types::batch_info_type(py)?)?;
    m.add_class::<decode::RecordBatch>()?;
    m.add(
        "DEFAULT_MAX_DECOMPRESSED_BYTES",
        rb::DEFAULT_MAX_DECOMPRESSED_BYTES,
    )?;
    m.add_function(wrap_pyfunction!(encode::encode_batch, &m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_batch, &m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_batches, &m)?)?;
    m.add_function(wrap_pyfunction!(decode::validate_batch, &m)?)?;
    parent.add_submodule(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("streamcore._native.record_batch", &m)?;
    Ok(())
}
