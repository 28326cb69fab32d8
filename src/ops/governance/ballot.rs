//! One ballot: `{"minute_id", "model", "timestamp", "weights": [{"proposal_id",
//! "weight", "veto"?}]}`, parsed and validated against its minute.
//!
//! A valid ballot is for this minute, names its voter (`model`), and weights every
//! proposal of `proposals.json` exactly once with an integer in 1..=10; a `veto` is an
//! optional reason (the veto itself is a general's low weight, see `rules`). Fields a
//! model adds (`reasoning`, `comments`) are allowed and ignored. Every defect is
//! reported with its field; a ballot with any defect is refused whole, since counting
//! part of a ballot would change what its voter said.

use super::error::{Problem, ProblemCode};
use super::limits::MAX_TEXT_CHARS;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// The lowest and highest weight a ballot may give.
pub const WEIGHT_RANGE: std::ops::RangeInclusive<u64> = 1..=10;

/// One weight of a ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Weight {
    /// The proposal.
    pub proposal_id: String,
    /// 1..=10.
    pub weight: u8,
    /// The voter's veto reason, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub veto: Option<String>,
}

/// A validated ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ballot {
    /// The file, relative to the minute (`votes/ada.json`).
    pub file: String,
    /// The minute it was cast for.
    pub minute_id: String,
    /// The voter.
    pub model: String,
    /// When it was cast, as written.
    pub timestamp: String,
    /// One weight per proposal of the minute, in the ballot's order.
    pub weights: Vec<Weight>,
}

impl Ballot {
    /// The weight given to `proposal_id`.
    pub fn weight_of(&self, proposal_id: &str) -> Option<&Weight> {
        self.weights.iter().find(|w| w.proposal_id == proposal_id)
    }
}

/// Parses and validates ballot bytes read from `file`. `minute_id` and `proposals` (the
/// ids of `proposals.json`) are what it must match.
///
/// # Errors
/// Every problem found, the first being the one a tally reports first.
pub fn parse_ballot(
    file: &str,
    bytes: &[u8],
    minute_id: &str,
    proposals: &[String],
) -> Result<Ballot, Vec<Problem>> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        vec![Problem::new(
            file,
            "",
            ProblemCode::InvalidJson,
            format!("not valid JSON: {e}"),
        )]
    })?;
    validate_ballot(file, &value, minute_id, proposals)
}

