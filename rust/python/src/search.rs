//! `_native.search`: `SearchIndex` over `streamcore_core::search`.
//!
//! Type conversion only: documents and arguments are converted with the GIL held,
//! index work (tokenizing, writing, committing, searching) runs with it released.
use std::path::PathBuf;

use pyo3::prelude::*;

use streamcore_core::search::batches::AbortedSpan;
use streamcore_core::search::{
    Doc, SearchError, SearchIndex as CoreIndex, MIN_WRITER_MEMORY_BYTES,
};

use crate::errors::{CorruptRecordError, PyValueError};
use crate::gil::{self, Work};

pyo3::import_exception!(streamcore.errors, StorageError);

/// Writer memory budget per index unless told otherwise (bytes): tantivy's floor,
/// since a partition's indexer commits small batches often.
const DEFAULT_WRITER_MEMORY_BYTES: usize = MIN_WRITER_MEMORY_BYTES;

fn to_py(e: SearchError) -> PyErr {
    match e {
        SearchError::Query(_) | SearchError::InvalidArgument(_) => {
            PyValueError::new_err(e.to_string())
        }
        SearchError::Index(m) => StorageError::new_err(m),
        SearchError::Corrupt(m) => CorruptRecordError::new_err(m),
    }
}

fn non_negative(name: &str, v: i64) -> PyResult<u64> {
    u64::try_from(v).map_err(|_| PyValueError::new_err(format!("{name} must be >= 0, not {v}")))
}

type DocTuple = (i64, i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

/// One partition's full-text index in a directory (see the stub for the contract).
#[pyclass(module = "streamcore._native.search", frozen)]
struct SearchIndex {
    inner: CoreIndex,
    directory: String,
}

#[pymethods]
impl SearchIndex {
    #[new]
    #[pyo3(signature = (directory, *, writer_memory_bytes = DEFAULT_WRITER_MEMORY_BYTES as i64))]
    fn new(py: Python<'_>, directory: PathBuf, writer_memory_bytes: i64) -> PyResult<Self> {
        let budget = usize::try_from(writer_memory_bytes).map_err(|_| {
            PyValueError::new_err(format!(
                "writer_memory_bytes must be >= {MIN_WRITER_MEMORY_BYTES}, not {writer_memory_bytes}"
            ))
        })?;
        let dir = directory.clone();
        let inner =
            gil::run(py, Work::Blocking, move || CoreIndex::open(&dir, budget)).map_err(to_py)?;
        Ok(SearchIndex {
            inner,
            directory: directory.to_string_lossy().into_owned(),
        })
    }

    /// Adds documents (partition, offset, timestamp_ms, key, value); returns how many.
    fn add(&self, py: Python<'_>, docs: Vec<DocTuple>) -> PyResult<usize> {
        let mut converted = Vec::with_capacity(docs.len());
        for (partition, offset, timestamp, key, value) in docs {
            converted.push(Doc {
                partition: non_negative("partition", partition)?,
                offset: non_negative("offset", offset)?,
                timestamp,
                key,
                value,
            });
        }
        let n = converted.len();
        gil::run(py, Work::Blocking, || self.inner.add(&converted)).map_err(to_py)?;
        Ok(n)
    }

    /// Adds the records of log batches a read_committed consumer sees (see the stub):
    /// decoding, filtering and indexing all run with the GIL released, so indexing
    /// never holds up the event loop's thread for more than the argument conversion.
    #[pyo3(signature = (data, partition, low, high, aborted = Vec::new(), *, replace = false))]
    // The Python signature's arguments, one each; a struct would only move them.
    #[allow(clippy::too_many_arguments)]
    fn add_batches(
        &self,
        py: Python<'_>,
        data: &[u8],
        partition: i64,
        low: i64,
        high: i64,
        aborted: Vec<(i64, i64, i64)>,
        replace: bool,
    ) -> PyResult<(usize, Option<u64>)> {
        let partition = non_negative("partition", partition)?;
        let low = non_negative("low", low)?;
        let high = non_negative("high", high)?;
        let spans: Vec<AbortedSpan> = aborted
            .into_iter()
            .map(|(producer_id, first, last)| AbortedSpan {
                producer_id,
                first,
                last,
            })
            .collect();
        gil::run(py, Work::Blocking, || {
            self.inner
                .add_batches(data, partition, low, high, &spans, replace)
        })
        .map_err(to_py)
    }

    /// Deletes the documents with offsets in [start, end).
    fn delete_range(&self, py: Python<'_>, start: i64, end: i64) -> PyResult<()> {
        let start = non_negative("start", start)?;
        let end = non_negative("end", end)?;
        gil::run(py, Work::Blocking, || self.inner.delete_range(start, end)).map_err(to_py)
    }

    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        gil::run(py, Work::Blocking, || self.inner.commit()).map_err(to_py)
    }

    #[pyo3(signature = (query, *, since_ms = None, limit = 20))]
    fn search(
        &self,
        py: Python<'_>,
        query: &str,
        since_ms: Option<i64>,
        limit: i64,
    ) -> PyResult<Vec<(u64, u64, i64)>> {
        let limit = usize::try_from(limit)
            .map_err(|_| PyValueError::new_err(format!("limit must be >= 0, not {limit}")))?;
        let hits = gil::run(py, Work::Blocking, || {
            self.inner.search(query, since_ms, limit)
        })
        .map_err(to_py)?;
        Ok(hits
            .into_iter()
            .map(|h| (h.partition, h.offset, h.timestamp))
            .collect())
    }

    #[getter]
    fn doc_count(&self) -> u64 {
        self.inner.doc_count()
    }

    #[getter]
    fn max_offset(&self) -> Option<u64> {
        self.inner.max_offset()
    }

    #[getter]
    fn directory(&self) -> &str {
        &self.directory
    }

    fn close(&self, py: Python<'_>) {
        gil::run(py, Work::Blocking, || self.inner.close());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.close(py);
    }

    fn __repr__(&self) -> String {
        format!("SearchIndex({:?})", self.directory)
    }
}

pub(crate) fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SearchIndex>()?;
    m.add("ENGINE", "native")?;
    m.add("MIN_WRITER_MEMORY_BYTES", MIN_WRITER_MEMORY_BYTES)?;
    m.add("DEFAULT_WRITER_MEMORY_BYTES", DEFAULT_WRITER_MEMORY_BYTES)?;
    Ok(())
}
