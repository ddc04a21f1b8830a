//! `_native.crc32c`: CRC-32C of any buffer-protocol object, without copying.
//!
//! Also home of [`ByteView`], the zero-copy `&[u8]` view of a Python object that the
//! record batch binding uses too.
use pyo3::exceptions::PyBufferError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use streamcore_core::crc32c as core_crc;

/// Inputs at least this long are checksummed with the GIL released: below it the
/// release/reacquire costs more than the work (~4 KiB at ~30 GB/s is ~130 ns).
const DETACH_THRESHOLD: usize = 4096;

/// A read-only, C-contiguous byte view of a Python object: `bytes` directly, anything
/// else through the buffer protocol (`PyBUF_SIMPLE`, so the exporter refuses
/// non-contiguous memory and reports any itemsize as plain bytes). The export is
/// released on drop; while it is held, resizable exporters (bytearray) cannot resize,
/// which is what makes reading the memory with the GIL released sound.
pub(crate) struct ByteView<'py> {
    ptr: *const u8,
    len: usize,
    /// Holds the buffer export; `None` for `bytes`, whose memory lives as long as
    /// the object (kept alive by `_owner`).
    buffer: Option<Box<ffi::Py_buffer>>,
    _owner: Bound<'py, PyAny>,
}

impl<'py> ByteView<'py> {
    /// Views `obj`; TypeError/BufferError/ValueError as the exporter decides when it is
    /// not a contiguous buffer.
    pub(crate) fn new(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(b) = obj.cast_exact::<PyBytes>() {
            let s = b.as_bytes();
            return Ok(ByteView {
                ptr: s.as_ptr(),
                len: s.len(),
                buffer: None,
                _owner: obj.clone(),
            });
        }
        // Boxed so the Py_buffer never moves while exported.
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: obj is a valid object and view is writable Py_buffer storage.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, ffi::PyBUF_SIMPLE) };
        if rc != 0 {
            return Err(PyErr::take(obj.py())
                .unwrap_or_else(|| PyBufferError::new_err("object does not export a buffer")));
        }
        let len = view.len.max(0) as usize;
        let ptr = if len == 0 {
            std::ptr::NonNull::<u8>::dangling().as_ptr() as *const u8
        } else {
            view.buf as *const u8
        };
        Ok(ByteView {
            ptr,
            len,
            buffer: Some(view),
            _owner: obj.clone(),
        })
    }

    /// The viewed bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr/len describe memory owned by `_owner` (bytes) or pinned by the
        // buffer export held in `buffer`, both alive as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for ByteView<'_> {
    fn drop(&mut self) {
        if let Some(view) = self.buffer.as_mut() {
            // SAFETY: the view was filled by a successful PyObject_GetBuffer and is
            // released exactly once; dropping a Bound means the GIL is held.
            unsafe { ffi::PyBuffer_Release(&mut **view) };
        }
    }
}

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
    if data.len() >= DETACH_THRESHOLD {
        py.detach(|| f(seed, data))
    } else {
        f(seed, data)
    }
}

/// crc32c(data, value=0) -> int
///
/// CRC-32C (Castagnoli) of a C-contiguous buffer-protocol object (bytes, bytearray,
/// memoryview, numpy array ...), continuing from ``value`` so that
/// ``crc32c(b, crc32c(a)) == crc32c(a + b)``. The data is not copied; the GIL is
/// released for inputs of 4 KiB and more.
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

/// Adds the `crc32c` submodule to `_native`.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "crc32c")?;
    m.add_function(wrap_pyfunction!(crc32c, &m)?)?;
    m.add_function(wrap_pyfunction!(_software_crc32c, &m)?)?;
    m.add_function(wrap_pyfunction!(implementation_detail, &m)?)?;
    m.add_function(wrap_pyfunction!(cpu_features, &m)?)?;
    parent.add_submodule(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("streamcore._native.crc32c", &m)?;
    Ok(())
}
