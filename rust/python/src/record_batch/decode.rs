//! Decoding: the `RecordBatch` class (header fields plus records built on first use,
//! or columns), `decode_batch`, `decode_batches` and `validate_batch`.
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

use streamcore_core::record_batch as rb;

use super::{truthy, types, CODEC_NAMES};
use crate::buffer::ByteView;
use crate::errors::{to_pyerr, CorruptRecordError, PyBufferError, PyTypeError, PyValueError};
use crate::gil::{self, Work};

/// A zero-copy view of the input: TypeError for non-buffers, BufferError for
/// buffers that are not C-contiguous (whatever error the exporter chose).
fn input_view<'py>(data: &Bound<'py, PyAny>) -> PyResult<ByteView<'py>> {
    ByteView::new(data).map_err(|e| {
        let py = data.py();
        if e.is_instance_of::<PyTypeError>(py) {
            let name = data
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".to_string());
            PyTypeError::new_err(format!("data must be a bytes-like object, not {name}"))
        } else {
            PyBufferError::new_err("data must be a C-contiguous buffer")
        }
    })
}

/// The input as a `bytes` object that decoded batches can share: `bytes` as is,
/// anything else copied once (a bytearray may change after we return).
fn input_bytes<'py>(data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = data.cast_exact::<PyBytes>() {
        return Ok(b.clone());
    }
    let view = input_view(data)?;
    Ok(PyBytes::new(data.py(), view.as_slice()))
}

fn parse_cap(cap: i64) -> PyResult<usize> {
    usize::try_from(cap).map_err(|_| {
        PyValueError::new_err(format!("max_decompressed_bytes must be >= 0, got {cap}"))
    })
}

/// One decoded record batch v2: header fields and its records (built on first use).

#[pyclass(frozen, module = "streamcore._native.record_batch")]
pub struct RecordBatch {
    header: rb::BatchHeader,
    /// Holds the uncompressed records region at `start..end`.
    buf: Py<PyBytes>,
    start: usize,
    end: usize,
    entries: Vec<rb::RecordEntry>,
    headers: Vec<rb::HeaderEntry>,
    records: PyOnceLock<Py<PyList>>,
}

impl RecordBatch {
    fn from_decoded(
        py: Python<'_>,
        input: &Bound<'_, PyBytes>,
        d: rb::DecodedBatch<'_>,
    ) -> PyResult<RecordBatch> {
        let (buf, start, end) = match d.records {
            std::borrow::Cow::Borrowed(region) => {
                let base = input.as_bytes().as_ptr() as usize;
                let start = region.as_ptr() as usize - base;
                (input.clone().unbind(), start, start + region.len())
            }
            std::borrow::Cow::Owned(v) => {
                let len = v.len();
                (PyBytes::new(py, &v).unbind(), 0, len)
            }
        };
        Ok(RecordBatch {
            header: d.header,
            buf,
            start,
            end,
            entries: d.entries,
            headers: d.headers,
            records: PyOnceLock::new(),
        })
    }

    fn offset_of(&self, e: &rb::RecordEntry) -> i64 {
        self.header.base_offset.wrapping_add(e.offset_delta as i64)
    }

    fn timestamp_of(&self, e: &rb::RecordEntry) -> i64 {
        if self.header.timestamp_type() == 1 {
            self.header.max_timestamp
        } else {
            self.header.first_timestamp.wrapping_add(e.timestamp_delta)
        }
    }

