//! `_native.accumulator`: the producer's open batches and its one-call send path.
//!
//! `ProducerBatch` holds one partition's records on their way into one record batch
//! v2 (per-record columns as Python lists, the records' futures, the batch's state
//! on its way to the broker); the client's sender reads and writes its fields as
//! attributes. Native so that the send path touches them without attribute look-ups.
//! Rule for every method here: no borrow of a batch is held while Python code could
//! run (a call, or an allocation that may start the garbage collector), so another
//! thread reading a field meanwhile never finds it borrowed.
//!
//! `Appender.append` does the per-record work of the common `send()` in one call:
//! the partition (murmur2 of the key, the sticky partition or the one given), the
//! memory charge, the append to the partition's open batch and the record's future.
//! It works on the client's own Python objects (the `ProducerCore`, its
//! `Accumulator` and `ProducerBatch`es), under the accumulator's lock, and takes a
//! record only when that needs nothing else; otherwise it returns None having
//! changed nothing and the client runs its full path. The pure-Python twin,
//! `streamcore._reference.accumulator`, takes and refuses the same records and
//! leaves the same state behind.
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple, PyType};

use crate::partitioner::{hash_key, partition_of_hash};

use crate::record_batch::types;

/// Bytes charged per record beyond key, value and headers (the client's `RECORD_OVERHEAD`).
const RECORD_OVERHEAD: i64 = 24;

/// Releases the accumulator's lock when the append ends, whichever way it ends.
struct Locked<'a, 'py> {
    release: &'a Bound<'py, PyAny>,
}

impl Drop for Locked<'_, '_> {
    fn drop(&mut self) {
        // Releasing a lock we hold cannot fail; if it somehow did, the error would be
        // raised by the next Python call instead of being lost silently.
        if let Err(e) = self.release.call0() {
            e.restore(self.release.py());
        }
    }
}

/// Length of `obj` (a `bytes` or `str` already checked by the caller).
#[inline]
fn len_of(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    Ok(obj.len()? as i64)
}

/// A copy of `headers` and its charged size, or None unless it is a list or tuple of
/// `(str, bytes | None)` tuples.
fn header_list<'py>(headers: &Bound<'py, PyAny>) -> PyResult<Option<(Bound<'py, PyList>, i64)>> {
    let py = headers.py();
    let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = headers.cast_exact::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = headers.cast_exact::<PyTuple>() {
        t.iter().collect()
    } else {
        return Ok(None);
    };
    let mut size = 0i64;
    for h in &items {
        let Ok(t) = h.cast_exact::<PyTuple>() else {
            return Ok(None);
        };
        if t.len() != 2 {
            return Ok(None);
        }
        let k = t.get_item(0)?;
        let v = t.get_item(1)?;
        if !k.is_exact_instance_of::<PyString>() {
            return Ok(None);
        }
        size += len_of(&k)?;
        if v.is_none() {
            continue;
        }
        if !v.is_exact_instance_of::<PyBytes>() {
            return Ok(None);
        }
        size += len_of(&v)?;
    }
    Ok(Some((PyList::new(py, items)?, size)))
}

/// ProducerBatch(tp, now, deadline)
///
/// Records of one partition on their way into one record batch v2: ``tp`` its
/// TopicPartition, ``now`` and ``deadline`` monotonic seconds (creation, and when
/// delivery_timeout_ms runs out).
#[pyclass(module = "streamcore._native.accumulator")]
pub(crate) struct ProducerBatch {
    #[pyo3(get, set)]
    tp: Py<PyAny>,
    #[pyo3(get, set)]
    values: Py<PyAny>,
    #[pyo3(get, set)]
    keys: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    headers: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    timestamps: Option<Py<PyAny>>,
    /// The futures of send() records, given by the caller (asyncio).
    #[pyo3(get, set)]
    record_futures: Py<PyAny>,
    /// Each of those records' index in the batch (ints, like the futures in a list:
    /// no tuple per record for the garbage collector to track).
    #[pyo3(get, set)]
    record_indices: Py<PyAny>,
    /// (start, count, span collector) for send_batch().
    #[pyo3(get, set)]
    span_futures: Py<PyAny>,
    #[pyo3(get, set)]
    size: i64,
    #[pyo3(get, set)]
    created: f64,
    #[pyo3(get, set)]
    explicit_ts: bool,
    #[pyo3(get, set)]
    encoded: Option<Py<PyAny>>,
    #[pyo3(get, set)]
    base_sequence: i64,
    #[pyo3(get, set)]
    producer_id: i64,
    #[pyo3(get, set)]
    producer_epoch: i64,
    #[pyo3(get, set)]
    attempts: i64,
    #[pyo3(get, set)]
    retry_at: f64,
    #[pyo3(get, set)]
    deadline: f64,
    #[pyo3(get, set)]
    count: i64,
    #[pyo3(get, set)]
    first_ts: i64,
    #[pyo3(get, set)]
    node: i64,
    /// (base offset, log append time) or an exception, once answered.
    #[pyo3(get, set)]
    outcome: Option<Py<PyAny>>,
    /// Bound record futures somebody waits on.
    #[pyo3(get, set)]
    watched: Py<PyAny>,
    /// Record futures that read their result from ``outcome``.
    #[pyo3(get, set)]
    bound: i64,
}

