//! The repository: its root, its configurable paths ([`Layout`]) and its base
//! [`Rules`], read from an optional `governance.json` at the root:
//!
//! ```json
//! {"paths": {"proposals": "proposals", "bips": "bips", "minutes": "minutes",
//!            "templates": "templates"},
//!  "rules": {"approve": 60, "revise": 40, "generals": ["ada", "grace"]}}
//! ```
//!
//! Invariant: every configured path is relative and stays inside the root, so nothing
//! a repository says can make a function read or write elsewhere.

use super::error::{GovError, Problem, ProblemCode};
use super::fsio::{self, join_safe};
use super::limits::MAX_JSON_BYTES;
use super::rules::{Rules, RulesConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of the repository's configuration file, at its root.
pub const CONFIG_FILE: &str = "governance.json";

/// Where things live inside the repository (relative paths).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Layout {
    /// The proposals tree (`proposals/<state>/NNN-slug.md`).
    pub proposals: String,
    /// The BIP directories (`bips/BIP-NN/`).
    pub bips: String,
    /// The minutes (`minutes/NNNN/`).
    pub minutes: String,
    /// Templates for new documents (`BIP.md`, `implementation-plan.md`,
    /// `IMPLEMENTATION_SUMMARY.md`); built-in ones are used for any that is missing.
    pub templates: String,
}

impl Default for Layout {
    fn default() -> Layout {
        Layout {
            proposals: "proposals".into(),
            bips: "bips".into(),
            minutes: "minutes".into(),
            templates: "templates".into(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    paths: Layout,
    rules: RulesConfig,
}

/// A governance repository opened at its root.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The root directory.
    pub root: PathBuf,
    /// Its paths.
    pub layout: Layout,
    /// Its base rules (a minute's `rules.json` overlays them).
    pub rules: Rules,
}

impl Repo {
    /// Opens the repository at `root`, reading `governance.json` when there is one.
    ///
    /// # Errors
    /// `not_found` when `root` is not a directory; `invalid_file` for a malformed
    /// `governance.json` or a path in it that leaves the root.
    pub fn open(root: &Path) -> Result<Repo, GovError> {
        if !root.is_dir() {
            return Err(GovError::NotFound {
                what: "repository directory",
                path: root.to_owned(),
            });
        }
        let cfg_path = root.join(CONFIG_FILE);
        let cfg: ConfigFile = match fsio::read_text(&cfg_path, MAX_JSON_BYTES)? {
            None => ConfigFile::default(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                GovError::Invalid(Problem::new(
                    CONFIG_FILE,
                    "",
                    ProblemCode::InvalidJson,
                    e.to_string(),
                ))
            })?,
        };
        let l = &cfg.paths;
        for (field, p) in [
            ("paths.proposals", &l.proposals),
            ("paths.bips", &l.bips),
            ("paths.minutes", &l.minutes),
            ("paths.templates", &l.templates),
        ] {
            if !fsio::is_safe_relative(p) {
                return Err(GovError::Invalid(Problem::new(
                    CONFIG_FILE,
                    field,
                    ProblemCode::UnsafePath,
                    format!("{p:?} must be a relative path inside the repository"),
                )));
            }
        }
        let rules = Rules::default().overlay(&cfg.rules, CONFIG_FILE)?;
        Ok(Repo {
            root: root.to_owned(),
            layout: cfg.paths,
            rules,
        })
    }

    /// The proposals tree.
    pub fn proposals_dir(&self) -> PathBuf {
        self.root.join(&self.layout.proposals)
    }

    /// The BIPs directory.
    pub fn bips_dir(&self) -> PathBuf {
        self.root.join(&self.layout.bips)
    }

    /// The minutes directory.
    pub fn minutes_dir(&self) -> PathBuf {
        self.root.join(&self.layout.minutes)
    }

    /// The templates directory.
    pub fn templates_dir(&self) -> PathBuf {
        self.root.join(&self.layout.templates)
    }

    /// The directory of minute `id` (checked: 1 to 6 digits).
    ///
    /// # Errors
    /// `invalid_argument` for a malformed id.
    pub fn minute_dir(&self, id: &str) -> Result<PathBuf, GovError> {
        fsio::check_numeric_id("minute", id, 6)?;
        Ok(self.minutes_dir().join(id))
    }

    /// `rel` inside the root, checked.
    ///
    /// # Errors
    /// `invalid_argument` naming `field` when `rel` leaves the root.
    pub fn path(&self, rel: &str, field: &str) -> Result<PathBuf, GovError> {
        join_safe(&self.root, rel, field)
    }

    /// `path` relative to the root, for reports (`/` separated).
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    }
}

/// The repository root above a minute directory: the nearest ancestor (at most four
/// levels up) holding `governance.json`, else `<minute>/../..` (the default layout).
pub fn root_above(minute_dir: &Path) -> PathBuf {
    let mut cur = minute_dir.parent();
    for _ in 0..4 {
        match cur {
            Some(d) if d.join(CONFIG_FILE).is_file() => return d.to_owned(),
            Some(d) => cur = d.parent(),
            None => break,
        }
    }
    minute_dir
        .parent()
        .and_then(Path::parent)
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."))
}
