//! One compiled rule: what it is about (tool, patterns, conditions on the task), what
//! it says, and the check of its examples.
//!
//! Invariants: a rule compiles only if every pattern parses, its patterns suit its
//! tool (no host pattern on a shell rule), and every name in `overrides` is a
//! built-in rule; and it is kept only if every example behaves as written.

use super::builtin;
use super::config::{Effect, RuleConfig, Tool};
use super::pattern::{glob, CommandPattern, HostPattern, Located, PathGlob};
use super::policy::{PolicyError, Subject};
use super::shell::{self, SimpleCommand};

/// A rule ready to match.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) tool: Tool,
    commands: Vec<CommandPattern>,
    paths: Vec<PathGlob>,
    hosts: Vec<HostPattern>,
    outside: Option<bool>,
    kind: Option<String>,
    bip: Option<u64>,
    role: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) reason: String,
    pub(crate) overrides: Vec<&'static str>,
}

impl Rule {
    /// Compiles `[[approval.rules]]` entry number `index`.
    pub(crate) fn compile(index: usize, c: &RuleConfig) -> Result<Rule, PolicyError> {
        let commands = c.command.as_ref().map(|p| p.to_vec()).unwrap_or_default();
        let paths = c.paths.as_ref().map(|p| p.to_vec()).unwrap_or_default();
        let hosts = c.hosts.as_ref().map(|p| p.to_vec()).unwrap_or_default();
        let pattern = describe(&commands, &paths, &hosts);
        let bad = |why: String| PolicyError::InvalidRule {
            index,
            pattern: pattern.clone(),
            why,
        };
        let tool = match c.tool {
            Some(t) => t,
            None if !commands.is_empty() => Tool::Shell,
            None if !hosts.is_empty() => Tool::Net,
            None => return Err(bad("say which tool it is about (`tool = ...`)".into())),
        };
        let fits = match tool {
            Tool::Shell | Tool::Git => paths.is_empty() && hosts.is_empty(),
            Tool::Read | Tool::Write => commands.is_empty() && hosts.is_empty(),
            Tool::Net | Tool::Publish => commands.is_empty() && paths.is_empty(),
        };
        if !fits {
            return Err(bad(format!(
                "a {} rule takes {} only",
                tool.as_str(),
                match tool {
                    Tool::Shell | Tool::Git => "`command`",
                    Tool::Read | Tool::Write => "`paths`",
                    Tool::Net | Tool::Publish => "`hosts`",
                }
            )));
        }
        if c.outside_worktree.is_some() && !matches!(tool, Tool::Read | Tool::Write) {
            return Err(bad("`outside_worktree` is for read and write rules".into()));
        }
        let overrides = c
            .overrides
            .iter()
            .map(|n| {
                builtin::find(n)
                    .map(|b| b.name)
                    .ok_or_else(|| bad(format!("`overrides` names no built-in rule `{n}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let name = c
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("rules[{index}]"));
        let reason = c.reason.clone().unwrap_or_else(|| {
            if pattern.is_empty() {
                format!("every {} action", tool.as_str())
            } else {
                format!("matches {pattern}")
            }
        });
        Ok(Rule {
            index,
            name,
            tool,
            commands: compile_all(&commands, CommandPattern::parse).map_err(&bad)?,
            paths: compile_all(&paths, PathGlob::parse).map_err(&bad)?,
            hosts: compile_all(&hosts, HostPattern::parse).map_err(&bad)?,
            outside: c.outside_worktree,
            kind: c.kind.clone(),
            bip: c.bip,
            role: c.role.clone(),
            effect: c.decision,
            reason,
            overrides,
        })
    }

    /// The patterns, for messages.
    pub(crate) fn pattern(&self) -> String {
        let list = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        describe(
            &list(self.commands.iter().map(CommandPattern::as_str).collect()),
            &list(self.paths.iter().map(PathGlob::as_str).collect()),
            &list(self.hosts.iter().map(HostPattern::as_str).collect()),
        )
    }

    /// Whether the task-level conditions hold (kind, BIP, role).
    pub(crate) fn applies(&self, s: &Subject<'_>) -> bool {
        let kind = self
            .kind
            .as_deref()
            .is_none_or(|k| s.kind.is_some_and(|have| glob(k, have)));
        let bip = self.bip.is_none_or(|b| s.bip == Some(b));
        let role = self.role.as_deref().is_none_or(|r| s.role == Some(r));
        kind && bip && role
    }

    /// Whether this rule is about `part` of a shell line (patterns only).
    pub(crate) fn matches_command(&self, part: &SimpleCommand) -> bool {
        let words: &[String] = match self.tool {
            Tool::Shell => &part.words,
            Tool::Git => match builtin::git_args(&part.words) {
                Some(g) => g,
                None => return false,
            },
            _ => return false,
        };
        // Only a rule that refuses or asks reads a run-time word as "could be
        // anything": an allow must match what is written.
        let skip = part.words.len() - words.len();
        let runtime: &[bool] = match self.effect {
            Effect::Allow => &[],
            _ => part.runtime.get(skip..).unwrap_or(&[]),
        };
        !words.is_empty()
            && (self.commands.is_empty()
                || self.commands.iter().any(|p| p.might_match(words, runtime)))
    }

    /// Whether the rule names paths (rather than matching every path).
    pub(crate) fn names_paths(&self) -> bool {
        !self.paths.is_empty()
    }

    /// Whether this rule is about `path` for `tool` (patterns only).
    pub(crate) fn matches_path(&self, tool: Tool, path: &Located) -> bool {
        self.tool == tool
            && self.outside.is_none_or(|o| o == path.outside())
            && (self.paths.is_empty() || self.paths.iter().any(|g| g.matches(path)))
    }

    /// Whether this rule is about `host` for `tool` (patterns only).
    pub(crate) fn matches_host(&self, tool: Tool, host: &str) -> bool {
        self.tool == tool && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.matches(host)))
    }

    /// Checks the rule's examples from `c`: each `match` example must match, each
    /// `not_match` must not. Conditions on the task (kind, BIP, role) are not part
    /// of the check.
    pub(crate) fn check_examples(&self, c: &RuleConfig) -> Result<(), PolicyError> {
        let Some(ex) = &c.examples else {
            return Ok(());
        };
        let cases = ex
            .matches
            .iter()
            .map(|e| (e, true))
            .chain(ex.not_match.iter().map(|e| (e, false)));
        for (example, want) in cases {
            let fail = |detail: String| PolicyError::ExampleFailed {
                index: self.index,
                pattern: self.pattern(),
                example: example.clone(),
                expected: if want { "match" } else { "not_match" },
                detail,
            };
            let got = match self.tool {
                Tool::Shell | Tool::Git => {
                    let line = match self.tool {
                        Tool::Git if !super::policy::starts_with_git(example) => {
                            format!("git {example}")
                        }
                        _ => example.clone(),
                    };
                    let parts = shell::split(&line)
                        .map_err(|e| fail(format!("it cannot be split: {e}")))?;
                    parts.iter().any(|p| self.matches_command(p))
                }
                Tool::Read | Tool::Write => {
                    self.matches_path(self.tool, &Located::resolve(example, None, None))
                }
                Tool::Net | Tool::Publish => self.matches_host(self.tool, example),
            };
            if got != want {
                return Err(fail(if want {
                    "the rule does not match it".into()
                } else {
                    "the rule matches it".into()
                }));
            }
        }
        Ok(())
    }
}

fn compile_all<T>(
    list: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    list.iter().map(|s| parse(s)).collect()
}

/// `command "a", "b"`, `paths "x"`, `hosts "h"`: how messages name a rule.
fn describe(commands: &[String], paths: &[String], hosts: &[String]) -> String {
    let mut out = Vec::new();
    for (what, list) in [("command", commands), ("paths", paths), ("hosts", hosts)] {
        if !list.is_empty() {
            let quoted: Vec<String> = list.iter().map(|p| format!("`{p}`")).collect();
            out.push(format!("{what} {}", quoted.join(", ")));
        }
    }
    out.join("; ")
}