/// A column's list, made (padded with `count` Nones) and stored when the batch has
/// none yet; None when it has none and `needed` is false.
fn column<'py>(
    slf: &Bound<'py, ProducerBatch>,
    get: fn(&ProducerBatch) -> &Option<Py<PyAny>>,
    set: fn(&mut ProducerBatch, Py<PyAny>),
    needed: bool,
    count: usize,
) -> PyResult<Option<Bound<'py, PyList>>> {
    let py = slf.py();
    let current = get(&slf.borrow()).as_ref().map(|c| c.bind(py).clone());
    match current {
        Some(c) => Ok(Some(c.cast_into::<PyList>()?)),
        None if needed => {
            let padded = PyList::new(py, (0..count).map(|_| py.None()))?;
            set(&mut slf.borrow_mut(), padded.clone().into_any().unbind());
            Ok(Some(padded))
        }
        None => Ok(None),
    }
}

impl ProducerBatch {
    /// Appends one record's columns (value, key, headers, timestamp) and, for send(),
    /// its future; returns the record's index. Size and count are the caller's.
    fn push<'py>(
        slf: &Bound<'py, Self>,
        value: Option<&Bound<'py, PyAny>>,
        key: Option<&Bound<'py, PyAny>>,
        headers: Option<&Bound<'py, PyAny>>,
        timestamp_ms: Option<&Bound<'py, PyAny>>,
        future: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<usize> {
        let py = slf.py();
        let (count, values) = {
            let b = slf.borrow();
            (b.count as usize, b.values.bind(py).clone())
        };
        let none = py.None().into_bound(py);
        let or_none = |o: Option<&Bound<'py, PyAny>>| o.cloned().unwrap_or_else(|| none.clone());
        if let Some(f) = future {
            let (futures, indices) = {
                let b = slf.borrow();
                (
                    b.record_futures.bind(py).clone(),
                    b.record_indices.bind(py).clone(),
                )
            };
            indices.cast::<PyList>()?.append(count)?;
            futures.cast::<PyList>()?.append(f)?;
        }
        values.cast::<PyList>()?.append(or_none(value))?;
        if let Some(keys) = column(
            slf,
            |b| &b.keys,
            |b, v| b.keys = Some(v),
            key.is_some(),
            count,
        )? {
            keys.append(or_none(key))?;
        }
        let hs = column(
            slf,
            |b| &b.headers,
            |b, v| b.headers = Some(v),
            headers.is_some(),
            count,
        )?;
        if let Some(hs) = hs {
            hs.append(or_none(headers))?;
        }
        let ts = column(
            slf,
            |b| &b.timestamps,
            |b, v| b.timestamps = Some(v),
            timestamp_ms.is_some(),
            count,
        )?;
        if let Some(ts) = ts {
            ts.append(or_none(timestamp_ms))?;
            slf.borrow_mut().explicit_ts = true;
        }
        Ok(count)
    }
}

#[pymethods]
impl ProducerBatch {
    #[new]
    fn new(py: Python<'_>, tp: Py<PyAny>, now: f64, deadline: f64) -> PyResult<Self> {
        let list = || -> PyResult<Py<PyAny>> { Ok(PyList::empty(py).into_any().unbind()) };
        Ok(ProducerBatch {
            tp,
            values: list()?,
            keys: None,
            headers: None,
            timestamps: None,
            record_futures: list()?,
            record_indices: list()?,
            span_futures: list()?,
            size: 0,
            created: now,
            explicit_ts: false,
            encoded: None,
            base_sequence: -1,
            producer_id: -1,
            producer_epoch: -1,
            attempts: 0,
            retry_at: 0.0,
            deadline,
            count: 0,
            first_ts: 0,
            node: -1,
            outcome: None,
            watched: list()?,
            bound: 0,
        })
    }

