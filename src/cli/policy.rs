//! `hive policy`: the approval policy. `check` says what a policy decides about one
//! action and which rule decides each part of it: a config file's, without a broker,
//! or (`--broker`) the running broker's, rules learned from `always` decisions
//! included. `list` shows the broker's effective rules with their origin (config,
//! builtin, always: who and when); `forget` (admin) drops a learned rule; `reload`
//! (admin) makes the broker re-read `[approval]` from its config file.
//!
//! Only the `[approval]` section of a file is read (parsed as plain TOML), so the
//! check works on any file that holds one. The exit code of `check` is the decision
//! (0 allow, 1 deny, 3 ask), so scripts and hooks can ask before they run something;
//! an unreadable file or a policy whose examples fail is a usage error (2), never a
//! decision.

use super::connect::{call, connect};
use super::output::{ago, cell, now_ms, safe, Out};
use clap::{Args, Subcommand};
use hivebus::client::Client;
use hivebus::ops::approval::{Action, ApprovalConfig, Decision, Effect, Policy, Tool};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The `after_help` of `hive policy` and `hive policy check`: examples, then its own
/// exit codes (a decision, not a task's state).
pub(crate) const CHECK_HELP: &str = "Examples:
  hive policy check \"cargo test --all\" --config hive.toml
  hive policy check \"npm test && git push --force\" --config hive.toml --json
  hive policy check --tool write \"../../etc/hosts\" --cwd /w/app --worktree /w
  hive policy check --tool net https://api.github.com --config hive.toml
  hive policy check \"$cmd\" --config hive.toml && eval \"$cmd\"   # run only if allowed
  hive policy check \"cargo test\" --broker --bip 7 --kind build   # learned rules too

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
    /// The running broker's effective rules, with their origin: config, builtin, or
    /// always (learned from a person's decision: who, when, where).
    #[command(after_help = examples!("hive policy list", "hive policy list --json"))]
    List,
    /// Drop a rule learned from an `always` decision (admin).
    #[command(after_help = examples!("hive policy forget a-0006180d3c1f9e01 --token $ADMIN_TOKEN"))]
    Forget {
        /// The learned rule's id (`hive policy list` shows it).
        id: String,
    },
    /// Make the broker re-read `[approval]` from its config file (admin); a policy
    /// that does not load is refused, naming the rule and example, and the old one stays.
    #[command(after_help = examples!("hive policy reload --token $ADMIN_TOKEN"))]
    Reload,
}

/// Where the broker is, for the subcommands that ask it.
pub(crate) struct Reach<'a> {
    /// `--url`.
    pub(crate) url: &'a Option<String>,
    /// `--dir`.
    pub(crate) dir: &'a Path,
    /// `--token`.
    pub(crate) token: Option<&'a str>,
    /// `--role`.
    pub(crate) role: Option<&'a str>,
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
    /// Ask the running broker (its policy in force and its learned rules) instead of
    /// reading a file; learned rules apply with `--bip` and `--kind`.
    #[arg(long, conflicts_with = "config")]
    broker: bool,
}

