//! `_native.metrics`: lock-free metric cells over `streamcore_core::metrics`.
//!
//! Same classes, methods and results as `streamcore._reference.metrics`. Every class
//! is `frozen`, so a call takes no borrow flag: the cells are atomics and need none.
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyTuple};

use streamcore_core::metrics as core;

use crate::errors::{to_pyerr, PyIndexError, PyMemoryError, PyValueError};

/// `int(value)` as the reference does it, with a fast path for a plain int.
fn as_int(value: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(v) = value.extract::<i64>() {
        return Ok(v);
    }
    value.py().get_type::<PyInt>().call1((value,))?.extract()
}

/// A monotonically increasing integer.
#[pyclass(module = "streamcore._native.metrics", frozen)]
pub struct Counter(core::Counter);

#[pymethods]
impl Counter {
    #[new]
    fn new() -> Self {
        Counter(core::Counter::new())
    }

    /// Add `n` (must be >= 0).
    #[pyo3(signature = (n = 1))]
    fn inc(&self, n: i64) -> PyResult<()> {
        if n < 0 {
            return Err(PyValueError::new_err("a counter only goes up"));
        }
        self.0.inc(n as u64);
        Ok(())
    }

    #[getter]
    fn value(&self) -> u64 {
        self.0.value()
    }
}

/// An integer that goes up and down.
#[pyclass(module = "streamcore._native.metrics", frozen)]
pub struct Gauge(core::Gauge);

#[pymethods]
impl Gauge {
    #[new]
    fn new() -> Self {
        Gauge(core::Gauge::new())
    }

    fn set(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.0.set(as_int(value)?);
        Ok(())
    }

    #[pyo3(signature = (n = 1))]
    fn inc(&self, n: i64) {
        self.0.add(n);
    }

    #[pyo3(signature = (n = 1))]
    fn dec(&self, n: i64) {
        self.0.add(n.wrapping_neg());
    }

    #[getter]
    fn value(&self) -> i64 {
        self.0.value()
    }
}

/// `size` counters addressed by index (e.g. one per API key or error code).
#[pyclass(module = "streamcore._native.metrics", frozen)]
pub struct CounterArray(core::CounterArray);

impl CounterArray {
    fn out_of_range(&self) -> PyErr {
        PyIndexError::new_err(format!(
            "counter index out of range 0..{}",
            self.0.len() as i64 - 1
        ))
    }
}

#[pymethods]
impl CounterArray {
    #[new]
    fn new(size: i64) -> PyResult<Self> {
        if size <= 0 {
            return Err(PyValueError::new_err("size must be positive"));
        }
        let len = usize::try_from(size).map_err(|_| PyMemoryError::new_err(()))?;
        core::CounterArray::try_new(len)
            .map(CounterArray)
            .ok_or_else(|| PyMemoryError::new_err(()))
    }

    /// Add `n` to counter `index`; an index out of range raises IndexError.
    #[pyo3(signature = (index, n = 1))]
    fn inc(&self, index: i64, n: i64) -> PyResult<()> {
        if n < 0 {
            return Err(PyValueError::new_err("a counter only goes up"));
        }
        if index < 0 || !self.0.inc(index as usize, n as u64) {
            return Err(PyIndexError::new_err(format!(
                "counter index {index} out of range 0..{}",
                self.0.len() as i64 - 1
            )));
        }
        Ok(())
    }

    /// Add one to two counters in one call (an attempt and its outcome, say).
    fn inc_pair(&self, index_a: i64, index_b: i64) -> PyResult<()> {
        if index_a < 0 || index_b < 0 || !self.0.inc_pair(index_a as usize, index_b as usize) {
            return Err(self.out_of_range());
        }
        Ok(())
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.0.values())
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }
}

/// Counts of non-negative integer observations in power-of-two buckets, plus sum.
#[pyclass(module = "streamcore._native.metrics", frozen)]
pub struct Histogram(core::Histogram);

#[pymethods]
impl Histogram {
    #[new]
    fn new() -> Self {
        Histogram(core::Histogram::new())
    }

    /// Record one observation (negative values count as 0).
    fn observe(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = match value.extract::<i64>() {
            Ok(v) => v.max(0) as u64,
            // Not a small int: a float, a big int, anything `int()` takes. Mirror the
            // reference: `int(value) if value > 0 else 0`.
            Err(_) => {
                if value.gt(0)? {
                    value.py().get_type::<PyInt>().call1((value,))?.extract()?
                } else {
                    0
                }
            }
        };
        self.0.observe(v);
        Ok(())
    }

    /// Return (per-bucket counts, total count, sum).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let (counts, count, sum) = self.0.snapshot();
        let counts = PyList::new(py, counts)?;
        PyTuple::new(
            py,
            [
                counts.into_any(),
                count.into_pyobject(py)?.into_any(),
                sum.into_pyobject(py)?.into_any(),
            ],
        )
    }

    /// Upper bound of the bucket holding quantile `q` (0..1); 0 when empty.
    fn quantile(&self, q: f64) -> PyResult<u64> {
        self.0.quantile(q).map_err(to_pyerr)
    }
}

/// Fills `_native.metrics`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Counter>()?;
    m.add_class::<Gauge>()?;
    m.add_class::<CounterArray>()?;
    m.add_class::<Histogram>()?;
    m.add("HISTOGRAM_BUCKETS", core::HISTOGRAM_BUCKETS)?;
    m.add(
        "__all__",
        vec![
            "Counter",
            "CounterArray",
            "Gauge",
            "Histogram",
            "HISTOGRAM_BUCKETS",
        ],
    )?;
    Ok(())
}
