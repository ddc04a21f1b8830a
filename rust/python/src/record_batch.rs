//! `_native.record_batch`: Kafka record batch v2 encode/decode/validate over
//! `streamcore_core::record_batch`. This file only converts types: Python inputs are
//! borrowed as byte slices while the GIL is held, the codec runs with the GIL
//! released for large inputs, and results are built straight into Python objects.
//!
//! `Record` and `BatchInfo` are named tuples (made with `collections.namedtuple` at
//! import), so they compare equal to the reference twin's `typing.NamedTuple`s.
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple, PyType};

use streamcore_core::compression::Codec;
use streamcore_core::error::CodecError;
use streamcore_core::record_batch as rb;

use crate::crc32c::ByteView;
use crate::errors::CorruptRecordError;

/// Inputs/outputs at least this large are processed with the GIL released; below it
/// the release costs more than it frees.
const DETACH_BYTES: usize = 16 * 1024;

const CODEC_NAMES: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

static RECORD_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static BATCH_INFO_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
/// Whether named tuples may be allocated directly (see `new_record`).
static DIRECT_TUPLE_ALLOC: PyOnceLock<bool> = PyOnceLock::new();

/// The single conversion of codec errors: bad arguments are ValueError, malformed
/// data is CorruptRecordError (message names the problem and the byte offset).
fn codec_err(e: CodecError) -> PyErr {
    if e.is_argument_error() {
        PyValueError::new_err(e.to_string())
    } else {
        CorruptRecordError::new_err(e.to_string())
    }
}

fn run_detached<T: Send, F: Send + FnOnce() -> T>(py: Python<'_>, big: bool, f: F) -> T {
    if big {
        py.detach(f)
    } else {
        f()
    }
}

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

/// A key, value or header value: null, a `bytes` object, or a buffer export.
enum Field<'py> {
    Null,
    Bytes(Bound<'py, PyBytes>),
    View(ByteView<'py>),
}

impl Field<'_> {
    #[inline(always)]
    fn slice(&self) -> Option<&[u8]> {
        match self {
            Field::Null => None,
            Field::Bytes(b) => Some(b.as_bytes()),
            Field::View(v) => Some(v.as_slice()),
        }
    }
}

/// Accepts None, bytes, bytearray or memoryview (as the reference twin does).
#[inline(always)]
fn field<'py>(obj: Bound<'py, PyAny>, what: &str) -> PyResult<Field<'py>> {
    if obj.is_none() {
        return Ok(Field::Null);
    }
    let obj = match obj.cast_into_exact::<PyBytes>() {
        Ok(b) => return Ok(Field::Bytes(b)),
        Err(e) => e.into_inner(),
    };
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Ok(Field::View(ByteView::new(&obj)?));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        return match ByteView::new(&obj) {
            Ok(v) => Ok(Field::View(v)),
            // A strided memoryview: take its bytes, like memoryview.tobytes().
            Err(_) => Ok(Field::Bytes(
                obj.call_method0("tobytes")?.cast_into::<PyBytes>()?,
            )),
        };
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be bytes, bytearray, memoryview or None, not {}",
        obj.get_type().name()?
    )))
}

/// The items of a list/tuple (fast) or any sized iterable.
fn items<'py>(seq: &Bound<'py, PyAny>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if let Ok(l) = seq.cast::<PyList>() {
        return Ok(l.iter().collect());
    }
    if let Ok(t) = seq.cast::<PyTuple>() {
        return Ok(t.iter().collect());
    }
    let n = seq.len()?;
    let mut out = Vec::with_capacity(n);
    for it in seq.try_iter()? {
        out.push(it?);
    }
    Ok(out)
}

fn length_mismatch(name: &str, got: usize, n: usize) -> PyErr {
    PyValueError::new_err(format!("{name} has {got} entries but values has {n}"))
}

/// Parses `compression`: a codec name or id 0..4.
fn parse_codec(c: Option<&Bound<'_, PyAny>>) -> PyResult<Codec> {
    let Some(c) = c else { return Ok(Codec::None) };
    if let Ok(s) = c.cast::<PyString>() {
        let name = s.to_str()?;
        return Codec::from_name(name).ok_or_else(|| {
            PyValueError::new_err(format!(
                "unknown compression {:?}: expected one of {CODEC_NAMES:?}",
                name
            ))
        });
    }
    if c.is_instance_of::<pyo3::types::PyInt>() && !c.is_instance_of::<pyo3::types::PyBool>() {
        let id: i64 = c.extract()?;
        return u8::try_from(id)
            .ok()
            .and_then(Codec::from_id)
            .ok_or_else(|| {
                PyValueError::new_err(format!("unknown compression id {id}: expected 0..4"))
            });
    }
    Err(PyTypeError::new_err(format!(
        "compression must be a str or int, not {}",
        c.get_type().name()?
    )))
}

