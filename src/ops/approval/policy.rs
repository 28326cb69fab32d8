//! The approval policy: ordered rules over structured actions (a shell command, a
//! file read or write, a network host, a git command, a publish), each saying
//! `allow`, `ask` or `deny` with a reason, plus the built-in destructive list.
//!
//! Invariants:
//! - **Deny > ask > allow.** Every rule that matches is counted; the strictest
//!   effect wins, and among rules with that effect the first in order is named.
//!   Nothing matching means the default (`ask` unless configured).
//! - **A compound command is allowed only if every part is.** Any denied part denies
//!   the whole; otherwise any part that asks (or that nothing allows) asks.
//! - **What cannot be read fails closed**: a command line the splitter refuses, an
//!   action without its command, path or host, gets `ask` (or the default when it is
//!   stricter), never `allow`.
//! - A write through a shell redirection (`> file`) is judged as a write of that
//!   file, and a path a `read` rule names explicitly is judged when it appears as an
//!   argument, so `cat .env` meets the rules about reading `.env`.

use super::action::Action;
use super::builtin::{self, Builtin};
use super::config::{ApprovalConfig, Effect, Tool};
use super::pattern::Located;
use super::rule::Rule;
use super::shell::{self, SimpleCommand};
use serde::Serialize;
use thiserror::Error;

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file or section does not have the expected shape.
    #[error("invalid approval config: {0}")]
    Config(String),
    /// A rule is malformed.
    #[error("approval.rules[{index}] ({pattern}): {why}")]
    InvalidRule {
        /// Its index in `[[approval.rules]]`.
        index: usize,
        /// Its patterns.
        pattern: String,
        /// What is wrong.
        why: String,
    },
    /// An example of a rule does not behave as written.
    #[error("approval.rules[{index}] ({pattern}): {expected} example `{example}` fails: {detail}")]
    ExampleFailed {
        /// The rule's index.
        index: usize,
        /// Its patterns.
        pattern: String,
        /// The example.
        example: String,
        /// `match` or `not_match`.
        expected: &'static str,
        /// What happened instead.
        detail: String,
    },
}

impl PolicyError {
    /// A stable code for the error.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Config(_) => "invalid_config",
            PolicyError::InvalidRule { .. } => "invalid_rule",
            PolicyError::ExampleFailed { .. } => "example_failed",
        }
    }
}

/// Who and where an action comes from, as rules' conditions see it.
pub(crate) struct Subject<'a> {
    pub(crate) kind: Option<&'a str>,
    pub(crate) bip: Option<u64>,
    pub(crate) role: Option<&'a str>,
}

/// The rule that decided: a configured one (with its index) or `builtin:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    /// Its index in `[[approval.rules]]`; none for a built-in rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// Its name.
    pub name: String,
}

/// The decision on one part: a simple command of a line, or one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartDecision {
    /// The part, as displayed.
    pub part: String,
    /// What it gets.
    pub verdict: Effect,
    /// The rule that decided; none when the default did.
    pub rule: Option<RuleRef>,
    /// Why.
    pub reason: String,
}

/// The decision on an action, explained part by part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// What the action gets.
    pub verdict: Effect,
    /// The rule that decided (that of the deciding part); none for the default or
    /// when the action could not be read.
    pub rule: Option<RuleRef>,
    /// Why.
    pub reason: String,
    /// Each part and what decided it.
    pub parts: Vec<PartDecision>,
    /// Why the action could not be read, when it could not (`unbalanced_quote: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One judgement, before the strictest is picked.
#[derive(Debug, Clone)]
struct Judgement {
    effect: Effect,
    rule: Option<RuleRef>,
    reason: String,
}

impl Judgement {
    fn of_rule(r: &Rule) -> Judgement {
        Judgement {
            effect: r.effect,
            rule: Some(RuleRef {
                index: Some(r.index),
                name: r.name.clone(),
            }),
            reason: r.reason.clone(),
        }
    }

    fn of_builtin(b: &Builtin) -> Judgement {
        Judgement {
            effect: b.effect,
            rule: Some(RuleRef {
                index: None,
                name: format!("builtin:{}", b.name),
            }),
            reason: b.reason.to_owned(),
        }
    }
}

