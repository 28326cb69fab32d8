//! The tally of a minute: which ballots count, which are refused and why, each
//! proposal's total, percent, rank, veto and decision, and the chain's verification.
//!
//! Order of judgement, so that one bad file never costs a good one its vote:
//! 1. every file of `votes/` is read: `TEMPLATE.json` and files that are not `.json`
//!    are ignored with a reason; every other file is a ballot candidate, and is refused
//!    with its first problem (and the rest listed) when invalid;
//! 2. with a chain, a ballot whose bytes differ from its block's hash, or whose voter
//!    is not the one its block recorded, is refused;
//! 3. two valid ballots of one voter: the one named `<voter>.json` counts (else the
//!    first by file name) and the others are refused as `duplicate_voter`.
//!
//! The result serializes as the documented object (`docs/GOVERNANCE.md`),
//! `{minute, ballots_counted, refused: [{file, field, code, reason}], proposals:
//! [{proposal_id, total, percent, decision, vetoed, ...}], chain, ...}`.

use super::ballot::{parse_ballot, Ballot};
use super::chain::{verify_chain, ChainReport};
use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{list_dir, read_bounded};
use super::limits::{MAX_BALLOT_BYTES, MAX_VOTE_FILES};
use super::minute::{load_minute, Minute};
use super::rules::{decide, is_veto, Applied, Decision, Rules};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The ballots directory inside a minute.
pub const VOTES_DIR: &str = "votes";

/// A refused file: its first problem, and any others it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The file, relative to the minute.
    pub file: String,
    /// The field of the first problem.
    pub field: String,
    /// Its code.
    pub code: ProblemCode,
    /// Its reason.
    pub reason: String,
    /// The file's other problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Problem>,
}

impl Refused {
    fn from_problems(mut problems: Vec<Problem>) -> Option<Refused> {
        if problems.is_empty() {
            return None;
        }
        let first = problems.remove(0);
        Some(Refused {
            file: first.file,
            field: first.field,
            code: first.code,
            reason: first.reason,
            also: problems,
        })
    }
}

/// The generals' veto on one proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Veto {
    /// Designated generals.
    pub generals: usize,
    /// Generals who weighted it at or below the veto weight.
    pub by: Vec<String>,
    /// How many were needed.
    pub needed: usize,
    /// The reasons they gave (`veto` fields), by general.
    pub reasons: BTreeMap<String, String>,
}

/// One proposal's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProposalResult {
    /// The proposal.
    pub proposal_id: String,
    /// Its title (from `proposals.json`).
    pub title: String,
    /// Its category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 1 for the highest total (ties by id).
    pub rank: usize,
    /// Sum of the counted weights.
    pub total: u64,
    /// `10 x ballots_counted`.
    pub max: u64,
    /// `total / max` in percent, rounded to two decimals (the decision uses integers).
    pub percent: f64,
    /// The thresholds applied.
    pub threshold: Applied,
    /// The decision.
    pub decision: Decision,
    /// Whether the generals vetoed it (then the decision is `rejected`).
    pub vetoed: bool,
    /// The veto count, when generals are designated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub veto: Option<Veto>,
}

/// The tally of a minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tally {
    /// The minute's id.
    pub minute: String,
    /// Ballots counted.
    pub ballots_counted: usize,
    /// The voters counted, in file order.
    pub voters: Vec<String>,
    /// Files refused, by file name.
    pub refused: Vec<Refused>,
    /// Files that are not ballots, with why (never counted, never refused).
    pub ignored: Vec<Problem>,
    /// Per proposal, by rank.
    pub proposals: Vec<ProposalResult>,
    /// The chain's verification.
    pub chain: ChainReport,
    /// The rules applied.
    pub rules: Rules,
}

impl Tally {
    /// Whether every ballot candidate was counted (the CLI's exit code 0).
    pub fn all_counted(&self) -> bool {
        self.refused.is_empty()
    }

    /// The result for `proposal_id`.
    pub fn proposal(&self, proposal_id: &str) -> Option<&ProposalResult> {
        self.proposals.iter().find(|p| p.proposal_id == proposal_id)
    }
}

/// Tallies the minute at `dir` under `base` rules (the repository's).
///
/// # Errors
/// `not_found` or `invalid_file` when `proposals.json` or `rules.json` cannot be used,
/// or `votes/` cannot be listed; bad ballots are never errors, they are `refused`.
pub fn tally_minute(dir: &Path, base: &Rules) -> Result<Tally, GovError> {
    let minute = load_minute(dir, base)?;
    tally_loaded(&minute)
}

