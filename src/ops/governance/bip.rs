//! BIPs: `bips/BIP-NN/` with `BIP-NN.md` (and its `- [ ]` / `- [x]` checklist),
//! `BIP-NN-implementation-plan.md`, `IMPLEMENTATION_SUMMARY.md`, `REVIEW_REPORT.md`,
//! `REVIEW_REPORT_2.md`, ..., `FINAL_REVIEW_REPORT.md`; and four built-in kinds over
//! them: `start_bip`, `create_impl_summary`, `verify_bip`,
//! `bootstrap_bip_from_proposal`.
//!
//! Invariants: a BIP's stage is derived from the files present, never stored; every
//! kind here is idempotent (an existing file is never overwritten, a second run creates
//! nothing and says what already existed); checklist references are only checked
//! inside the repository (a reference with `..` or a root is reported, not followed).

use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{self, create_if_missing, list_dir, read_text};
use super::layout::Repo;
use super::limits::{MAX_DIR_ENTRIES, MAX_DOC_BYTES};
use super::proposal::{find_proposal, parse_header, ProposalState};
use serde::Serialize;
use std::path::PathBuf;

/// Parses a BIP number: `43`, `BIP-43`, `bip-043` (1 to 4 digits).
///
/// # Errors
/// `invalid_argument` naming `bip`.
pub fn parse_bip(s: &str) -> Result<u32, GovError> {
    let t = s.trim();
    let digits = t
        .strip_prefix("BIP-")
        .or_else(|| t.strip_prefix("bip-"))
        .unwrap_or(t);
    fsio::check_numeric_id("bip", digits, 4)?;
    digits
        .parse()
        .map_err(|_| GovError::arg("bip", format!("{s:?} is not a BIP number")))
}

/// The directory name of BIP `n` (`BIP-07`, `BIP-43`).
pub fn bip_name(n: u32) -> String {
    format!("BIP-{n:02}")
}

/// A BIP's stage, derived from its files (the furthest one present wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// No directory.
    Missing,
    /// `BIP-NN.md` only.
    Draft,
    /// With an implementation plan.
    Planned,
    /// With an implementation summary.
    Implemented,
    /// With one or more review reports.
    InReview,
    /// With a final review report.
    FinalReview,
}

/// What a BIP directory holds.
#[derive(Debug, Clone, Serialize)]
pub struct BipFiles {
    /// The number.
    pub bip: u32,
    /// Its directory, relative to the repository.
    pub dir: String,
    /// The stage.
    pub stage: Stage,
    /// Review rounds recorded (`REVIEW_REPORT.md` is round 1, `_2` round 2, ...).
    pub review_rounds: u32,
    /// Every file, sorted.
    pub files: Vec<String>,
}

/// The directory of BIP `n` (an existing `BIP-7` is found as well as `BIP-07`).
pub fn bip_dir(repo: &Repo, n: u32) -> PathBuf {
    let plain = repo.bips_dir().join(format!("BIP-{n}"));
    if plain.is_dir() {
        plain
    } else {
        repo.bips_dir().join(bip_name(n))
    }
}

/// Reads what BIP `n` holds and derives its stage.
///
/// # Errors
/// The directory cannot be listed.
pub fn bip_files(repo: &Repo, n: u32) -> Result<BipFiles, GovError> {
    let dir = bip_dir(repo, n);
    let files = list_dir(&dir, MAX_DIR_ENTRIES)?;
    let stage_of = |files: &[String]| {
        let has = |f: &str| files.iter().any(|x| x == f);
        let name = bip_name(n);
        if has("FINAL_REVIEW_REPORT.md") {
            Stage::FinalReview
        } else if files.iter().any(|f| f.starts_with("REVIEW_REPORT")) {
            Stage::InReview
        } else if has("IMPLEMENTATION_SUMMARY.md") {
            Stage::Implemented
        } else if has(&format!("{name}-implementation-plan.md")) {
            Stage::Planned
        } else {
            Stage::Draft
        }
    };
    let (stage, files) = match files {
        None => (Stage::Missing, Vec::new()),
        Some(f) => (stage_of(&f), f),
    };
    let review_rounds = files
        .iter()
        .filter(|f| {
            *f == "REVIEW_REPORT.md" || (f.starts_with("REVIEW_REPORT_") && f.ends_with(".md"))
        })
        .count() as u32;
    Ok(BipFiles {
        bip: n,
        dir: repo.rel(&dir),
        stage,
        review_rounds,
        files,
    })
}

