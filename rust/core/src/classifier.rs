//! Error classifier: maps an error message or a Kafka error code to an error category.
//!
//! Messages are matched against one table of case-insensitive (ASCII) substrings in a
//! single aho-corasick pass. The table is in priority order; the automaton reports
//! leftmost-first, non-overlapping matches (the same matches a backtracking regex
//! alternation of the same literals finds), and the answer is the category of the
//! highest-priority pattern among them, so "Connection timed out" is a timeout even
//! though "connection" starts first. The pure-Python twin
//! (`streamcore._reference.classifier`) uses the same table in one compiled regex and
//! must give identical answers.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

/// Categories, numbered as `streamcore.retry.ErrorCategory`.
pub const TOPIC_MISSING: u8 = 0;
pub const NETWORK: u8 = 1;
pub const TIMEOUT: u8 = 2;
pub const AUTHORIZATION: u8 = 3;
pub const BACKPRESSURE: u8 = 4;
pub const RETRIABLE_BROKER: u8 = 5;
pub const FATAL: u8 = 6;
pub const UNKNOWN: u8 = 7;

/// Number of categories (the values above are `0..CATEGORY_COUNT`).
pub const CATEGORY_COUNT: usize = 8;

/// The pattern table, highest priority first. Lowercase ASCII; matched ignoring ASCII
/// case; no pattern is a prefix of another (so at most one matches at any position,
/// which lets the Python twin use a trie-shaped regex). Keep in step with `python/streamcore/_reference/classifier.py`.
///
/// Why this order: a message naming authorization or a missing topic says what to fix
/// even when it also says "timed out" (Java's "Topic t not present in metadata after
/// 60000 ms" is a TimeoutException about a topic that does not exist); backpressure
/// (a full buffer) is often reported as a timeout too; explicit fatal and retriable
/// broker answers beat the generic timeout and network words.
pub const PATTERNS: &[(&str, u8)] = &[
    // authorization / authentication
    ("authoriz", AUTHORIZATION),
    ("authenticat", AUTHORIZATION),
    ("sasl", AUTHORIZATION),
    ("access denied", AUTHORIZATION),
    // topic missing
    ("unknown topic", TOPIC_MISSING),
    ("unknowntopic", TOPIC_MISSING),
    ("unknown_topic", TOPIC_MISSING),
    ("not present in metadata", TOPIC_MISSING),
    ("does not host this topic", TOPIC_MISSING),
    ("topic not found", TOPIC_MISSING),
    ("topic does not exist", TOPIC_MISSING),
    // backpressure
    ("throttl", BACKPRESSURE),
    ("quota exceeded", BACKPRESSURE),
    ("queue full", BACKPRESSURE),
    ("queue is full", BACKPRESSURE),
    ("backpressure", BACKPRESSURE),
    ("bufferexhausted", BACKPRESSURE),
    ("buffer exhausted", BACKPRESSURE),
    ("failed to allocate", BACKPRESSURE),
    // fatal: retrying the same request cannot succeed
    ("message size too large", FATAL),
    ("messagesizetoolarge", FATAL),
    ("message too large", FATAL),
    ("record too large", FATAL),
    ("recordtoolarge", FATAL),
    ("invalid topic", FATAL),
    ("invalidtopic", FATAL),
    ("topic already exists", FATAL),
    ("topicalreadyexists", FATAL),
    ("unsupported version", FATAL),
    ("unsupportedversion", FATAL),
    ("producer fenced", FATAL),
    ("producerfenced", FATAL),
    ("invalid producer epoch", FATAL),
    ("invalidproducerepoch", FATAL),
    ("with an old epoch", FATAL),
    ("invalid session timeout", FATAL),
    ("invalidsessiontimeout", FATAL),
    ("invalid transaction timeout", FATAL),
    ("invalidtransactiontimeout", FATAL),
    ("invalid required acks", FATAL),
    ("invalidrequiredacks", FATAL),
    ("invalid replication factor", FATAL),
    ("invalidreplicationfactor", FATAL),
    ("invalid config", FATAL),
    ("invalidconfig", FATAL),
    ("policy violation", FATAL),
    ("policyviolation", FATAL),
    ("serializ", FATAL),
    ("fatal error", FATAL),
    // retriable broker answers
    ("not leader", RETRIABLE_BROKER),
    ("notleader", RETRIABLE_BROKER),
    ("leader not available", RETRIABLE_BROKER),
    ("leadernotavailable", RETRIABLE_BROKER),
    ("no leader", RETRIABLE_BROKER),
    ("not enough replicas", RETRIABLE_BROKER),
    ("notenoughreplicas", RETRIABLE_BROKER),
    ("not enough in-sync replicas", RETRIABLE_BROKER),
    ("fewer in-sync replicas", RETRIABLE_BROKER),
    ("coordinator not available", RETRIABLE_BROKER),
    ("coordinatornotavailable", RETRIABLE_BROKER),
    ("coordinator load in progress", RETRIABLE_BROKER),
    ("coordinatorloadinprogress", RETRIABLE_BROKER),
    ("not coordinator", RETRIABLE_BROKER),
    ("notcoordinator", RETRIABLE_BROKER),
    ("not controller", RETRIABLE_BROKER),
    ("notcontroller", RETRIABLE_BROKER),
    ("kafkastorage", RETRIABLE_BROKER),
    ("kafka_storage", RETRIABLE_BROKER),
    ("disk error", RETRIABLE_BROKER),
    ("leader epoch", RETRIABLE_BROKER),
    ("leaderepoch", RETRIABLE_BROKER),
    // timeout
    ("timed out", TIMEOUT),
    ("timedout", TIMEOUT),
    ("timeout", TIMEOUT),
    ("time out", TIMEOUT),
    ("has passed since batch creation", TIMEOUT),
    ("deadline exceeded", TIMEOUT),
    // network
    ("nobrokersavailable", NETWORK),
    ("no brokers available", NETWORK),
    ("broker not available", NETWORK),
    ("brokernotavailable", NETWORK),
    ("broker may not be available", NETWORK),
    ("connection", NETWORK),
    ("connect to", NETWORK),
    ("network", NETWORK),
    ("disconnect", NETWORK),
    ("transport failure", NETWORK),
    ("resolution failure", NETWORK),
    ("failed to resolve", NETWORK),
    ("name or service not known", NETWORK),
    ("no route to host", NETWORK),
    ("broken pipe", NETWORK),
    ("socket", NETWORK),
];

