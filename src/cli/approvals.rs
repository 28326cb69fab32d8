//! `hive approvals`: the requests of leased tasks that wait for a person, and the
//! decisions on them: list, show, approve, deny.
//!
//! Who may decide is the broker's rule, not this command's: the credential needs the
//! `approve` right on the task's room, and never the session holding the lease
//! (`docs/ROLES.md`), never the identity that asked. A request the policy decided
//! itself never waits here. Requests are durable: after a broker restart they are
//! still listed and decidable. Each command takes the approval's id (`a-...`) or its
//! task's id.

use super::connect::call;
use super::output::{ago, cell, now_ms, safe, Out};
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive approvals ...`.
#[derive(Subcommand)]
pub(crate) enum ApprovalsCmd {
    /// The requests waiting for a decision, oldest first.
    #[command(after_help = examples!("hive approvals list", "hive approvals list --json"))]
    List,
    /// One task's waiting request in full.
    #[command(after_help = examples!(
        "hive approvals show a-0006180d3c1f9e01",
        "hive approvals show t-0006180d3c1f2a4b",
    ))]
    Show {
        /// Approval id (`a-...`) or task id.
        task: String,
    },
    /// Approve a task's waiting request.
    #[command(after_help = examples!(
        "hive approvals approve t-0006180d3c1f2a4b",
        "hive approvals approve a-0006180d3c1f9e01 --scope session --reason \"tests only\"",
        "hive approvals approve a-0006180d3c1f9e01 --scope always   # a rule: see `hive policy`",
    ))]
    Approve {
        /// Approval id (`a-...`) or task id.
        task: String,
        /// How far the decision reaches: once (default), task (this task's same
        /// action), session (the asking consumer's), always (a learned policy rule
        /// on this channel, kept until `hive policy forget`).
        #[arg(long, value_parser = ["once", "task", "session", "always"])]
        scope: Option<String>,
        /// Why, for the record.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a task's waiting request; the agent is told and chooses another way.
    #[command(after_help = examples!(
        "hive approvals deny t-0006180d3c1f2a4b --reason \"never force-push main\"",
    ))]
    Deny {
        /// Approval id (`a-...`) or task id.
        task: String,
        /// Why (the agent sees it).
        #[arg(long)]
        reason: String,
    },
}

/// Runs one `hive approvals` subcommand.
pub(crate) async fn run(c: &Client, cmd: ApprovalsCmd, out: &Out) -> Result<(), String> {
    match cmd {
        ApprovalsCmd::List => {
            let r = call(c, "op.queue.approvals", json!({})).await?;
            out.answer(&r, list_table);
        }
        ApprovalsCmd::Show { task } => {
            let r = call(c, "op.queue.approvals", json!({})).await?;
            let one = r["approvals"]
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .find(|x| x["task"] == task.as_str() || x["approval"] == task.as_str())
                })
                .cloned()
                .ok_or_else(|| {
                    format!("{task} has no request waiting (see `hive approvals list`, or `hive task show {task}`)")
                })?;
            out.answer(&one, show_one);
        }
        ApprovalsCmd::Approve {
            task,
            scope,
            reason,
        } => decide(c, out, &task, "approve", scope, reason).await?,
        ApprovalsCmd::Deny { task, reason } => {
            decide(c, out, &task, "deny", None, Some(reason)).await?
        }
    }
    Ok(())
}

async fn decide(
    c: &Client,
    out: &Out,
    task: &str,
    decision: &str,
    scope: Option<String>,
    reason: Option<String>,
) -> Result<(), String> {
    // An approval id is resolved to its task (the right to decide is on the task),
    // and sent along: if another request waits by then, the broker says `conflict`.
    let (task, approval) = if task.starts_with("a-") {
        let r = call(c, "op.queue.approvals", json!({})).await?;
        let t = r["approvals"]
            .as_array()
            .and_then(|a| a.iter().find(|x| x["approval"] == task))
            .and_then(|x| x["task"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("approval {task} is not waiting (decided, expired or cancelled?); `hive approvals list` shows what waits")
            })?;
        (t, Some(task.to_owned()))
    } else {
        (task.to_owned(), None)
    };
    let task = task.as_str();
    let mut args = json!({"task": task, "decision": decision});
    if let Some(a) = approval {
        args["approval"] = json!(a);
    }
    if let Some(s) = scope {
        args["scope"] = json!(s);
    }
    if let Some(r) = reason {
        args["reason"] = json!(r);
    }
    let r = call(c, "op.queue.approve", args).await.map_err(|e| {
        if e.starts_with("conflict") {
            format!("{e}\n(the request was decided already, expired, or the task moved on; `hive task show {task}` says where it is)")
        } else {
            e
        }
    })?;
    if out.json {
        out.json(&r);
    } else {
        println!(
            "{task}: {} by {}; the agent has been told",
            out.state(decision),
            cell(&r["by"])
        );
    }
    Ok(())
}

/// What the agent asked for, in one line: the command, else the action as JSON.
fn asked(request: &Value) -> String {
    let what = request["command"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| request["action"].as_str().map(str::to_owned))
        .unwrap_or_else(|| request.to_string());
    safe(&what)
}

fn list_table(out: &Out, r: &Value) {
    let now = now_ms();
    let list = r["approvals"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let left = a["expiresInMs"].as_u64().unwrap_or(0) / 1000;
            vec![
                cell(&a["approval"]),
                cell(&a["task"]),
                format!("bip-{}:{}", cell(&a["bipId"]), cell(&a["kind"])),
                asked(&a["request"]),
                ago(a["askedMs"].as_u64(), now),
                format!("{}m{:02}s", left / 60, left % 60),
            ]
        })
        .collect();
    out.table(
        &["APPROVAL", "TASK", "CHANNEL", "ASKS", "ASKED", "EXPIRES IN"],
        &rows,
        &[],
    );
    println!(
        "{}",
        out.dim(&format!(
            "{} request(s) waiting; `hive approvals approve <id>` or `hive approvals deny <id> --reason ...`",
            rows.len()
        ))
    );
}

fn show_one(out: &Out, a: &Value) {
    let left = a["expiresInMs"].as_u64().unwrap_or(0) / 1000;
    println!("approval  {}", cell(&a["approval"]));
    println!("task      {}", cell(&a["task"]));
    println!("trace     {}", cell(&a["traceId"]));
    println!("channel   bip-{}:{}", cell(&a["bipId"]), cell(&a["kind"]));
    println!("owner     {}", cell(&a["owner"]));
    println!(
        "consumer  {} (attempt {}, identity {})",
        if a["orphaned"] == true {
            "none: waiting for it to resume its lease after a restart".to_owned()
        } else {
            cell(&a["consumer"])
        },
        cell(&a["attempt"]),
        cell(&a["requestedBy"])
    );
    println!("asks      {}", asked(&a["request"]));
    if let Some(why) = a["request"]["reason"].as_str() {
        println!("because   {}", safe(why));
    }
    println!("asked     {}", ago(a["askedMs"].as_u64(), now_ms()));
    println!(
        "expires   in {}m{:02}s, then refused as `expired`",
        left / 60,
        left % 60
    );
    println!(
        "{}",
        out.dim(&format!(
            "request: {}",
            safe(&serde_json::to_string(&a["request"]).unwrap_or_default())
        ))
    );
}
