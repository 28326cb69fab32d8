//! Governance: the repository a Hive governs itself with, read and written by
//! deterministic functions, and the contracts of the BIP-43 TASK kinds (issue 12).
//!
//! A governance repository holds proposals (`proposals/<state>/NNN-slug.md`), BIPs
//! (`bips/BIP-NN/`) and the minutes of votes (`minutes/NNNN/` with `proposals.json`,
//! `votes/<voter>.json` and `voting_chain.json`); the paths are configurable
//! (`governance.json`, [`Layout`]). Such repositories are written by hand and by models,
//! so every reader here expects bad files: each one is reported with its file, field and
//! reason ([`Problem`]), never skipped silently and never a panic. `docs/GOVERNANCE.md`
//! is the user's guide.
//!
//! Invariants: a tally is a pure function of the minute's files and the rules (no clock,
//! no randomness), so running it twice gives the same bytes; every built-in kind is
//! idempotent (running it again changes nothing and says so); nothing is read or written
//! outside the repository (ids are checked, symlinks and paths with `..` are refused);
//! every file read is bounded in bytes and every directory listing in count
//! ([`limits`]).
//!
//! # Layout
//! - `error`: [`GovError`] (what stops a function) and [`Problem`] (a bad file, reported).
//! - `fsio`: bounded reads, id checks, the UTC date, writes that change nothing twice.
//! - `limits`: every bound, in one place.
//! - `layout`: the repository and its configurable paths.
//! - `rules`: thresholds per minute, category and proposal; the generals' veto.
//! - `ballot`: one ballot parsed and validated against its minute.
//! - `chain`: the voting chain, its hashes and their verification.
//! - `minute`: a minute's `proposals.json` and rules.
//! - `tally`: the tally of a minute (counted, refused, decisions, chain).
//! - `report`: the tally as Markdown.
//! - `proposal`: proposal files, their header and their state.
//! - `bip`: BIP directories, their stage and checklist; `start_bip`,
//!   `create_impl_summary`, `verify_bip`, `bootstrap_bip_from_proposal`.
//! - `update`: `tally_votes` and `update_proposals`.
//! - `kinds`: every TASK kind's contract (built-in and agent) and the built-in runner.
//! - `operator`: the `gov` operator publishing the contracts (`op.gov.kinds`).

pub mod ballot;
pub mod bip;
pub mod chain;
pub mod error;
pub mod fsio;
pub mod kinds;
pub mod layout;
pub mod limits;
pub mod minute;
pub mod operator;
pub mod proposal;
pub mod report;
pub mod rules;
pub mod tally;
pub mod update;

#[cfg(test)]
mod kind_tests;
#[cfg(test)]
mod tests;

pub use ballot::{Ballot, Weight};
pub use chain::{verify_chain, Block, ChainReport};
pub use error::{GovError, Problem, ProblemCode};

pub use kinds::{contract, run_builtin, validate_args, validate_result, KindContract, KINDS};
pub use layout::{Layout, Repo};
pub use minute::Minute;
pub use operator::GovernanceOperator;
pub use rules::{Decision, Rules, RulesConfig, Threshold};
pub use tally::{tally_minute, Tally};
