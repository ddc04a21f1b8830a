//! Python exception classes defined in `streamcore.errors`, imported here so that
//! native code raises exactly the classes the pure-Python twins raise.
use pyo3::import_exception;

import_exception!(streamcore.errors, CorruptRecordError);
import_exception!(streamcore.errors, StorageError);
import_exception!(streamcore.errors, LogOfflineError);
import_exception!(streamcore.errors, BackpressureError);
import_exception!(streamcore.errors, ProtocolError);