fn parse_level(level: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i32>> {
    match level {
        None => Ok(None),
        Some(l) if l.is_none() => Ok(None),
        Some(l) => {
            if l.is_instance_of::<pyo3::types::PyBool>()
                || !l.is_instance_of::<pyo3::types::PyInt>()
            {
                return Err(PyTypeError::new_err(format!(
                    "compression_level must be an int, not {}",
                    l.get_type().name()?
                )));
            }
            Ok(Some(l.extract()?))
        }
    }
}

fn truthy(v: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match v {
        None => Ok(default),
        Some(v) => v.is_truthy(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One record's headers before conversion to slices.
struct HeaderSrc<'py> {
    key: Bound<'py, PyString>,
    value: Field<'py>,
}

fn record_headers<'py>(hs: Bound<'py, PyAny>, out: &mut Vec<HeaderSrc<'py>>) -> PyResult<usize> {
    if !hs.is_truthy()? {
        return Ok(0);
    }
    if !(hs.is_instance_of::<PyList>() || hs.is_instance_of::<PyTuple>()) {
        return Err(PyTypeError::new_err(format!(
            "record headers must be a list of (str, bytes|None) tuples, not {}",
            hs.get_type().name()?
        )));
    }
    let hs = items(&hs)?;
    for h in &hs {
        let pair = items(h)?;
        if pair.len() != 2 {
            return Err(PyValueError::new_err(format!(
                "a header is a (key, value) pair, got {} items",
                pair.len()
            )));
        }
        let mut pair = pair.into_iter();
        let (k, v) = (
            pair.next().unwrap_or_else(|| h.clone()),
            pair.next().unwrap_or_else(|| h.clone()),
        );
        let key = match k.cast_into_exact::<PyString>() {
            Ok(s) => s,
            Err(e) => {
                return Err(PyTypeError::new_err(format!(
                    "header key must be str, not {}",
                    e.into_inner().get_type().name()?
                )))
            }
        };
        out.push(HeaderSrc {
            key,
            value: field(v, "header value")?,
        });
    }
    Ok(hs.len())
}

/// encode_batch(values, keys=None, headers=None, timestamps_ms=None, *, compression="none",
/// base_offset=0, producer_id=-1, producer_epoch=-1, base_sequence=-1, transactional=False,
/// control=False, log_append_time=False, partition_leader_epoch=-1, compression_level=None) -> bytes
///
/// Encode records into one Kafka record batch v2. ``values``: bytes-like or None per
/// record; ``keys``/``headers``/``timestamps_ms``: None or one entry per record
/// (headers: None or a list of (str, bytes|None); timestamps in ms since the epoch,
/// default now for all). ``compression``: "none", "gzip", "snappy", "lz4", "zstd" or
/// 0..4. Raises ValueError for an empty batch or mismatched lengths, TypeError for
/// ill-typed records, OverflowError for header fields out of their width.
#[pyfunction]
#[pyo3(signature = (
    values, keys = None, headers = None, timestamps_ms = None, *,
    compression = None, base_offset = 0, producer_id = -1, producer_epoch = -1,
    base_sequence = -1, transactional = None, control = None, log_append_time = None,
    partition_leader_epoch = -1, compression_level = None
))]
#[allow(clippy::too_many_arguments)]
fn encode_batch<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyAny>,
    keys: Option<&Bound<'py, PyAny>>,
    headers: Option<&Bound<'py, PyAny>>,
    timestamps_ms: Option<&Bound<'py, PyAny>>,
    compression: Option<&Bound<'py, PyAny>>,
    base_offset: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: Option<&Bound<'py, PyAny>>,
    control: Option<&Bound<'py, PyAny>>,
    log_append_time: Option<&Bound<'py, PyAny>>,
    partition_leader_epoch: i32,
    compression_level: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let codec = parse_codec(compression)?;
    let value_objs = items(values)?;
    let n = value_objs.len();
    if n == 0 {
        return Err(codec_err(CodecError::EmptyBatch));
    }
    let key_objs = match keys {
        Some(k) if !k.is_none() => Some(items(k)?),
        _ => None,
    };
    let header_objs = match headers {
        Some(h) if !h.is_none() => Some(items(h)?),
        _ => None,
    };
    let ts_objs = match timestamps_ms {
        Some(t) if !t.is_none() => Some(items(t)?),
        _ => None,
    };
    for (name, seq) in [
        ("keys", &key_objs),
        ("headers", &header_objs),
        ("timestamps_ms", &ts_objs),
    ] {
        if let Some(s) = seq {
            if s.len() != n {
                return Err(length_mismatch(name, s.len(), n));
            }
        }
    }
    let opts = rb::EncodeOptions {
        compression: codec,
        compression_level: parse_level(compression_level)?,
        base_offset,
        producer_id,
        producer_epoch,
        base_sequence,
        transactional: truthy(transactional, false)?,
        control: truthy(control, false)?,
        log_append_time: truthy(log_append_time, false)?,
        partition_leader_epoch,
    };

    // Phase 1: own every input object (so the slices below stay valid with the GIL
    // released) and check types.
    let mut value_src = Vec::with_capacity(n);
    for v in value_objs {
        value_src.push(field(v, "value")?);
    }
    let key_src = match key_objs {
        Some(ks) => {
            let mut out = Vec::with_capacity(n);
            for k in ks {
                out.push(field(k, "key")?);
            }
            Some(out)
        }
        None => None,
    };
    let mut header_src = Vec::new();
    let header_counts = match header_objs {
        Some(hs) => {
            let mut counts = Vec::with_capacity(n);
            for h in hs {
                counts.push(record_headers(h, &mut header_src)?);
            }
            Some(counts)
        }
        None => None,
    };
    let timestamps: Option<Vec<i64>> = match ts_objs {
        Some(ts) => Some(
            ts.iter()
                .map(|t| t.extract::<i64>())
                .collect::<PyResult<_>>()?,
        ),
        None => None,
    };

    // Phase 2: borrowed slices.
    let values_sl: Vec<Option<&[u8]>> = value_src.iter().map(Field::slice).collect();
    let keys_sl: Option<Vec<Option<&[u8]>>> = key_src
        .as_ref()
        .map(|ks| ks.iter().map(Field::slice).collect());
    let headers_sl: Option<Vec<Vec<rb::Header<'_>>>> = match &header_counts {
        Some(counts) => {
            let mut all = Vec::with_capacity(n);
            let mut it = header_src.iter();
            for &c in counts {
                let mut hs = Vec::with_capacity(c);
                for h in it.by_ref().take(c) {
                    hs.push(rb::Header {
                        key: h.key.to_str()?.as_bytes(),
                        value: h.value.slice(),
                    });
                }
                all.push(hs);
            }
            Some(all)
        }
        None => None,
    };
    let records = rb::RecordsIn {
        values: &values_sl,
        keys: keys_sl.as_deref(),
        headers: headers_sl.as_deref(),
        timestamps: match &timestamps {
            Some(ts) => rb::Timestamps::Each(ts),
            None => rb::Timestamps::Same(now_ms()),
        },
    };
    let plan = rb::plan(&records).map_err(codec_err)?;
    if codec == Codec::None {
        let len = plan.uncompressed_len();
        return PyBytes::new_with(py, len, |out| {
            run_detached(py, len >= DETACH_BYTES, || {
                rb::encode_uncompressed_into(&records, &opts, &plan, out)
            })
            .map_err(codec_err)
        });
    }
    let out = run_detached(py, plan.records_len >= DETACH_BYTES / 4, || {
        rb::encode_batch(&records, &opts)
    })
    .map_err(codec_err)?;
    Ok(PyBytes::new(py, &out))
}

