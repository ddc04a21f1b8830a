//! The query language: a small subset of Lucene's, parsed here and by the twin's
//! `_reference/search/query.py` with the same rules.
//!
//! ```text
//! query   := or
//! or      := and ("OR" and)*
//! and     := unary (["AND"] unary)*          adjacent clauses are ANDed
//! unary   := "NOT" unary | primary
//! primary := "(" or ")" | [field ":"] (word | "\"phrase\"" | "[" lo "TO" hi "]")
//! ```
//!
//! Whitespace is ASCII space, tab, CR, LF, VT and FF. A word runs to the next
//! whitespace or one of `()[]"`; a word containing `:` is `field:value` (split at
//! the first `:`), and `field:` alone takes the phrase or range after it. `AND`,
//! `OR` and `NOT` are operators only in capitals and as whole words. Inside a
//! phrase `\` escapes the next character. A range's bounds are numbers or `*`
//! (open) and are inclusive. An empty query matches every document.
use std::fmt;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Every document.
    All,
    /// Text (a word or a phrase) in a field, or in any text when `field` is None.
    /// `number` is the word read as a number when it has the form of one (then a
    /// numeric leaf equal to it also matches).
    Text {
        field: Option<String>,
        text: String,
        number: Option<f64>,
    },
    /// A numeric leaf of `field` within the inclusive bounds (None: open).
    Range {
        field: String,
        lo: Option<f64>,
        hi: Option<f64>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// A query that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError(pub String);

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid search query: {}", self.0)
    }
}

impl std::error::Error for QueryError {}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A word, already split at its first `:` when it has one.
    Word(Option<String>, String),
    Phrase(String),
    Range(Option<f64>, Option<f64>),
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_special(c: char) -> bool {
    matches!(c, '(' | ')' | '[' | ']' | '"')
}

/// `s` as a number when it has the form `-?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)?`
/// and a finite value.
pub fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if i < b.len() && b[i] == b'-' {
        i += 1;
    }
    if !digits(&mut i) {
        return None;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn bound(s: &str) -> Result<Option<f64>, QueryError> {
    if s == "*" {
        return Ok(None);
    }
    parse_number(s)
        .map(Some)
        .ok_or_else(|| QueryError(format!("range bound {s:?} is not a number or *")))
}

fn lex(query: &str) -> Result<Vec<Tok>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_space(c) {
            i += 1;
        } else if c == '(' {
            out.push(Tok::Open);
            i += 1;
        } else if c == ')' {
            out.push(Tok::Close);
            i += 1;
        } else if c == ']' {
            return Err(QueryError("']' without '['".into()));
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(QueryError("unterminated phrase".into())),
                    Some('"') => break,
                    Some('\\') if i + 1 < chars.len() => {
                        text.push(chars[i + 1]);
                        i += 2;
                    }
                    Some(&ch) => {
                        text.push(ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Tok::Phrase(text));
        } else if c == '[' {
            let end = chars[i..]
                .iter()
                .position(|&ch| ch == ']')
                .ok_or_else(|| QueryError("unterminated range".into()))?;
            let inner: String = chars[i + 1..i + end].iter().collect();
            let parts: Vec<&str> = inner.split(is_space).filter(|p| !p.is_empty()).collect();
            if parts.len() != 3 || parts[1] != "TO" {
                return Err(QueryError(format!(
                    "range [{inner}] is not of the form [lo TO hi]"
                )));
            }
            out.push(Tok::Range(bound(parts[0])?, bound(parts[2])?));
            i += end + 1;
        } else {
            let start = i;
            while i < chars.len() && !is_space(chars[i]) && !is_special(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "AND" => Tok::And,
                "OR" => Tok::Or,
                "NOT" => Tok::Not,
                _ => match word.split_once(':') {
                    Some(("", _)) => {
                        return Err(QueryError(format!("{word:?} has an empty field name")))
                    }
                    Some((field, value)) => Tok::Word(Some(field.to_owned()), value.to_owned()),
                    None => Tok::Word(None, word),
                },
            });
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let mut items = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Node::Or(items)
        })
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut items = vec![self.unary()?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.pos += 1;
                    items.push(self.unary()?);
                }
                None | Some(Tok::Or) | Some(Tok::Close) => break,
                Some(_) => items.push(self.unary()?),
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Node::And(items)
        })
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, QueryError> {
        match self.next() {
            Some(Tok::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err(QueryError("'(' without ')'".into())),
                }
            }
            Some(Tok::Word(field, value)) if value.is_empty() => {
                let Some(field) = field else {
                    unreachable!("a word without ':' is never empty")
                };
                match self.next() {
                    Some(Tok::Phrase(text)) => Ok(Node::Text {
                        field: Some(field),
                        text,
                        number: None,
                    }),
                    Some(Tok::Range(lo, hi)) => Ok(Node::Range { field, lo, hi }),
                    _ => Err(QueryError(format!(
                        "{field}: must be followed by a word, a phrase or a range"
                    ))),
                }
            }
            Some(Tok::Word(field, value)) => {
                // A bare word that looks like a number is still only text: bare
                // terms search text.
                let number = field.as_ref().and_then(|_| parse_number(&value));
                Ok(Node::Text {
                    field,
                    text: value,
                    number,
                })
            }
            Some(Tok::Phrase(text)) => Ok(Node::Text {
                field: None,
                text,
                number: None,
            }),
            Some(Tok::Range(..)) => {
                Err(QueryError("a range needs a field: field:[lo TO hi]".into()))
            }
            Some(Tok::Close) => Err(QueryError("')' without '('".into())),
            Some(t @ (Tok::And | Tok::Or | Tok::Not)) => Err(QueryError(format!(
                "operator {t:?} needs a clause after it"
            ))),
            None => Err(QueryError(
                "the query ends where a clause is expected".into(),
            )),
        }
    }
}

