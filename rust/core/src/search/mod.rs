//! Full-text search over one partition's records: a tantivy index in a directory.
//!
//! The index holds what leads back to a record (partition, offset, timestamp) and
//! the terms of its key and value; the records themselves stay in the log, which
//! callers read by offset. What a value becomes is [`analyze`]'s; the query
//! language is [`query`]'s. The pure-Python twin (`_reference/search/`) gives the
//! same answers over its own files; neither reads the other's index.
//!
//! Documents added are visible to searches after [`SearchIndex::commit`]. Adding a
//! document at an offset already in the index replaces it, so replaying records
//! after a crash leaves no duplicates.
pub mod analyze;
pub mod batches;
pub mod query;

use std::fmt;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::TopDocs;
use tantivy::directory::MmapDirectory;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Field, IndexRecordOption, JsonObjectOptions, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, TantivyError, Term,
};

use analyze::{analyze_value, analyzer, tokens, ANALYZER};
use query::{Node, QueryError};

/// Field names of the schema (the query language's `_key` is [`KEY`]).
const OFFSET: &str = "offset";
const PARTITION: &str = "partition";
const TIMESTAMP: &str = "timestamp";
/// The record key's text; queried as `_key:`.
const KEY: &str = "key";
/// Plain-text values and every text leaf of JSON values: what bare terms search.
const BODY: &str = "body";
/// Text leaves of JSON values by path.
const FIELDS: &str = "fields";
/// Numeric leaves of JSON values by path (fast fields, for ranges and equality).
const NUMBERS: &str = "numbers";
/// The query language's name for the record key.
pub const KEY_FIELD: &str = "_key";

/// Smallest writer memory budget tantivy accepts (bytes; its
/// `MEMORY_BUDGET_NUM_BYTES_MIN`, which it does not export).
pub const MIN_WRITER_MEMORY_BYTES: usize = 15_000_000;

/// An error of the search index.
#[derive(Debug)]
pub enum SearchError {
    /// The query does not parse.
    Query(QueryError),
    /// A bad argument (negative offset, empty range ...).
    InvalidArgument(String),
    /// The index files could not be read or written.
    Index(String),
    /// Log batches handed to [`SearchIndex::add_batches`] are malformed.
    Corrupt(String),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchError::Query(e) => e.fmt(f),
            SearchError::InvalidArgument(m) | SearchError::Index(m) | SearchError::Corrupt(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for SearchError {}

impl From<QueryError> for SearchError {
    fn from(e: QueryError) -> Self {
        SearchError::Query(e)
    }
}

fn index_err(what: &str) -> impl FnOnce(TantivyError) -> SearchError + '_ {
    move |e| SearchError::Index(format!("search index: {what}: {e}"))
}

/// One record to index.
#[derive(Debug, Clone)]
pub struct Doc {
    pub partition: u64,
    pub offset: u64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Where a hit is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub partition: u64,
    pub offset: u64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

#[derive(Clone, Copy)]
struct Fields {
    offset: Field,
    partition: Field,
    timestamp: Field,
    key: Field,
    body: Field,
    fields: Field,
    numbers: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = TextOptions::default().set_indexing_options(text_indexing.clone());
    let fields = Fields {
        offset: b.add_u64_field(
            OFFSET,
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        ),
        partition: b.add_u64_field(PARTITION, NumericOptions::default().set_stored()),
        timestamp: b.add_i64_field(TIMESTAMP, NumericOptions::default().set_fast().set_stored()),
        key: b.add_text_field(KEY, text.clone()),
        body: b.add_text_field(BODY, text),
        fields: b.add_json_field(
            FIELDS,
            JsonObjectOptions::default()
                .set_indexing_options(text_indexing)
                .set_expand_dots_enabled(),
        ),
        numbers: b.add_json_field(
            NUMBERS,
            JsonObjectOptions::default()
                .set_fast("raw")
                .set_expand_dots_enabled(),
        ),
    };
    (b.build(), fields)
}

/// One partition's index in a directory (created when empty).
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    writer_memory_bytes: usize,
    /// Opened on the first change, so that a searching-only handle takes no lock.
    writer: Mutex<Option<IndexWriter>>,
    /// Largest offset ever added (deleted documents included): adding above it
    /// needs no replacement.
    max_offset: Mutex<Option<u64>>,
    analyzer: Mutex<TextAnalyzer>,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory and an empty index if needed.
    pub fn open(dir: &Path, writer_memory_bytes: usize) -> Result<SearchIndex, SearchError> {
        if writer_memory_bytes < MIN_WRITER_MEMORY_BYTES {
            return Err(SearchError::InvalidArgument(format!(
                "writer_memory_bytes must be at least {MIN_WRITER_MEMORY_BYTES}, not {writer_memory_bytes}"
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            SearchError::Index(format!(
                "search index: cannot create {}: {e}",
                dir.display()
            ))
        })?;
        let directory = MmapDirectory::open(dir).map_err(|e| {
            SearchError::Index(format!("search index: cannot open {}: {e}", dir.display()))
        })?;
        let (schema, fields) = schema();
        let index = Index::open_or_create(directory, schema).map_err(index_err("open"))?;
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_err("open a reader"))?;
        let this = SearchIndex {
            index,
            reader,
            fields,
            writer_memory_bytes,
            writer: Mutex::new(None),
            max_offset: Mutex::new(None),
            analyzer: Mutex::new(analyzer()),
        };
        *this.max_offset.lock().unwrap() = this.stored_max_offset()?;
        Ok(this)
    }

    fn stored_max_offset(&self) -> Result<Option<u64>, SearchError> {
        let searcher = self.reader.searcher();
        let mut max = None;
        for segment in searcher.segment_readers() {
            if segment.max_doc() == 0 {
                continue;
            }
            let column = segment
                .fast_fields()
                .u64(OFFSET)
                .map_err(index_err("read offsets"))?;
            max = max.max(Some(column.max_value()));
        }
        Ok(max)
    }

    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut IndexWriter) -> Result<T, SearchError>,
    ) -> Result<T, SearchError> {
        let mut guard = self.writer.lock().unwrap();
        if guard.is_none() {
            // One indexing thread: the indexer runs beside the WAL and must not take
            // every core; merges run on tantivy's own small pool.
            let writer = self
                .index
                .writer_with_num_threads(1, self.writer_memory_bytes)
                .map_err(index_err("open the writer"))?;
            *guard = Some(writer);
        }
        f(guard.as_mut().unwrap())
    }