/// Built-in templates, used when the repository's templates directory lacks one.
/// Placeholders: `{{bip}}`, `{{title}}`, `{{date}}`, `{{proposal}}`, `{{author}}`,
/// `{{body}}`, `{{dir}}`.
const BUILTIN_TEMPLATES: &[(&str, &str)] = &[
    ("BIP.md", "# BIP-{{bip}}: {{title}}\n\n- **BIP**: {{bip}}\n- **Proposal**: {{proposal}}\n- **Author**: {{author}}\n- **Created**: {{date}}\n- **Status**: draft\n\n## Motivation\n\n{{body}}\n\n## Implementation checklist\n\n- [ ] Write the implementation plan\n- [ ] Implement\n- [ ] Review\n"),
    ("implementation-plan.md", "# BIP-{{bip}} implementation plan\n\n- **Created**: {{date}}\n\n## Steps\n\n1. \n\n## Files\n\n## Risks\n"),
    ("IMPLEMENTATION_SUMMARY.md", "# BIP-{{bip}} implementation summary\n\n- **Created**: {{date}}\n\n## What changed\n\n## Tests\n\n## Open points\n"),
];

/// The values a template is filled with.
#[derive(Debug, Clone, Default)]
pub struct Fill {
    /// `{{bip}}` (two digits at least).
    pub bip: String,
    /// `{{title}}`.
    pub title: String,
    /// `{{date}}`.
    pub date: String,
    /// `{{proposal}}`.
    pub proposal: String,
    /// `{{author}}`.
    pub author: String,
    /// `{{body}}`.
    pub body: String,
    /// `{{dir}}`.
    pub dir: String,
}

/// Renders template `name` (the repository's, else the built-in one) with `fill`.
///
/// # Errors
/// The repository's template cannot be read.
pub fn render(repo: &Repo, name: &str, fill: &Fill) -> Result<String, GovError> {
    let own = read_text(&repo.templates_dir().join(name), MAX_DOC_BYTES)?;
    let text = match own {
        Some(t) => t,
        None => BUILTIN_TEMPLATES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| (*t).to_owned())
            .unwrap_or_default(),
    };
    // One pass per placeholder: values are inserted as text and never re-expanded.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let value = match &after[..end] {
            "bip" => &fill.bip,
            "title" => &fill.title,
            "date" => &fill.date,
            "proposal" => &fill.proposal,
            "author" => &fill.author,
            "body" => &fill.body,
            "dir" => &fill.dir,
            _ => {
                out.push_str(&rest[start..start + 2 + end + 2]);
                rest = &after[end + 2..];
                continue;
            }
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a kind that creates files did.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// The BIP.
    pub bip: u32,
    /// Its directory, relative to the repository.
    pub dir: String,
    /// Files created by this run.
    pub created: Vec<String>,
    /// Files that already existed and were left alone.
    pub existing: Vec<String>,
}

fn create_docs(
    repo: &Repo,
    n: u32,
    fill: &Fill,
    docs: &[(&str, String)],
) -> Result<Created, GovError> {
    let dir = bip_dir(repo, n);
    let mut res = Created {
        bip: n,
        dir: repo.rel(&dir),
        created: Vec::new(),
        existing: Vec::new(),
    };
    for (template, file) in docs {
        let path = dir.join(file);
        let text = render(repo, template, fill)?;
        if create_if_missing(&path, &text)? {
            res.created.push(repo.rel(&path));
        } else {
            res.existing.push(repo.rel(&path));
        }
    }
    Ok(res)
}

fn fill_for(repo: &Repo, n: u32, title: &str, date: &str) -> Fill {
    Fill {
        bip: format!("{n:02}"),
        title: title.to_owned(),
        date: date.to_owned(),
        proposal: "none".into(),
        author: "unknown".into(),
        body: String::new(),
        dir: repo.rel(&bip_dir(repo, n)),
    }
}

/// `start_bip`: the BIP's skeleton (`BIP-NN.md`, `BIP-NN-implementation-plan.md`) from
/// the templates; files already there are left alone.
///
/// # Errors
/// Templates or files that cannot be read or written.
pub fn start_bip(repo: &Repo, n: u32, title: &str, date: &str) -> Result<Created, GovError> {
    fsio::check_date(date)?;
    let name = bip_name(n);
    let fill = fill_for(repo, n, title, date);
    create_docs(
        repo,
        n,
        &fill,
        &[
            ("BIP.md", format!("{name}.md")),
            (
                "implementation-plan.md",
                format!("{name}-implementation-plan.md"),
            ),
        ],
    )
}