    fn build_records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let region = &self.buf.bind(py).as_bytes()[self.start..self.end];
        let record_type = types::record_type(py)?;
        let direct = types::direct_tuple_alloc(py);
        let n = self.entries.len();
        // SAFETY: PyList_New returns a new list of n NULL slots (or NULL with an error
        // set); every slot is filled exactly once below with a stolen reference, and
        // a list with NULL slots is still safe to drop if we leave early.
        let list = unsafe {
            let p = ffi::PyList_New(n as ffi::Py_ssize_t);
            Bound::from_owned_ptr_or_err(py, p)?.cast_into_unchecked::<PyList>()
        };
        // Records of a batch usually share one timestamp: reuse the int object.
        let mut last_ts: Option<(i64, Bound<'py, PyAny>)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let headers = self.header_list(py, region, e)?;
            let key = bytes_or_none(py, region, e.key_start, e.key_len);
            let value = bytes_or_none(py, region, e.value_start, e.value_len);
            let ts = self.timestamp_of(e);
            let ts_obj = match &last_ts {
                Some((t, obj)) if *t == ts => obj.clone(),
                _ => {
                    let obj = ts.into_pyobject(py)?.into_any();
                    last_ts = Some((ts, obj.clone()));
                    obj
                }
            };
            let rec = types::new_named_tuple(
                py,
                record_type,
                direct,
                [
                    self.offset_of(e).into_pyobject(py)?.into_any(),
                    ts_obj,
                    key,
                    value,
                    headers.into_any(),
                ],
            )?;
            // SAFETY: i < n and the slot is empty; SET_ITEM steals the reference.
            unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), i as ffi::Py_ssize_t, rec.into_ptr()) };
        }
        Ok(list)
    }

    fn header_list<'py>(
        &self,
        py: Python<'py>,
        region: &[u8],
        e: &rb::RecordEntry,
    ) -> PyResult<Bound<'py, PyList>> {
        if e.headers_count == 0 {
            return Ok(PyList::empty(py));
        }
        let hs = &self.headers[e.headers_start..e.headers_start + e.headers_count];
        let mut out = Vec::with_capacity(hs.len());
        for h in hs {
            let key_bytes = &region[h.key_start..h.key_start + h.key_len];
            // The decoder checked the key is UTF-8.
            let key = std::str::from_utf8(key_bytes)
                .map_err(|_| CorruptRecordError::new_err("header key is not UTF-8"))?;
            let value = bytes_or_none(py, region, h.value_start, h.value_len);
            out.push(PyTuple::new(
                py,
                [PyString::new(py, key).into_any(), value],
            )?);
        }
        PyList::new(py, out)
    }
}

#[inline(always)]
fn bytes_or_none<'py>(py: Python<'py>, region: &[u8], start: usize, len: i32) -> Bound<'py, PyAny> {
    if len < 0 {
        py.None().into_bound(py)
    } else {
        PyBytes::new(py, &region[start..start + len as usize]).into_any()
    }
}

