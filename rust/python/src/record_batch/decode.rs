//! Decoding: the `RecordBatch` class (header fields plus records built on first use,
//! or columns), `decode_batch`, `decode_batches` and `validate_batch`.
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple, PyType};
use pyo3::PyTraverseError;

use streamcore_core::record_batch as rb;

use super::record::Record;
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
    /// The uncompressed records region.
    region: Region,
    pub(super) entries: Vec<rb::RecordEntry>,
    headers: Vec<rb::HeaderEntry>,
    records: PyOnceLock<Py<PyList>>,
}

/// Where a batch's uncompressed records region lives.
enum Region {
    /// Bytes `start..end` of the input `bytes` (an uncompressed batch): no copy.
    Input {
        buf: Py<PyBytes>,
        start: usize,
        end: usize,
    },
    /// Decompressed by us. Records read it in place; a `bytes` copy is made only if
    /// `to_columns` asks for the buffer, once.
    Owned {
        data: Vec<u8>,
        bytes: PyOnceLock<Py<PyBytes>>,
    },
}

impl Region {
    #[inline]
    fn as_slice<'a>(&'a self, py: Python<'_>) -> &'a [u8] {
        match self {
            Region::Input { buf, start, end } => &buf.as_bytes(py)[*start..*end],
            Region::Owned { data, .. } => data,
        }
    }

    /// The region as a `bytes` object (shared with the input when it is all of it).
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        match self {
            Region::Input { buf, start, end } => {
                let whole = buf.bind(py);
                if *start == 0 && *end == whole.as_bytes().len() {
                    whole.clone()
                } else {
                    PyBytes::new(py, &whole.as_bytes()[*start..*end])
                }
            }
            Region::Owned { data, bytes } => bytes
                .get_or_init(py, || PyBytes::new(py, data).unbind())
                .bind(py)
                .clone(),
        }
    }
}

impl RecordBatch {
    fn from_decoded(input: &Bound<'_, PyBytes>, d: rb::DecodedBatch<'_>) -> PyResult<RecordBatch> {
        let region = match d.records {
            std::borrow::Cow::Borrowed(region) => {
                let base = input.as_bytes().as_ptr() as usize;
                let start = region.as_ptr() as usize - base;
                Region::Input {
                    buf: input.clone().unbind(),
                    start,
                    end: start + region.len(),
                }
            }
            std::borrow::Cow::Owned(data) => Region::Owned {
                data,
                bytes: PyOnceLock::new(),
            },
        };
        Ok(RecordBatch {
            header: d.header,
            region,
            entries: d.entries,
            headers: d.headers,
            records: PyOnceLock::new(),
        })
    }

    pub(super) fn offset_of(&self, e: &rb::RecordEntry) -> i64 {
        self.header.base_offset.wrapping_add(e.offset_delta as i64)
    }

    pub(super) fn timestamp_of(&self, e: &rb::RecordEntry) -> i64 {
        if self.header.timestamp_type() == 1 {
            self.header.max_timestamp
        } else {
            self.header.first_timestamp.wrapping_add(e.timestamp_delta)
        }
    }

    /// Every record, in order, with its fields built. Not views of the batch: the
    /// batch keeps this list, and views would make every batch whose records were
    /// listed a cycle, freed only by the garbage collector instead of by its last
    /// reference going.
    fn build_records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut out = Vec::with_capacity(self.entries.len());
        let mut last_ts = None;
        for e in &self.entries {
            let fields = self.fields_of(py, e, &mut last_ts)?.map(Bound::unbind);
            out.push(Bound::new(py, Record::given(py, fields))?);
        }
        PyList::new(py, out)
    }

    /// The five fields of entry `e` as Python objects. `last_ts` carries the previous
    /// record's timestamp: records of a batch often share one, and then they share
    /// the int.
    fn fields_of<'py>(
        &self,
        py: Python<'py>,
        e: &rb::RecordEntry,
        last_ts: &mut Option<(i64, Py<PyAny>)>,
    ) -> PyResult<[Bound<'py, PyAny>; 5]> {
        let ts = self.timestamp_of(e);
        let ts_obj = match last_ts {
            Some((t, obj)) if *t == ts => obj.bind(py).clone(),
            _ => {
                let obj = ts.into_pyobject(py)?.into_any();
                *last_ts = Some((ts, obj.clone().unbind()));
                obj
            }
        };
        Ok([
            self.offset_of(e).into_pyobject(py)?.into_any(),
            ts_obj,
            self.key_of(py, e),
            self.value_of(py, e),
            self.header_list(py, e)?.into_any(),
        ])
    }

    /// The key of entry `e` (None when null).
    pub(super) fn key_of<'py>(&self, py: Python<'py>, e: &rb::RecordEntry) -> Bound<'py, PyAny> {
        bytes_or_none(py, self.region.as_slice(py), e.key_start, e.key_len)
    }

    /// The value of entry `e` (None when null).
    pub(super) fn value_of<'py>(&self, py: Python<'py>, e: &rb::RecordEntry) -> Bound<'py, PyAny> {
        bytes_or_none(py, self.region.as_slice(py), e.value_start, e.value_len)
    }

    /// A new list of entry `e`'s headers: (str key, bytes or None value) tuples.
    pub(super) fn header_list<'py>(
        &self,
        py: Python<'py>,
        e: &rb::RecordEntry,
    ) -> PyResult<Bound<'py, PyList>> {
        if e.headers_count == 0 {
            return Ok(PyList::empty(py));
        }
        let region = self.region.as_slice(py);
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

