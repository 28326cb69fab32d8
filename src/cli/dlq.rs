//! `hive dlq`: the dead-letter store: list (with why each task died), show, requeue,
//! purge.
//!
//! Invariant: `purge` deletes for good, so it runs only with `--yes` or after a `y` at
//! a y/N prompt; with stdin not a terminal (a script, CI) and no `--yes` it refuses
//! rather than guess.

use super::connect::call;
use super::output::{ago, cell, now_ms, Out};
use super::task::{parse_json, show_record};
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};

/// `hive dlq ...`.
#[derive(Subcommand)]
pub(crate) enum DlqCmd {
    /// List dead tasks, with why each one died.
    #[command(after_help = examples!("hive dlq list", "hive dlq list --limit 10 --json"))]
    List {
        /// Most rows (<= 1000).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Show a dead task with its full history.
    #[command(after_help = examples!("hive dlq show t-0006180d3c1f2a4b"))]
    Show {
        /// Task id.
        task: String,
    },
    /// Put a dead task back in the queue, attempts reset.
    #[command(after_help = examples!(
        "hive dlq requeue t-0006180d3c1f2a4b",
        "hive dlq requeue t-0006180d3c1f2a4b --args-json '{\"fail\":false}'",
    ))]
    Requeue {
        /// Task id.
        task: String,
        /// Replace the args with this JSON object.
        #[arg(long)]
        args_json: Option<String>,
    },
    /// Delete dead tasks for good (asks first; `--yes` when stdin is not a terminal).
    #[command(after_help = examples!(
        "hive dlq purge t-0006180d3c1f2a4b",
        "hive dlq purge --all --yes",
    ))]
    Purge {
        /// Task id.
        task: Option<String>,
        /// Every dead task.
        #[arg(long)]
        all: bool,
        /// Do not ask.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs one `hive dlq` subcommand.
pub(crate) async fn run(c: &Client, cmd: DlqCmd, out: &Out) -> Result<(), String> {
    match cmd {
        DlqCmd::List { limit } => {
            let r = call(c, "op.queue.dlq.list", json!({"limit": limit})).await?;
            out.answer(&r, list_table);
        }
        DlqCmd::Show { task } => {
            let r = call(c, "op.queue.dlq.show", json!({"task": task})).await?;
            out.answer(&r, show_record);
        }
        DlqCmd::Requeue { task, args_json } => {
            let mut a = json!({"task": task});
            if let Some(j) = args_json {
                a["args"] = parse_json(&j, "--args-json")?;
            }
            let r = call(c, "op.queue.dlq.requeue", a).await?;
            if out.json {
                out.json(&r);
            } else {
                println!(
                    "{task}: {} again, attempts reset; follow it with `hive tail {task}`",
                    cell(&r["state"])
                );
            }
        }
        DlqCmd::Purge { task, all, yes } => {
            let what = match (&task, all) {
                (Some(t), false) => format!("dead task {t}"),
                (None, true) => "every dead task".to_owned(),
                _ => return Err("dlq purge: name one task, or pass --all".into()),
            };
            if !yes {
                confirm(&format!("Delete {what} for good?"))?;
            }
            let args = super::task::strip_nulls(json!({"task": task, "all": all}));
            let r = call(c, "op.queue.dlq.purge", args).await?;
            if out.json {
                out.json(&r);
            } else {
                let gone = r["purged"].as_array().map_or(0, Vec::len);
                println!("purged {gone} dead task(s)");
            }
        }
    }
    Ok(())
}

/// Asks `question [y/N]` on stderr when stdin is a terminal; refuses otherwise.
fn confirm(question: &str) -> Result<(), String> {
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "{question} Refusing without --yes: stdin is not a terminal, so hive cannot ask"
        ));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err("not confirmed; nothing deleted".into()),
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
                cell(&t["attempt"]),
                ago(t["updatedMs"].as_u64(), now),
                cell(&t["lastError"]),
            ]
        })
        .collect();
    out.table(
        &["TASK", "KIND", "ATTEMPTS", "DIED", "LAST ERROR"],
        &rows,
        &[],
    );
    println!(
        "{}",
        out.dim(&format!(
            "{} of {} dead task(s); `hive dlq requeue <task>` puts one back",
            rows.len(),
            cell(&r["total"])
        ))
    );
}