    fn document(&self, doc: &Doc) -> TantivyDocument {
        let f = self.fields;
        let mut d = TantivyDocument::default();
        d.add_u64(f.offset, doc.offset);
        d.add_u64(f.partition, doc.partition);
        d.add_i64(f.timestamp, doc.timestamp);
        if let Some(key) = &doc.key {
            d.add_text(f.key, String::from_utf8_lossy(key));
        }
        if let Some(value) = &doc.value {
            let a = analyze_value(value);
            if let Some(plain) = a.plain {
                d.add_text(f.body, plain);
            }
            // Each leaf is its own value of the field, so a phrase never spans two
            // leaves (tantivy leaves a position gap between values).
            for (path, text) in a.fields {
                d.add_text(f.body, &text);
                d.add_field_value(
                    f.fields,
                    &tantivy::schema::OwnedValue::Object(vec![(
                        path,
                        tantivy::schema::OwnedValue::Str(text),
                    )]),
                );
            }
            for (path, number) in a.numbers {
                d.add_field_value(
                    f.numbers,
                    &tantivy::schema::OwnedValue::Object(vec![(
                        path,
                        tantivy::schema::OwnedValue::F64(number),
                    )]),
                );
            }
        }
        d
    }

    /// Adds `docs`; a document at an offset already indexed replaces it. Visible
    /// to searches after [`commit`](Self::commit).
    pub fn add(&self, docs: &[Doc]) -> Result<(), SearchError> {
        let mut max = self.max_offset.lock().unwrap();
        self.with_writer(|w| {
            for doc in docs {
                if max.is_some_and(|m| doc.offset <= m) {
                    w.delete_term(Term::from_field_u64(self.fields.offset, doc.offset));
                }
                w.add_document(self.document(doc))
                    .map_err(index_err("add a document"))?;
                *max = (*max).max(Some(doc.offset));
            }
            Ok(())
        })
    }

    /// Adds the records in `[low, high)` of the log batches in `data` that a
    /// read_committed consumer sees (see [`batches::documents`]). With `replace`,
    /// first deletes `[low, end)`, so records a compaction removed leave the index.
    /// Returns the documents added and where reading goes on (None: no whole batch).
    pub fn add_batches(
        &self,
        data: &[u8],
        partition: u64,
        low: u64,
        high: u64,
        aborted: &[batches::AbortedSpan],
        replace: bool,
    ) -> Result<(usize, Option<u64>), SearchError> {
        let chunk = batches::documents(data, partition, low, high, aborted)
            .map_err(|e| SearchError::Corrupt(format!("search index: log batches: {e}")))?;
        if replace {
            if let Some(end) = chunk.end {
                self.delete_range(low, end)?;
            }
        }
        if !chunk.docs.is_empty() {
            self.add(&chunk.docs)?;
        }
        Ok((chunk.docs.len(), chunk.end))
    }

    /// Deletes the documents whose offsets are in `[start, end)`; visible after
    /// [`commit`](Self::commit).
    pub fn delete_range(&self, start: u64, end: u64) -> Result<(), SearchError> {
        if start >= end {
            return Ok(());
        }
        let q = RangeQuery::new(
            Bound::Included(Term::from_field_u64(self.fields.offset, start)),
            Bound::Excluded(Term::from_field_u64(self.fields.offset, end)),
        );
        self.with_writer(|w| {
            w.delete_query(Box::new(q))
                .map_err(index_err("delete a range"))?;
            Ok(())
        })
    }

    /// Makes every change so far durable and visible to searches.
    pub fn commit(&self) -> Result<(), SearchError> {
        let mut guard = self.writer.lock().unwrap();
        if let Some(w) = guard.as_mut() {
            w.commit().map_err(index_err("commit"))?;
        }
        drop(guard);
        self.reader.reload().map_err(index_err("reload"))
    }