#[pymethods]
impl RecordBatch {
    #[getter]
    fn base_offset(&self) -> i64 {
        self.header.base_offset
    }
    /// base_offset + lastOffsetDelta (wrapped to int64 like Java's long arithmetic).
    #[getter]
    fn last_offset(&self) -> i64 {
        self.header.last_offset()
    }
    /// batchLength field: bytes after it (total size - 12).
    #[getter]
    fn batch_length(&self) -> i32 {
        self.header.batch_length
    }
    #[getter]
    fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch
    }
    #[getter]
    fn magic(&self) -> i8 {
        self.header.magic
    }
    #[getter]
    fn crc(&self) -> u32 {
        self.header.crc
    }
    #[getter]
    fn attributes(&self) -> i16 {
        self.header.attributes
    }
    /// Codec name from attributes bits 0-2: none, gzip, snappy, lz4 or zstd.
    #[getter]
    fn compression(&self) -> &'static str {
        CODEC_NAMES[(self.header.attributes & rb::ATTR_CODEC_MASK) as usize]
    }
    /// 0 = create time, 1 = log append time (attributes bit 3).
    #[getter]
    fn timestamp_type(&self) -> u8 {
        self.header.timestamp_type()
    }
    #[getter]
    fn is_transactional(&self) -> bool {
        self.header.is_transactional()
    }
    #[getter]
    fn is_control(&self) -> bool {
        self.header.is_control()
    }
    #[getter]
    fn first_timestamp(&self) -> i64 {
        self.header.first_timestamp
    }
    #[getter]
    fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }
    #[getter]
    fn producer_id(&self) -> i64 {
        self.header.producer_id
    }
    #[getter]
    fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }
    #[getter]
    fn base_sequence(&self) -> i32 {
        self.header.base_sequence
    }
    #[getter]
    fn record_count(&self) -> i32 {
        self.header.record_count
    }
    /// list[Record], built on first access and then shared.
    #[getter]
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        if let Some(l) = self.records.get(py) {
            return Ok(l.bind(py).clone());
        }
        let built = self.build_records(py)?.unbind();
        Ok(self.records.get_or_init(py, || built).bind(py).clone())
    }
    fn __len__(&self) -> usize {
        self.entries.len()
    }
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.records(py)?.try_iter()?.into_any())
    }
    /// Columns of the batch: numpy arrays that index one uncompressed buffer.
    ///
    /// Keys: ``offset`` (int64), ``timestamp_ms`` (int64), ``key_offset`` and
    /// ``value_offset`` (int64 byte offsets into ``buffer``, 0 when null),
    /// ``key_length`` and ``value_length`` (int32 byte lengths, -1 when null),
    /// ``buffer`` (bytes: the records region after decompression).
    fn to_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let np = py.import("numpy")?;
        let n = self.entries.len();
        let col64 = |f: &dyn Fn(&rb::RecordEntry) -> i64| -> PyResult<Bound<'py, PyAny>> {
            let ba = PyByteArray::new_with(py, n * 8, |out| {
                for (chunk, e) in out.chunks_exact_mut(8).zip(&self.entries) {
                    chunk.copy_from_slice(&f(e).to_ne_bytes());
                }
                Ok(())
            })?;
            np.call_method1("frombuffer", (ba, "int64"))
        };
        let col32 = |f: &dyn Fn(&rb::RecordEntry) -> i32| -> PyResult<Bound<'py, PyAny>> {
            let ba = PyByteArray::new_with(py, n * 4, |out| {
                for (chunk, e) in out.chunks_exact_mut(4).zip(&self.entries) {
                    chunk.copy_from_slice(&f(e).to_ne_bytes());
                }
                Ok(())
            })?;
            np.call_method1("frombuffer", (ba, "int32"))
        };
        let d = PyDict::new(py);
        d.set_item("offset", col64(&|e| self.offset_of(e))?)?;
        d.set_item("timestamp_ms", col64(&|e| self.timestamp_of(e))?)?;
        d.set_item(
            "key_offset",
            col64(&|e| {
                if e.key_len >= 0 {
                    e.key_start as i64
                } else {
                    0
                }
            })?,
        )?;
        d.set_item("key_length", col32(&|e| e.key_len)?)?;
        d.set_item(
            "value_offset",
            col64(&|e| {
                if e.value_len >= 0 {
                    e.value_start as i64
                } else {
                    0
                }
            })?,
        )?;
        d.set_item("value_length", col32(&|e| e.value_len)?)?;
        let whole = self.buf.bind(py);
        if self.start == 0 && self.end == whole.as_bytes().len() {
            d.set_item("buffer", whole)?;
        } else {
            d.set_item(
                "buffer",
                PyBytes::new(py, &whole.as_bytes()[self.start..self.end]),
            )?;
        }
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!(
            "RecordBatch(base_offset={}, last_offset={}, record_count={}, compression='{}', \
             timestamp_type={}, producer_id={}, batch_length={})",
            self.header.base_offset,
            self.header.last_offset(),
            self.header.record_count,
            self.compression(),
            self.header.timestamp_type(),
            self.header.producer_id,
            self.header.batch_length
        )
    }
}