/// `create_impl_summary`: `IMPLEMENTATION_SUMMARY.md` from its template, only if it is
/// missing. The BIP must exist.
///
/// # Errors
/// `not_found` when the BIP directory does not exist.
pub fn create_impl_summary(repo: &Repo, n: u32, date: &str) -> Result<Created, GovError> {
    fsio::check_date(date)?;
    let dir = bip_dir(repo, n);
    if !dir.is_dir() {
        return Err(GovError::NotFound {
            what: "BIP directory (run start_bip first)",
            path: dir,
        });
    }
    let fill = fill_for(repo, n, "", date);
    create_docs(
        repo,
        n,
        &fill,
        &[(
            "IMPLEMENTATION_SUMMARY.md",
            "IMPLEMENTATION_SUMMARY.md".into(),
        )],
    )
}

/// A file a checklist item references.
#[derive(Debug, Clone, Serialize)]
pub struct FileRef {
    /// As written in the item.
    pub path: String,
    /// Whether it exists (in the repository, or in the BIP's directory).
    pub exists: bool,
    /// Why it was not checked, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Line number in `BIP-NN.md`, from 1.
    pub line: usize,
    /// The text after the box.
    pub text: String,
    /// Whether it is ticked.
    pub done: bool,
    /// The files it names (in backticks).
    pub files: Vec<FileRef>,
}

/// What `verify_bip` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The BIP.
    pub bip: u32,
    /// Its stage.
    pub stage: Stage,
    /// Review rounds recorded.
    pub review_rounds: u32,
    /// Every checklist item.
    pub items: Vec<Item>,
    /// Items ticked.
    pub done: usize,
    /// Items in all.
    pub total: usize,
    /// Referenced files that do not exist (or were refused).
    pub missing_files: Vec<String>,
    /// Every item ticked and every referenced file there.
    pub complete: bool,
}

/// Whether a backticked span looks like a file path (`src/a.rs`, `README.md`).
fn looks_like_path(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(char::is_whitespace)
        && !s.starts_with('-')
        && (s.contains('/')
            || s.rsplit_once('.').is_some_and(|(a, e)| {
                !a.is_empty()
                    && (1..=5).contains(&e.len())
                    && e.bytes().all(|b| b.is_ascii_alphanumeric())
            }))
}

/// `verify_bip`: the checklist of `BIP-NN.md`, items done and not done, and whether the
/// files they reference exist.
///
/// # Errors
/// `not_found` when the BIP or its `BIP-NN.md` does not exist.
pub fn verify_bip(repo: &Repo, n: u32) -> Result<Verification, GovError> {
    let files = bip_files(repo, n)?;
    let dir = bip_dir(repo, n);
    let doc = dir.join(format!(
        "{}.md",
        dir.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let Some(text) = read_text(&doc, MAX_DOC_BYTES)? else {
        return Err(GovError::NotFound {
            what: "BIP document",
            path: doc,
        });
    };
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line
            .trim_start()
            .trim_start_matches(['-', '*'])
            .trim_start();
        let (done, rest) = if let Some(r) = t.strip_prefix("[ ]") {
            (false, r)
        } else if let Some(r) = t.strip_prefix("[x]").or_else(|| t.strip_prefix("[X]")) {
            (true, r)
        } else {
            continue;
        };
        if !line.trim_start().starts_with(['-', '*']) {
            continue;
        }
        let refs = rest
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| looks_like_path(s))
            .map(|p| {
                if fsio::is_safe_relative(p) {
                    let exists = [repo.root.join(p), dir.join(p)]
                        .iter()
                        .any(|c| std::fs::symlink_metadata(c).is_ok());
                    FileRef {
                        path: p.to_owned(),
                        exists,
                        refused: None,
                    }
                } else {
                    FileRef {
                        path: p.to_owned(),
                        exists: false,
                        refused: Some("outside the repository; not checked".into()),
                    }
                }
            })
            .collect();
        items.push(Item {
            line: i + 1,
            text: rest.trim().to_owned(),
            done,
            files: refs,
        });
    }
    let done = items.iter().filter(|i| i.done).count();
    let missing_files: Vec<String> = items
        .iter()
        .flat_map(|i| i.files.iter())
        .filter(|f| !f.exists)
        .map(|f| f.path.clone())
        .collect();
    Ok(Verification {
        bip: n,
        stage: files.stage,
        review_rounds: files.review_rounds,
        total: items.len(),
        complete: done == items.len() && missing_files.is_empty(),
        done,
        items,
        missing_files,
    })
}

