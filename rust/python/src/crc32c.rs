//! `_native.crc32c`: CRC-32C of any buffer-protocol object, without copying.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use streamcore_core::crc32c as core_crc;

use crate::buffer::ByteView;
use crate::gil::{self, Work};

/// Reads `value` the way the `crc32c` package does: any int, reduced modulo 2**32.
fn crc_seed(value: &Bound<'_, PyAny>) -> PyResult<u32> {
    // SAFETY: value is a valid object; the call uses __index__ and sets an error
    // (returning u64::MAX) on failure, which we check.
    let v = unsafe { ffi::PyLong_AsUnsignedLongLongMask(value.as_ptr()) };
    if v == u64::MAX {
        if let Some(err) = PyErr::take(value.py()) {
            return Err(err);
        }
    }
    Ok(v as u32)
}

/// Computes CRC-32C on `data`, releasing the GIL for large inputs.
fn checksum(py: Python<'_>, data: &[u8], seed: u32, f: fn(u32, &[u8]) -> u32) -> u32 {
    gil::run(py, Work::Bytes(data.len()), || f(seed, data))
}

/// crc32c(data, value=0) -> int
///
/// CRC-32C (Castagnoli) of a C-contiguous buffer-protocol object (bytes, bytearray,
/// memoryview, numpy array ...), continuing from ``value`` so that
/// ``crc32c(b, crc32c(a)) == crc32c(a + b)``. The data is not copied; the GIL is
/// released for inputs of 16 KiB and more.
#[pyfunction]
#[pyo3(signature = (data, value = None))]
fn crc32c(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<u32> {
    let seed = match value {
        Some(v) => crc_seed(v)?,
        None => 0,
    };
    if let Ok(b) = data.cast_exact::<PyBytes>() {
        return Ok(checksum(py, b.as_bytes(), seed, core_crc::crc32c_append));
    }
    let view = ByteView::new(data)?;
    Ok(checksum(py, view.as_slice(), seed, core_crc::crc32c_append))
}

/// Same as crc32c() but always on the portable table code (for tests and diagnostics).
#[pyfunction]
#[pyo3(signature = (data, value = None))]
fn _software_crc32c(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<u32> {
    let seed = match value {
        Some(v) => crc_seed(v)?,
        None => 0,
    };
    let view = ByteView::new(data)?;
    Ok(checksum(
        py,
        view.as_slice(),
        seed,
        core_crc::crc32c_software,
    ))
}

/// implementation_detail() -> str: which code computes the checksum on this machine.
#[pyfunction]
fn implementation_detail() -> String {
    core_crc::implementation_detail()
}

/// cpu_features() -> list[str]: CRC-relevant CPU features detected at runtime.
#[pyfunction]
fn cpu_features<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, core_crc::cpu_features())
}

/// Fills `_native.crc32c`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(crc32c, m)?)?;
    m.add_function(wrap_pyfunction!(_software_crc32c, m)?)?;
    m.add_function(wrap_pyfunction!(implementation_detail, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    Ok(())
}
