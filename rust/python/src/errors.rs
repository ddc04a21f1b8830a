//! Every exception the binding raises, and the one conversion of core errors.
//!
//! The `streamcore.errors` classes are defined in Python and imported here, so
//! native code raises exactly the classes the pure-Python twins raise; the builtin
//! ones are re-exported so that a module needs no other exception import.
//! [`CoreError`] gathers the error types of `streamcore_core` and maps each variant
//! to its class in one place.
use pyo3::import_exception;
use pyo3::PyErr;

use streamcore_core::error::CodecError;
use streamcore_core::metrics::QuantileError;
use streamcore_core::wal::WalError;

pub(crate) use pyo3::exceptions::{
    PyBufferError, PyIndexError, PyMemoryError, PyOverflowError, PyTypeError, PyValueError,
};

import_exception!(streamcore.errors, CorruptRecordError);
import_exception!(streamcore.errors, StorageError);
import_exception!(streamcore.errors, LogOfflineError);
import_exception!(streamcore.errors, BackpressureError);
import_exception!(streamcore.errors, OffsetOutOfRangeError);

/// An error from `streamcore_core`, on its way to Python.
pub(crate) enum CoreError {
    Codec(CodecError),
    Wal(WalError),
    Quantile(QuantileError),
}

impl From<CodecError> for CoreError {
    fn from(e: CodecError) -> Self {
        CoreError::Codec(e)
    }
}

impl From<WalError> for CoreError {
    fn from(e: WalError) -> Self {
        CoreError::Wal(e)
    }
}

impl From<QuantileError> for CoreError {
    fn from(e: QuantileError) -> Self {
        CoreError::Quantile(e)
    }
}

impl From<CoreError> for PyErr {
    fn from(e: CoreError) -> PyErr {
        match e {
            // Bad arguments are ValueError; malformed data is CorruptRecordError
            // (the message names the problem and the byte offset).
            CoreError::Codec(e) if e.is_argument_error() => PyValueError::new_err(e.to_string()),
            CoreError::Codec(e) => CorruptRecordError::new_err(e.to_string()),
            CoreError::Wal(e) => match e {
                WalError::InvalidArgument(m) => PyValueError::new_err(m),
                WalError::CorruptBatch(m) => CorruptRecordError::new_err(m),
                WalError::Backpressure {
                    message,
                    throttle_time_ms,
                } => BackpressureError::new_err((message, throttle_time_ms)),
                WalError::Storage(m) => StorageError::new_err(m),
                WalError::Offline(m) => LogOfflineError::new_err(m),
                WalError::OffsetOutOfRange(m) => OffsetOutOfRangeError::new_err(m),
            },
            // The messages Python's int(float) gives, as the reference twin raises them.
            CoreError::Quantile(QuantileError::NotANumber) => {
                PyValueError::new_err("cannot convert float NaN to integer")
            }
            CoreError::Quantile(QuantileError::Infinite) => {
                PyOverflowError::new_err("cannot convert float infinity to integer")
            }
        }
    }
}

/// `e` as the Python exception it maps to (for `map_err`).
pub(crate) fn to_pyerr(e: impl Into<CoreError>) -> PyErr {
    PyErr::from(e.into())
}