/// The strictest judgement; the first on ties.
fn strictest(list: impl IntoIterator<Item = Judgement>) -> Option<Judgement> {
    let mut best: Option<Judgement> = None;
    for j in list {
        if best.as_ref().is_none_or(|b| j.effect > b.effect) {
            best = Some(j);
        }
    }
    best
}

/// A compiled approval policy. Cheap to share behind an `Arc`; deciding takes `&self`.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    default: Effect,
    builtin: bool,
    timeout_secs: u64,
    /// The section it was compiled from, for listings and per-rule timeouts.
    config: ApprovalConfig,
}

impl Policy {
    /// Compiles `c`: parses every pattern and checks every rule's examples.
    ///
    /// # Errors
    /// [`PolicyError::InvalidRule`] for a malformed rule, [`PolicyError::ExampleFailed`]
    /// naming the rule and the first example that does not behave as written.
    ///
    /// # Examples
    /// ```
    /// use hivebus::ops::approval::{Action, ApprovalConfig, Effect, Policy};
    /// let c = ApprovalConfig::from_toml(r#"
    ///     [[approval.rules]]
    ///     command = "cargo test"
    ///     decision = "allow"
    ///     examples = { match = ["cargo test --all"], not_match = ["cargo publish"] }
    /// "#).unwrap();
    /// let p = Policy::from_config(&c).unwrap();
    /// assert_eq!(p.decide(&Action::shell("cargo test && cargo fmt")).verdict, Effect::Ask);
    /// assert_eq!(p.decide(&Action::shell("cargo test -p x")).verdict, Effect::Allow);
    /// ```
    pub fn from_config(c: &ApprovalConfig) -> Result<Policy, PolicyError> {
        let mut rules = Vec::with_capacity(c.rules.len());
        super::timeout::check(c)?;
        for (i, rc) in c.rules.iter().enumerate() {
            let r = Rule::compile(i, rc)?;
            r.check_examples(rc)?;
            rules.push(r);
        }
        Ok(Policy {
            rules,
            default: c.default,
            builtin: c.builtin,
            timeout_secs: c.timeout_secs,
            config: c.clone(),
        })
    }

    /// The `[approval]` section this policy was compiled from.
    pub fn config(&self) -> &ApprovalConfig {
        &self.config
    }

    /// What an action no rule matches gets.
    pub fn default_effect(&self) -> Effect {
        self.default
    }

