//! `_native.cleaner`: `OffsetMap`, `build_offset_map` and `clean_segments` over
//! `streamcore_core::cleaner`.
//!
//! Type conversion only: arguments are checked and converted with the GIL held, the
//! file work runs with it released, and results are the reference twin's own named
//! tuples (`streamcore._reference.cleaner.result`), so both twins return one type.
use std::collections::HashMap;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyType};

use streamcore_core::cleaner::{
    self as core, AbortedTxn, CleanOptions, CleanResult, Throttle, DEFAULT_LOAD_FACTOR,
};
use streamcore_core::record_batch::DEFAULT_MAX_DECOMPRESSED_BYTES;

use crate::errors::{to_pyerr, PyTypeError, PyValueError};
use crate::gil::{self, Work};

const RESULT_MODULE: &str = "streamcore._reference.cleaner.result";
/// Kafka's `log.cleaner.dedupe.buffer.size` default (bytes).
const DEFAULT_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// Kafka's `delete.retention.ms` default (24 h).
const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;

static CLEANED_SEGMENT: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLEAN_STATS: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLEAN_RESULT: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn paths_of(segment_paths: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if segment_paths.is_instance_of::<pyo3::types::PyString>()
        || segment_paths.hasattr("__fspath__")?
    {
        return Err(PyTypeError::new_err(
            "segment_paths must be a sequence of paths, not one path",
        ));
    }
    segment_paths
        .try_iter()?
        .map(|p| p?.extract::<PathBuf>())
        .collect()
}

fn throttle(rate: Option<f64>) -> PyResult<Throttle> {
    if let Some(r) = rate {
        if r.is_nan() || r <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "io_max_bytes_per_second must be > 0, not {r}"
            )));
        }
    }
    Ok(Throttle::new(rate))
}

fn aborted_of(v: Option<Vec<(i64, i64, i64)>>) -> Option<Vec<AbortedTxn>> {
    v.map(|list| {
        list.into_iter()
            .map(|(producer_id, first_offset, last_offset)| AbortedTxn {
                producer_id,
                first_offset,
                last_offset,
            })
            .collect()
    })
}

fn decompress_cap(v: i64) -> PyResult<usize> {
    if v < 0 {
        return Err(PyValueError::new_err(format!(
            "max_decompressed_bytes must be >= 0, not {v}"
        )));
    }
    Ok(v as usize)
}

/// Key digest -> latest offset of that key in the dirty range, with room for
/// `int(memory_bytes // 24 * load_factor)` keys (Kafka's SkimpyOffsetMap).
#[pyclass(module = "streamcore._native.cleaner", frozen)]
pub struct OffsetMap {
    inner: core::OffsetMap,
}

#[pymethods]
impl OffsetMap {
    /// An empty map of `memory_bytes` bytes (24 per slot), full at `load_factor`.
    #[new]
    #[pyo3(signature = (memory_bytes = DEFAULT_MEMORY_BYTES as i64, load_factor = DEFAULT_LOAD_FACTOR))]
    fn new(memory_bytes: i64, load_factor: f64) -> PyResult<Self> {
        if memory_bytes < 0 {
            return Err(PyValueError::new_err(format!(
                "memory_bytes must be >= 0, not {memory_bytes}"
            )));
        }
        Ok(OffsetMap {
            inner: core::OffsetMap::new(memory_bytes as u64, load_factor).map_err(to_pyerr)?,
        })
    }

    /// Slots in the table (`memory_bytes // 24`).
    #[getter]
    fn slots(&self) -> usize {
        self.inner.slots()
    }
    /// Entries at which the map counts as full.
    #[getter]
    fn max_entries(&self) -> usize {
        self.inner.max_entries()
    }
    /// The last offset the map covers (-1 before anything was mapped).
    #[getter]
    fn latest_offset(&self) -> i64 {
        self.inner.latest_offset()
    }
    /// Whether the filling pass stopped early because the map filled up.
    #[getter]
    fn full(&self) -> bool {
        self.inner.full()
    }
    /// Bytes of batches the filling pass read.
    #[getter]
    fn bytes_read(&self) -> u64 {
        self.inner.bytes_read()
    }
    /// Records of data batches the filling pass read.
    #[getter]
    fn records_read(&self) -> u64 {
        self.inner.records_read()
    }
    fn __len__(&self) -> usize {
        self.inner.len()
    }
    /// The latest offset recorded for `key`, or -1.
    fn get(&self, key: &[u8]) -> i64 {
        self.inner.get(key)
    }
    fn __repr__(&self) -> String {
        format!(
            "OffsetMap(entries={}, max_entries={}, latest_offset={}, full={})",
            self.inner.len(),
            self.inner.max_entries(),
            self.inner.latest_offset(),
            if self.inner.full() { "True" } else { "False" }
        )
    }
}