    /// add(value, key, headers, timestamp_ms, size, future)
    ///
    /// Appends one record of ``size`` charged bytes (the caller holds the accumulator
    /// lock); ``future`` None for a bound future, which the caller counts in ``bound``.
    #[pyo3(signature = (value, key, headers, timestamp_ms, size, future))]
    fn add<'py>(
        slf: &Bound<'py, Self>,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        timestamp_ms: Option<Bound<'py, PyAny>>,
        size: i64,
        future: Option<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        let i = Self::push(
            slf,
            value.as_ref(),
            key.as_ref(),
            headers.as_ref(),
            timestamp_ms.as_ref(),
            future.as_ref(),
        )?;
        let mut b = slf.borrow_mut();
        b.size += size;
        b.count = i as i64 + 1;
        Ok(())
    }

    /// resolve_records(base_offset, log_append_time, metadata)
    ///
    /// Completes the batch's send() futures (those not done yet) with
    /// ``metadata(topic, partition, offset, timestamp)`` once the broker answered:
    /// offsets from ``base_offset`` (-1 for every record when it is negative, as
    /// under acks=0), timestamps the broker's ``log_append_time`` when it is not -1
    /// or None, else the record's own (``timestamps``, or ``first_ts`` for all).
    fn resolve_records<'py>(
        slf: &Bound<'py, Self>,
        base_offset: i64,
        log_append_time: Option<i64>,
        metadata: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let (tp, futures, indices, ts_list, first_ts) = {
            let b = slf.borrow();
            (
                b.tp.bind(py).clone(),
                b.record_futures.bind(py).clone(),
                b.record_indices.bind(py).clone(),
                b.timestamps.as_ref().map(|t| t.bind(py).clone()),
                b.first_ts,
            )
        };
        let futures = futures.cast_into::<PyList>()?;
        let indices = indices.cast_into::<PyList>()?;
        if futures.is_empty() {
            return Ok(());
        }
        if indices.len() != futures.len() {
            return Err(crate::errors::PyValueError::new_err(
                "record_indices and record_futures differ in length",
            ));
        }
        let topic = tp.get_item(0)?;
        let partition = tp.get_item(1)?;
        let appended = log_append_time.filter(|t| *t != -1);
        let first = appended.unwrap_or(first_ts).into_pyobject(py)?.into_any();
        // A named tuple (a tuple subclass) is filled in directly, as tuple.__new__(cls,
        // fields) would: no Python frame and no argument tuples per record. Any other
        // callable is called as it is.
        let direct = metadata
            .cast::<PyType>()
            .ok()
            .filter(|t| t.is_subclass(&py.get_type::<PyTuple>()).unwrap_or(false));
        // Topic and partition are a str and an int (offsets and timestamps are ints
        // made here or read from `timestamps`, checked below): such a tuple can never be
        // part of a reference cycle, so the collector need not track it, as CPython
        // itself stops tracking tuples of atomic items.
        let atomic = |o: &Bound<'py, PyAny>| {
            o.is_exact_instance_of::<PyString>() || o.is_exact_instance_of::<PyInt>()
        };
        let head_atomic = atomic(&topic) && atomic(&partition) && atomic(&first);
        // SAFETY: reading a field of a live type object.
        let untrackable =
            direct.is_some_and(|cls| unsafe { (*cls.as_type_ptr()).tp_dictoffset == 0 });
        for (i, f) in indices.iter().zip(futures.iter()) {
            let offset = if base_offset >= 0 {
                (base_offset + i.extract::<i64>()?)
                    .into_pyobject(py)?
                    .into_any()
            } else {
                (-1i64).into_pyobject(py)?.into_any()
            };
            let ts = match (&ts_list, appended) {
                (Some(list), None) => {
                    let t = list.get_item(i)?;
                    if t.is_none() {
                        first.clone()
                    } else {
                        t
                    }
                }
                _ => first.clone(),
            };
            let untrack = head_atomic && atomic(&ts);
            let fields = [topic.clone(), partition.clone(), offset, ts];
            let meta = match &direct {
                Some(cls) => {
                    let meta =
                        types::new_named_tuple(py, cls, types::direct_tuple_alloc(py), fields)?;
                    if untrack && untrackable {
                        // SAFETY: a tuple (without an instance dict) we just made, whose
                        // items are str and int objects only: it cannot be part of a
                        // cycle, which is when CPython itself untracks a tuple.
                        unsafe { ffi::PyObject_GC_UnTrack(meta.as_ptr().cast()) };
                    }
                    meta
                }
                None => metadata.call1(PyTuple::new(py, fields)?)?,
            };
            // Futures are almost never done already (cancelled, or completed by
            // someone else): set the result first and ask done() only if that failed.
            if let Err(e) = f.call_method1(intern!(py, "set_result"), (meta,)) {
                if f.call_method0(intern!(py, "done"))?.is_truthy()? {
                    continue;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// add_many(values, keys, size, collector)
    ///
    /// Appends a run of records from send_batch, ``size`` charged bytes in all (the
    /// caller holds the lock).
    fn add_many<'py>(
        slf: &Bound<'py, Self>,
        values: &Bound<'py, PyAny>,
        keys: Option<Bound<'py, PyAny>>,
        size: i64,
        collector: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let i = slf.borrow().count as usize;
        let n = values.len()?;
        let own_values = slf.borrow().values.bind(py).clone();
        own_values.call_method1(intern!(py, "extend"), (values,))?;
        let nones = || PyList::new(py, (0..n).map(|_| py.None()));
        if let Some(k) = column(slf, |b| &b.keys, |b, v| b.keys = Some(v), keys.is_some(), i)? {
            match &keys {
                Some(ks) => k.call_method1(intern!(py, "extend"), (ks,))?,
                None => k.call_method1(intern!(py, "extend"), (nones()?,))?,
            };
        }
        if let Some(h) = column(slf, |b| &b.headers, |b, v| b.headers = Some(v), false, i)? {
            h.call_method1(intern!(py, "extend"), (nones()?,))?;
        }
        if let Some(t) = column(
            slf,
            |b| &b.timestamps,
            |b, v| b.timestamps = Some(v),
            false,
            i,
        )? {
            t.call_method1(intern!(py, "extend"), (nones()?,))?;
        }
        let entry = PyTuple::new(
            py,
            [
                i.into_pyobject(py)?.into_any(),
                n.into_pyobject(py)?.into_any(),
                collector.clone(),
            ],
        )?;
        let spans = slf.borrow().span_futures.bind(py).clone();
        spans.cast::<PyList>()?.append(entry)?;
        let mut b = slf.borrow_mut();
        b.size += size;
        b.count = (i + n) as i64;
        Ok(())
    }
}

/// Appender(core, future_factory=None)
///
/// The one-call send path of one producer: ``core`` is the ``ProducerCore`` (its
/// ``acc``, ``partitions``, ``_sticky``, ``_tp_cache`` and ``_switch_sticky`` are
/// used); ``future_factory`` makes a record's future when ``append`` is given none.
#[pyclass(module = "streamcore._native.accumulator", frozen)]
struct Appender {
    core: Py<PyAny>,
    acc: Py<PyAny>,
    acquire: Py<PyAny>,
    release: Py<PyAny>,
    open: Py<PyDict>,
    partitions: Py<PyDict>,
    sticky: Py<PyDict>,
    tp_cache: Py<PyDict>,
    factory: Option<Py<PyAny>>,
    batch_size: i64,
    buffer_memory: i64,
    /// What `send` calls with a record `append` declined.
    fallback: Option<Py<PyAny>>,
    /// Set by `close`: from then on `append` declines every record.
    closed: AtomicBool,
}

#[pymethods]
impl Appender {
    #[new]
    #[pyo3(signature = (core, future_factory = None, fallback = None))]
    fn new(
        core: &Bound<'_, PyAny>,
        future_factory: Option<Bound<'_, PyAny>>,
        fallback: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let acc = core.getattr("acc")?;
        let lock = acc.getattr("lock")?;
        Ok(Appender {
            core: core.clone().unbind(),
            acquire: lock.getattr("acquire")?.unbind(),
            release: lock.getattr("release")?.unbind(),
            open: acc.getattr("open")?.cast_into::<PyDict>()?.unbind(),
            partitions: core.getattr("partitions")?.cast_into::<PyDict>()?.unbind(),
            sticky: core.getattr("_sticky")?.cast_into::<PyDict>()?.unbind(),
            tp_cache: core.getattr("_tp_cache")?.cast_into::<PyDict>()?.unbind(),
            factory: future_factory.filter(|f| !f.is_none()).map(Bound::unbind),
            batch_size: acc.getattr("batch_size")?.extract()?,
            buffer_memory: acc.getattr("buffer_memory")?.extract()?,
            acc: acc.unbind(),
            fallback: fallback.filter(|f| !f.is_none()).map(Bound::unbind),
            closed: AtomicBool::new(false),
        })
    }

    /// close()
    ///
    /// Declines every record from now on (the full path then refuses them).
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// send(topic, value, key=None, headers=None, partition=None, timestamp_ms=None)
    ///
    /// ``append`` with a future from the factory, or, for a record it declines,
    /// ``fallback(topic, value, key, headers, partition, timestamp_ms)``'s result:
    /// the blocking producer's whole ``send`` in one call.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn send<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        key: Option<&Bound<'py, PyAny>>,
        headers: Option<&Bound<'py, PyAny>>,
        partition: Option<&Bound<'py, PyAny>>,
        timestamp_ms: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(f) = self.append(
            py,
            topic,
            Some(value),
            key,
            headers,
            partition,
            timestamp_ms,
            None,
        )? {
            return Ok(f);
        }
        let Some(fallback) = self.fallback.as_ref() else {
            return Err(crate::errors::PyValueError::new_err(
                "send needs a fallback: this Appender has none",
            ));
        };
        let none = py.None().into_bound(py);
        let or_none = |o: Option<&Bound<'py, PyAny>>| o.cloned().unwrap_or_else(|| none.clone());
        fallback.bind(py).call1((
            topic,
            value,
            or_none(key),
            or_none(headers),
            or_none(partition),
            or_none(timestamp_ms),
        ))
    }

    /// append(topic, value, key=None, headers=None, partition=None, timestamp_ms=None, future=None)
    ///
    /// Appends one record and returns its future (``future``, or a new one from the
    /// factory); None, with nothing changed, when the full path must take it.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp_ms = None, future = None))]
    #[allow(clippy::too_many_arguments)]
    fn append<'py>(
        &self,
        py: Python<'py>,
        topic: &Bound<'py, PyAny>,
        value: Option<&Bound<'py, PyAny>>,
        key: Option<&Bound<'py, PyAny>>,
        headers: Option<&Bound<'py, PyAny>>,
        partition: Option<&Bound<'py, PyAny>>,
        timestamp_ms: Option<&Bound<'py, PyAny>>,
        future: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.closed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // None arrives as Some(None) for arguments given positionally.
        let value = value.filter(|v| !v.is_none());
        let key = key.filter(|v| !v.is_none());
        let headers = headers.filter(|v| !v.is_none());
        let partition = partition.filter(|v| !v.is_none());
        let timestamp_ms = timestamp_ms.filter(|v| !v.is_none());
        let future = future.filter(|v| !v.is_none());

        if value.is_some_and(|v| !v.is_exact_instance_of::<PyBytes>())
            || key.is_some_and(|k| !k.is_exact_instance_of::<PyBytes>())
            || timestamp_ms.is_some_and(|t| !t.is_exact_instance_of::<PyInt>())
        {
            return Ok(None);
        }
        let Some(parts) = self.partitions.bind(py).get_item(topic)? else {
            return Ok(None);
        };
        let parts = parts.cast_into::<PyList>()?;
        let mut size = RECORD_OVERHEAD;
        if let Some(v) = value {
            size += len_of(v)?;
        }
        if let Some(k) = key {
            size += len_of(k)?;
        }
        let mut hdrs: Option<Bound<'py, PyList>> = None;
        if let Some(h) = headers {
            if h.is_truthy()? {
                let Some((list, hsize)) = header_list(h)? else {
                    return Ok(None);
                };
                size += hsize;
                hdrs = Some(list);
            }
        }
        // The partition: None (unkeyed) until the sticky one is read under the lock.
        let mut chosen: Option<Bound<'py, PyAny>> = None;
        if let Some(p) = partition {
            if !p.is_exact_instance_of::<PyInt>() || !parts.contains(p)? {
                return Ok(None);
            }
            chosen = Some(p.clone());
        } else if let Some(k) = key {
            let n = parts.len();
            if n == 0 {
                return Ok(None);
            }
            chosen = Some(parts.get_item(partition_of_hash(hash_key(k)?, n))?);
        }
        let unkeyed = chosen.is_none();

        let release = self.release.bind(py);
        self.acquire.bind(py).call0()?;
        let _locked = Locked { release };

        let acc = self.acc.bind(py);
        let used: i64 = acc.getattr(intern!(py, "used"))?.extract()?;
        if used + size > self.buffer_memory && used > 0 {
            return Ok(None);
        }
        let p = match chosen {
            Some(p) => p,
            None => match self.sticky.bind(py).get_item(topic)? {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        let Some(tps) = self.tp_cache.bind(py).get_item(topic)? else {
            return Ok(None);
        };
        let tps = tps.cast_into::<PyList>()?;
        let index: usize = match p.extract::<isize>() {
            Ok(i) if i >= 0 && (i as usize) < tps.len() => i as usize,
            _ => return Ok(None),
        };
        let tp = tps.get_item(index)?;
        let Some(batch) = self.open.bind(py).get_item(&tp)? else {
            return Ok(None);
        };
        let batch = batch.cast_into::<ProducerBatch>()?;
        let bsize = batch.borrow().size;
        if bsize + size > self.batch_size {
            return Ok(None);
        }
        acc.setattr(intern!(py, "used"), used + size)?;
        let hdrs_any = hdrs.as_ref().map(|l| l.as_any());
        let (index, fut) = match future {
            Some(f) => {
                let i = ProducerBatch::push(&batch, value, key, hdrs_any, timestamp_ms, Some(f))?;
                (i, f.clone())
            }
            None => {
                let Some(factory) = self.factory.as_ref() else {
                    return Err(crate::errors::PyValueError::new_err(
                        "append needs a future: this Appender has no future_factory",
                    ));
                };
                // A bound future: it reads its RecordMetadata from the batch outcome.
                let f = factory.bind(py).call0()?;
                let i = ProducerBatch::push(&batch, value, key, hdrs_any, timestamp_ms, None)?;
                f.setattr(intern!(py, "_batch"), &batch)?;
                f.setattr(intern!(py, "_index"), i)?;
                batch.borrow_mut().bound += 1;
                (i, f)
            }
        };
        let bsize = bsize + size;
        {
            let mut b = batch.borrow_mut();
            b.size = bsize;
            b.count = index as i64 + 1;
        }
        if bsize >= self.batch_size {
            acc.call_method1(intern!(py, "seal_if_full"), (&tp, &batch))?;
            if unkeyed {
                self.core
                    .bind(py)
                    .call_method1(intern!(py, "_switch_sticky"), (topic, &parts, &p))?;
            }
        }
        Ok(Some(fut))
    }
}

/// Length of one send_batch item: an exact `bytes` read directly, None 0, anything
/// else through `len()` (which raises TypeError for an object without one).
#[inline]
fn item_len(item: &Bound<'_, PyAny>) -> PyResult<i64> {
    if let Ok(b) = item.cast_exact::<PyBytes>() {
        return Ok(b.as_bytes().len() as i64);
    }
    if item.is_none() {
        return Ok(0);
    }
    len_of(item)
}

/// total_len(items) -> int
///
/// Sum of ``len()`` of ``items`` (a list, a tuple or any iterable), None counting 0:
/// the bytes of a send_batch call's values or keys, before the per-record overhead.
/// One native pass instead of a ``len`` call per item, so a large send_batch hands
/// its first batch to the sender sooner.
#[pyfunction]
fn total_len(items: &Bound<'_, PyAny>) -> PyResult<i64> {
    let mut total = 0i64;
    if let Ok(l) = items.cast_exact::<PyList>() {
        for item in l.iter() {
            total += item_len(&item)?;
        }
    } else if let Ok(t) = items.cast_exact::<PyTuple>() {
        for item in t.iter() {
            total += item_len(&item)?;
        }
    } else {
        for item in items.try_iter()? {
            total += item_len(&item?)?;
        }
    }
    Ok(total)
}

/// Fills `_native.accumulator`.
pub fn build(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RECORD_OVERHEAD", RECORD_OVERHEAD)?;
    m.add_function(wrap_pyfunction!(total_len, m)?)?;
    m.add_class::<ProducerBatch>()?;
    m.add_class::<Appender>()?;
    Ok(())
}