/// Parses `query` (see the module doc).
pub fn parse(query: &str) -> Result<Node, QueryError> {
    let toks = lex(query)?;
    if toks.is_empty() {
        return Ok(Node::All);
    }
    let mut p = Parser { toks, pos: 0 };
    let node = p.or()?;
    match p.peek() {
        None => Ok(node),
        Some(Tok::Close) => Err(QueryError("')' without '('".into())),
        Some(t) => Err(QueryError(format!("unexpected {t:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(field: Option<&str>, t: &str, number: Option<f64>) -> Node {
        Node::Text {
            field: field.map(str::to_owned),
            text: t.to_owned(),
            number,
        }
    }

    #[test]
    fn precedence_and_implicit_and() {
        assert_eq!(
            parse("a b OR NOT c AND level:5").unwrap(),
            Node::Or(vec![
                Node::And(vec![text(None, "a", None), text(None, "b", None)]),
                Node::And(vec![
                    Node::Not(Box::new(text(None, "c", None))),
                    text(Some("level"), "5", Some(5.0)),
                ]),
            ])
        );
        assert_eq!(parse("  ").unwrap(), Node::All);
    }

    #[test]
    fn phrases_ranges_and_groups() {
        assert_eq!(
            parse(r#"msg:"a \"b" (x OR y) n:[1.5 TO *]"#).unwrap(),
            Node::And(vec![
                text(Some("msg"), "a \"b", None),
                Node::Or(vec![text(None, "x", None), text(None, "y", None)]),
                Node::Range {
                    field: "n".into(),
                    lo: Some(1.5),
                    hi: None
                },
            ])
        );
    }

    #[test]
    fn errors() {
        for bad in [
            "(a",
            "a)",
            "\"a",
            "n:[1 TO",
            "n:[a TO 2]",
            "[1 TO 2]",
            "AND",
            "a OR",
            ":x",
            "f:",
            "n:[1 2]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse_number("1e999"), None);
        assert_eq!(parse_number("-0.5e2"), Some(-50.0));
        assert_eq!(parse_number("1."), None);
    }
}
