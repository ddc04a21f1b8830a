//! Registration of the capability submodules of `_native`.
use pyo3::prelude::*;

/// The extension's import name: submodules are `streamcore._native.<name>`.
const PACKAGE: &str = "streamcore._native";

/// Creates `_native.<name>`, fills it with `build`, attaches it to `parent` and
/// registers it in `sys.modules` so that `import streamcore._native.<name>` works.
pub(crate) fn add_submodule(
    parent: &Bound<'_, PyModule>,
    name: &str,
    build: fn(&Bound<'_, PyModule>) -> PyResult<()>,
) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, name)?;
    build(&m)?;
    parent.add_submodule(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(format!("{PACKAGE}.{name}"), &m)?;
    Ok(())
}
