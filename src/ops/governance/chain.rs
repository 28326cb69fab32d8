//! The voting chain of a minute (`voting_chain.json`): an append-only list of blocks,
//! one per ballot cast, each naming the ballot file and its SHA-256 and linked to the
//! block before it.
//!
//! A block is `{index, timestamp, previous_hash, type, model, vote_file,
//! vote_file_hash, block_hash}`; `vote_file_hash` is the SHA-256 (lowercase hex) of the
//! ballot file's bytes and `block_hash` the SHA-256 of
//! `index|timestamp|previous_hash|type|model|vote_file|vote_file_hash`, a null field
//! written as the empty string. The file is either that array or an object holding it
//! under `blocks` or `chain`.
//!
//! Verification recomputes every hash: a block out of sequence, a link that is not the
//! block before, a block whose fields changed, and a ballot whose bytes changed after
//! it was cast are each a [`Problem`]. It never stops at the first one.

use super::error::{Problem, ProblemCode};
use super::fsio::{self, read_bounded};
use super::limits::{MAX_BALLOT_BYTES, MAX_CHAIN_BLOCKS, MAX_CHAIN_BYTES};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The chain's file name inside a minute.
pub const CHAIN_FILE: &str = "voting_chain.json";

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// One block as written (text fields `None` when null or absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Block {
    /// Position in the chain, from 0.
    pub index: u64,
    /// When the block was appended, as written.
    pub timestamp: String,
    /// The previous block's `block_hash`; `None` for the first.
    pub previous_hash: Option<String>,
    /// The block type (`vote`, `genesis`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// The voter.
    pub model: String,
    /// The ballot file, relative to the minute (or to its `votes/`).
    pub vote_file: Option<String>,
    /// SHA-256 of the ballot file's bytes when the block was appended.
    pub vote_file_hash: Option<String>,
    /// The block's recorded hash.
    pub block_hash: String,
}

impl Block {
    /// The hash this block should carry, recomputed from its fields.
    pub fn compute_hash(&self) -> String {
        let o = |s: &Option<String>| s.clone().unwrap_or_default();
        sha256_hex(
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                self.index,
                self.timestamp,
                o(&self.previous_hash),
                self.kind,
                self.model,
                o(&self.vote_file),
                o(&self.vote_file_hash)
            )
            .as_bytes(),
        )
    }
}

/// A chained ballot: which block recorded it, and whether its bytes still match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chained {
    /// The block's index.
    pub index: u64,
    /// The voter the block names.
    pub model: String,
    /// The ballot file as the minute names it (`votes/ada.json`).
    pub file: String,
    /// Whether the file's SHA-256 is the one recorded.
    pub matches: bool,
}

/// What verifying a chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Whether the minute has a chain file.
    pub present: bool,
    /// Present, readable and without any problem.
    pub valid: bool,
    /// Blocks read.
    pub blocks: usize,
    /// The ballots the chain records, by block.
    pub ballots: Vec<Chained>,
    /// Every problem found (file, field, reason).
    pub problems: Vec<Problem>,
}

impl ChainReport {
    /// The chained entry of ballot `file` (the last block naming it), if any.
    pub fn entry(&self, file: &str) -> Option<&Chained> {
        self.ballots.iter().rev().find(|c| c.file == file)
    }
}

/// Verifies the chain of the minute at `minute_dir`. A missing chain is reported as
/// `present: false, valid: false` with no problem (a minute may predate chains).
pub fn verify_chain(minute_dir: &Path) -> ChainReport {
    let mut report = ChainReport::default();
    let bytes = match read_bounded(&minute_dir.join(CHAIN_FILE), MAX_CHAIN_BYTES) {
        Ok(b) => b,
        Err(fsio::ReadError::Missing) => return report,
        Err(e) => {
            report.present = true;
            report.problems.push(e.problem(CHAIN_FILE));
            return report;
        }
    };
    report.present = true;
    let value: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => {
            report.problems.push(Problem::new(
                CHAIN_FILE,
                "",
                ProblemCode::InvalidJson,
                format!("not valid JSON: {e}"),
            ));
            return report;
        }
    };
    let items = match &value {
        Value::Array(a) => a,
        Value::Object(o) => match o.get("blocks").or_else(|| o.get("chain")) {
            Some(Value::Array(a)) => a,
            _ => {
                report.problems.push(Problem::new(
                    CHAIN_FILE,
                    "blocks",
                    ProblemCode::MissingField,
                    "an object chain holds its blocks under `blocks` or `chain`",
                ));
                return report;
            }
        },
        _ => {
            report.problems.push(Problem::new(
                CHAIN_FILE,
                "",
                ProblemCode::WrongType,
                "a chain is an array of blocks",
            ));
            return report;
        }
    };
    if items.len() > MAX_CHAIN_BLOCKS {
        report.problems.push(Problem::new(
            CHAIN_FILE,
            "",
            ProblemCode::TooLarge,
            format!(
                "{} blocks, over the limit of {MAX_CHAIN_BLOCKS}",
                items.len()
            ),
        ));
        return report;
    }
    report.blocks = items.len();
    let mut previous: Option<String> = None;
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let block = match read_block(i, item) {
            Ok(b) => b,
            Err(p) => {
                report.problems.push(p);
                // The next link cannot be checked against a block that cannot be read.
                previous = None;
                continue;
            }
        };
        let field = |f: &str| format!("blocks[{i}].{f}");
        if block.index != i as u64 {
            report.problems.push(Problem::new(
                CHAIN_FILE,
                field("index"),
                ProblemCode::BadIndex,
                format!("index {} at position {i}", block.index),
            ));
        }
        let prev = block.previous_hash.clone().unwrap_or_default();
        let link_ok = if i == 0 {
            prev.is_empty()
        } else {
            previous.as_deref() == Some(prev.as_str())
        };
        if !link_ok {
            report.problems.push(Problem::new(
                CHAIN_FILE,
                field("previous_hash"),
                ProblemCode::BrokenLink,
                if i == 0 {
                    "the first block's previous_hash must be null or empty".to_owned()
                } else {
                    format!("broken link: {prev:?} is not block {}'s hash", i - 1)
                },
            ));
        }
        let computed = block.compute_hash();
        if computed != block.block_hash {
            report.problems.push(Problem::new(
                CHAIN_FILE,
                field("block_hash"),
                ProblemCode::BlockAltered,
                format!(
                    "recorded {:?}, its fields hash to {computed:?}: the block was altered",
                    block.block_hash
                ),
            ));
        }
        previous = Some(block.block_hash.clone());
        if let Some(vote_file) = &block.vote_file {
            check_vote_file(minute_dir, &block, vote_file, &mut hashes, &mut report);
        }
    }
    report.valid = report.problems.is_empty();
    report
}

