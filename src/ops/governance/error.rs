//! What goes wrong in a governance repository: [`GovError`] stops a function (the
//! minute has no `proposals.json`, an id is malformed), [`Problem`] is one bad file
//! reported with its file, field and reason while the rest is still read.
//!
//! Every problem carries a stable [`ProblemCode`] (snake_case on the wire), so scripts
//! can match on it while the reason stays free text for people.

use serde::Serialize;
use std::path::PathBuf;

/// Why a bad file was refused, reported or ignored. Stable names (snake_case in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// The file is not valid JSON (or not UTF-8).
    InvalidJson,
    /// A field is missing.
    MissingField,
    /// A field has the wrong type or an unusable value.
    WrongType,
    /// A ballot cast for another minute.
    WrongMinute,
    /// A ballot names a proposal that is not on the minute's ballot.
    UnknownProposal,
    /// A ballot omits a proposal of the minute.
    MissingProposal,
    /// A ballot (or `proposals.json`, or the proposals tree) names a proposal twice.
    DuplicateProposal,
    /// A weight outside 1..=10, or not an integer.
    WeightOutOfRange,
    /// A second ballot of a voter whose ballot was already counted.
    DuplicateVoter,
    /// A ballot whose SHA-256 differs from the one its chain block recorded.
    HashMismatch,
    /// A ballot whose voter (`model`) is not the voter its chain block recorded.
    VoterMismatch,
    /// A block whose `previous_hash` is not the block before it.
    BrokenLink,
    /// A block whose recorded `block_hash` is not the hash of its fields.
    BlockAltered,
    /// A block out of sequence (`index`).
    BadIndex,
    /// A block's vote file is missing.
    MissingVoteFile,
    /// A counted ballot that no block of an existing chain records.
    NotInChain,
    /// A file over its size bound.
    TooLarge,
    /// A symlink or other non-regular file where a file was expected.
    NotAFile,
    /// A path that would leave its directory (absolute, or with `..`).
    UnsafePath,
    /// A file that is not a ballot (`TEMPLATE.json`, a README): ignored, not counted.
    NotABallot,
    /// A proposal file whose name or header is malformed.
    BadHeader,
}

/// One bad file: which file (relative to the minute or repository), which field, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file, relative to the directory being read (`votes/alice.json`).
    pub file: String,
    /// The field (`weights[2].weight`), or `""` for the whole file.
    pub field: String,
    /// The stable code.
    pub code: ProblemCode,
    /// Why, for people.
    pub reason: String,
}

impl Problem {
    /// A problem of `file` at `field`.
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        code: ProblemCode,
        reason: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            field: field.into(),
            code,
            reason: reason.into(),
        }
    }
}

/// What stops a governance function. The CLI prints it and exits 2.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GovError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Something the function needs does not exist.
    #[error("{what} not found: {}", path.display())]
    NotFound {
        /// What was looked for ("minute", "BIP", "proposal").
        what: &'static str,
        /// Where.
        path: PathBuf,
    },
    /// A file the function cannot do without is malformed (`proposals.json`,
    /// `rules.json`, `governance.json`).
    #[error("{}", .0.file.clone() + ": " + &.0.field + ": " + &.0.reason)]
    Invalid(Problem),
    /// An argument is malformed (an id, a path, a type).
    #[error("argument {field}: {reason}")]
    BadArgument {
        /// The argument.
        field: String,
        /// Why.
        reason: String,
    },
    /// The operation is refused in the repository's current state (a proposal that is
    /// not approved, a kind that is not built in).
    #[error("{0}")]
    Refused(String),
}

impl GovError {
    /// A stable code for scripts and task results.
    pub fn code(&self) -> &'static str {
        match self {
            GovError::Io { .. } => "io_error",
            GovError::NotFound { .. } => "not_found",
            GovError::Invalid(_) => "invalid_file",
            GovError::BadArgument { .. } => "invalid_argument",
            GovError::Refused(_) => "refused",
        }
    }

    /// An I/O error at `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> GovError {
        GovError::Io {
            path: path.into(),
            source,
        }
    }

    /// A malformed argument.
    pub fn arg(field: impl Into<String>, reason: impl Into<String>) -> GovError {
        GovError::BadArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
