//! The audit log's line format and its verification: each line is one JSON record
//! sealed by the SHA-256 of its own bytes and chained to the line before it.
//!
//! A line is `{"seq":N,"ts":"...","prev":"<hex>",...,"hash":"<hex>"}` where `hash` is
//! the SHA-256 of the line's bytes without the trailing `,"hash":"<64 hex>"` (the
//! body, closed with `}`), and `prev` is the `hash` of the line before (64 zeros for
//! the first). Hashing the bytes as written, not a re-serialisation, means any edit of
//! any byte of a record changes its hash, with no canonical form to get wrong.
//!
//! What verification shows: a record edited (its hash no longer matches), removed or
//! reordered (a `prev` or `seq` break), and, against the head file the writer keeps
//! beside the log, records cut from the end. What it cannot show: a rewrite of the
//! whole chain and its head by someone who can write both files; the log is
//! tamper-evident, not tamper-proof (`docs/SECURITY.md`, "Audit log").

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::BufRead;
use std::path::Path;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The seal's suffix before the hash: `,"hash":"`.
const SEAL: &str = ",\"hash\":\"";

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Seals `body`, a JSON object without its closing `}`: returns the whole line
/// (without newline) and its hash.
pub fn seal(mut body: String) -> (String, String) {
    body.push('}');
    let hash = sha256_hex(body.as_bytes());
    body.pop();
    body.push_str(SEAL);
    body.push_str(&hash);
    body.push_str("\"}");
    (body, hash)
}

/// A line read back: its record, the hash it claims and whether that hash is right.
#[derive(Debug)]
pub struct Sealed {
    /// The record, `hash` included.
    pub record: Value,
    /// The hash the line carries.
    pub hash: String,
    /// Whether `hash` is the SHA-256 of the line's body.
    pub intact: bool,
}

/// Reads one line.
///
/// # Errors
/// A sentence when the line is not a sealed JSON record.
pub fn open(line: &str) -> Result<Sealed, String> {
    let record: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let cut = line
        .rfind(SEAL)
        .filter(|&i| line.len() == i + SEAL.len() + 64 + 2 && line.ends_with("\"}"))
        .ok_or("no seal: the line does not end with its \"hash\"")?;
    let hash = line[cut + SEAL.len()..line.len() - 2].to_owned();
    let mut body = line[..cut].to_owned();
    body.push('}');
    let intact = sha256_hex(body.as_bytes()) == hash;
    Ok(Sealed {
        record,
        hash,
        intact,
    })
}

/// The last record's position, as the head file keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
}

impl Head {
    /// The head file's text.
    pub fn to_line(&self) -> String {
        format!("{} {}\n", self.seq, self.hash)
    }

    /// Parses the head file's text.
    pub fn parse(text: &str) -> Option<Head> {
        let (seq, hash) = text.trim().split_once(' ')?;
        let ok = hash.len() == 64 && hash.bytes().all(|b| HEX.contains(&b));
        let seq = seq.parse().ok().filter(|_| ok)?;
        Some(Head {
            seq,
            hash: hash.to_owned(),
        })
    }
}

/// One problem found by [`verify`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    /// 1-based line number in the log (0: the head file).
    pub line: u64,
    /// What is wrong, for a person.
    pub reason: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Records read.
    pub records: u64,
    /// The last record's seq and hash (what the head should say).
    pub last_seq: u64,
    /// The last record's hash.
    pub last_hash: String,
    /// Whether the head file agreed (`None` when there is none).
    pub head_matches: Option<bool>,
    /// Every break, in file order; at most [`MAX_PROBLEMS`].
    pub problems: Vec<Problem>,
}

impl Report {
    fn problem(&mut self, line: u64, reason: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem { line, reason });
        }
    }

    /// Whether the chain is whole.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Problems listed before verification stops collecting (it still counts records).
pub const MAX_PROBLEMS: usize = 100;

/// Verifies the log at `path` and, when `head` exists, that it ends where `head` says.
///
/// # Errors
/// When the log cannot be read at all.
pub fn verify(path: &Path, head: Option<&Path>) -> std::io::Result<Report> {
    let file = std::fs::File::open(path)?;
    let mut report = Report {
        records: 0,
        last_seq: 0,
        last_hash: GENESIS.to_owned(),
        head_matches: None,
        problems: Vec::new(),
    };
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i as u64 + 1;
        let line = line?;
        let sealed = match open(&line) {
            Ok(s) => s,
            Err(why) => {
                report.problem(n, why);
                continue;
            }
        };
        report.records += 1;
        if !sealed.intact {
            report.problem(
                n,
                "record changed: its hash does not match its bytes".into(),
            );
        }
        let seq = sealed.record.get("seq").and_then(Value::as_u64);
        let prev = sealed.record.get("prev").and_then(Value::as_str);
        if seq != Some(report.last_seq + 1) {
            report.problem(
                n,
                format!(
                    "seq {} follows {}: a record was removed, added or moved",
                    seq.map_or("missing".into(), |s| s.to_string()),
                    report.last_seq
                ),
            );
        }
        if prev != Some(report.last_hash.as_str()) {
            report.problem(
                n,
                "prev is not the hash of the record before: the chain is broken here".into(),
            );
        }
        report.last_seq = seq.unwrap_or(report.last_seq + 1);
        report.last_hash = sealed.hash;
    }
    if let Some(head) = head.filter(|h| h.exists()) {
        let text = std::fs::read_to_string(head)?;
        match Head::parse(&text) {
            Some(h) => {
                let same = h.seq == report.last_seq && h.hash == report.last_hash;
                report.head_matches = Some(same);
                if !same {
                    report.problem(
                        0,
                        format!(
                            "the head file says the log ends at seq {}, it ends at seq {}: \
                             records were cut from the end or the log was replaced",
                            h.seq, report.last_seq
                        ),
                    );
                }
            }
            None => report.problem(0, "the head file is unreadable".into()),
        }
    }
    Ok(report)
}
