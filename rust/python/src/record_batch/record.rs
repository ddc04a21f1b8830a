//! The native `Record`: one record of a decoded batch whose fields become Python
//! objects only when read.
//!
//! Building five objects per record (a tuple, the offset, key and value `bytes`, a
//! headers list) was most of the cost of iterating a batch; a loop that reads only
//! `value` paid for all of them. A `Record` of a batch holds the batch and its index,
//! so making one is one allocation. It behaves as the
//! reference twin's named tuple does: the five fields by name and by index,
//! unpacking, slicing, `len`, comparisons with tuples and with other records (equal
//! fields, equal records), `+` with tuples, `_fields`, `_asdict()`, `_replace()`,
//! pickling. It is not a `tuple` subclass.
//!
//! `headers` is built on first access and then kept, so the list a caller changes is
//! the one the record gives back later, as with the named tuple. `key` and `value`
//! are new `bytes` objects on each access (equal, not identical).
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PySlice, PyString, PyTuple, PyType};
use pyo3::IntoPyObjectExt;
use pyo3::PyTraverseError;

use super::decode::RecordBatch;
use crate::errors::{PyIndexError, PyTypeError, PyValueError};

const FIELDS: [&str; 5] = ["offset", "timestamp_ms", "key", "value", "headers"];

enum Source {
    /// Record `idx` of a decoded batch, read from it when a field is asked for.
    View { batch: Py<RecordBatch>, idx: usize },
    /// Given field by field (`RecordBatch.records`, the constructor, `_replace`,
    /// unpickling): kept as given, unchecked, as the named tuple keeps them.
    Given([Py<PyAny>; 4]),
}

/// One decoded record: ``offset``, ``timestamp_ms``, ``key``, ``value``, ``headers``.
#[pyclass(frozen, name = "Record", module = "streamcore._native.record_batch")]
pub struct Record {
    src: Source,
    /// The headers list: built once (view) or given.
    headers: PyOnceLock<Py<PyAny>>,
}

impl Record {
    pub(super) fn view(batch: Py<RecordBatch>, idx: usize) -> Record {
        Record {
            src: Source::View { batch, idx },
            headers: PyOnceLock::new(),
        }
    }

    pub(super) fn given(py: Python<'_>, f: [Py<PyAny>; 5]) -> Record {
        let [offset, ts, key, value, headers] = f;
        let lock = PyOnceLock::new();
        let _ = lock.set(py, headers);
        Record {
            src: Source::Given([offset, ts, key, value]),
            headers: lock,
        }
    }

    /// Field `i` (0..5) as a Python object.
    fn field<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyAny>> {
        if i == 4 {
            return self.headers_obj(py);
        }
        match &self.src {
            Source::Given(f) => Ok(f[i].bind(py).clone()),
            Source::View { batch, idx } => {
                let b = batch.get();
                let e = &b.entries[*idx];
                match i {
                    0 => b.offset_of(e).into_bound_py_any(py),
                    1 => b.timestamp_of(e).into_bound_py_any(py),
                    2 => Ok(b.key_of(py, e)),
                    _ => Ok(b.value_of(py, e)),
                }
            }
        }
    }

    fn headers_obj<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(h) = self.headers.get(py) {
            return Ok(h.bind(py).clone());
        }
        let Source::View { batch, idx } = &self.src else {
            unreachable!("a given record always has its headers set");
        };
        let b = batch.get();
        let built = b.header_list(py, &b.entries[*idx])?.into_any().unbind();
        Ok(self.headers.get_or_init(py, || built).bind(py).clone())
    }

    /// The five fields as a plain tuple.
    fn as_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(
            py,
            [
                self.field(py, 0)?,
                self.field(py, 1)?,
                self.field(py, 2)?,
                self.field(py, 3)?,
                self.field(py, 4)?,
            ],
        )
    }
}

/// `op` applied to `other` as a tuple (a tuple as it is, a `Record` as its fields);
/// NotImplemented for anything else, so Python tries the other operand.
fn with_tuple<'py>(
    other: &Bound<'py, PyAny>,
    op: impl FnOnce(Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = other.py();
    if let Ok(r) = other.cast::<Record>() {
        return op(r.get().as_tuple(py)?);
    }
    match other.cast::<PyTuple>() {
        Ok(t) => op(t.clone()),
        Err(_) => Ok(py.NotImplemented().into_bound(py)),
    }
}