/// Maps every keyed record at offsets `start_offset <= o < end_offset` of the given
/// `<base:020d>.log` segments (in offset order) to its key's latest offset.
///
/// Reading is limited to `io_max_bytes_per_second` (bytes/s, None: unlimited). When
/// the map fills, the pass stops: `full` is set and `latest_offset` is the last
/// offset mapped. `aborted_transactions`: (producer id, first offset, marker offset)
/// of the partition's aborted transactions, whose records are not mapped; None
/// leaves every transactional batch unmapped.
#[pyfunction]
#[pyo3(signature = (
    segment_paths,
    start_offset,
    end_offset,
    *,
    memory_bytes = DEFAULT_MEMORY_BYTES as i64,
    load_factor = DEFAULT_LOAD_FACTOR,
    io_max_bytes_per_second = None,
    max_decompressed_bytes = DEFAULT_MAX_DECOMPRESSED_BYTES as i64,
    aborted_transactions = None
))]
#[allow(clippy::too_many_arguments)]
fn build_offset_map(
    py: Python<'_>,
    segment_paths: &Bound<'_, PyAny>,
    start_offset: i64,
    end_offset: i64,
    memory_bytes: i64,
    load_factor: f64,
    io_max_bytes_per_second: Option<f64>,
    max_decompressed_bytes: i64,
    aborted_transactions: Option<Vec<(i64, i64, i64)>>,
) -> PyResult<OffsetMap> {
    if start_offset < 0 || end_offset < start_offset {
        return Err(PyValueError::new_err(format!(
            "need 0 <= start_offset <= end_offset, not {start_offset} and {end_offset}"
        )));
    }
    let mut t = throttle(io_max_bytes_per_second)?;
    let cap = decompress_cap(max_decompressed_bytes)?;
    let mut map = OffsetMap::new(memory_bytes, load_factor)?;
    let paths = paths_of(segment_paths)?;
    let aborted = aborted_of(aborted_transactions);
    gil::run(py, Work::Blocking, || {
        core::build_offset_map(
            &paths,
            start_offset,
            end_offset,
            &mut map.inner,
            &mut t,
            cap,
            aborted.as_deref(),
        )
    })
    .map_err(to_pyerr)?;
    Ok(map)
}