/// Runs one `hive policy` subcommand; for `check` the exit code is the decision.
pub(crate) async fn run(cmd: PolicyCmd, out: &Out, reach: Reach<'_>) -> Result<ExitCode, String> {
    if let PolicyCmd::Check(a) = &cmd {
        if !a.broker {
            return check_file(a, out);
        }
    }
    let admin = matches!(cmd, PolicyCmd::Forget { .. } | PolicyCmd::Reload);
    let role = reach.role.unwrap_or(if admin { "admin" } else { "client" });
    let c = connect(reach.url, reach.dir, role, reach.token).await?;
    match cmd {
        PolicyCmd::Check(a) => check_broker(&c, &a, out).await,
        PolicyCmd::List => {
            let v = call(&c, "op.approval.rules", json!({})).await?;
            out.answer(&v, list_table);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Forget { id } => {
            let v = call(&c, "op.approval.forget", json!({"id": id}))
                .await
                .map_err(|e| {
                    format!("{e}\n(`hive policy list` shows the learned rules and their ids)")
                })?;
            out.answer(&v, |_, _| {
                println!("{id}: forgotten; that action asks again")
            });
            Ok(ExitCode::SUCCESS)
        }
        PolicyCmd::Reload => {
            let v = call(&c, "op.approval.reload", json!({})).await.map_err(|e| {
                format!("{e}\n(fix the file and reload again: `hive policy check --config <file>` shows what fails)")
            })?;
            out.answer(&v, |_, v| {
                println!(
                    "policy reloaded from {}: {} rule(s), default {}",
                    cell(&v["reloaded"]),
                    cell(&v["rules"]),
                    cell(&v["default"])
                )
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn check_broker(c: &Client, a: &CheckArgs, out: &Out) -> Result<ExitCode, String> {
    let mut args = action_of(a)?;
    if let Some(b) = a.bip {
        args["bip"] = json!(b);
    }
    if let Some(k) = &a.kind {
        args["kind"] = json!(k);
    }
    let v = call(c, "op.approval.check", args).await?;
    let verdict: Effect = serde_json::from_value(v["verdict"].clone())
        .map_err(|e| format!("unexpected answer from the broker: {e}"))?;
    if out.json {
        out.json(&v);
    } else {
        println!(
            "{}  {}",
            verdict.as_str().to_uppercase(),
            cell(&json!(a.action))
        );
        let rows: Vec<Vec<String>> = v["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                vec![
                    cell(&p["part"]),
                    cell(&p["verdict"]),
                    p["rule"]["name"].as_str().unwrap_or("default").to_owned(),
                    cell(&p["reason"]),
                ]
            })
            .collect();
        if !rows.is_empty() {
            println!();
            out.table(&["PART", "VERDICT", "RULE", "REASON"], &rows, &[]);
        }
        println!();
        let rule = v["rule"]["name"].as_str().unwrap_or("default");
        println!(
            "{}",
            out.dim(&format!(
                "decided by {rule} ({}): {}",
                cell(&v["origin"]),
                cell(&v["reason"])
            ))
        );
        if let Some(l) = v.get("learned") {
            println!(
                "{}",
                out.dim(&format!(
                    "learned from {}'s `always` decision {} ({}, on {}); `hive policy forget {}` drops it",
                    cell(&l["by"]),
                    cell(&l["id"]),
                    ago(l["at"].as_u64(), now_ms()),
                    cell(&l["channel"]),
                    cell(&l["id"])
                ))
            );
        }
    }
    Ok(exit_of(verdict))
}

/// The action a check decides on, as a request's fields.
fn action_of(a: &CheckArgs) -> Result<Value, String> {
    let tool: Tool = serde_json::from_value(json!(a.tool)).map_err(|_| {
        format!(
            "--tool {}: expected shell, git, read, write, net or publish",
            a.tool
        )
    })?;
    // A shell command is sent without `tool`, as consumers ask: a learned rule matches
    // the request byte for byte.
    let mut v = if tool == Tool::Shell {
        json!({})
    } else {
        json!({"tool": tool.as_str()})
    };
    match tool {
        Tool::Shell | Tool::Git => v["command"] = json!(a.action),
        Tool::Read | Tool::Write => v["path"] = json!(a.action),
        Tool::Net | Tool::Publish => v["host"] = json!(a.action),
    }
    for (k, x) in [
        ("cwd", &a.cwd),
        ("worktree", &a.worktree),
        ("role", &a.role),
    ] {
        if let Some(x) = x {
            v[k] = json!(x);
        }
    }
    Ok(v)
}

fn exit_of(e: Effect) -> ExitCode {
    ExitCode::from(match e {
        Effect::Allow => 0,
        Effect::Deny => 1,
        Effect::Ask => 3,
    })
}

fn check_file(a: &CheckArgs, out: &Out) -> Result<ExitCode, String> {
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
    Ok(exit_of(d.verdict))
}

fn list_table(out: &Out, v: &Value) {
    let now = now_ms();
    let rules = v["rules"].as_array().cloned().unwrap_or_default();
    let matches = |r: &Value| -> String {
        if r["origin"] == "always" {
            let a = &r["action"];
            let what = a["command"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| a.to_string());
            return format!("{} on {}", safe(&what), cell(&r["channel"]));
        }
        ["command", "paths", "hosts"]
            .iter()
            .filter_map(|k| r.get(*k))
            .map(|x| safe(&x.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            let origin = match r["origin"].as_str() {
                Some("always") => {
                    format!("always: {}, {}", cell(&r["by"]), ago(r["at"].as_u64(), now))
                }
                _ => cell(&r["origin"]),
            };
            vec![
                cell(&r["name"]),
                cell(&r["decision"]),
                origin,
                matches(r),
                cell(&r["reason"]),
            ]
        })
        .collect();
    out.table(
        &["RULE", "EFFECT", "ORIGIN", "MATCHES", "REASON"],
        &rows,
        &[],
    );
    println!(
        "{}",
        out.dim(&format!(
            "default {}; requests wait {}s unless their rule says; precedence deny > ask > allow; `hive policy forget <id>` drops a learned rule",
            cell(&v["default"]),
            cell(&v["timeoutSecs"])
        ))
    );
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
