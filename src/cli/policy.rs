//! `hive policy check`: what the approval policy of a config file decides about one
//! action, and which rule decides each part of it, without a broker.
//!
//! Only the `[approval]` section of the file is read (parsed as plain TOML), so the
//! check works on any file that holds one. The exit code is the decision (0 allow,
//! 1 deny, 3 ask), so scripts and hooks can ask before they run something; an
//! unreadable file or a policy whose examples fail is a usage error (2), never a
//! decision.

use super::output::{cell, Out};
use clap::{Args, Subcommand};
use hivebus::ops::approval::{Action, ApprovalConfig, Decision, Effect, Policy, Tool};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

/// The `after_help` of `hive policy` and `hive policy check`: examples, then its own
/// exit codes (a decision, not a task's state).
pub(crate) const CHECK_HELP: &str = "Examples:
  hive policy check \"cargo test --all\" --config hive.toml
  hive policy check \"npm test && git push --force\" --config hive.toml --json
  hive policy check --tool write \"../../etc/hosts\" --cwd /w/app --worktree /w
  hive policy check --tool net https://api.github.com --config hive.toml
  hive policy check \"$cmd\" --config hive.toml && eval \"$cmd\"   # run only if allowed

Exit codes:
  0  allow
  1  deny
  2  usage error, unreadable config file or invalid policy (the message says which)
  3  ask (a person would decide)";

/// `hive policy ...`.
#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Decide on one action with the `[approval]` policy of a config file, and show
    /// which rule decides each part and why.
    #[command(after_help = CHECK_HELP)]
    Check(CheckArgs),
}

/// Flags of `hive policy check`.
#[derive(Args)]
pub(crate) struct CheckArgs {
    /// The command line; with `--tool read` or `write` the path, with `net` or
    /// `publish` the host or URL.
    action: String,
    /// TOML file holding an `[approval]` section; without it, only the built-in
    /// list and the default (`ask`) apply.
    #[arg(long)]
    config: Option<PathBuf>,
    /// shell, git, read, write, net or publish.
    #[arg(long, default_value = "shell")]
    tool: String,
    /// The directory the action runs in; relative paths resolve against it.
    #[arg(long)]
    cwd: Option<String>,
    /// The task's worktree (default: `--cwd`); path globs are relative to it.
    #[arg(long)]
    worktree: Option<String>,
    /// The task's kind, for rules with `kind`.
    #[arg(long)]
    kind: Option<String>,
    /// The task's BIP, for rules with `bip`.
    #[arg(long)]
    bip: Option<u64>,
    /// The role the request states, for rules with `role`.
    #[arg(long)]
    role: Option<String>,
}

/// Runs one `hive policy` subcommand; the exit code is the decision.
pub(crate) fn run(cmd: PolicyCmd, out: &Out) -> Result<ExitCode, String> {
    let PolicyCmd::Check(a) = cmd;
    let config = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            ApprovalConfig::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            eprintln!("hive: no --config: only the built-in list and the default (ask) apply");
            ApprovalConfig::default()
        }
    };
    let policy = Policy::from_config(&config).map_err(|e| format!("invalid policy: {e}"))?;
    let tool: Tool = serde_json::from_value(json!(a.tool)).map_err(|_| {
        format!(
            "--tool {}: expected shell, git, read, write, net or publish",
            a.tool
        )
    })?;
    let mut action = Action {
        tool,
        cwd: a.cwd.clone(),
        worktree: a.worktree.clone(),
        kind: a.kind.clone(),
        bip: a.bip,
        role: a.role.clone(),
        ..Action::default()
    };
    match tool {
        Tool::Shell | Tool::Git => action.command = Some(a.action.clone()),
        Tool::Read | Tool::Write => action.paths = vec![a.action.clone()],
        Tool::Net | Tool::Publish => action.host = Some(a.action.clone()),
    }
    let d = policy.decide(&action);
    if out.json {
        let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
        v["action"] = json!(a.action);
        v["tool"] = json!(tool.as_str());
        out.json(&v);
    } else {
        print_decision(out, &a.action, &d);
    }
    Ok(ExitCode::from(match d.verdict {
        Effect::Allow => 0,
        Effect::Deny => 1,
        Effect::Ask => 3,
    }))
}

fn print_decision(out: &Out, action: &str, d: &Decision) {
    let rule = |r: &Option<hivebus::ops::approval::RuleRef>| {
        r.as_ref()
            .map_or_else(|| "default".to_owned(), |r| r.name.clone())
    };
    println!(
        "{}  {}",
        d.verdict.as_str().to_uppercase(),
        cell(&json!(action))
    );
    if let Some(e) = &d.error {
        println!("{}", out.dim(&format!("not read: {}", cell(&json!(e)))));
    }
    if !d.parts.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = d
            .parts
            .iter()
            .map(|p| {
                vec![
                    cell(&json!(p.part)),
                    p.verdict.as_str().to_owned(),
                    rule(&p.rule),
                    cell(&json!(p.reason)),
                ]
            })
            .collect();
        out.table(&["PART", "VERDICT", "RULE", "REASON"], &rows, &[]);
    }
    println!();
    println!(
        "{}",
        out.dim(&format!(
            "decided by {}: {}",
            rule(&d.rule),
            cell(&json!(d.reason))
        ))
    );
}
