//! `BatchInfo`: the very class the reference twin returns
//! (`streamcore._reference.record_types`), imported once and cached, so both twins
//! hand back objects of one type with the same field names; and the named-tuple
//! builder. (`Record` is native: see [`super::record`].)

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyTuple, PyType};

use streamcore_core::record_batch as rb;

use crate::errors::PyTypeError;

const TYPES_MODULE: &str = "streamcore._reference.record_types";

static BATCH_INFO_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
/// Whether named tuples may be allocated directly (see [`new_named_tuple`]).
static DIRECT_TUPLE_ALLOC: PyOnceLock<bool> = PyOnceLock::new();

/// `streamcore._reference.record_types.BatchInfo`.
pub(crate) fn batch_info_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    BATCH_INFO_TYPE.import(py, TYPES_MODULE, "BatchInfo")
}

/// Whether [`new_named_tuple`] may fill a freshly allocated tuple itself.
///
/// Up to Python 3.13 a tuple subclass instance is exactly what `tuple.__new__` makes:
/// `tp_alloc(type, n)` then the items in its slots. From 3.14 tuples carry a hash
/// cache that only CPython's own constructor initialises.
pub(crate) fn direct_tuple_alloc(py: Python<'_>) -> bool {
    *DIRECT_TUPLE_ALLOC.get_or_init(py, || py.version_info() < (3, 14))
}

/// Builds an instance of the named tuple class `tp` from exactly its `N` fields,
/// without going through the class's Python-level `__new__` (the decode hot path).
/// `direct` comes from [`direct_tuple_alloc`].
pub(crate) fn new_named_tuple<'py, const N: usize>(
    py: Python<'py>,
    tp: &Bound<'py, PyType>,
    direct: bool,
    items: [Bound<'py, PyAny>; N],
) -> PyResult<Bound<'py, PyAny>> {
    new_tuple_instance(py, tp, direct, items)
}

/// [`new_named_tuple`] for any number of items: an instance of the tuple subclass
/// `tp` (a class whose instances are plain tuples, such as a named tuple) holding
/// exactly `items`.
pub(crate) fn new_tuple_instance<'py, I>(
    py: Python<'py>,
    tp: &Bound<'py, PyType>,
    direct: bool,
    items: I,
) -> PyResult<Bound<'py, PyAny>>
where
    I: IntoIterator<Item = Bound<'py, PyAny>>,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    if direct {
        let n = items.len();
        // SAFETY: tp is a tuple subclass whose instances are plain tuples; its
        // tp_alloc gives an object with n NULL item slots laid out as a tuple's,
        // which we fill with stolen references (exactly n: the iterator's exact
        // size) before anyone else can see it.
        unsafe {
            let tpp = tp.as_type_ptr();
            let alloc = (*tpp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(tpp, n as ffi::Py_ssize_t);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, it) in items.take(n).enumerate() {
                ffi::PyTuple_SET_ITEM(obj, i as ffi::Py_ssize_t, it.into_ptr());
            }
            return Ok(Bound::from_owned_ptr(py, obj));
        }
    }
    let plain = PyTuple::new(py, items)?;
    let args = PyTuple::new(py, [plain])?;
    // SAFETY: PyTuple_Type.tp_new is tuple_new; called with a tuple subclass and an
    // args tuple holding one iterable, as `tuple.__new__(cls, it)` does.
    unsafe {
        let tuple_type = std::ptr::addr_of_mut!(ffi::PyTuple_Type);
        let new = (*tuple_type)
            .tp_new
            .ok_or_else(|| PyTypeError::new_err("tuple has no tp_new"))?;
        let obj = new(tp.as_type_ptr(), args.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// The `BatchInfo` of a validated header (fields in wire order, magic left out).
pub(crate) fn batch_info<'py>(py: Python<'py>, h: &rb::BatchHeader) -> PyResult<Bound<'py, PyAny>> {
    let tp = batch_info_type(py)?;
    let items = [
        h.base_offset.into_pyobject(py)?.into_any(),
        h.batch_length.into_pyobject(py)?.into_any(),
        h.partition_leader_epoch.into_pyobject(py)?.into_any(),
        h.crc.into_pyobject(py)?.into_any(),
        h.attributes.into_pyobject(py)?.into_any(),
        h.last_offset_delta.into_pyobject(py)?.into_any(),
        h.first_timestamp.into_pyobject(py)?.into_any(),
        h.max_timestamp.into_pyobject(py)?.into_any(),
        h.producer_id.into_pyobject(py)?.into_any(),
        h.producer_epoch.into_pyobject(py)?.into_any(),
        h.base_sequence.into_pyobject(py)?.into_any(),
        h.record_count.into_pyobject(py)?.into_any(),
    ];
    new_named_tuple(py, tp, direct_tuple_alloc(py), items)
}
