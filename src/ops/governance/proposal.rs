//! Proposals: `proposals/<state>/NNN-slug.md`, a Markdown document whose metadata header
//! says its id, title, author, status and dates. The directory is the state; a header
//! whose `status` disagrees is reported, and the directory wins.
//!
//! The header is either YAML-like front matter between `---` lines (`id: 003`) or the
//! list most such repositories use at the top (`- **ID**: 003`); keys are read
//! case-insensitively. A file whose name is not `NNN-slug.md`, or an id found in two
//! files, is reported as a [`Problem`], never silently dropped.

use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{list_dir, read_text};
use super::layout::Repo;
use super::limits::{MAX_DIR_ENTRIES, MAX_DOC_BYTES};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A proposal's state: the directory it is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProposalState {
    /// On a ballot, or waiting for one.
    Pending,
    /// Approved by a minute.
    Approved,
    /// Rejected by a minute.
    Rejected,
    /// A BIP implements it.
    InImplementation,
    /// Done.
    Implemented,
}

impl ProposalState {
    /// Every state, in lifecycle order.
    pub const ALL: [ProposalState; 5] = [
        ProposalState::Pending,
        ProposalState::Approved,
        ProposalState::Rejected,
        ProposalState::InImplementation,
        ProposalState::Implemented,
    ];

    /// The directory name.
    pub fn dir(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
            ProposalState::InImplementation => "in-implementation",
            ProposalState::Implemented => "implemented",
        }
    }
}

/// A proposal file, read.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    /// Its id (`003`), from the file name.
    pub id: String,
    /// Its slug, from the file name.
    pub slug: String,
    /// Its state (directory).
    pub state: ProposalState,
    /// Its path relative to the repository.
    pub file: String,
    /// The header, keys lowercased.
    pub header: BTreeMap<String, String>,
    /// The text after the header.
    #[serde(skip)]
    pub body: String,
    /// Its absolute path.
    #[serde(skip)]
    pub path: PathBuf,
}

impl Proposal {
    /// A header value (`title`, `author`, ...).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.header.get(key).map(String::as_str)
    }

    /// The title: the header's, else the slug.
    pub fn title(&self) -> String {
        self.get("title")
            .map_or_else(|| self.slug.replace('-', " "), str::to_owned)
    }
}

/// Parses a header: front matter, or `- **Key**: value` / `Key: value` lines before the
/// first section heading after the title. Returns the header and the body after it.
pub fn parse_header(text: &str) -> (BTreeMap<String, String>, String) {
    let mut header = BTreeMap::new();
    let mut lines = text.lines().peekable();
    if lines.peek().map(|l| l.trim()) == Some("---") {
        lines.next();
        let mut consumed = 1;
        for line in lines.by_ref() {
            consumed += 1;
            if line.trim() == "---" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                header.insert(
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_owned(),
                );
            }
        }
        let body: Vec<&str> = text.lines().skip(consumed).collect();
        return (header, body.join("\n"));
    }
    let mut body_start = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i > 0 && t.starts_with("## ") {
            break;
        }
        body_start = i + 1;
        if t.starts_with('#') {
            continue;
        }
        let t = t.trim_start_matches(['-', '*', ' ']);
        if let Some((k, v)) = t.split_once(':') {
            let key = k.trim().trim_matches('*').trim().to_ascii_lowercase();
            let value = v.trim().trim_start_matches("**").trim();
            if !key.is_empty() && key.len() <= 40 {
                header.insert(key, value.to_owned());
            }
        }
    }
    let body: Vec<&str> = text.lines().skip(body_start).collect();
    (header, body.join("\n").trim().to_owned())
}

/// Splits `NNN-slug.md` into id and slug.
pub fn split_name(name: &str) -> Option<(String, String)> {
    let stem = name.strip_suffix(".md")?;
    let (id, slug) = stem.split_once('-')?;
    let ok = !id.is_empty()
        && id.len() <= 6
        && id.bytes().all(|b| b.is_ascii_digit())
        && !slug.is_empty()
        && slug
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| (id.to_owned(), slug.to_owned()))
}

/// Every proposal of the repository, and every problem found on the way (bad names,
/// duplicate ids, a header status that disagrees with the directory).
///
/// # Errors
/// A state directory that cannot be listed or has too many entries.
pub fn list_proposals(repo: &Repo) -> Result<(Vec<Proposal>, Vec<Problem>), GovError> {
    let mut out: Vec<Proposal> = Vec::new();
    let mut problems = Vec::new();
    for state in ProposalState::ALL {
        let dir = repo.proposals_dir().join(state.dir());
        for name in list_dir(&dir, MAX_DIR_ENTRIES)?.unwrap_or_default() {
            let path = dir.join(&name);
            let file = repo.rel(&path);
            if name.eq_ignore_ascii_case("README.md") || name.eq_ignore_ascii_case("TEMPLATE.md") {
                continue;
            }
            let Some((id, slug)) = split_name(&name) else {
                problems.push(Problem::new(
                    file,
                    "",
                    ProblemCode::BadHeader,
                    "not a proposal file name (NNN-slug.md)",
                ));
                continue;
            };
            let text = match read_text(&path, MAX_DOC_BYTES) {
                Ok(Some(t)) => t,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(Problem::new(file, "", ProblemCode::NotAFile, e.to_string()));
                    continue;
                }
            };
            let (header, body) = parse_header(&text);
            if let Some(h) = header.get("id") {
                if h.trim_start_matches('#') != id {
                    problems.push(Problem::new(
                        file.clone(),
                        "id",
                        ProblemCode::BadHeader,
                        format!("header id {h:?}, file name {id:?}; the file name wins"),
                    ));
                }
            }
            if let Some(s) = header.get("status") {
                if !s.eq_ignore_ascii_case(state.dir()) {
                    problems.push(Problem::new(
                        file.clone(),
                        "status",
                        ProblemCode::BadHeader,
                        format!(
                            "header status {s:?}, directory {:?}; the directory wins",
                            state.dir()
                        ),
                    ));
                }
            }
            if let Some(first) = out.iter().find(|p| p.id == id) {
                problems.push(Problem::new(
                    file.clone(),
                    "id",
                    ProblemCode::DuplicateProposal,
                    format!("proposal {id} is also {}", first.file),
                ));
            }
            out.push(Proposal {
                id,
                slug,
                state,
                file,
                header,
                body,
                path,
            });
        }
    }
    Ok((out, problems))
}

/// The proposal `id` (the first found in lifecycle order; duplicates are reported by
/// [`list_proposals`]).
///
/// # Errors
/// `not_found`, or the listing's errors.
pub fn find_proposal(repo: &Repo, id: &str) -> Result<Proposal, GovError> {
    super::fsio::check_numeric_id("proposal", id, 6)?;
    let (all, _) = list_proposals(repo)?;
    all.into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| GovError::NotFound {
            what: "proposal",
            path: repo.proposals_dir().join(format!("*/{id}-*.md")),
        })
}

/// `text` with its header's status set to `status` (the first `status` line of the
/// header); unchanged when it has none.
pub fn set_status(text: &str, status: &str) -> String {
    let mut done = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        if !done && (lower.starts_with("- **status**:") || lower.starts_with("status:")) {
            let (head, _) = line.split_once(':').unwrap_or((line, ""));
            out.push(format!("{head}: {status}"));
            done = true;
        } else {
            out.push(line.to_owned());
        }
    }
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    s
}