/// Cleans `<base:020d>.log` segments (in offset order) with `offset_map` into
/// `<out_dir>/<base:020d>.log.cleaned` files, one per group of inputs adding up to
/// at most `segment_bytes`; returns a `CleanResult`. See the reference twin's
/// `clean_segments` for every argument.
#[pyfunction]
#[pyo3(signature = (
    segment_paths,
    offset_map,
    *,
    out_dir,
    now_ms,
    delete_retention_ms = DEFAULT_DELETE_RETENTION_MS,
    segment_bytes = 1 << 30,
    producer_last_offsets = None,
    io_max_bytes_per_second = None,
    max_decompressed_bytes = DEFAULT_MAX_DECOMPRESSED_BYTES as i64,
    aborted_transactions = None
))]
#[allow(clippy::too_many_arguments)]
fn clean_segments<'py>(
    py: Python<'py>,
    segment_paths: &Bound<'py, PyAny>,
    offset_map: &Bound<'py, PyAny>,
    out_dir: PathBuf,
    now_ms: i64,
    delete_retention_ms: i64,
    segment_bytes: i64,
    producer_last_offsets: Option<HashMap<i64, i64>>,
    io_max_bytes_per_second: Option<f64>,
    max_decompressed_bytes: i64,
    aborted_transactions: Option<Vec<(i64, i64, i64)>>,
) -> PyResult<Bound<'py, PyAny>> {
    if delete_retention_ms < 0 {
        return Err(PyValueError::new_err(format!(
            "delete_retention_ms must be >= 0, not {delete_retention_ms}"
        )));
    }
    if segment_bytes < 1 {
        return Err(PyValueError::new_err("segment_bytes must be >= 1"));
    }
    let mut t = throttle(io_max_bytes_per_second)?;
    let map = offset_map.cast::<OffsetMap>().map_err(|_| {
        PyTypeError::new_err(format!(
            "offset_map must be an OffsetMap from build_offset_map, not {}",
            offset_map
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    let opts = CleanOptions {
        delete_retention_ms,
        now_ms,
        segment_bytes: segment_bytes as u64,
        max_decompressed_bytes: decompress_cap(max_decompressed_bytes)?,
        producer_last_offsets,
        aborted_transactions: aborted_of(aborted_transactions),
    };
    let paths = paths_of(segment_paths)?;
    let inner = &map.get().inner;
    let result = gil::run(py, Work::Blocking, || {
        core::clean_segments(&paths, inner, &opts, &out_dir, &mut t)
    })
    .map_err(to_pyerr)?;
    to_python(py, &result)
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

fn to_python<'py>(py: Python<'py>, r: &CleanResult) -> PyResult<Bound<'py, PyAny>> {
    let seg_t = CLEANED_SEGMENT.import(py, RESULT_MODULE, "CleanedSegment")?;
    let stats_t = CLEAN_STATS.import(py, RESULT_MODULE, "CleanStats")?;
    let result_t = CLEAN_RESULT.import(py, RESULT_MODULE, "CleanResult")?;
    let segments = PyList::empty(py);
    for s in &r.segments {
        let inputs: Vec<String> = s.inputs.iter().map(|p| path_str(p)).collect();
        let aborted: Vec<(i64, i64, i64)> = s
            .aborted_transactions
            .iter()
            .map(|t| (t.producer_id, t.first_offset, t.last_offset))
            .collect();
        segments.append(seg_t.call1((
            path_str(&s.path),
            s.base_offset,
            inputs,
            s.size_bytes,
            s.batches,
            s.records,
            s.max_timestamp,
            s.last_modified_ms,
            aborted,
        ))?)?;
    }
    let st = &r.stats;
    // More fields than a Rust tuple can pass as call arguments: build the tuple.
    let fields = pyo3::types::PyTuple::new(
        py,
        [
            st.bytes_read,
            st.bytes_written,
            st.batches_read,
            st.batches_written,
            st.records_read,
            st.records_kept,
            st.superseded_removed,
            st.tombstones_removed,
            st.keyless_removed,
            st.empty_batches_retained,
            st.aborted_removed,
            st.markers_removed,
            st.throttled_ms,
        ],
    )?;
    let stats = stats_t.call1(fields)?;
    result_t.call1((segments, stats))
}

pub(crate) fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<OffsetMap>()?;
    m.add_function(wrap_pyfunction!(build_offset_map, m)?)?;
    m.add_function(wrap_pyfunction!(clean_segments, m)?)?;
    m.add("DEFAULT_MEMORY_BYTES", DEFAULT_MEMORY_BYTES)?;
    m.add("DEFAULT_LOAD_FACTOR", DEFAULT_LOAD_FACTOR)?;
    m.add("DEFAULT_DELETE_RETENTION_MS", DEFAULT_DELETE_RETENTION_MS)?;
    m.add("CLEANED_SUFFIX", core::CLEANED_SUFFIX)?;
    let py = m.py();
    m.add(
        "CleanResult",
        CLEAN_RESULT.import(py, RESULT_MODULE, "CleanResult")?,
    )?;
    m.add(
        "CleanStats",
        CLEAN_STATS.import(py, RESULT_MODULE, "CleanStats")?,
    )?;
    m.add(
        "CleanedSegment",
        CLEANED_SEGMENT.import(py, RESULT_MODULE, "CleanedSegment")?,
    )?;
    m.add_function(wrap_pyfunction!(key_hash, m)?)?;
    Ok(())
}

/// The 16-byte digest (BLAKE2b) the offset map stores for a record key.
#[pyfunction]
fn key_hash<'py>(py: Python<'py>, key: &[u8]) -> Bound<'py, pyo3::types::PyBytes> {
    pyo3::types::PyBytes::new(py, &core::key_hash(key))
}