fn check_vote_file(
    minute_dir: &Path,
    block: &Block,
    vote_file: &str,
    hashes: &mut BTreeMap<String, String>,
    report: &mut ChainReport,
) {
    let field = format!("blocks[{}].vote_file", block.index);
    if !fsio::is_safe_relative(vote_file) {
        report.problems.push(Problem::new(
            CHAIN_FILE,
            field,
            ProblemCode::UnsafePath,
            format!("{vote_file:?} leaves the minute"),
        ));
        return;
    }
    // Chains written by different tools name the file from the minute or from votes/.
    let file = if vote_file.contains('/') {
        vote_file.to_owned()
    } else {
        format!("votes/{vote_file}")
    };
    let actual = match hashes.get(&file) {
        Some(h) => h.clone(),
        None => match read_bounded(&minute_dir.join(&file), MAX_BALLOT_BYTES) {
            Ok(bytes) => {
                let h = sha256_hex(&bytes);
                hashes.insert(file.clone(), h.clone());
                h
            }
            Err(e) => {
                let mut p = e.problem(&file);
                p.field = field;
                p.reason = format!("block {}: {}", block.index, p.reason);
                report.problems.push(p);
                return;
            }
        },
    };
    let matches = block.vote_file_hash.as_deref() == Some(actual.as_str());
    if !matches {
        report.problems.push(Problem::new(
            file.clone(),
            format!("blocks[{}].vote_file_hash", block.index),
            ProblemCode::HashMismatch,
            format!(
                "the ballot's SHA-256 is {actual}, block {} recorded {}: it changed after it was cast",
                block.index,
                block.vote_file_hash.as_deref().unwrap_or("nothing")
            ),
        ));
    }
    report.ballots.push(Chained {
        index: block.index,
        model: block.model.clone(),
        file,
        matches,
    });
}

/// Reads block `i`; every field must be there with its type (text fields may be null).
fn read_block(i: usize, item: &Value) -> Result<Block, Problem> {
    let field = |f: &str| format!("blocks[{i}].{f}");
    let Some(o) = item.as_object() else {
        return Err(Problem::new(
            CHAIN_FILE,
            format!("blocks[{i}]"),
            ProblemCode::WrongType,
            "a block is an object",
        ));
    };
    let opt = |f: &str| -> Result<Option<String>, Problem> {
        match o.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Problem::new(
                CHAIN_FILE,
                field(f),
                ProblemCode::WrongType,
                format!("`{f}` must be a string or null"),
            )),
        }
    };
    let req = |f: &str| -> Result<String, Problem> {
        opt(f)?.ok_or_else(|| {
            Problem::new(
                CHAIN_FILE,
                field(f),
                ProblemCode::MissingField,
                format!("`{f}` is missing"),
            )
        })
    };
    let index = o.get("index").and_then(Value::as_u64).ok_or_else(|| {
        Problem::new(
            CHAIN_FILE,
            field("index"),
            ProblemCode::MissingField,
            "`index` must be a non-negative integer",
        )
    })?;
    Ok(Block {
        index,
        timestamp: req("timestamp")?,
        previous_hash: opt("previous_hash")?,
        kind: req("type")?,
        model: opt("model")?.unwrap_or_default(),
        vote_file: opt("vote_file")?,
        vote_file_hash: opt("vote_file_hash")?,
        block_hash: req("block_hash")?,
    })
}

/// Builds a valid block for `vote_file` after `previous` (tests and tools that append
/// to a chain use it; the tally never writes a chain).
pub fn next_block(
    previous: Option<&Block>,
    timestamp: &str,
    model: &str,
    vote_file: &str,
    vote_bytes: &[u8],
) -> Block {
    let mut b = Block {
        index: previous.map_or(0, |p| p.index + 1),
        timestamp: timestamp.to_owned(),
        previous_hash: previous.map(|p| p.block_hash.clone()),
        kind: "vote".into(),
        model: model.to_owned(),
        vote_file: Some(vote_file.to_owned()),
        vote_file_hash: Some(sha256_hex(vote_bytes)),
        block_hash: String::new(),
    };
    b.block_hash = b.compute_hash();
    b
}
