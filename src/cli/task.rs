//! `hive task`: submit, list, show, cancel and retry tasks (`op.queue.*`), printed as
//! tables or JSON (see `output`).
//!
//! A submit also asks `op.queue.stats` whether any consumer serves the kind, and warns
//! on stderr when none does: the task is durable and waits, but `hive tail` on it would
//! wait for ever, and a new user cannot tell why.

use super::connect::{call, server_error};
use super::output::{ago, cell, now_ms, Out, Paint};
use clap::{Args, Subcommand};
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive task ...`.
#[derive(Subcommand)]
pub(crate) enum TaskCmd {
    /// Submit a task; prints the task id, traceId, position and hints.
    #[command(after_help = examples!(
        "hive task submit implement_bip --bip 43 --priority core --arg step=1",
        "hive task submit verify_bip --bip 43 --args-json '{\"checklist\":\"all\"}' --json",
        "hive task submit deploy --bip 7 --not-idempotent --max-attempts 1",
        "trace=$(hive task submit verify_bip --bip 43 -q) && hive tail \"$trace\"",
    ))]
    Submit(SubmitArgs),
    /// List tasks the broker holds in memory, newest first.
    #[command(after_help = examples!(
        "hive task list",
        "hive task list --state dead --kind implement_bip --limit 10",
        "hive task list --json | jq '.tasks[].traceId'",
    ))]
    List {
        /// Only this state (queued, leased, working, waiting_approval, succeeded,
        /// failed, dead, cancelled).
        #[arg(long)]
        state: Option<String>,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Most rows (<= 1000).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Show a task's record and history (by task id or traceId).
    #[command(after_help = examples!("hive task show t-0006180d3c1f2a4b", "hive task show my-trace-id --json"))]
    Show {
        /// Task id or traceId.
        task: String,
    },
    /// Cancel a queued or running task (or a parked one); its consumer is told.
    #[command(after_help = examples!("hive task cancel t-0006180d3c1f2a4b"))]
    Cancel {
        /// Task id.
        task: String,
    },
    /// Retry a failed (parked, not idempotent) task; a dead task goes back with
    /// `hive dlq requeue` instead.
    #[command(after_help = examples!(
        "hive task retry t-0006180d3c1f2a4b",
        "hive task retry t-0006180d3c1f2a4b --args-json '{\"step\":2}'",
    ))]
    Retry {
        /// Task id.
        task: String,
        /// Replace the args with this JSON object.
        #[arg(long)]
        args_json: Option<String>,
    },
}

/// Flags of `hive task submit`.
#[derive(Args)]
pub(crate) struct SubmitArgs {
    /// Task kind (the channel: `bip-<N>:<kind>`).
    kind: String,
    /// BIP number.
    #[arg(long)]
    bip: u64,
    /// critical, core or normal.
    #[arg(long, default_value = "normal")]
    priority: String,
    /// An argument `key=value` (repeatable; values that parse as JSON are JSON).
    #[arg(long = "arg", value_name = "K=V")]
    args: Vec<String>,
    /// All arguments as one JSON object (merged under --arg).
    #[arg(long)]
    args_json: Option<String>,
    /// Idempotency key; default: a fresh random key.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Repository.
    #[arg(long, default_value = ".")]
    repo: String,
    /// Branch.
    #[arg(long)]
    branch: Option<String>,
    /// Attempts before dead-lettering.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// Lease length, e.g. `30s`.
    #[arg(long)]
    timeout: Option<String>,
    /// Mark the task as not idempotent: failures wait for a human `retry`.
    #[arg(long)]
    not_idempotent: bool,
    /// Print only the traceId (for `trace=$(hive task submit ... -q)`).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Parses `s` as JSON, naming the flag on error.
pub(crate) fn parse_json(s: &str, what: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| format!("{what}: invalid JSON: {e}"))
}

fn submit_body(a: &SubmitArgs) -> Result<Value, String> {
    let mut args = match &a.args_json {
        Some(j) => parse_json(j, "--args-json")?,
        None => json!({}),
    };
    if !args.is_object() {
        return Err("--args-json must be a JSON object".into());
    }
    for kv in &a.args {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--arg `{kv}`: expected key=value"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| json!(v));
        args[k] = v;
    }
    let key = a
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4().simple()));
    let mut body = json!({
        "kind": a.kind, "bipId": a.bip, "priority": a.priority, "args": args,
        "repo": a.repo, "idempotencyKey": key, "idempotent": !a.not_idempotent,
    });
    if let Some(b) = &a.branch {
        body["branch"] = json!(b);
    }
    if let Some(m) = a.max_attempts {
        body["max_attempts"] = json!(m);
    }
    if let Some(t) = &a.timeout {
        body["timeout"] = json!(t);
    }
    Ok(body)
}

/// Drops null arguments (unset optional flags) before sending.
pub(crate) fn strip_nulls(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

/// Runs one `hive task` subcommand.
pub(crate) async fn run(c: &Client, cmd: TaskCmd, out: &Out) -> Result<(), String> {
    match cmd {
        TaskCmd::Submit(a) => {
            let r = call(c, "op.queue.submit", submit_body(&a)?).await?;
            if a.quiet {
                println!("{}", cell(&r["traceId"]));
            } else if out.json {
                out.json(&r);
            } else {
                print_submitted(&r);
            }
            warn_if_unserved(c, &a.kind).await;
        }
        TaskCmd::List { state, kind, limit } => {
            let args = strip_nulls(json!({"state": state, "kind": kind, "limit": limit}));
            let r = call(c, "op.queue.list", args).await?;
            out.answer(&r, list_table);
        }
        TaskCmd::Show { task } => {
            let r = call(c, "op.queue.show", json!({"task": task})).await?;
            out.answer(&r, show_record);
        }
        TaskCmd::Cancel { task } => {
            let r = call(c, "op.queue.cancel", json!({"task": task})).await?;
            if out.json {
                out.json(&r);
            } else {
                println!("{task}: {}", out.state("cancelled"));
            }
        }
        TaskCmd::Retry { task, args_json } => {
            let mut a = json!({"task": task});
            if let Some(j) = args_json {
                a["args"] = parse_json(&j, "--args-json")?;
            }
            let r = c.command("op.queue.retry", a).await.map_err(server_error)?;
            if out.json {
                out.json(&r);
            } else {
                println!(
                    "{task}: {} again; follow it with `hive tail {task}`",
                    cell(&r["state"])
                );
            }
        }
    }
    Ok(())
}

fn print_submitted(r: &Value) {
    let task = cell(&r["task"]);
    let trace = cell(&r["traceId"]);
    if r["duplicate"] == true {
        println!(
            "duplicate of {task} (trace {trace}), {}: the idempotency key was used already",
            cell(&r["state"])
        );
    } else {
        println!(
            "submitted {task} (trace {trace}): {} at position {} on {}",
            cell(&r["state"]),
            cell(&r["position"]),
            cell(&r["address"])
        );
    }
    if let Some(h) = r["hint"].as_str() {
        println!("hint: {}", super::output::safe(h));
    }
    println!("follow it: hive tail {trace}");
}

/// How many connected consumers serve `kind`, and how many there are (`None` when
/// `stats` fails or shows only part of the queue: the hint is best effort).
pub(crate) async fn serving(c: &Client, kind: &str) -> Option<(usize, usize)> {
    let stats = c.command("op.queue.stats", json!({})).await.ok()?;
    // A restricted credential is shown only its own consumer entry: a count of zero
    // would be a false alarm.
    if stats["scope"] == "restricted" {
        return None;
    }
    let consumers = stats["consumers"].as_array().cloned().unwrap_or_default();
    let n = consumers
        .iter()
        .filter(|s| {
            s["kinds"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == kind))
        })
        .count();
    Some((n, consumers.len()))
}

/// Warns on stderr when no connected consumer serves `kind`.
async fn warn_if_unserved(c: &Client, kind: &str) {
    if let Some((0, all)) = serving(c, kind).await {
        eprintln!(
            "hive: warning: no consumer serves `{kind}` now ({all} consumer(s) connected, 0 for this kind); \
             the task waits in the queue until one connects"
        );
    }
}

fn list_table(out: &Out, r: &Value) {
    let now = now_ms();
    let tasks = r["tasks"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|t| {
            vec![
                cell(&t["task"]),
                cell(&t["kind"]),
                cell(&t["state"]),
                cell(&t["priority"]),
                cell(&t["attempt"]),
                ago(t["updatedMs"].as_u64(), now),
                cell(&t["traceId"]),
            ]
        })
        .collect();
    out.table(
        &[
            "TASK", "KIND", "STATE", "PRIORITY", "ATTEMPT", "UPDATED", "TRACE",
        ],
        &rows,
        &[None, None, Some(Paint::State)],
    );
    println!(
        "{}",
        out.dim(&format!("{} of {} task(s)", rows.len(), cell(&r["total"])))
    );
}

/// Prints a task record (`show`, `dlq show`) as `field  value` lines and its history.
pub(crate) fn show_record(out: &Out, r: &Value) {
    let now = now_ms();
    let when = |k: &str| {
        let ms = r[k].as_u64();
        match ms {
            Some(m) => format!(
                "{} ({})",
                ago(Some(m), now),
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(m)
                )
            ),
            None => "-".into(),
        }
    };
    let mut lines = vec![
        ("task", cell(&r["task"])),
        ("trace", cell(&r["traceId"])),
        (
            "kind",
            format!("{} on {}", cell(&r["kind"]), cell(&r["address"])),
        ),
        ("state", out.state(&cell(&r["state"]))),
        ("priority", cell(&r["priority"])),
        ("attempt", cell(&r["attempt"])),
        ("owner", cell(&r["owner"])),
        ("created", when("createdMs")),
        ("updated", when("updatedMs")),
    ];
    if let Some(e) = r["lastError"].as_str() {
        lines.push(("last error", e.to_owned()));
    }
    if !r["lease"].is_null() {
        lines.push((
            "lease",
            format!(
                "{} by {}",
                cell(&r["lease"]["id"]),
                cell(&r["lease"]["consumer"])
            ),
        ));
    }
    if !r["result"].is_null() {
        lines.push((
            "result",
            format!(
                "{}: {}",
                cell(&r["result"]["status"]),
                cell(&r["result"]["summary"])
            ),
        ));
    }
    lines.push(("args", cell(&r["spec"]["args"])));
    for (k, v) in lines {
        println!("{}  {v}", out.dim(&format!("{k:<10}")));
    }
    println!("{}", out.dim("history"));
    let rows: Vec<Vec<String>> = r["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            vec![
                format!("  {}", ago(h["atMs"].as_u64(), now)),
                cell(&h["state"]),
                format!("attempt {}", cell(&h["attempt"])),
                cell(&h["note"]),
            ]
        })
        .collect();
    for r in rows {
        let state = out.state_padded(&r[1], &format!("{:<16}", r[1]));
        println!("{:<10}  {state}  {:<10}  {}", r[0], r[2], r[3]);
    }
}
