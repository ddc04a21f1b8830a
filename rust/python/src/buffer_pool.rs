//! `_native.buffer_pool`: a pool of fixed-size `bytearray`s.
//!
//! Buffers handed to Python are plain `bytearray` objects (the same type the
//! reference twin returns), so slicing, `memoryview` and `readinto` behave the same
//! on both sides; the native part is the bookkeeping (a Rust stack of pooled objects
//! and atomic counters). The WAL's internal copies use the pure-Rust
//! `streamcore_core::buffer_pool` instead and never touch Python objects.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};

use crate::errors::{PyTypeError, PyValueError};

/// Pool of `buffer_size`-byte bytearrays keeping at most `max_buffers` for reuse.
#[pyclass(module = "streamcore._native.buffer_pool", frozen)]
pub struct BufferPool {
    buffer_size: usize,
    max_buffers: usize,
    free: Mutex<Vec<Py<PyByteArray>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    allocations: AtomicU64,
    in_use: AtomicU64,
}

impl BufferPool {
    fn free(&self) -> std::sync::MutexGuard<'_, Vec<Py<PyByteArray>>> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl BufferPool {
    #[new]
    fn new(buffer_size: i64, max_buffers: i64) -> PyResult<Self> {
        if buffer_size < 0 {
            return Err(PyValueError::new_err(format!(
                "buffer_size must be >= 0, not {buffer_size}"
            )));
        }
        if max_buffers < 0 {
            return Err(PyValueError::new_err(format!(
                "max_buffers must be >= 0, not {max_buffers}"
            )));
        }
        Ok(BufferPool {
            buffer_size: buffer_size as usize,
            max_buffers: max_buffers as usize,
            free: Mutex::new(Vec::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            allocations: AtomicU64::new(0),
            in_use: AtomicU64::new(0),
        })
    }

    /// Size of every buffer, in bytes.
    #[getter]
    fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// Most buffers kept for reuse.
    #[getter]
    fn max_buffers(&self) -> usize {
        self.max_buffers
    }

    /// A writable bytearray of exactly `buffer_size` bytes (reused when one is pooled;
    /// a reused buffer keeps whatever its previous user wrote).
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyByteArray>> {
        self.in_use.fetch_add(1, Ordering::Relaxed);
        let reused = self.free().pop();
        match reused {
            Some(b) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(b.into_bound(py))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.allocations.fetch_add(1, Ordering::Relaxed);
                // new_with zero-fills before the (empty) initialiser runs.
                PyByteArray::new_with(py, self.buffer_size, |_| Ok(())).inspect_err(|_| {
                    self.in_use.fetch_sub(1, Ordering::Relaxed);
                })
            }
        }
    }

    /// Gives `buf` back for reuse; dropped when `max_buffers` are already pooled.
    ///
    /// Raises TypeError unless `buf` is a bytearray, ValueError unless it still has
    /// `buffer_size` bytes (a resized buffer cannot serve the next `get`).
    fn put(&self, buf: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = buf.cast::<PyByteArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "put() takes a bytearray from get(), got {}",
                buf.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        if b.len() != self.buffer_size {
            return Err(PyValueError::new_err(format!(
                "buffer of {} bytes does not belong to a pool of {}-byte buffers",
                b.len(),
                self.buffer_size
            )));
        }
        // Saturating: a buffer put twice must not wrap the counter.
        let _ = self
            .in_use
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        let mut free = self.free();
        if free.len() < self.max_buffers && !free.iter().any(|f| f.is(b)) {
            free.push(b.clone().unbind());
        }
        Ok(())
    }

    /// Context manager: `with pool.lease() as buf:` gets a buffer and puts it back on exit.
    fn lease(slf: Py<Self>) -> Lease {
        Lease {
            pool: slf,
            buf: Mutex::new(None),
        }
    }

    /// Counters: hits, misses, allocations, in_use, pooled.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("hits", self.hits.load(Ordering::Relaxed))?;
        d.set_item("misses", self.misses.load(Ordering::Relaxed))?;
        d.set_item("allocations", self.allocations.load(Ordering::Relaxed))?;
        d.set_item("in_use", self.in_use.load(Ordering::Relaxed))?;
        d.set_item("pooled", self.free().len())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "BufferPool(buffer_size={}, max_buffers={})",
            self.buffer_size, self.max_buffers
        )
    }
}

/// The context manager returned by [`BufferPool::lease`].
#[pyclass(module = "streamcore._native.buffer_pool", frozen)]
pub struct Lease {
    pool: Py<BufferPool>,
    buf: Mutex<Option<Py<PyByteArray>>>,
}

#[pymethods]
impl Lease {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyByteArray>> {
        let b = self.pool.get().get(py)?;
        *self.buf.lock().unwrap_or_else(|e| e.into_inner()) = Some(b.clone().unbind());
        Ok(b)
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        let taken = self.buf.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(b) = taken {
            self.pool.get().put(b.bind(py).as_any())?;
        }
        Ok(false)
    }
}

/// A `bytearray` of `size` bytes whose contents are whatever the allocator left there
/// (not zero-filled): for a buffer that reads fill before anything reads it, such as
/// a frame being received. Filling 1 GB with zeros first costs about 0.05 s of CPU.
#[pyfunction]
fn unfilled_bytearray(py: Python<'_>, size: usize) -> PyResult<Bound<'_, PyByteArray>> {
    let n = ffi::Py_ssize_t::try_from(size)
        .map_err(|_| PyValueError::new_err(format!("size {size} is too large")))?;
    // SAFETY: with a NULL source, PyByteArray_FromStringAndSize allocates `n` bytes
    // (plus its trailing NUL) without copying anything into them; it returns a new
    // reference or NULL with an exception set.
    unsafe {
        let obj = ffi::PyByteArray_FromStringAndSize(std::ptr::null(), n);
        Ok(Bound::from_owned_ptr_or_err(py, obj)?.cast_into_unchecked::<PyByteArray>())
    }
}

/// Lengthens `buf` in place by `extra` bytes left unfilled (see [`unfilled_bytearray`]).
/// BufferError while a view of `buf` is held, as `buf += ...` would raise.
#[pyfunction]
fn extend_unfilled(buf: &Bound<'_, PyByteArray>, extra: usize) -> PyResult<()> {
    let target = buf
        .len()
        .checked_add(extra)
        .and_then(|t| ffi::Py_ssize_t::try_from(t).ok())
        .ok_or_else(|| PyValueError::new_err(format!("extra {extra} is too large")))?;
    // SAFETY: buf is a bytearray; PyByteArray_Resize keeps its contents, leaves the
    // new bytes as the allocator gave them and fails (BufferError) while it is exported.
    if unsafe { ffi::PyByteArray_Resize(buf.as_ptr(), target) } != 0 {
        return Err(PyErr::fetch(buf.py()));
    }
    Ok(())
}

/// Fills `_native.buffer_pool`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BufferPool>()?;
    m.add_class::<Lease>()?;
    m.add_function(wrap_pyfunction!(unfilled_bytearray, m)?)?;
    m.add_function(wrap_pyfunction!(extend_unfilled, m)?)?;
    m.add(
        "__all__",
        vec!["BufferPool", "unfilled_bytearray", "extend_unfilled"],
    )?;
    Ok(())
}