/// Tallies a loaded minute.
///
/// # Errors
/// `votes/` cannot be listed or has too many entries.
pub fn tally_loaded(minute: &Minute) -> Result<Tally, GovError> {
    let ids = minute.proposal_ids();
    let mut refused = Vec::new();
    let mut ignored = Vec::new();
    let mut valid: Vec<Ballot> = Vec::new();
    let names = list_dir(&minute.dir.join(VOTES_DIR), MAX_VOTE_FILES)?.unwrap_or_default();
    for name in names {
        let file = format!("{VOTES_DIR}/{name}");
        let lower = name.to_ascii_lowercase();
        if !lower.ends_with(".json") {
            ignored.push(Problem::new(
                file,
                "",
                ProblemCode::NotABallot,
                "not a .json file",
            ));
            continue;
        }
        if lower == "template.json" {
            ignored.push(Problem::new(
                file,
                "",
                ProblemCode::NotABallot,
                "the ballot template",
            ));
            continue;
        }
        let parsed = read_bounded(&minute.dir.join(&file), MAX_BALLOT_BYTES)
            .map_err(|e| vec![e.problem(&file)])
            .and_then(|bytes| parse_ballot(&file, &bytes, &minute.id, &ids));
        match parsed {
            Ok(b) => valid.push(b),
            Err(problems) => refused.extend(Refused::from_problems(problems)),
        }
    }
    let mut chain = verify_chain(&minute.dir);
    if chain.present {
        valid.retain(|b| match chain.entry(&b.file) {
            Some(c) if !c.matches => {
                let p = chain
                    .problems
                    .iter()
                    .find(|p| p.file == b.file && p.code == ProblemCode::HashMismatch)
                    .cloned();
                refused.extend(Refused::from_problems(p.into_iter().collect()));
                false
            }
            // The block says who cast this file; a ballot that now names another voter
            // would let one voter's file count as someone else's vote.
            Some(c) if c.model != b.model => {
                refused.push(Refused {
                    file: b.file.clone(),
                    field: "model".into(),
                    code: ProblemCode::VoterMismatch,
                    reason: format!(
                        "the ballot names {:?}, block {} recorded {:?}",
                        b.model, c.index, c.model
                    ),
                    also: Vec::new(),
                });
                false
            }
            _ => true,
        });
    }
    let mut by_voter: BTreeMap<String, Vec<Ballot>> = BTreeMap::new();
    for b in valid {
        by_voter.entry(b.model.clone()).or_default().push(b);
    }
    let mut counted = Vec::new();
    for (voter, mut ballots) in by_voter {
        // Prefer the file named after the voter; otherwise file order decides.
        let own = format!("{VOTES_DIR}/{voter}.json");
        ballots.sort_by_key(|b| (b.file != own, b.file.clone()));
        let mut rest = ballots.into_iter();
        let Some(kept) = rest.next() else { continue };
        for dup in rest {
            refused.push(Refused {
                file: dup.file.clone(),
                field: "model".into(),
                code: ProblemCode::DuplicateVoter,
                reason: format!("a second ballot of {voter:?}; {} is counted", kept.file),
                also: Vec::new(),
            });
        }
        counted.push(kept);
    }
    counted.sort_by(|a, b| a.file.cmp(&b.file));
    refused.sort_by(|a, b| a.file.cmp(&b.file));
    if chain.present {
        for b in &counted {
            if chain.entry(&b.file).is_none() {
                chain.problems.push(Problem::new(
                    b.file.clone(),
                    "",
                    ProblemCode::NotInChain,
                    "counted, but no block of the chain records it",
                ));
            }
        }
        chain.valid = chain.problems.is_empty();
    }
    let proposals = results(minute, &counted);
    Ok(Tally {
        minute: minute.id.clone(),
        ballots_counted: counted.len(),
        voters: counted.iter().map(|b| b.model.clone()).collect(),
        refused,
        ignored,
        proposals,
        chain,
        rules: minute.rules.clone(),
    })
}

fn results(minute: &Minute, counted: &[Ballot]) -> Vec<ProposalResult> {
    let rules = &minute.rules;
    let voters = counted.len() as u64;
    let mut out: Vec<ProposalResult> = minute
        .proposals
        .iter()
        .map(|p| {
            let total: u64 = counted
                .iter()
                .filter_map(|b| b.weight_of(&p.id))
                .map(|w| u64::from(w.weight))
                .sum();
            let applied = rules.threshold_for(&p.id, p.category.as_deref(), p.threshold);
            let mut decision = decide(total, voters, &applied);
            let veto = (!rules.generals.is_empty()).then(|| {
                let mut by = Vec::new();
                let mut reasons = BTreeMap::new();
                for b in counted.iter().filter(|b| rules.generals.contains(&b.model)) {
                    if let Some(w) = b
                        .weight_of(&p.id)
                        .filter(|w| u32::from(w.weight) <= rules.veto_max_weight)
                    {
                        by.push(b.model.clone());
                        if let Some(r) = &w.veto {
                            reasons.insert(b.model.clone(), r.clone());
                        }
                    }
                }
                let n = rules.generals.len();
                Veto {
                    generals: n,
                    by,
                    needed: (n * rules.veto_share as usize).div_ceil(100),
                    reasons,
                }
            });
            let vetoed = veto.as_ref().is_some_and(|v| is_veto(v.by.len(), rules));
            if vetoed {
                decision = Decision::Rejected;
            }
            let max = 10 * voters;
            let percent = if max == 0 {
                0.0
            } else {
                (total as f64 * 10_000.0 / max as f64).round() / 100.0
            };
            ProposalResult {
                proposal_id: p.id.clone(),
                title: p.title.clone(),
                category: p.category.clone(),
                rank: 0,
                total,
                max,
                percent,
                threshold: applied,
                decision,
                vetoed,
                veto,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.proposal_id.cmp(&b.proposal_id))
    });
    for (i, r) in out.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    out
}
