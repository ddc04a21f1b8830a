//! [`ByteView`]: any buffer-protocol object as `&[u8]`, without copying.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::PyBufferError;

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

/// A [`ByteView`] that outlives the GIL borrow it was made under: it owns a reference
/// to the object and the buffer export, and may move to another thread. Its memory
/// stays valid while it lives (the export pins a bytearray's memory; `bytes` never
/// moves); whether it stays unchanged is the lender's promise.
pub(crate) struct HeldView {
    ptr: *const u8,
    len: usize,
    buffer: Option<Box<ffi::Py_buffer>>,
    owner: Option<Py<PyAny>>,
}

// SAFETY: the pointer is only read; the export and the reference are released with
// the GIL held (see Drop), never concurrently.
unsafe impl Send for HeldView {}

impl HeldView {
    /// The viewed memory's start and length.
    pub(crate) fn raw(&self) -> (*const u8, usize) {
        (self.ptr, self.len)
    }
}

impl From<ByteView<'_>> for HeldView {
    fn from(mut v: ByteView<'_>) -> Self {
        let held = HeldView {
            ptr: v.ptr,
            len: v.len,
            buffer: v.buffer.take(),
            owner: Some(v._owner.clone().unbind()),
        };
        drop(v); // nothing left to release: the export moved
        held
    }
}

impl Drop for HeldView {
    fn drop(&mut self) {
        let (buffer, owner) = (self.buffer.take(), self.owner.take());
        let mut parts = Some((buffer, owner));
        // Dropped by the thread that drains its queue, which holds the GIL; a
        // finalizing interpreter cannot be attached to, and then the export leaks.
        Python::try_attach(|_py| {
            if let Some((Some(mut view), _owner)) = parts.take() {
                // SAFETY: filled by a successful PyObject_GetBuffer, released once,
                // with the GIL held.
                unsafe { ffi::PyBuffer_Release(&mut *view) };
            }
        });
        if let Some(p) = parts.take() {
            std::mem::forget(p);
        }
    }
}