/// decode_batch(data, *, verify_crc=True, max_decompressed_bytes=DEFAULT_MAX_DECOMPRESSED_BYTES) -> RecordBatch
///
/// Decode exactly one record batch v2 from a buffer-protocol object.
/// ``max_decompressed_bytes`` caps the decompressed records region (bytes). Raises
/// CorruptRecordError (with the byte offset) on any malformed input, including bytes
/// after the batch.
#[pyfunction]
#[pyo3(signature = (data, *, verify_crc = None, max_decompressed_bytes = rb::DEFAULT_MAX_DECOMPRESSED_BYTES as i64))]
pub(super) fn decode_batch<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    verify_crc: Option<&Bound<'py, PyAny>>,
    max_decompressed_bytes: i64,
) -> PyResult<RecordBatch> {
    let opts = rb::DecodeOptions {
        verify_crc: truthy(verify_crc, true)?,
        max_decompressed_bytes: parse_cap(max_decompressed_bytes)?,
    };
    let input = input_bytes(data)?;
    let slice = input.as_bytes();
    let decoded = gil::run(py, Work::Bytes(slice.len()), || {
        rb::decode_batch(slice, &opts)
    })
    .map_err(to_pyerr)?;
    RecordBatch::from_decoded(py, &input, decoded)
}

/// decode_batches(data, *, verify_crc=True, max_decompressed_bytes=...) -> list[RecordBatch]
///
/// Decode back-to-back record batches, ignoring a trailing partial batch (fewer than
/// 12 bytes left, or a batchLength running past the end). A complete batch that is
/// malformed raises CorruptRecordError.
#[pyfunction]
#[pyo3(signature = (data, *, verify_crc = None, max_decompressed_bytes = rb::DEFAULT_MAX_DECOMPRESSED_BYTES as i64))]
pub(super) fn decode_batches<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    verify_crc: Option<&Bound<'py, PyAny>>,
    max_decompressed_bytes: i64,
) -> PyResult<Vec<RecordBatch>> {
    let opts = rb::DecodeOptions {
        verify_crc: truthy(verify_crc, true)?,
        max_decompressed_bytes: parse_cap(max_decompressed_bytes)?,
    };
    let input = input_bytes(data)?;
    let slice = input.as_bytes();
    let decoded = gil::run(py, Work::Bytes(slice.len()), || {
        rb::decode_batches(slice, &opts)
    })
    .map_err(to_pyerr)?;
    decoded
        .into_iter()
        .map(|d| RecordBatch::from_decoded(py, &input, d))
        .collect()
}

/// validate_batch(data, *, max_decompressed_bytes=...) -> BatchInfo
///
/// Check one complete produced batch without building records and return its header
/// fields: everything decode_batch checks (always with the CRC) plus at least one
/// record, lastOffsetDelta == recordsCount - 1 and offset deltas exactly 0..n-1.
#[pyfunction]
#[pyo3(signature = (data, *, max_decompressed_bytes = rb::DEFAULT_MAX_DECOMPRESSED_BYTES as i64))]
pub(super) fn validate_batch<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    max_decompressed_bytes: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let cap = parse_cap(max_decompressed_bytes)?;
    let view = input_view(data)?;
    let slice = view.as_slice();
    let h = gil::run(py, Work::Bytes(slice.len()), || {
        rb::validate_batch(slice, cap)
    })
    .map_err(to_pyerr)?;
    types::batch_info(py, &h)
}

/// Check back-to-back batches read for `offset` (framing, magic, CRC-32C, offsets
/// never going backwards); None when sound, else (byte index of the first bad batch,
/// the lowest offset it had to end at).
#[pyfunction]
pub(super) fn check_batches(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    offset: i64,
) -> PyResult<Option<(usize, i64)>> {
    let view = input_view(data)?;
    let slice = view.as_slice();
    Ok(gil::run(py, Work::Bytes(slice.len()), || {
        rb::check_batches(slice, offset)
    }))
}
