//! What a record's value becomes in the index, and how text is cut into terms.
//!
//! The pure-Python twin (`_reference/search/analyze.py`) follows these rules one for
//! one, so the two indexes answer a query with the same offsets:
//!
//! * A value that parses as a JSON object is flattened: nested keys are joined with
//!   `.`, arrays are transparent (their elements keep the array's path), strings and
//!   booleans (as the words `true`/`false`) are text, numbers are `f64`, nulls are
//!   skipped. Every text leaf is also searchable by bare terms.
//! * Any other value (a JSON array, string or number, or not JSON at all) is one
//!   piece of plain text, decoded as UTF-8 with invalid bytes replaced.
//! * Text is cut into maximal runs of alphanumeric characters; runs of 40 bytes or
//!   more (UTF-8, before lowercasing) are dropped; the rest are lowercased one
//!   character at a time.
use serde_json::Value;
use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer};

/// The name the index's text fields register their analyzer under.
pub const ANALYZER: &str = "streamcore";

/// A token of this many UTF-8 bytes or more is dropped (tantivy's filter keeps
/// `len < limit`).
pub const MAX_TOKEN_BYTES: usize = 40;

/// The analyzer of every text field and of the query's words.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(LowerCaser)
        .build()
}

/// The terms of `text`, in order.
pub fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// A value as the index sees it.
#[derive(Debug, Default, PartialEq)]
pub struct Analyzed {
    /// (path, text) of every text leaf of a JSON object, in path order.
    pub fields: Vec<(String, String)>,
    /// (path, number) of every numeric leaf of a JSON object.
    pub numbers: Vec<(String, f64)>,
    /// The value as plain text when it is not a JSON object.
    pub plain: Option<String>,
}

/// Flattens `value` (see the module doc).
pub fn analyze_value(value: &[u8]) -> Analyzed {
    let mut out = Analyzed::default();
    match serde_json::from_slice::<Value>(value) {
        Ok(Value::Object(map)) => {
            for (key, leaf) in map {
                flatten(&key, leaf, &mut out);
            }
        }
        _ => out.plain = Some(String::from_utf8_lossy(value).into_owned()),
    }
    out
}

fn flatten(path: &str, value: Value, out: &mut Analyzed) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out
            .fields
            .push((path.to_owned(), if b { "true" } else { "false" }.to_owned())),
        Value::Number(n) => {
            // serde_json gives every finite JSON number an f64 (big integers round).
            if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                out.numbers.push((path.to_owned(), f));
            }
        }
        Value::String(s) => out.fields.push((path.to_owned(), s)),
        Value::Array(items) => {
            for item in items {
                flatten(path, item, out);
            }
        }
        Value::Object(map) => {
            for (key, leaf) in map {
                flatten(&format!("{path}.{key}"), leaf, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lowercased_alphanumeric_runs() {
        let mut a = analyzer();
        assert_eq!(
            tokens(&mut a, "Payment-FAILED for order_42, Grüße"),
            vec!["payment", "failed", "for", "order", "42", "grüße"]
        );
        let long = "x".repeat(MAX_TOKEN_BYTES);
        assert_eq!(tokens(&mut a, &format!("a {long} b")), vec!["a", "b"]);
    }

    #[test]
    fn objects_flatten_and_other_values_are_text() {
        let a = analyze_value(br#"{"a":{"b":[1,"x",true,null]},"c":2.5}"#);
        assert_eq!(
            a.fields,
            vec![
                ("a.b".to_owned(), "x".to_owned()),
                ("a.b".to_owned(), "true".to_owned())
            ]
        );
        assert_eq!(
            a.numbers,
            vec![("a.b".to_owned(), 1.0), ("c".to_owned(), 2.5)]
        );
        assert_eq!(a.plain, None);
        assert_eq!(analyze_value(b"[1,2]").plain.as_deref(), Some("[1,2]"));
        assert_eq!(
            analyze_value(b"\xffok").plain.as_deref(),
            Some("\u{fffd}ok")
        );
    }
}
