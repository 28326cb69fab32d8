//! A minute (`minutes/NNNN/`): its id, the proposals on its ballot (`proposals.json`)
//! and its effective rules (the repository's, overlaid by the minute's `rules.json`).
//!
//! `proposals.json` is either an array of entries or `{"minute_id", "proposals": [...]}`;
//! an entry is `{"id" (or "proposal_id"), "title", "category"?, "threshold"?}` where
//! `threshold` is a percent or `{"approve", "revise"}`. Unlike a ballot, a malformed
//! `proposals.json` stops the tally: without it no ballot can be checked.

use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{self, read_bounded};
use super::limits::{MAX_JSON_BYTES, MAX_PROPOSALS};
use super::rules::{Rules, RulesConfig, Threshold};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The ballot's proposal list, inside a minute.
pub const PROPOSALS_FILE: &str = "proposals.json";
/// A minute's own rules, inside a minute.
pub const RULES_FILE: &str = "rules.json";

/// One proposal on a minute's ballot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteProposal {
    /// Its id (`"003"`).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its category, when given.
    pub category: Option<String>,
    /// Its own threshold, when given.
    pub threshold: Option<Threshold>,
}

/// A minute, loaded.
#[derive(Debug, Clone)]
pub struct Minute {
    /// Its directory.
    pub dir: PathBuf,
    /// Its id (the directory's name).
    pub id: String,
    /// The proposals on its ballot, in `proposals.json` order.
    pub proposals: Vec<MinuteProposal>,
    /// Its effective rules.
    pub rules: Rules,
}

impl Minute {
    /// The ids of its proposals.
    pub fn proposal_ids(&self) -> Vec<String> {
        self.proposals.iter().map(|p| p.id.clone()).collect()
    }
}

fn invalid(field: impl Into<String>, code: ProblemCode, reason: impl Into<String>) -> GovError {
    GovError::Invalid(Problem::new(PROPOSALS_FILE, field, code, reason))
}

fn read_json(dir: &Path, name: &str) -> Result<Option<Value>, GovError> {
    let path = dir.join(name);
    match read_bounded(&path, MAX_JSON_BYTES) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            GovError::Invalid(Problem::new(
                name,
                "",
                ProblemCode::InvalidJson,
                format!("not valid JSON: {e}"),
            ))
        }),
        Err(fsio::ReadError::Missing) => Ok(None),
        Err(e) => Err(GovError::Invalid(e.problem(name))),
    }
}

/// Loads the minute at `dir` with `base` rules (the repository's).
///
/// # Errors
/// `not_found` without `proposals.json`; `invalid_file` naming the field for a
/// malformed `proposals.json` or `rules.json`.
pub fn load_minute(dir: &Path, base: &Rules) -> Result<Minute, GovError> {
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(value) = read_json(dir, PROPOSALS_FILE)? else {
        return Err(GovError::NotFound {
            what: "proposals.json of the minute",
            path: dir.join(PROPOSALS_FILE),
        });
    };
    let entries = match &value {
        Value::Array(a) => a,
        Value::Object(o) => {
            if let Some(m) = o.get("minute_id") {
                if m.as_str() != Some(id.as_str()) {
                    return Err(invalid(
                        "minute_id",
                        ProblemCode::WrongMinute,
                        format!("says minute {m}, the directory is {id:?}"),
                    ));
                }
            }
            match o.get("proposals") {
                Some(Value::Array(a)) => a,
                _ => {
                    return Err(invalid(
                        "proposals",
                        ProblemCode::MissingField,
                        "`proposals` must be an array",
                    ))
                }
            }
        }
        _ => {
            return Err(invalid(
                "",
                ProblemCode::WrongType,
                "an array of proposals, or an object with `proposals`",
            ))
        }
    };
    if entries.len() > MAX_PROPOSALS {
        return Err(invalid(
            "proposals",
            ProblemCode::TooLarge,
            format!(
                "{} proposals, over the limit of {MAX_PROPOSALS}",
                entries.len()
            ),
        ));
    }
    let mut proposals = Vec::with_capacity(entries.len());
    let mut seen = BTreeSet::new();
    for (i, e) in entries.iter().enumerate() {
        let f = |name: &str| format!("proposals[{i}].{name}");
        let Some(o) = e.as_object() else {
            return Err(invalid(
                format!("proposals[{i}]"),
                ProblemCode::WrongType,
                "each proposal is an object",
            ));
        };
        let Some(pid) = o
            .get("id")
            .or_else(|| o.get("proposal_id"))
            .and_then(Value::as_str)
        else {
            return Err(invalid(
                f("id"),
                ProblemCode::MissingField,
                "`id` (a string such as \"003\") is missing",
            ));
        };
        if !seen.insert(pid.to_owned()) {
            return Err(invalid(
                f("id"),
                ProblemCode::DuplicateProposal,
                format!("proposal {pid:?} is listed twice"),
            ));
        }
        let threshold = match o.get("threshold") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(Threshold {
                approve: Some(n.as_u64().filter(|v| *v <= 100).ok_or_else(|| {
                    invalid(
                        f("threshold"),
                        ProblemCode::WrongType,
                        "a percent in 0..=100",
                    )
                })? as u32),
                revise: None,
            }),
            Some(v @ Value::Object(_)) => Some(
                serde_json::from_value(v.clone())
                    .map_err(|e| invalid(f("threshold"), ProblemCode::WrongType, e.to_string()))?,
            ),
            Some(_) => {
                return Err(invalid(
                    f("threshold"),
                    ProblemCode::WrongType,
                    "a percent or {\"approve\", \"revise\"}",
                ))
            }
        };
        proposals.push(MinuteProposal {
            id: pid.to_owned(),
            title: o
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            category: o.get("category").and_then(Value::as_str).map(str::to_owned),
            threshold,
        });
    }
    let rules = match read_json(dir, RULES_FILE)? {
        None => base.clone(),
        Some(v) => {
            let cfg: RulesConfig = serde_json::from_value(v).map_err(|e| {
                GovError::Invalid(Problem::new(
                    RULES_FILE,
                    "",
                    ProblemCode::WrongType,
                    e.to_string(),
                ))
            })?;
            base.overlay(&cfg, RULES_FILE)?
        }
    };
    Ok(Minute {
        dir: dir.to_owned(),
        id,
        proposals,
        rules,
    })
}