/// The automaton over [`PATTERNS`] and, per pattern, (priority rank, category).
pub struct Classifier {
    automaton: AhoCorasick,
}

impl Classifier {
    /// Builds the automaton over [`PATTERNS`].
    pub fn new() -> Self {
        // A full DFA: the table is small (a few thousand states), and messages are
        // classified far more often than the automaton is built.
        let automaton = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .kind(Some(AhoCorasickKind::DFA))
            .build(PATTERNS.iter().map(|(p, _)| p))
            // The table is a constant of valid literals; a failure here is a bug in
            // this file, caught by the unit tests, never by user input.
            .expect("classifier pattern table is valid");
        Classifier { automaton }
    }

    /// Category of `message`: that of the highest-priority pattern among the
    /// leftmost-first matches, or [`UNKNOWN`] when nothing matches.
    pub fn classify(&self, message: &str) -> u8 {
        // Pattern ids are priority ranks: a lower id wins.
        let mut best = usize::MAX;
        for m in self.automaton.find_iter(message) {
            let id = m.pattern().as_usize();
            if id < best {
                best = id;
                if PATTERNS[id].1 == AUTHORIZATION {
                    // Nothing outranks the first category in the table.
                    break;
                }
            }
        }
        if best == usize::MAX {
            UNKNOWN
        } else {
            PATTERNS[best].1
        }
    }
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide classifier (built on first use).
pub fn classifier() -> &'static Classifier {
    static CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
    CLASSIFIER.get_or_init(Classifier::new)
}

/// Category of one message (see [`Classifier::classify`]).
pub fn classify(message: &str) -> u8 {
    classifier().classify(message)
}

/// Kafka error codes the protocol marks retriable (as in `streamcore.errors.ErrorCode`).
const RETRIABLE_CODES: &[i32] = &[
    2, 3, 5, 6, 7, 9, 13, 14, 15, 16, 19, 20, 41, 51, 56, 70, 71, 72, 74, 75, 78, 80, 83, 84, 88,
    89, 100, 103, 106, 122, 123,
];

