//! `_native.classifier`: error messages and Kafka error codes to error categories.
//!
//! Categories are plain ints numbered as `streamcore.retry.ErrorCategory`; the table
//! and the matching rules live in `streamcore_core::classifier`. Same names and
//! results as `streamcore._reference.classifier`.
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyList, PyString, PyTuple};

use streamcore_core::classifier as core;

use crate::gil::{self, Work};

/// The text of a Python `str`; lone surrogates (not UTF-8) become U+FFFD, which no
/// pattern (all ASCII) can match, exactly as the surrogate itself cannot.
fn text_of(s: &Bound<'_, PyString>) -> String {
    match s.to_str() {
        Ok(t) => t.to_owned(),
        Err(_) => s.to_string_lossy().into_owned(),
    }
}

/// Category (int) of one error message; UNKNOWN (7) when no pattern matches.
#[pyfunction]
fn classify(message: &Bound<'_, PyString>) -> u8 {
    match message.to_str() {
        Ok(t) => core::classify(t),
        Err(_) => core::classify(&text_of(message)),
    }
}

/// Categories of many messages in one call (the matching runs without the GIL when
/// there is enough text to pay for releasing it).
#[pyfunction]
fn classify_many<'py>(
    py: Python<'py>,
    messages: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let mut owned: Vec<String> = Vec::new();
    let mut total = 0usize;
    for item in messages.try_iter()? {
        let item = item?;
        let s = item.cast::<PyString>().map_err(PyErr::from)?;
        let text = text_of(s);
        total += text.len();
        owned.push(text);
    }
    let out: Vec<u8> = gil::run(py, Work::Bytes(total), || {
        owned.iter().map(|m| core::classify(m)).collect()
    });
    PyList::new(py, out)
}

/// Category (int) of a Kafka protocol error code.
#[pyfunction]
fn classify_code(code: &Bound<'_, PyAny>) -> PyResult<u8> {
    match code.extract::<i64>() {
        Ok(c) => Ok(core::classify_code(c)),
        // A Python int too big for i64 is no Kafka code.
        Err(_) if code.is_instance_of::<PyInt>() => Ok(core::UNKNOWN),
        Err(e) => Err(e),
    }
}

/// Fills `_native.classifier`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(classify, m)?)?;
    m.add_function(wrap_pyfunction!(classify_many, m)?)?;
    m.add_function(wrap_pyfunction!(classify_code, m)?)?;
    let patterns = core::PATTERNS
        .iter()
        .map(|&(p, c)| {
            PyTuple::new(
                py,
                [
                    p.into_pyobject(py)?.into_any(),
                    c.into_pyobject(py)?.into_any(),
                ],
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    m.add("PATTERNS", PyTuple::new(py, patterns)?)?;
    m.add("CATEGORY_COUNT", core::CATEGORY_COUNT)?;
    m.add(
        "__all__",
        vec![
            "classify",
            "classify_many",
            "classify_code",
            "PATTERNS",
            "CATEGORY_COUNT",
        ],
    )?;
    Ok(())
}
