//! The two built-in kinds that act on a minute: `tally_votes` (the tally, written into
//! the minute as `tally.json` and `TALLY.md`) and `update_proposals` (proposal files
//! moved by the tally's decisions, with a change log).
//!
//! Invariants: both recompute the tally from the minute's files (never trust a
//! `tally.json` someone may have edited); both are idempotent: a second run writes
//! nothing (reports whose bytes would not change are not rewritten, a proposal already
//! in its target directory is not moved again and not logged again). Only pending
//! proposals move: a proposal a later step already took further (in implementation,
//! implemented) is never sent back.

use super::error::GovError;
use super::fsio::{read_text, write_if_changed};
use super::layout::Repo;
use super::limits::MAX_DOC_BYTES;
use super::proposal::{list_proposals, set_status, ProposalState};
use super::report::to_markdown;
use super::rules::Decision;
use super::tally::{tally_minute, Tally};
use serde::Serialize;
use serde_json::Value;

/// The JSON report's name inside a minute.
pub const TALLY_JSON: &str = "tally.json";
/// The Markdown report's name inside a minute.
pub const TALLY_MD: &str = "TALLY.md";
/// The proposals change log, inside the proposals tree.
pub const CHANGELOG: &str = "CHANGELOG.md";

/// `tally_votes`: tallies minute `minute` and writes `tally.json` and `TALLY.md` into
/// it. Returns the tally object with `artifacts` (the two reports) and `written` (those
/// this run changed).
///
/// # Errors
/// The tally's errors; reports that cannot be written.
pub fn tally_votes(repo: &Repo, minute: &str) -> Result<(Tally, Value), GovError> {
    let dir = repo.minute_dir(minute)?;
    let tally = tally_minute(&dir, &repo.rules)?;
    let mut json = serde_json::to_vec_pretty(&tally).unwrap_or_default();
    json.push(b'\n');
    let mut written = Vec::new();
    let mut artifacts = Vec::new();
    for (name, bytes) in [
        (TALLY_JSON, json),
        (TALLY_MD, to_markdown(&tally).into_bytes()),
    ] {
        let path = dir.join(name);
        let rel = repo.rel(&path);
        if write_if_changed(&path, &bytes)? {
            written.push(rel.clone());
        }
        artifacts.push(rel);
    }
    let mut v = serde_json::to_value(&tally).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("artifacts".into(), artifacts.into());
        o.insert("written".into(), written.into());
    }
    Ok((tally, v))
}

/// One proposal move.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The proposal.
    pub proposal_id: String,
    /// The decision that moves it.
    pub decision: Decision,
    /// From (relative to the repository).
    pub from: String,
    /// To.
    pub to: String,
}

/// A proposal that was not moved, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Kept {
    /// The proposal.
    pub proposal_id: String,
    /// Why it stays.
    pub reason: String,
}

/// What `update_proposals` did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Update {
    /// The minute.
    pub minute: String,
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Moves done (or to do).
    pub moves: Vec<Move>,
    /// Proposals left where they are, with why.
    pub kept: Vec<Kept>,
    /// The change log, relative to the repository, when written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// Where a decision sends a pending proposal (`None`: it stays pending).
fn target(decision: Decision) -> Option<ProposalState> {
    match decision {
        Decision::Approved => Some(ProposalState::Approved),
        Decision::Rejected => Some(ProposalState::Rejected),
        Decision::Revision => None,
    }
}

/// `update_proposals`: moves the pending proposals of minute `minute` to `approved/`
/// or `rejected/` by its tally, sets their header status, and appends one line per move
/// to `proposals/CHANGELOG.md`. Held for revision stays pending. With `dry_run`,
/// nothing is touched and the moves are returned.
///
/// # Errors
/// The tally's errors; files that cannot be moved or written.
pub fn update_proposals(repo: &Repo, minute: &str, dry_run: bool) -> Result<Update, GovError> {
    let dir = repo.minute_dir(minute)?;
    let tally = tally_minute(&dir, &repo.rules)?;
    let (all, _) = list_proposals(repo)?;
    let mut up = Update {
        minute: tally.minute.clone(),
        dry_run,
        moves: Vec::new(),
        kept: Vec::new(),
        log: None,
    };
    let mut log_lines = String::new();
    for r in &tally.proposals {
        let keep = |reason: String| Kept {
            proposal_id: r.proposal_id.clone(),
            reason,
        };
        let files: Vec<_> = all.iter().filter(|p| p.id == r.proposal_id).collect();
        let Some(p) = files.first() else {
            up.kept.push(keep("no proposal file with this id".into()));
            continue;
        };
        if files.len() > 1 {
            up.kept.push(keep(format!(
                "{} files carry this id; resolve the duplicate first",
                files.len()
            )));
            continue;
        }
        let Some(to_state) = target(r.decision) else {
            up.kept.push(keep(format!(
                "held for revision ({:.2} %); stays {}",
                r.percent,
                p.state.dir()
            )));
            continue;
        };
        if p.state == to_state {
            up.kept.push(keep(format!("already {}", to_state.dir())));
            continue;
        }
        if p.state != ProposalState::Pending {
            up.kept.push(keep(format!(
                "is {}, not pending; a tally only moves pending proposals",
                p.state.dir()
            )));
            continue;
        }
        let name = p
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = repo.proposals_dir().join(to_state.dir()).join(&name);
        let mv = Move {
            proposal_id: p.id.clone(),
            decision: r.decision,
            from: p.file.clone(),
            to: repo.rel(&dest),
        };
        if !dry_run {
            if dest.exists() {
                return Err(GovError::Refused(format!(
                    "{} already exists; not overwriting it",
                    mv.to
                )));
            }
            let text = read_text(&p.path, MAX_DOC_BYTES)?.unwrap_or_default();
            write_if_changed(&dest, set_status(&text, to_state.dir()).as_bytes())?;
            std::fs::remove_file(&p.path).map_err(|e| GovError::io(&p.path, e))?;
            log_lines.push_str(&format!(
                "- minute {}: proposal {} {} -> {} ({:.2} %{})\n",
                tally.minute,
                p.id,
                p.state.dir(),
                to_state.dir(),
                r.percent,
                if r.vetoed {
                    ", vetoed by the generals"
                } else {
                    ""
                }
            ));
        }
        up.moves.push(mv);
    }
    if !log_lines.is_empty() {
        let path = repo.proposals_dir().join(CHANGELOG);
        let mut text =
            read_text(&path, MAX_DOC_BYTES)?.unwrap_or_else(|| "# Proposal changes\n\n".into());
        text.push_str(&log_lines);
        write_if_changed(&path, text.as_bytes())?;
        up.log = Some(repo.rel(&path));
    }
    Ok(up)
}