/// Highest Kafka error code in `streamcore.errors.ErrorCode`.
pub const MAX_KNOWN_CODE: i32 = 127;

/// Category of a Kafka protocol error code.
///
/// UNKNOWN_TOPIC_OR_PARTITION (3) and UNKNOWN_TOPIC_ID (100) are a missing topic;
/// NETWORK_EXCEPTION (13) network; REQUEST_TIMED_OUT (7) timeout; the authorization
/// and SASL codes authorization; THROTTLING_QUOTA_EXCEEDED (89) backpressure; any other
/// retriable code a retriable broker answer and any other known code fatal. NO_ERROR (0),
/// UNKNOWN_SERVER_ERROR (-1) and codes outside the table are unknown.
pub fn classify_code(code: i64) -> u8 {
    match code {
        3 | 100 => TOPIC_MISSING,
        13 => NETWORK,
        7 => TIMEOUT,
        // TOPIC/GROUP/CLUSTER/TRANSACTIONAL_ID/DELEGATION_TOKEN authorization failed,
        // SASL authentication failed, unsupported SASL mechanism, illegal SASL state.
        29 | 30 | 31 | 53 | 65 | 58 | 33 | 34 => AUTHORIZATION,
        89 => BACKPRESSURE,
        c if c <= 0 || c > MAX_KNOWN_CODE as i64 => UNKNOWN,
        c if RETRIABLE_CODES.contains(&(c as i32)) => RETRIABLE_BROKER,
        _ => FATAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table_is_lowercase_ascii_unique_and_prefix_free() {
        let mut seen = std::collections::HashSet::new();
        for (p, _) in PATTERNS {
            assert!(p.is_ascii() && p.to_ascii_lowercase() == *p, "{p}");
            assert!(seen.insert(*p), "duplicate pattern {p}");
        }
        // At most one pattern can match at any position, so the Python twin's regex
        // (alternatives in any order) finds exactly the automaton's matches.
        for (a, _) in PATTERNS {
            for (b, _) in PATTERNS {
                assert!(a == b || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
    }

    #[test]
    fn client_messages_fall_in_their_category() {
        let cases: &[(&str, u8)] = &[
            ("Broker: Unknown topic or partition", TOPIC_MISSING),
            ("Local: Timed out", TIMEOUT),
            (
                "Connect to ipv4#127.0.0.1:9 failed: Connection refused",
                NETWORK,
            ),
            ("Connect to ipv4#10.0.0.1:9092 failed: Connection timed out", TIMEOUT),
            ("Broker: Topic authorization failed", AUTHORIZATION),
            ("Local: Queue full", BACKPRESSURE),
            ("Broker: Not leader for partition", RETRIABLE_BROKER),
            ("Broker: Message size too large", FATAL),
            ("Local: Operation in progress", UNKNOWN),
            (
                "org.apache.kafka.common.errors.TimeoutException: Topic t not present in metadata after 60000 ms.",
                TOPIC_MISSING,
            ),
            ("", UNKNOWN),
        ];
        for (msg, want) in cases {
            assert_eq!(classify(msg), *want, "{msg}");
        }
    }

    #[test]
    fn matching_ignores_ascii_case_only() {
        assert_eq!(classify("LOCAL: TIMED OUT"), TIMEOUT);
        // U+212A KELVIN SIGN is not an ASCII 'k'.
        assert_eq!(classify("\u{212a}afka timeout"), TIMEOUT);
        assert_eq!(classify("unknown topic \u{212a}"), TOPIC_MISSING);
    }

    #[test]
    fn codes_map_as_documented() {
        assert_eq!(classify_code(3), TOPIC_MISSING);
        assert_eq!(classify_code(100), TOPIC_MISSING);
        assert_eq!(classify_code(13), NETWORK);
        assert_eq!(classify_code(7), TIMEOUT);
        assert_eq!(classify_code(29), AUTHORIZATION);
        assert_eq!(classify_code(58), AUTHORIZATION);
        assert_eq!(classify_code(89), BACKPRESSURE);
        assert_eq!(classify_code(6), RETRIABLE_BROKER);
        assert_eq!(classify_code(10), FATAL);
        assert_eq!(classify_code(0), UNKNOWN);
        assert_eq!(classify_code(-1), UNKNOWN);
        assert_eq!(classify_code(128), UNKNOWN);
    }
}
