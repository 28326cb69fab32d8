//! The rules a tally decides by: thresholds (per repository, per minute, per proposal
//! category and per proposal) and the generals' veto.
//!
//! A proposal's score is the sum of its weights over `10 x voters`. At or above the
//! approval threshold (default 60 %) it is approved, at or above the revision threshold
//! (default 40 %) it is held for revision, below it is rejected. A proposal or category
//! can carry its own thresholds (a constitutional change at 70 %, say). Whatever the
//! score, a proposal that at least `veto_share` % (default 50) of the designated
//! generals weighted at most `veto_max_weight` (default 2) is rejected.
//!
//! Invariant: every comparison is done in integers (`total x 100 >= approve x 10 x
//! voters`), so 60 % is 60 %, never 59.999... of a float.

use super::error::{GovError, Problem, ProblemCode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a tally decides for one proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// At or above the approval threshold and not vetoed.
    Approved,
    /// Between the revision and the approval threshold: held for revision.
    Revision,
    /// Below the revision threshold, vetoed, or no ballot counted.
    Rejected,
}

impl Decision {
    /// The snake_case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approved => "approved",
            Decision::Revision => "revision",
            Decision::Rejected => "rejected",
        }
    }
}

/// A threshold override as written: either field may be absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// Percent at or above which a proposal is approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approve: Option<u32>,
    /// Percent at or above which a proposal is held for revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revise: Option<u32>,
}

/// The `rules` object of `governance.json` or a minute's `rules.json`, as written.
/// Every field is optional; a minute's rules overlay the repository's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Default approval threshold, percent.
    #[serde(default)]
    pub approve: Option<u32>,
    /// Default revision threshold, percent.
    #[serde(default)]
    pub revise: Option<u32>,
    /// Thresholds per proposal category (`core`, `constitutional`).
    #[serde(default)]
    pub categories: BTreeMap<String, Threshold>,
    /// Thresholds per proposal id.
    #[serde(default)]
    pub proposals: BTreeMap<String, Threshold>,
    /// The designated generals (voter names, as in a ballot's `model`).
    #[serde(default)]
    pub generals: Option<Vec<String>>,
    /// A general's weight at or below this is a veto vote (default 2).
    #[serde(default)]
    pub veto_max_weight: Option<u32>,
    /// Percent of the designated generals whose veto votes reject a proposal (default 50).
    #[serde(default)]
    pub veto_share: Option<u32>,
}

/// The effective rules of a minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// Default approval threshold, percent.
    pub approve: u32,
    /// Default revision threshold, percent.
    pub revise: u32,
    /// Thresholds per category.
    pub categories: BTreeMap<String, Threshold>,
    /// Thresholds per proposal id.
    pub proposals: BTreeMap<String, Threshold>,
    /// The designated generals.
    pub generals: Vec<String>,
    /// A general's weight at or below this is a veto vote.
    pub veto_max_weight: u32,
    /// Percent of the designated generals needed for a veto.
    pub veto_share: u32,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            approve: 60,
            revise: 40,
            categories: BTreeMap::new(),
            proposals: BTreeMap::new(),
            generals: Vec::new(),
            veto_max_weight: 2,
            veto_share: 50,
        }
    }
}

/// The thresholds that apply to one proposal, and where they come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Approval threshold, percent.
    pub approve: u32,
    /// Revision threshold, percent.
    pub revise: u32,
    /// `default`, `category:<name>`, `rules:<id>` or `proposals.json`.
    pub source: String,
}

impl Rules {
    /// These rules with `cfg` laid over them (fields `cfg` sets win; category and
    /// proposal maps merge key by key). `file` names the source in errors.
    ///
    /// # Errors
    /// `invalid_file` when a threshold is over 100, a revision threshold is above its
    /// approval threshold, or the veto share is 0 or over 100.
    pub fn overlay(&self, cfg: &RulesConfig, file: &str) -> Result<Rules, GovError> {
        let mut r = self.clone();
        if let Some(a) = cfg.approve {
            r.approve = a;
        }
        if let Some(v) = cfg.revise {
            r.revise = v;
        }
        r.categories
            .extend(cfg.categories.iter().map(|(k, v)| (k.clone(), *v)));
        r.proposals
            .extend(cfg.proposals.iter().map(|(k, v)| (k.clone(), *v)));
        if let Some(g) = &cfg.generals {
            r.generals = g.clone();
        }
        if let Some(w) = cfg.veto_max_weight {
            r.veto_max_weight = w;
        }
        if let Some(s) = cfg.veto_share {
            r.veto_share = s;
        }
        let bad = |field: &str, reason: String| {
            Err(GovError::Invalid(Problem::new(
                file,
                field,
                ProblemCode::WrongType,
                reason,
            )))
        };
        check_pair(r.approve, r.revise).or_else(|e| bad("approve", e))?;
        for (k, t) in r.categories.iter().chain(r.proposals.iter()) {
            let (a, v) = (t.approve.unwrap_or(r.approve), t.revise.unwrap_or(r.revise));
            check_pair(a, v).or_else(|e| bad(k, e))?;
        }
        if r.veto_share == 0 || r.veto_share > 100 {
            bad("veto_share", format!("{} is not in 1..=100", r.veto_share))?;
        }
        Ok(r)
    }

    /// The thresholds of proposal `id` of `category`; `own` is the proposal's entry in
    /// `proposals.json`. Precedence: `own`, then the per-proposal rule, then the
    /// category's, then the default; each field falls back separately.
    pub fn threshold_for(
        &self,
        id: &str,
        category: Option<&str>,
        own: Option<Threshold>,
    ) -> Applied {
        let mut applied = Applied {
            approve: self.approve,
            revise: self.revise,
            source: "default".into(),
        };
        let layers = [
            category.and_then(|c| {
                self.categories
                    .get(c)
                    .map(|t| (*t, format!("category:{c}")))
            }),
            self.proposals.get(id).map(|t| (*t, format!("rules:{id}"))),
            own.map(|t| (t, "proposals.json".to_owned())),
        ];
        for (t, source) in layers.into_iter().flatten() {
            if t.approve.is_none() && t.revise.is_none() {
                continue;
            }
            applied.approve = t.approve.unwrap_or(applied.approve);
            applied.revise = t.revise.unwrap_or(applied.revise);
            applied.source = source;
        }
        // A special approval threshold below the revision floor lowers the floor too.
        applied.revise = applied.revise.min(applied.approve);
        applied
    }
}

fn check_pair(approve: u32, revise: u32) -> Result<(), String> {
    if approve > 100 {
        Err(format!("approval threshold {approve} is over 100"))
    } else if revise > approve {
        Err(format!(
            "revision threshold {revise} is above the approval threshold {approve}"
        ))
    } else {
        Ok(())
    }
}

/// The decision for `total` weight from `voters` ballots under `applied`, in integers.
pub fn decide(total: u64, voters: u64, applied: &Applied) -> Decision {
    let max = 10 * voters;
    if voters == 0 {
        Decision::Rejected
    } else if total * 100 >= u64::from(applied.approve) * max {
        Decision::Approved
    } else if total * 100 >= u64::from(applied.revise) * max {
        Decision::Revision
    } else {
        Decision::Rejected
    }
}

/// Whether `vetoing` generals out of the designated ones make a veto under `rules`.
pub fn is_veto(vetoing: usize, rules: &Rules) -> bool {
    !rules.generals.is_empty()
        && vetoing as u64 * 100 >= u64::from(rules.veto_share) * rules.generals.len() as u64
}