// ---------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------

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
        let record_type = record_type(py)?;
        let direct = *DIRECT_TUPLE_ALLOC.get_or_init(py, || py.version_info() < (3, 14));
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
            let rec = new_record(
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

fn record_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    RECORD_TYPE
        .get(py)
        .map(|t| t.bind(py))
        .ok_or_else(|| PyTypeError::new_err("record_batch.Record is not initialised"))
}

/// Builds a `Record` named tuple from five items.
///
/// Up to Python 3.13 a tuple subclass instance is exactly what `tuple.__new__` makes:
/// `tp_alloc(type, n)` then the items in its slots, so we do that directly (this is
/// the decode hot path). From 3.14 tuples carry a hash cache that only CPython's own
/// constructor initialises, so there we call `tuple.__new__(Record, items)`.
fn new_record<'py>(
    py: Python<'py>,
    tp: &Bound<'py, PyType>,
    direct: bool,
    items: [Bound<'py, PyAny>; 5],
) -> PyResult<Bound<'py, PyAny>> {
    if direct {
        // SAFETY: tp is a tuple subclass (a namedtuple); its tp_alloc gives an object
        // with 5 NULL item slots laid out as a tuple's, which we fill with stolen
        // references before anyone else can see it.
        unsafe {
            let tpp = tp.as_type_ptr();
            let alloc = (*tpp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
            let obj = alloc(tpp, 5);
            if obj.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, it) in items.into_iter().enumerate() {
                ffi::PyTuple_SET_ITEM(obj, i as ffi::Py_ssize_t, it.into_ptr());
            }
            return Ok(Bound::from_owned_ptr(py, obj));
        }
    }
    let plain = PyTuple::new(py, items)?;
    let args = PyTuple::new(py, [plain])?;
    // SAFETY: PyTuple_Type.tp_new is tuple_new; called with a tuple subclass and an
    // args tuple holding one iterable, as `tuple.__new__(cls, it)` does.
    unsafe {
        let tuple_type = std::ptr::addr_of_mut!(ffi::PyTuple_Type);
        let new = (*tuple_type)
            .tp_new
            .ok_or_else(|| PyTypeError::new_err("tuple has no tp_new"))?;
        let obj = new(tp.as_type_ptr(), args.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
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
fn decode_batch<'py>(
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
    let decoded = run_detached(py, slice.len() >= DETACH_BYTES, || {
        rb::decode_batch(slice, &opts)
    })
    .map_err(codec_err)?;
    RecordBatch::from_decoded(py, &input, decoded)
}

/// decode_batches(data, *, verify_crc=True, max_decompressed_bytes=...) -> list[RecordBatch]
///
/// Decode back-to-back record batches, ignoring a trailing partial batch (fewer than
/// 12 bytes left, or a batchLength running past the end). A complete batch that is
/// malformed raises CorruptRecordError.
#[pyfunction]
#[pyo3(signature = (data, *, verify_crc = None, max_decompressed_bytes = rb::DEFAULT_MAX_DECOMPRESSED_BYTES as i64))]
fn decode_batches<'py>(
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
    let decoded = run_detached(py, slice.len() >= DETACH_BYTES, || {
        rb::decode_batches(slice, &opts)
    })
    .map_err(codec_err)?;
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
fn validate_batch<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    max_decompressed_bytes: i64,
) -> PyResult<Bound<'py, PyAny>> {
    let cap = parse_cap(max_decompressed_bytes)?;
    let view = input_view(data)?;
    let slice = view.as_slice();
    let h = run_detached(py, slice.len() >= DETACH_BYTES, || {
        rb::validate_batch(slice, cap)
    })
    .map_err(codec_err)?;
    let info_type = BATCH_INFO_TYPE
        .get(py)
        .ok_or_else(|| PyTypeError::new_err("record_batch.BatchInfo is not initialised"))?
        .bind(py);
    info_type.call1((
        h.base_offset,
        h.batch_length,
        h.partition_leader_epoch,
        h.crc,
        h.attributes,
        h.last_offset_delta,
        h.first_timestamp,
        h.max_timestamp,
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
        h.record_count,
    ))
}

