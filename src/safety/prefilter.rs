//! The prefilter: one `RegexSet` run over the serialized payload, so that a clean
//! publish costs one serialization and one linear scan, and the JSON tree is walked
//! only when some rule or sensitive key may be present.
//!
//! Pattern `i` of the set belongs to rule `i`; the last one covers the sensitive key
//! names. A rule without a prefilter pattern is a candidate on every publish.

use super::rules::Rule;
use crate::error::{ErrorCode, WireError};
use regex::RegexSet;

/// The compiled prefilter.
#[derive(Debug)]
pub(crate) struct Prefilter {
    set: RegexSet,
    /// Index in `set` of each rule's pattern, by rule position; `None` = always run.
    rule_slot: Vec<Option<usize>>,
    /// Index of the key-name pattern, when there are sensitive keys.
    key_slot: Option<usize>,
}

/// What the prefilter found: the rules worth running and whether keys may match.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) rules: Vec<usize>,
    pub(crate) keys: bool,
}

impl Candidates {
    /// True when nothing needs a closer look.
    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.keys
    }
}

impl Prefilter {
    /// Builds the set from the rules' prefilters and the normalized sensitive keys.
    ///
    /// # Errors
    /// `invalid_field` when a keyword list makes an invalid or too large set.
    pub(crate) fn new(rules: &[Rule], keys: &[String]) -> Result<Self, WireError> {
        let mut patterns = Vec::new();
        let mut rule_slot = Vec::with_capacity(rules.len());
        for r in rules {
            rule_slot.push(r.prefilter.as_ref().map(|p| {
                patterns.push(p.clone());
                patterns.len() - 1
            }));
        }
        let key_slot = (!keys.is_empty()).then(|| {
            // A key is matched with optional `-` / `_` between its letters, so that
            // `api_key` also catches `API-Key` and `apiKey` in the serialized text.
            let alts: Vec<String> = keys
                .iter()
                .map(|k| {
                    k.chars()
                        .map(|c| regex::escape(&c.to_string()))
                        .collect::<Vec<_>>()
                        .join("[-_]?")
                })
                .collect();
            patterns.push(format!("(?i)(?:{})", alts.join("|")));
            patterns.len() - 1
        });
        let set = RegexSet::new(&patterns).map_err(|e| {
            WireError::new(ErrorCode::InvalidField, format!("safety prefilter: {e}"))
        })?;
        Ok(Prefilter {
            set,
            rule_slot,
            key_slot,
        })
    }

    /// The rules and keys that may match in `text`, the serialized payload.
    pub(crate) fn scan(&self, text: &str) -> Candidates {
        let hits = self.set.matches(text);
        Candidates {
            rules: self
                .rule_slot
                .iter()
                .enumerate()
                .filter(|(_, slot)| slot.is_none_or(|s| hits.matched(s)))
                .map(|(i, _)| i)
                .collect(),
            keys: self.key_slot.is_some_and(|s| hits.matched(s)),
        }
    }
}
