//! `_native.record_batch`: Kafka record batch v2 encode/decode/validate over
//! `streamcore_core::record_batch`. Only converts types: Python inputs are borrowed
//! as byte slices while the GIL is held, the codec runs with the GIL released for
//! large inputs, and results are built straight into Python objects.
//!
//! [`encode`] holds `encode_batch`, [`decode`] the `RecordBatch` class (and the
//! iterator that builds its records one at a time) with the decode and validate
//! functions, [`record`] the native `Record` (fields built when read), [`types`]
//! `BatchInfo`, which is the reference twin's own class.
use pyo3::prelude::*;

use streamcore_core::record_batch as rb;

mod decode;
mod encode;
mod record;
pub(crate) mod types;

const CODEC_NAMES: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn truthy(v: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match v {
        None => Ok(default),
        Some(v) => v.is_truthy(),
    }
}

/// Fills `_native.record_batch`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<record::Record>()?;
    m.add("BatchInfo", types::batch_info_type(py)?)?;
    m.add_class::<decode::RecordBatch>()?;
    m.add(
        "DEFAULT_MAX_DECOMPRESSED_BYTES",
        rb::DEFAULT_MAX_DECOMPRESSED_BYTES,
    )?;
    m.add_function(wrap_pyfunction!(encode::encode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(decode::decode_batches, m)?)?;
    m.add_function(wrap_pyfunction!(decode::validate_batch, m)?)?;
    m.add_function(wrap_pyfunction!(decode::check_batches, m)?)?;
    Ok(())
}