    /// How long a person has to answer (for the durable approvals).
    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs
    }

    /// How many configured rules the policy has.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Decides on `a`, explaining each part.
    pub fn decide(&self, a: &Action) -> Decision {
        let s = Subject {
            kind: a.kind.as_deref(),
            bip: a.bip,
            role: a.role.as_deref(),
        };
        let mut parts = Vec::new();
        match a.tool {
            Tool::Shell | Tool::Git => {
                let Some(cmd) = a.command.as_deref() else {
                    return self.unreadable("no `command` to decide on", None);
                };
                let line = match a.tool {
                    Tool::Git if !starts_with_git(cmd) => format!("git {cmd}"),
                    _ => cmd.to_owned(),
                };
                let split = match shell::split(&line) {
                    Ok(p) if p.is_empty() => return self.unreadable("an empty command", None),
                    Ok(p) => p,
                    Err(e) => {
                        let why = format!("{}: {e}", e.code());
                        return self
                            .unreadable(&format!("the command cannot be split ({e})"), Some(why));
                    }
                };
                // The directory each part runs in: a `cd` moves the parts after it.
                let mut cwd = Some(a.cwd.clone());
                for (i, p) in split.iter().enumerate() {
                    let j = self.judge_part(&split, i, cwd.as_ref().map(Option::as_deref), a, &s);
                    parts.push(part(p.display(), j));
                    cwd = after_cd(p, cwd);
                }
            }
            Tool::Read | Tool::Write => {
                if a.paths.is_empty() {
                    return self.unreadable("no `path` to decide on", None);
                }
                for p in &a.paths {
                    let j = self.judge_path(a.tool, p, a.cwd.as_deref(), a, &s);
                    parts.push(part(p.clone(), j));
                }
            }
            Tool::Net | Tool::Publish => {
                let host = match (&a.host, a.tool) {
                    (Some(h), _) => h.clone(),
                    (None, Tool::Publish) => String::new(),
                    (None, _) => return self.unreadable("no `host` or `url` to decide on", None),
                };
                let j = self.judge_host(a.tool, &host, &s);
                parts.push(part(host, j));
            }
        }
        let verdict = parts.iter().map(|p| p.verdict).max().unwrap_or(Effect::Ask);
        let (rule, reason) = match parts.iter().find(|p| p.verdict == verdict) {
            Some(p) if parts.len() == 1 => (p.rule.clone(), p.reason.clone()),
            Some(p) if verdict == Effect::Allow => (
                p.rule.clone(),
                format!("all {} parts are allowed", parts.len()),
            ),
            Some(p) => (p.rule.clone(), format!("`{}`: {}", p.part, p.reason)),
            None => (None, String::new()),
        };
        Decision {
            verdict,
            rule,
            reason,
            parts,
            error: None,
        }
    }

    /// An action that cannot be read: ask, or the default when it is stricter.
    fn unreadable(&self, reason: &str, error: Option<String>) -> Decision {
        Decision {
            verdict: self.default.max(Effect::Ask),
            rule: None,
            reason: reason.to_owned(),
            parts: Vec::new(),
            error: Some(error.unwrap_or_else(|| reason.to_owned())),
        }
    }

    fn fallback(&self, what: &str) -> Judgement {
        Judgement {
            effect: self.default,
            rule: None,
            reason: format!(
                "no rule matches {what}; the default is {}",
                self.default.as_str()
            ),
        }
    }

    /// Adds the matching rules to `hits` and the built-ins they override to `off`.
    fn collect<'r>(
        &'r self,
        s: &Subject<'_>,
        matches: impl Fn(&Rule) -> bool,
        hits: &mut Vec<Judgement>,
        off: &mut Vec<&'r str>,
    ) {
        for r in self.rules.iter().filter(|r| r.applies(s) && matches(r)) {
            hits.push(Judgement::of_rule(r));
            off.extend(r.overrides.iter().copied());
        }
    }

    fn builtins(&self, list: Vec<&'static Builtin>, off: &[&str], hits: &mut Vec<Judgement>) {
        if self.builtin {
            hits.extend(
                list.into_iter()
                    .filter(|b| !off.contains(&b.name))
                    .map(Judgement::of_builtin),
            );
        }
    }

    /// Part `i` of a shell line: its command, the files it names, its redirections.
    /// `cwd` is where it runs: `None` when an earlier `cd` made that unknowable.
    fn judge_part(
        &self,
        parts: &[SimpleCommand],
        i: usize,
        cwd: Option<Option<&str>>,
        a: &Action,
        s: &Subject<'_>,
    ) -> Judgement {
        let p = &parts[i];
        let (mut hits, mut off) = (Vec::new(), Vec::new());
        self.collect(s, |r| r.matches_command(p), &mut hits, &mut off);
        self.builtins(builtin::shell_hits(parts, i), &off, &mut hits);
        // Files named as arguments meet the read rules that name them explicitly
        // (and only their ask and deny: an argument is not a read the rule allows).
        let named = p
            .words
            .iter()
            .skip(1)
            .map(|w| w.rsplit_once('=').map_or(w.as_str(), |(_, v)| v))
            .chain(
                p.redirects
                    .iter()
                    .filter(|r| r.reads())
                    .map(|r| r.target.as_str()),
            );
        for path in named {
            let loc = Located::within(path, cwd.flatten(), a.root());
            hits.extend(
                self.rules
                    .iter()
                    .filter(|r| r.effect > Effect::Allow && r.names_paths() && r.applies(s))
                    .filter(|r| r.matches_path(Tool::Read, &loc))
                    .map(Judgement::of_rule),
            );
        }
        let mut all = Vec::new();
        if !p.words.is_empty() {
            all.push(strictest(hits).unwrap_or_else(|| self.fallback("this command")));
        } else {
            all.extend(strictest(hits));
        }
        for r in p.redirects.iter().filter(|r| r.writes()) {
            let relative = !r.target.starts_with('/') && !r.target.starts_with('~');
            let mut j = match cwd {
                _ if r.runtime => self.unknowable("a path known only at run time"),
                None if relative => {
                    self.unknowable("relative to a directory an earlier `cd` changed")
                }
                _ => self.judge_path(Tool::Write, &r.target, cwd.flatten(), a, s),
            };
            j.reason = format!("redirect to {}: {}", r.target, j.reason);
            all.push(j);
        }
        strictest(all).unwrap_or_else(|| self.fallback("this command"))
    }

    /// What cannot be known before it runs: ask, or the default when stricter.
    fn unknowable(&self, why: &str) -> Judgement {
        Judgement {
            effect: self.default.max(Effect::Ask),
            rule: None,
            reason: why.to_owned(),
        }
    }

    fn judge_path(
        &self,
        tool: Tool,
        path: &str,
        cwd: Option<&str>,
        a: &Action,
        s: &Subject<'_>,
    ) -> Judgement {
        let loc = Located::within(path, cwd, a.root());
        let (mut hits, mut off) = (Vec::new(), Vec::new());
        self.collect(s, |r| r.matches_path(tool, &loc), &mut hits, &mut off);
        self.builtins(builtin::path_hits(tool, &loc), &off, &mut hits);
        strictest(hits).unwrap_or_else(|| self.fallback("this path"))
    }

    fn judge_host(&self, tool: Tool, host: &str, s: &Subject<'_>) -> Judgement {
        let (mut hits, mut off) = (Vec::new(), Vec::new());
        self.collect(s, |r| r.matches_host(tool, host), &mut hits, &mut off);
        if tool == Tool::Publish {
            self.builtins(builtin::publish_hits(), &off, &mut hits);
        }
        strictest(hits).unwrap_or_else(|| self.fallback("this host"))
    }
}