/// What `bootstrap_bip_from_proposal` did.
#[derive(Debug, Clone, Serialize)]
pub struct Bootstrapped {
    /// The proposal.
    pub proposal_id: String,
    /// Whether an existing BIP already implemented it (then nothing was created).
    pub reused: bool,
    /// The files.
    #[serde(flatten)]
    pub docs: Created,
}

/// The BIP whose `BIP-NN.md` header names `proposal_id`, if any.
///
/// # Errors
/// The BIPs directory cannot be listed.
pub fn bip_of_proposal(repo: &Repo, proposal_id: &str) -> Result<Option<u32>, GovError> {
    for name in list_dir(&repo.bips_dir(), MAX_DIR_ENTRIES)?.unwrap_or_default() {
        let Ok(n) = parse_bip(&name) else { continue };
        let doc = repo.bips_dir().join(&name).join(format!("{name}.md"));
        if let Ok(Some(text)) = read_text(&doc, MAX_DOC_BYTES) {
            let (header, _) = parse_header(&text);
            if header.get("proposal").map(|p| p.trim_start_matches('#')) == Some(proposal_id) {
                return Ok(Some(n));
            }
        }
    }
    Ok(None)
}

/// `bootstrap_bip_from_proposal`: the BIP documents of an approved proposal. Idempotent
/// through the proposal: when a BIP already names it, that BIP is returned (`reused`)
/// and its missing documents created. `bip` defaults to the next free number.
///
/// # Errors
/// `not_found` for an unknown proposal; `refused` when it is not approved (or in
/// implementation) or when `bip` is taken by another proposal's BIP.
pub fn bootstrap_bip_from_proposal(
    repo: &Repo,
    proposal_id: &str,
    bip: Option<u32>,
    date: &str,
) -> Result<Bootstrapped, GovError> {
    fsio::check_date(date)?;
    let p = find_proposal(repo, proposal_id)?;
    if !matches!(
        p.state,
        ProposalState::Approved | ProposalState::InImplementation
    ) {
        return Err(GovError::Refused(format!(
            "proposal {proposal_id} is {}, not approved: a BIP starts from an approved proposal",
            p.state.dir()
        )));
    }
    let existing = bip_of_proposal(repo, proposal_id)?;
    let n = match (existing, bip) {
        (Some(e), Some(b)) if e != b => {
            return Err(GovError::Refused(format!(
                "proposal {proposal_id} already has BIP {e}, not {b}"
            )));
        }
        (Some(e), _) => e,
        (None, Some(b)) => {
            if bip_dir(repo, b)
                .join(format!("{}.md", bip_name(b)))
                .exists()
            {
                return Err(GovError::Refused(format!(
                    "BIP {b} exists and implements another proposal"
                )));
            }
            b
        }
        (None, None) => next_free(repo)?,
    };
    let name = bip_name(n);
    let fill = Fill {
        proposal: p.id.clone(),
        author: p.get("author").unwrap_or("unknown").to_owned(),
        body: p.body.clone(),
        ..fill_for(repo, n, &p.title(), date)
    };
    let docs = create_docs(
        repo,
        n,
        &fill,
        &[
            ("BIP.md", format!("{name}.md")),
            (
                "implementation-plan.md",
                format!("{name}-implementation-plan.md"),
            ),
        ],
    )?;
    Ok(Bootstrapped {
        proposal_id: p.id,
        reused: existing.is_some(),
        docs,
    })
}

/// One more than the highest BIP number present (1 when there is none).
fn next_free(repo: &Repo) -> Result<u32, GovError> {
    let names = list_dir(&repo.bips_dir(), MAX_DIR_ENTRIES)?.unwrap_or_default();
    let max = names
        .iter()
        .filter_map(|n| parse_bip(n).ok())
        .max()
        .unwrap_or(0);
    max.checked_add(1).filter(|n| *n <= 9_999).ok_or_else(|| {
        GovError::Invalid(Problem::new(
            repo.rel(&repo.bips_dir()),
            "",
            ProblemCode::TooLarge,
            "no free BIP number",
        ))
    })
}