#[pymethods]
impl Record {
    /// What the record holds, for the garbage collector: a record put into its own
    /// headers list (or into anything it refers to) is then collected with it. There
    /// is no `__clear__`: nothing a record holds ever changes, so every cycle through
    /// it also runs through a mutable object (a list, a dict) that the collector
    /// clears, as with tuples.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        match &self.src {
            Source::View { batch, .. } => visit.call(batch)?,
            Source::Given(f) => {
                for o in f {
                    visit.call(o)?;
                }
            }
        }
        // SAFETY: the collector calls tp_traverse on an attached thread; the token is
        // only used to read the cell, which runs no Python.
        visit.call(self.headers.get(unsafe { Python::assume_attached() }))
    }

    #[new]
    #[pyo3(signature = (offset, timestamp_ms, key, value, headers))]
    fn new(
        py: Python<'_>,
        offset: Py<PyAny>,
        timestamp_ms: Py<PyAny>,
        key: Py<PyAny>,
        value: Py<PyAny>,
        headers: Py<PyAny>,
    ) -> Record {
        Record::given(py, [offset, timestamp_ms, key, value, headers])
    }

    /// Absolute offset (base_offset + offsetDelta, wrapped to int64).
    #[getter]
    fn offset<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, 0)
    }
    /// Milliseconds since the epoch; for log-append-time batches the batch's max_timestamp.
    #[getter]
    fn timestamp_ms<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, 1)
    }
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, 2)
    }
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, 3)
    }
    /// (key, value) pairs in wire order; keys are str, values bytes or None.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, 4)
    }

    #[classattr]
    fn _fields(py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(PyTuple::new(py, FIELDS)?.unbind())
    }

    fn __len__(&self) -> usize {
        FIELDS.len()
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Ok(s) = index.cast::<PySlice>() {
            return self.as_tuple(py)?.as_any().get_item(s);
        }
        let i: isize = index
            .extract()
            .map_err(|_| PyTypeError::new_err("Record indices must be integers or slices"))?;
        let i = if i < 0 { i + FIELDS.len() as isize } else { i };
        if !(0..FIELDS.len() as isize).contains(&i) {
            return Err(PyIndexError::new_err("Record index out of range"));
        }
        self.field(py, i as usize)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.as_tuple(py)?.try_iter()?.into_any())
    }

    fn __richcmp__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
        op: pyo3::basic::CompareOp,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_tuple(other, |t| self.as_tuple(py)?.rich_compare(t, op))
    }

    fn __hash__(&self, py: Python<'_>) -> PyResult<isize> {
        self.as_tuple(py)?.hash()
    }

    fn __add__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_tuple(other, |t| self.as_tuple(py)?.add(t))
    }

    fn __radd__<'py>(
        &self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        with_tuple(other, |t| t.add(self.as_tuple(py)?))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut out = String::from("Record(");
        for (i, name) in FIELDS.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&self.field(py, i)?.repr()?.to_string());
        }
        out.push(')');
        Ok(out)
    }

    /// The fields by name, in order.
    fn _asdict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (i, name) in FIELDS.iter().enumerate() {
            d.set_item(name, self.field(py, i)?)?;
        }
        Ok(d)
    }

    /// A new record with the fields named in ``changes`` replaced.
    #[pyo3(signature = (**changes))]
    fn _replace(&self, py: Python<'_>, changes: Option<&Bound<'_, PyDict>>) -> PyResult<Record> {
        let mut f: Vec<Py<PyAny>> = Vec::with_capacity(FIELDS.len());
        for i in 0..FIELDS.len() {
            f.push(self.field(py, i)?.unbind());
        }
        if let Some(changes) = changes {
            for (k, v) in changes.iter() {
                let name = k.cast::<PyString>()?.to_str()?.to_owned();
                let Some(i) = FIELDS.iter().position(|n| *n == name) else {
                    return Err(PyValueError::new_err(format!(
                        "Got unexpected field names: ['{name}']"
                    )));
                };
                f[i] = v.unbind();
            }
        }
        let [a, b, c, d, e]: [Py<PyAny>; 5] = f
            .try_into()
            .map_err(|_| PyValueError::new_err("five fields"))?;
        Ok(Record::given(py, [a, b, c, d, e]))
    }

    fn __reduce__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<(Bound<'py, PyType>, Bound<'py, PyTuple>)> {
        Ok((py.get_type::<Record>(), self.as_tuple(py)?))
    }

    fn __getnewargs__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.as_tuple(py)
    }
}
