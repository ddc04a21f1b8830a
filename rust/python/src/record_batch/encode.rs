//! `encode_batch`: Python records to one batch. Every input object is owned and
//! type-checked while the GIL is held; the codec then runs on borrowed slices (with
//! the GIL released for large batches) and writes straight into the result `bytes`.
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyMemoryView, PyString, PyTuple};

use streamcore_core::compression::Codec;
use streamcore_core::error::CodecError;
use streamcore_core::record_batch as rb;

use super::{truthy, CODEC_NAMES};
use crate::buffer::ByteView;
use crate::errors::{to_pyerr, PyTypeError, PyValueError};
use crate::gil::{self, Work};

/// Compressing costs several times a copy per byte: its work counts this many times
/// the records' size against the GIL release threshold.
const COMPRESSION_COST: usize = 4;

/// A key, value or header value: null, a `bytes` object, or a buffer export.
enum Field<'py> {
    Null,
    /// The object, with its data's address and length read once when it was taken.
    Bytes {
        _owner: Bound<'py, PyBytes>,
        data: *const u8,
        len: usize,
    },
    View(ByteView<'py>),
}

impl<'py> Field<'py> {
    /// A `bytes` object's field, its data read once by [`bytes_data`].
    #[inline(always)]
    fn bytes(b: Bound<'py, PyBytes>) -> Self {
        // SAFETY: `b` is a bytes object (or a subclass, whose layout starts with
        // PyBytesObject); `Field` owns it, so the data stays valid while it lives.
        let (data, len) = unsafe { bytes_data(b.as_ptr()) };
        Field::Bytes {
            _owner: b,
            data,
            len,
        }
    }

    #[inline(always)]
    fn slice(&self) -> Option<&[u8]> {
        match self {
            Field::Null => None,
            // SAFETY: see `Field::bytes`; the object is held by `self`.
            Field::Bytes { data, len, .. } => {
                Some(unsafe { std::slice::from_raw_parts(*data, *len) })
            }
            Field::View(v) => Some(v.as_slice()),
        }
    }
}

/// The data address and length of a `bytes` object, read from its struct rather than
/// through `PyBytes_AsString`/`PyBytes_Size` (two type-checked calls per record, a
/// fifth of encoding a batch of 100-byte values).
///
/// # Safety
/// `obj` must be a live `bytes` object or subclass (its layout starts with
/// PyBytesObject); the data is valid while the object lives.
#[inline(always)]
unsafe fn bytes_data(obj: *mut pyo3::ffi::PyObject) -> (*const u8, usize) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            (*obj.cast::<pyo3::ffi::PyBytesObject>())
                .ob_sval
                .as_ptr()
                .cast::<u8>(),
            pyo3::ffi::Py_SIZE(obj) as usize,
        )
    }
}