/// The directory the parts after `p` run in: `Some(cwd)` while it is known, `None`
/// once a `cd` went somewhere only known at run time. An absolute `cd` and one
/// starting with `.` are followed; any other relative `cd` may be redirected by
/// `CDPATH`, and `cd`, `cd -`, `cd ~`, `pushd`, `popd` depend on the environment.
/// Parts are in the order they were read, so a `cd` inside a subshell is taken as
/// lasting: the error is towards asking, never towards allowing.
fn after_cd(p: &SimpleCommand, cwd: Option<Option<String>>) -> Option<Option<String>> {
    let (prog, args, runtime) = match p.program() {
        "builtin" => (
            p.words.get(1).map_or("", String::as_str),
            p.words.get(2..).unwrap_or(&[]),
            p.runtime.get(2..).unwrap_or(&[]),
        ),
        prog => (
            prog,
            p.words.get(1..).unwrap_or(&[]),
            p.runtime.get(1..).unwrap_or(&[]),
        ),
    };
    match prog {
        "cd" => {}
        "pushd" | "popd" => return None,
        _ => return cwd,
    }
    let cwd = cwd?;
    let k = args
        .iter()
        .position(|w| !matches!(w.as_str(), "-L" | "-P" | "-e" | "-@"))?;
    if runtime.get(k).copied().unwrap_or(true) {
        return None;
    }
    let dir = args[k].as_str();
    if dir.starts_with('/') {
        Some(Some(dir.to_owned()))
    } else if dir == "." || dir == ".." || dir.starts_with("./") || dir.starts_with("../") {
        Some(Some(match cwd {
            Some(c) => format!("{c}/{dir}"),
            None => dir.to_owned(),
        }))
    } else {
        None
    }
}

/// Whether a git action's command already names `git` (`git push`, not `push`).
pub(crate) fn starts_with_git(cmd: &str) -> bool {
    // The program the shell would run first, quotes removed and wrappers peeled: an
    // argument vector arrives as `'git' push ...`, and reading that quoted word as
    // something else would put a second `git` in front and let `push --force` pass
    // every git rule (a hole found in review).
    let first = |w: &str| super::shell::basename(w) == "git";
    match super::shell::split(cmd) {
        Ok(parts) => parts
            .first()
            .and_then(|p| p.words.first())
            .is_some_and(|w| first(w)),
        Err(_) => cmd.split_whitespace().next().is_some_and(first),
    }
}

fn part(text: String, j: Judgement) -> PartDecision {
    PartDecision {
        part: text,
        verdict: j.effect,
        rule: j.rule,
        reason: j.reason,
    }
}
