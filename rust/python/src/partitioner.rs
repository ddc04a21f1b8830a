//! `_native.partitioner`: the Java client's key-to-partition hash (murmur2).
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use streamcore_core::partitioner as core_part;

use crate::buffer::ByteView;
use crate::errors::PyValueError;

/// Hashes the bytes of `key` (bytes read directly, other buffers through the buffer
/// protocol).
pub(crate) fn hash_key(key: &Bound<'_, PyAny>) -> PyResult<i32> {
    if let Ok(b) = key.cast_exact::<PyBytes>() {
        return Ok(core_part::murmur2(b.as_bytes()));
    }
    let view = ByteView::new(key)?;
    Ok(core_part::murmur2(view.as_slice()))
}

/// The partition index for a hash, as `default_partition` computes it.
#[inline]
pub(crate) fn partition_of_hash(hash: i32, partitions: usize) -> usize {
    ((hash as u32 & 0x7fff_ffff) as usize) % partitions
}

/// murmur2(data) -> int
///
/// MurmurHash2 of a buffer-protocol object as Kafka's ``Utils.murmur2``: a signed
/// 32-bit int.
#[pyfunction]
fn murmur2(data: &Bound<'_, PyAny>) -> PyResult<i32> {
    hash_key(data)
}

/// default_partition(key, num_partitions) -> int
///
/// Partition (0 .. num_partitions-1) the Java client picks for a non-null ``key``;
/// ValueError unless ``num_partitions`` is positive.
#[pyfunction]
fn default_partition(key: &Bound<'_, PyAny>, num_partitions: i64) -> PyResult<i64> {
    if num_partitions <= 0 {
        return Err(PyValueError::new_err(format!(
            "num_partitions must be positive, not {num_partitions}"
        )));
    }
    let h = hash_key(key)?;
    Ok(i64::from(h & 0x7fff_ffff) % num_partitions)
}

/// Fills `_native.partitioner`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(murmur2, m)?)?;
    m.add_function(wrap_pyfunction!(default_partition, m)?)?;
    Ok(())
}