/// Validates a ballot already parsed as JSON (a `vote_bip` result is one).
///
/// # Errors
/// Every problem found.
pub fn validate_ballot(
    file: &str,
    value: &Value,
    minute_id: &str,
    proposals: &[String],
) -> Result<Ballot, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut p = |field: &str, code: ProblemCode, reason: String| {
        problems.push(Problem::new(file, field, code, reason));
    };
    let Some(obj) = value.as_object() else {
        p(
            "",
            ProblemCode::WrongType,
            "a ballot is a JSON object".into(),
        );
        return Err(problems);
    };
    let text = |field: &str, p: &mut dyn FnMut(&str, ProblemCode, String)| -> Option<String> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                p(
                    field,
                    ProblemCode::MissingField,
                    format!("`{field}` is missing"),
                );
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                p(field, ProblemCode::WrongType, format!("`{field}` is empty"));
                None
            }
            Some(Value::String(s)) if s.chars().count() > MAX_TEXT_CHARS => {
                p(
                    field,
                    ProblemCode::TooLarge,
                    format!("`{field}` is over {MAX_TEXT_CHARS} characters"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                p(
                    field,
                    ProblemCode::WrongType,
                    format!("`{field}` must be a string, not {}", kind(other)),
                );
                None
            }
        }
    };
    let minute = text("minute_id", &mut p);
    if let Some(m) = &minute {
        if m != minute_id {
            p(
                "minute_id",
                ProblemCode::WrongMinute,
                format!("cast for minute {m:?}, this is minute {minute_id:?}"),
            );
        }
    }
    let model = text("model", &mut p);
    let timestamp = text("timestamp", &mut p);
    let mut weights = Vec::new();
    match obj.get("weights") {
        None | Some(Value::Null) => p(
            "weights",
            ProblemCode::MissingField,
            "`weights` is missing".into(),
        ),
        Some(Value::Array(items)) => {
            let wanted: BTreeSet<&str> = proposals.iter().map(String::as_str).collect();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let at = |f: &str| format!("weights[{i}].{f}");
                let Some(o) = item.as_object() else {
                    p(
                        &format!("weights[{i}]"),
                        ProblemCode::WrongType,
                        "each weight is an object".into(),
                    );
                    continue;
                };
                let id = match o.get("proposal_id") {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => {
                        p(
                            &at("proposal_id"),
                            ProblemCode::MissingField,
                            "`proposal_id` is missing".into(),
                        );
                        continue;
                    }
                    Some(other) => {
                        p(
                            &at("proposal_id"),
                            ProblemCode::WrongType,
                            format!(
                                "`proposal_id` must be a string such as \"003\", not {}",
                                kind(other)
                            ),
                        );
                        continue;
                    }
                };
                if !wanted.contains(id.as_str()) {
                    p(
                        &at("proposal_id"),
                        ProblemCode::UnknownProposal,
                        format!("proposal {id:?} is not on this minute's ballot"),
                    );
                    continue;
                }
                if !seen.insert(id.clone()) {
                    p(
                        &at("proposal_id"),
                        ProblemCode::DuplicateProposal,
                        format!("proposal {id:?} is weighted twice"),
                    );
                    continue;
                }
                let weight = match o.get("weight") {
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(w) if WEIGHT_RANGE.contains(&w) => w as u8,
                        _ => {
                            p(
                                &at("weight"),
                                ProblemCode::WeightOutOfRange,
                                format!(
                                    "weight {n} of proposal {id:?} is not an integer in 1..=10"
                                ),
                            );
                            continue;
                        }
                    },
                    None | Some(Value::Null) => {
                        p(
                            &at("weight"),
                            ProblemCode::MissingField,
                            format!("proposal {id:?} has no `weight`"),
                        );
                        continue;
                    }
                    Some(other) => {
                        p(
                            &at("weight"),
                            ProblemCode::WrongType,
                            format!(
                                "weight of proposal {id:?} must be an integer, not {}",
                                kind(other)
                            ),
                        );
                        continue;
                    }
                };
                let veto = match o.get("veto") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.chars().count() <= MAX_TEXT_CHARS => {
                        Some(s.clone())
                    }
                    Some(Value::String(_)) => {
                        p(
                            &at("veto"),
                            ProblemCode::TooLarge,
                            format!("veto reason over {MAX_TEXT_CHARS} characters"),
                        );
                        continue;
                    }
                    Some(other) => {
                        p(
                            &at("veto"),
                            ProblemCode::WrongType,
                            format!("`veto` is a reason (string), not {}", kind(other)),
                        );
                        continue;
                    }
                };
                weights.push(Weight {
                    proposal_id: id,
                    weight,
                    veto,
                });
            }
            for id in proposals {
                if !seen.contains(id.as_str())
                    && !items
                        .iter()
                        .any(|i| i.get("proposal_id").and_then(Value::as_str) == Some(id))
                {
                    p(
                        "weights",
                        ProblemCode::MissingProposal,
                        format!("proposal {id:?} is not weighted"),
                    );
                }
            }
        }
        Some(other) => p(
            "weights",
            ProblemCode::WrongType,
            format!("`weights` must be an array, not {}", kind(other)),
        ),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // All three are Some when no problem was recorded.
    match (minute, model, timestamp) {
        (Some(minute_id), Some(model), Some(timestamp)) => Ok(Ballot {
            file: file.to_owned(),
            minute_id,
            model,
            timestamp,
            weights,
        }),
        _ => Err(vec![Problem::new(
            file,
            "",
            ProblemCode::MissingField,
            "incomplete ballot",
        )]),
    }
}

/// The JSON type of `v`, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
