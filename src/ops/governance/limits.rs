//! Every bound of the governance readers, in one place (docs/GOVERNANCE.md repeats them).
//!
//! Files over a bound are reported as a [`Problem`](super::Problem) (`too_large`), never
//! read whole; directories with more entries than a bound are refused as a whole, so a
//! tally never silently counts only part of a minute.

/// Bytes of one ballot file.
pub const MAX_BALLOT_BYTES: u64 = 64 * 1024;
/// Files in one minute's `votes/` directory.
pub const MAX_VOTE_FILES: usize = 1_000;
/// Proposals on one ballot (`proposals.json`).
pub const MAX_PROPOSALS: usize = 500;
/// Bytes of `proposals.json`, `rules.json` and `governance.json`.
pub const MAX_JSON_BYTES: u64 = 1024 * 1024;
/// Bytes of `voting_chain.json`.
pub const MAX_CHAIN_BYTES: u64 = 8 * 1024 * 1024;
/// Blocks in one voting chain.
pub const MAX_CHAIN_BLOCKS: usize = 10_000;
/// Bytes of one Markdown document (proposal, BIP, template).
pub const MAX_DOC_BYTES: u64 = 1024 * 1024;
/// Entries of one proposals state directory or of the BIPs directory.
pub const MAX_DIR_ENTRIES: usize = 10_000;
/// Characters of a ballot's `model`, of a veto reason, of a title.
pub const MAX_TEXT_CHARS: usize = 2_000;