    /// Documents in the committed index.
    pub fn doc_count(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The largest offset ever added (deleted documents included), or None.
    pub fn max_offset(&self) -> Option<u64> {
        *self.max_offset.lock().unwrap()
    }

    /// The hits of `query` with a timestamp at or after `since_ms`, in offset
    /// order, at most `limit` (the lowest offsets).
    pub fn search(
        &self,
        query: &str,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Hit>, SearchError> {
        let node = query::parse(query)?;
        let mut q = {
            let mut analyzer = self.analyzer.lock().unwrap();
            self.compile(&node, &mut analyzer)
        };
        if let Some(since) = since_ms {
            let since_q: Box<dyn Query> = Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_i64(self.fields.timestamp, since)),
                Bound::Unbounded,
            ));
            q = Box::new(BooleanQuery::new(vec![
                (Occur::Must, q),
                (Occur::Must, since_q),
            ]));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let top = searcher
            .search(
                &q,
                &TopDocs::with_limit(limit).order_by_fast_field::<u64>(OFFSET, Order::Asc),
            )
            .map_err(index_err("search"))?;
        let mut hits = Vec::with_capacity(top.len());
        for (_, address) in top {
            let doc: TantivyDocument = searcher.doc(address).map_err(index_err("read a hit"))?;
            let u = |field| doc.get_first(field).and_then(|v| v.as_u64());
            let (Some(offset), Some(partition), Some(timestamp)) = (
                u(self.fields.offset),
                u(self.fields.partition),
                doc.get_first(self.fields.timestamp)
                    .and_then(|v| v.as_i64()),
            ) else {
                return Err(SearchError::Index(
                    "search index: a hit lacks its stored fields".into(),
                ));
            };
            hits.push(Hit {
                partition,
                offset,
                timestamp,
            });
        }
        Ok(hits)
    }

    fn text_query(&self, field: Field, path: Option<&str>, words: Vec<String>) -> Box<dyn Query> {
        let term = |word: &str| {
            let mut t = match path {
                Some(p) => Term::from_field_json_path(field, p, true),
                None => return Term::from_field_text(field, word),
            };
            t.append_type_and_str(word);
            t
        };
        match words.len() {
            0 => Box::new(EmptyQuery),
            1 => Box::new(TermQuery::new(term(&words[0]), IndexRecordOption::Basic)),
            _ => Box::new(PhraseQuery::new(words.iter().map(|w| term(w)).collect())),
        }
    }

    fn number_range(&self, path: &str, lo: Option<f64>, hi: Option<f64>) -> Box<dyn Query> {
        let term = |v: f64| {
            let mut t = Term::from_field_json_path(self.fields.numbers, path, true);
            t.append_type_and_fast_value(v);
            t
        };
        let b = |v: Option<f64>| v.map_or(Bound::Unbounded, |v| Bound::Included(term(v)));
        if lo.is_none() && hi.is_none() {
            // "Has a number here": the widest finite range.
            return self.number_range(path, Some(f64::MIN), Some(f64::MAX));
        }
        Box::new(RangeQuery::new(b(lo), b(hi)))
    }

    fn compile(&self, node: &Node, analyzer: &mut TextAnalyzer) -> Box<dyn Query> {
        let f = self.fields;
        match node {
            Node::All => Box::new(AllQuery),
            Node::Text {
                field,
                text,
                number,
            } => {
                let words = tokens(analyzer, text);
                let text_q = match field.as_deref() {
                    None => self.text_query(f.body, None, words),
                    Some(KEY_FIELD) => self.text_query(f.key, None, words),
                    Some(path) => self.text_query(f.fields, Some(path), words),
                };
                match (field.as_deref(), number) {
                    (Some(path), Some(n)) if path != KEY_FIELD => {
                        Box::new(BooleanQuery::new(vec![
                            (Occur::Should, text_q),
                            (Occur::Should, self.number_range(path, Some(*n), Some(*n))),
                        ]))
                    }
                    _ => text_q,
                }
            }
            Node::Range { field, lo, hi } => {
                if field == KEY_FIELD {
                    return Box::new(EmptyQuery);
                }
                self.number_range(field, *lo, *hi)
            }
            Node::And(items) => Box::new(BooleanQuery::new(
                items
                    .iter()
                    .map(|n| (Occur::Must, self.compile(n, analyzer)))
                    .collect(),
            )),
            Node::Or(items) => Box::new(BooleanQuery::new(
                items
                    .iter()
                    .map(|n| (Occur::Should, self.compile(n, analyzer)))
                    .collect(),
            )),
            Node::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, self.compile(inner, analyzer)),
            ])),
        }
    }

    /// Drops the writer (and its lock on the directory); later changes reopen it.
    /// Uncommitted changes are lost.
    pub fn close(&self) {
        let writer = self.writer.lock().unwrap().take();
        if let Some(w) = writer {
            // Waits for merges in flight, so that no thread writes into the
            // directory after close returns.
            let _ = w.wait_merging_threads();
        }
    }
}

impl Drop for SearchIndex {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests;