/// Iterator over a batch's records that makes each `Record` when asked for it.
///
/// A record is one small object (a view of the batch) whose fields are built when
/// read, and nothing but the caller keeps it.
/// With `records` built beforehand, `RecordBatch.__iter__` iterates that list instead.
#[pyclass(module = "streamcore._native.record_batch")]
pub struct RecordIterator {
    batch: Py<RecordBatch>,
    next: usize,
}

#[pymethods]
impl RecordIterator {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.batch)
    }

    fn __next__(mut slf: PyRefMut<'_, Self>) -> Option<Record> {
        let py = slf.py();
        let idx = slf.next;
        if idx >= slf.batch.get().entries.len() {
            return None;
        }
        slf.next = idx + 1;
        Some(Record::view(slf.batch.clone_ref(py), idx))
    }

    /// Records not yet handed out.
    fn __length_hint__(&self) -> usize {
        self.batch.get().entries.len().saturating_sub(self.next)
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
    /// Records `start` up to `stop` (indexes, as in `records[start:stop]`; `stop`
    /// None for all) as instances of `cls` (`tuple` or a tuple subclass whose
    /// instances are plain tuples, such as a named tuple) holding the items of
    /// `prefix` and then the record's five fields: what the consumer turns records
    /// into, made in one step.
    #[pyo3(signature = (cls, prefix, start = 0, stop = None))]
    fn records_as<'py>(
        &self,
        py: Python<'py>,
        cls: &Bound<'py, PyType>,
        prefix: &Bound<'py, PyTuple>,
        start: usize,
        stop: Option<usize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let tuple_type = py.get_type::<PyTuple>();
        if !cls.is_subclass(&tuple_type)? {
            return Err(PyTypeError::new_err(
                "records_as: cls must be tuple or a tuple subclass",
            ));
        }
        let width = prefix.len() + 5;
        if let Ok(fields) = cls.getattr("_fields") {
            if fields.len()? != width {
                return Err(PyValueError::new_err(format!(
                    "records_as: cls has {} fields, prefix and a record make {width}",
                    fields.len()?
                )));
            }
        }
        let exact = cls.is(&tuple_type);
        let direct = types::direct_tuple_alloc(py);
        let stop = stop.map_or(self.entries.len(), |s| s.min(self.entries.len()));
        let chosen = self.entries.get(start.min(stop)..stop).unwrap_or(&[]);
        let mut out = Vec::with_capacity(chosen.len());
        let mut last_ts = None;
        for e in chosen {
            let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(width);
            items.extend(prefix.iter());
            items.extend(self.fields_of(py, e, &mut last_ts)?);
            out.push(if exact {
                PyTuple::new(py, items)?.into_any()
            } else {
                types::new_tuple_instance(py, cls, direct, items)?
            });
        }
        PyList::new(py, out)
    }
    /// The records in order: those of `records` once built, else each built as the
    /// iterator reaches it (see [`RecordIterator`]).
    /// What the batch holds, for the garbage collector (see `Record.__traverse__`): its
    /// input `bytes` or decompressed copy, and the `records` list once built.
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        // SAFETY: the collector calls tp_traverse on an attached thread; the token is
        // only used to read the cells, which runs no Python.
        let py = unsafe { Python::assume_attached() };
        match &self.region {
            Region::Input { buf, .. } => visit.call(buf)?,
            Region::Owned { bytes, .. } => visit.call(bytes.get(py))?,
        }
        visit.call(self.records.get(py))
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(l) = slf.get().records.get(py) {
            return Ok(l.bind(py).try_iter()?.into_any());
        }
        let it = RecordIterator {
            batch: slf.clone().unbind(),
            next: 0,
        };
        Ok(Bound::new(py, it)?.into_any())
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
        d.set_item("buffer", self.region.to_bytes(py))?;
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
    RecordBatch::from_decoded(&input, decoded)
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
        .map(|d| RecordBatch::from_decoded(&input, d))
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