fn make_namedtuple<'py>(
    py: Python<'py>,
    name: &str,
    fields: &[&str],
    doc: &str,
) -> PyResult<Bound<'py, PyType>> {
    let kwargs = PyDict::new(py);
    kwargs.set_item("module", "streamcore._native.record_batch")?;
    let t = py
        .import("collections")?
        .getattr("namedtuple")?
        .call((name, fields.to_vec()), Some(&kwargs))?
        .cast_into::<PyType>()?;
    t.setattr("__doc__", doc)?;
    Ok(t)
}

/// Adds the `record_batch` submodule to `_native`.
pub fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = parent.py();
    let m = PyModule::new(py, "record_batch")?;
    let record = make_namedtuple(
        py,
        "Record",
        &["offset", "timestamp_ms", "key", "value", "headers"],
        "One decoded record: offset (int), timestamp_ms (int, ms since the epoch; the \
         batch's max_timestamp under log-append time), key and value (bytes or None), \
         headers (list of (str, bytes | None)).",
    )?;
    let info = make_namedtuple(
        py,
        "BatchInfo",
        &[
            "base_offset",
            "batch_length",
            "partition_leader_epoch",
            "crc",
            "attributes",
            "last_offset_delta",
            "first_timestamp",
            "max_timestamp",
            "producer_id",
            "producer_epoch",
            "base_sequence",
            "record_count",
        ],
        "Header fields of a batch that passed validate_batch (wire order).",
    )?;
    let _ = RECORD_TYPE.set(py, record.clone().unbind());
    let _ = BATCH_INFO_TYPE.set(py, info.clone().unbind());
    m.add("Record", record)?;
    m.add("BatchInfo", info)?;
    m.add_class::<RecordBatch>()?;
    m.add(
        "DEFAULT_MAX_DECOMPRESSED_BYTES",
        rb::DEFAULT_MAX_DECOMPRESSED_BYTES,
    )?;
    m.add_function(wrap_pyfunction!(encode_batch, &m)?)?;
    m.add_function(wrap_pyfunction!(decode_batch, &m)?)?;
    m.add_function(wrap_pyfunction!(decode_batches, &m)?)?;
    m.add_function(wrap_pyfunction!(validate_batch, &m)?)?;
    parent.add_submodule(&m)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("streamcore._native.record_batch", &m)?;
    Ok(())
}
