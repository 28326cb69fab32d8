//! A schedule as stored and shown: what it publishes where, when, on whose
//! authority, and what it does about firings missed while the broker was down.
//!
//! Invariants: `next_ms` is the instant of the schedule's next firing (Unix ms);
//! `owner` is the subject that made it and never changes; a one-shot schedule is
//! removed once it fired or was skipped.

use super::spec::{Rule, SpecError, Zone};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What to do with firings missed by more than `grace_ms` (downtime, a suspended
/// machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Drop them; fire next at the rule's next instant after now. The default.
    Skip,
    /// Fire once now, however many were missed; then follow the rule.
    RunOnce,
}

impl Missed {
    /// Parses the wire spelling.
    pub(crate) fn parse(s: &str) -> Option<Missed> {
        match s {
            "skip" => Some(Missed::Skip),
            "run_once" => Some(Missed::RunOnce),
            _ => None,
        }
    }

    /// The wire spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

/// A stored schedule (its row's JSON body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Schedule {
    pub(crate) id: String,
    /// The subject whose authority it publishes with.
    pub(crate) owner: String,
    /// `room:channel`.
    pub(crate) address: String,
    /// What each firing publishes, as the safety layer passed it.
    pub(crate) payload: Value,
    /// The cron rule, or `None` for a one-shot.
    pub(crate) cron: Option<String>,
    /// The zone of the cron rule (canonical spelling).
    pub(crate) tz: Option<String>,
    /// The one-shot's instant.
    pub(crate) at_ms: Option<u64>,
    pub(crate) missed: Missed,
    pub(crate) created_ms: u64,
    /// Creation order, for firings due at the same instant.
    pub(crate) seq: u64,
    pub(crate) next_ms: u64,
    pub(crate) runs: u64,
    pub(crate) skipped: u64,
    pub(crate) failures: u64,
    pub(crate) last_ms: Option<u64>,
    pub(crate) last_error: Option<String>,
}

impl Schedule {
    /// The rule, parsed again from what was stored.
    pub(crate) fn rule(&self) -> Result<Rule, SpecError> {
        match (&self.cron, self.at_ms) {
            (Some(c), _) => Rule::cron(c, Zone::parse(self.tz.as_deref().unwrap_or("UTC"))?),
            (None, Some(at_ms)) => Ok(Rule::Once { at_ms }),
            (None, None) => Err(SpecError {
                field: "cron",
                why: "neither a rule nor an instant".into(),
                limit: None,
            }),
        }
    }

    /// What `list` shows.
    pub(crate) fn view(&self) -> Value {
        json!({
            "id": self.id,
            "owner": self.owner,
            "address": self.address,
            "payload": self.payload,
            "cron": self.cron,
            "tz": self.tz,
            "at_ms": self.at_ms,
            "missed": self.missed.as_str(),
            "created_ms": self.created_ms,
            "next_ms": self.next_ms,
            "runs": self.runs,
            "skipped": self.skipped,
            "failures": self.failures,
            "last_ms": self.last_ms,
            "last_error": self.last_error,
        })
    }
}
