use pyo3::prelude::*;

/// Adds this capability's submodule to `_native` (filled in by its owner).
pub fn register(_parent: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
