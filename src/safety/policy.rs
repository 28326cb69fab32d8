//! The redaction policy as written in the `[safety]` section of the config file (or
//! sent to `op.safety.reload` as JSON): mode, scope, rules and their order, redaction
//! paths and keys, payload size.
//!
//! This is plain data. [`super::Redactor::compile`] turns it into the compiled form
//! that runs on every publish, and refuses a policy whose regexes or globs are invalid,
//! so that a bad reload leaves the running policy in place.

use serde::{Deserialize, Serialize};

/// What the safety layer does with what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Inspect nothing.
    Off,
    /// Detect, count and emit an event; never alter or block.
    #[default]
    Monitor,
    /// Redact matches in place and refuse publishes that a blocking rule matches.
    Enforce,
}

impl Mode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Monitor => "monitor",
            Mode::Enforce => "enforce",
        }
    }
}

/// What a rule does when it matches, in enforce mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace the match (or its `secret` capture group) with the replacement text.
    #[default]
    Redact,
    /// Refuse the whole publish with the `blocked` error code.
    Block,
}

/// One entry of `[[safety.rules]]`.
///
/// With a `pattern` it defines a custom rule. Without one, `name` must be a built-in
/// rule, and the entry sets that rule's action and its place in the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule name, reported in events and `blocked` errors (never the matched text).
    pub name: String,
    /// A regex (Rust `regex` syntax). A named group `secret` limits redaction to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// What a match does in enforce mode (default `redact`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Case-insensitive literals, one of which every match contains. They feed the
    /// prefilter; a custom rule without keywords makes every in-scope publish walk
    /// its JSON (correct, only slower).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// The whole `[safety]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SafetyConfig {
    /// `off`, `monitor` (default) or `enforce`.
    pub mode: Mode,
    /// Address globs (`secure-*`, `bip-*:review_*`) the policy applies to; empty means
    /// every address. PRIVATE frames have no address and are in scope only when this
    /// list is empty.
    pub include: Vec<String>,
    /// Address globs left alone even when `include` covers them.
    pub exclude: Vec<String>,
    /// Largest serialized payload accepted, in bytes; 0 for no limit. Over it a
    /// publish is blocked (enforce) or flagged (monitor).
    pub max_payload_bytes: usize,
    /// Most rule matches one payload may hold; 0 for no limit. The work of redacting a
    /// payload grows with its matches (each is captured and replaced, and the string
    /// scanned again), so hostile text made of thousands of them is decided before
    /// that work: blocked with rule `scan_budget` (enforce) or flagged (monitor). The
    /// count costs one fast regex pass per candidate rule, stopped at the limit.
    pub max_matches: usize,
    /// Use the built-in rules for probable secrets (see `docs/SECURITY.md`).
    pub builtin: bool,
    /// Built-in rules to leave out, by name.
    pub disable: Vec<String>,
    /// Custom rules and overrides of built-in ones, applied in this order, before the
    /// remaining built-in rules.
    pub rules: Vec<RuleConfig>,
    /// JSON object keys whose values are redacted whole, compared ignoring case and
    /// `-` / `_` (`api_key` matches `API-Key` and `apikey`).
    pub redact_keys: Vec<String>,
    /// JSON paths redacted whole: `payload.env.*`, `payload.args.token`; `*` is any
    /// key or array index.
    pub redact_paths: Vec<String>,
    /// Text put in place of a redacted match; `{rule}` is replaced by the rule name.
    pub replacement: String,
    /// Where decisions are published as SYSTEM frames (`room:channel`); empty for
    /// none. This address is never inspected itself.
    pub events: String,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            mode: Mode::Monitor,
            include: Vec::new(),
            exclude: Vec::new(),
            max_payload_bytes: 0,
            max_matches: 256,
            builtin: true,
            disable: Vec::new(),
            rules: Vec::new(),
            redact_keys: [
                "password",
                "passwd",
                "secret",
                "client_secret",
                "api_key",
                "access_token",
                "refresh_token",
                "auth_token",
                "private_key",
                "authorization",
            ]
            .map(str::to_owned)
            .to_vec(),
            redact_paths: Vec::new(),
            replacement: "[REDACTED:{rule}]".to_owned(),
            events: "safety:events".to_owned(),
        }
    }
}

impl SafetyConfig {
    /// A policy in `mode` with every other field at its default.
    pub fn with_mode(mode: Mode) -> Self {
        SafetyConfig {
            mode,
            ..SafetyConfig::default()
        }
    }
}
