//! The `[approval]` section of the config file, as written: the default, whether the
//! built-in destructive list is on, the rules in order with their examples.
//!
//! This is plain data; [`Policy::from_config`](super::Policy::from_config) compiles
//! it and refuses a section whose patterns are invalid or whose examples fail, so a
//! bad policy never replaces a good one. Unknown keys are refused (a misspelt
//! `decison = "deny"` must not silently become the default).

use super::policy::PolicyError;
use serde::{Deserialize, Serialize};

/// What a rule (or the policy, by default) says about an action. Ordered by
/// strictness: `Allow < Ask < Deny`, so the strictest of several is their `max`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Run it without asking.
    Allow,
    /// A person decides (`prompt` is accepted as a synonym).
    #[serde(alias = "prompt")]
    #[default]
    Ask,
    /// Refuse it (`forbidden` is accepted as a synonym).
    #[serde(alias = "forbidden")]
    Deny,
}

impl Effect {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Ask => "ask",
            Effect::Deny => "deny",
        }
    }
}

/// What kind of action a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// A shell command line (`command`).
    #[default]
    Shell,
    /// Writing a file (`path`).
    Write,
    /// Reading a file (`path`).
    Read,
    /// A network connection (`host` or `url`).
    Net,
    /// A git command (`command`, with or without the leading `git`); rules match the
    /// words after `git` and its global options, also inside shell commands.
    Git,
    /// Publishing a package or release (`host`/`registry`).
    Publish,
}

impl Tool {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Shell => "shell",
            Tool::Write => "write",
            Tool::Read => "read",
            Tool::Net => "net",
            Tool::Git => "git",
            Tool::Publish => "publish",
        }
    }
}

/// One pattern or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// `command = "cargo test"`.
    One(String),
    /// `command = ["cargo test", "cargo check"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The patterns as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Examples a rule must (and must not) match; checked when the policy loads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// Actions the rule matches (for a shell rule: at least one part of each line).
    #[serde(default, rename = "match")]
    pub matches: Vec<String>,
    /// Actions the rule does not match (no part of each line).
    #[serde(default)]
    pub not_match: Vec<String>,
}

/// One `[[approval.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A name, reported as who decided; default `rules[<index>]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tool; default `shell` with `command`, `net` with `hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    /// Command patterns (shell, git); none matches every command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<OneOrMany>,
    /// Path globs (read, write); none matches every path.
    #[serde(default, alias = "path", skip_serializing_if = "Option::is_none")]
    pub paths: Option<OneOrMany>,
    /// Host patterns (net, publish); none matches every host.
    #[serde(default, alias = "host", skip_serializing_if = "Option::is_none")]
    pub hosts: Option<OneOrMany>,
    /// Only paths outside (`true`) or inside (`false`) the task's worktree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_worktree: Option<bool>,
    /// Only tasks of this kind (`*` wildcards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Only tasks of this BIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bip: Option<u64>,
    /// Only requests stating this role (the consumer states it: see APPROVALS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// allow, ask or deny.
    pub decision: Effect,
    /// Why, shown with the decision.
    #[serde(
        default,
        alias = "justification",
        skip_serializing_if = "Option::is_none"
    )]
    pub reason: Option<String>,
    /// Examples checked at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<Examples>,
    /// Built-in rules this rule switches off wherever it matches (by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
    /// How long a request this rule leaves to a person waits, in seconds (1 to
    /// [`MAX_TIMEOUT_SECS`]); default `[approval] timeout_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// The longest an approval may wait, in seconds (7 days): a request held longer
/// holds its lease, and its task, for longer than anyone remembers asking.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The `[approval]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    /// What an action no rule matches gets (default `ask`).
    #[serde(default = "default_effect")]
    pub default: Effect,
    /// Whether the built-in destructive list applies (default `true`).
    #[serde(default = "yes")]
    pub builtin: bool,
    /// How long a person has to answer, in seconds (default 900; 1 to
    /// [`MAX_TIMEOUT_SECS`]), unless the deciding rule says otherwise.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// The rules, in order.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

fn default_effect() -> Effect {
    Effect::Ask
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    900
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            default: default_effect(),
            builtin: true,
            timeout_secs: default_timeout(),
            rules: Vec::new(),
        }
    }
}

impl ApprovalConfig {
    /// The `[approval]` section of a TOML document (the defaults when it has none).
    /// Only that section is read, so the rest of the file may hold anything.
    ///
    /// # Errors
    /// [`PolicyError::Config`] when the document is not TOML or the section does not
    /// have the expected shape.
    ///
    /// # Examples
    /// ```
    /// use hivebus::ops::approval::ApprovalConfig;
    /// let c = ApprovalConfig::from_toml(r#"
    ///     [server]
    ///     anything = "else"
    ///     [[approval.rules]]
    ///     command = "cargo test"
    ///     decision = "allow"
    /// "#).unwrap();
    /// assert_eq!(c.rules.len(), 1);
    /// assert_eq!(c.timeout_secs, 900);
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, PolicyError> {
        let doc: toml::Table =
            toml::from_str(text).map_err(|e| PolicyError::Config(e.to_string()))?;
        match doc.get("approval") {
            None => Ok(ApprovalConfig::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| PolicyError::Config(format!("[approval]: {e}"))),
        }
    }
}