/// Accepts None, bytes, bytearray or memoryview (as the reference twin does).
#[inline(always)]
fn field<'py>(obj: Bound<'py, PyAny>, what: &str) -> PyResult<Field<'py>> {
    if obj.is_none() {
        return Ok(Field::Null);
    }
    let obj = match obj.cast_into_exact::<PyBytes>() {
        Ok(b) => return Ok(Field::bytes(b)),
        Err(e) => e.into_inner(),
    };
    if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
        return Ok(Field::View(ByteView::new(&obj)?));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        return match ByteView::new(&obj) {
            Ok(v) => Ok(Field::View(v)),
            // A strided memoryview: take its bytes, like memoryview.tobytes().
            Err(_) => Ok(Field::bytes(
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

/// The keys or values of a batch, owned while the codec borrows their bytes.
enum Column<'py> {
    /// Every item is exactly `bytes` or None: the slices were read straight from a
    /// private copy of the caller's list, which owns every object they point into (the
    /// caller's list may change while the GIL is released).
    Direct {
        _items: Bound<'py, PyList>,
        slices: Vec<Option<&'py [u8]>>,
    },
    /// Any other bytes-like items, one owned `Field` each.
    Fields(Vec<Field<'py>>),
}

impl<'py> Column<'py> {
    /// The items of `seq` (each bytes-like or None; `what` names them in a TypeError).
    ///
    /// A list of `bytes` takes the direct form: copying the list takes every reference
    /// in one call, and each item's type, length and data are then read from its
    /// struct, where a `Field` per item (a reference, a type check and two API calls
    /// to reach the data) was about half the time of encoding 100-byte values.
    fn of(seq: &Bound<'py, PyAny>, what: &str) -> PyResult<Self> {
        if let Ok(list) = seq.cast::<PyList>() {
            if let Some(direct) = Self::direct(list) {
                return Ok(direct);
            }
        }
        let fields = items(seq)?
            .into_iter()
            .map(|v| field(v, what))
            .collect::<PyResult<_>>()?;
        Ok(Column::Fields(fields))
    }

    fn direct(list: &Bound<'py, PyList>) -> Option<Self> {
        let items = list.get_slice(0, list.len());
        // Out of the garbage collector's sight, so that no other thread can reach the
        // copy (`gc.get_referrers`, `gc.get_objects`) and empty it while the codec
        // reads its items with the GIL released. Freeing an untracked list is fine.
        // SAFETY: `items` is a list, a GC object this function alone holds.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(items.as_ptr().cast()) };
        let n = items.len();
        let mut slices = Vec::with_capacity(n);
        // SAFETY: `items` is a list nobody else can reach (untracked above), so its n
        // item pointers stay valid and owned by it while the column lives; an item of
        // exactly type `bytes` is read by `bytes_data`.
        unsafe {
            let ob_item = (*items.as_ptr().cast::<pyo3::ffi::PyListObject>()).ob_item;
            let none = pyo3::ffi::Py_None();
            let bytes_type = std::ptr::addr_of_mut!(pyo3::ffi::PyBytes_Type);
            for i in 0..n {
                let obj = *ob_item.add(i);
                if obj == none {
                    slices.push(None);
                } else if pyo3::ffi::Py_TYPE(obj) == bytes_type {
                    let (data, len) = bytes_data(obj);
                    slices.push(Some(std::slice::from_raw_parts(data, len)));
                } else {
                    return None;
                }
            }
        }
        Some(Column::Direct {
            _items: items,
            slices,
        })
    }

    fn len(&self) -> usize {
        match self {
            Column::Direct { slices, .. } => slices.len(),
            Column::Fields(f) => f.len(),
        }
    }

    /// One slice per item (None for a null), borrowed from the column.
    fn slices(&self) -> std::borrow::Cow<'_, [Option<&[u8]>]> {
        match self {
            Column::Direct { slices, .. } => std::borrow::Cow::Borrowed(slices),
            Column::Fields(f) => std::borrow::Cow::Owned(f.iter().map(Field::slice).collect()),
        }
    }
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
pub(super) fn encode_batch<'py>(
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
    // Lengths first: a mismatch is a ValueError before any item's type is looked at,
    // as in the reference twin.
    let n = values.len()?;
    if n == 0 {
        return Err(to_pyerr(CodecError::EmptyBatch));
    }
    let keys = keys.filter(|k| !k.is_none());
    if let Some(k) = keys {
        let got = k.len()?;
        if got != n {
            return Err(length_mismatch("keys", got, n));
        }
    }
    let header_objs = match headers {
        Some(h) if !h.is_none() => Some(items(h)?),
        _ => None,
    };
    let ts_objs = match timestamps_ms {
        Some(t) if !t.is_none() => Some(items(t)?),
        _ => None,
    };
    for (name, seq) in [("headers", &header_objs), ("timestamps_ms", &ts_objs)] {
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
    let value_src = Column::of(values, "value")?;
    let key_src = keys.map(|k| Column::of(k, "key")).transpose()?;
    // A sequence whose iteration disagrees with its len().
    if value_src.len() != n {
        return Err(length_mismatch("values (iterated)", value_src.len(), n));
    }
    if let Some(k) = &key_src {
        if k.len() != n {
            return Err(length_mismatch("keys", k.len(), n));
        }
    }
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
    let values_sl = value_src.slices();
    let keys_sl = key_src.as_ref().map(Column::slices);
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
    let plan = rb::plan(&records).map_err(to_pyerr)?;
    if codec == Codec::None {
        let len = plan.uncompressed_len();
        return bytes_written_by(py, len, |out| {
            gil::run(py, Work::Bytes(len), || {
                rb::encode_uncompressed_into(&records, &opts, &plan, out)
            })
            .map_err(to_pyerr)
        });
    }
    let work = Work::Bytes(plan.records_len.saturating_mul(COMPRESSION_COST));
    let out = gil::run(py, work, || rb::encode_batch(&records, &opts)).map_err(to_pyerr)?;
    Ok(PyBytes::new(py, &out))
}

/// A `bytes` of `len` bytes that `fill` writes in full.
///
/// Unlike `PyBytes::new_with`, the buffer is not zeroed first: the uncompressed
/// encoder writes every byte of the length its plan computed (header and records), so
/// zeroing would only touch each fresh page once more (a send_batch of 100-byte
/// records spent about 6 % of the sending thread in that memset). If `fill` fails the
/// object is dropped before anything sees it.
fn bytes_written_by<'py>(
    py: Python<'py>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> PyResult<()>,
) -> PyResult<Bound<'py, PyBytes>> {
    let n = pyo3::ffi::Py_ssize_t::try_from(len)
        .map_err(|_| PyValueError::new_err(format!("a batch of {len} bytes is too large")))?;
    // SAFETY: with a NULL source, PyBytes_FromStringAndSize allocates `n` bytes (and a
    // trailing NUL) without writing them, returning a new reference or NULL with an
    // exception set. The object is not shared until this function returns it, so its
    // buffer may be written; `fill` only writes the bytes it is given.
    unsafe {
        let raw = pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), n);
        let obj = Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyBytes>();
        let data = pyo3::ffi::PyBytes_AsString(obj.as_ptr()).cast::<u8>();
        fill(std::slice::from_raw_parts_mut(data, len))?;
        Ok(obj)
    }
}
