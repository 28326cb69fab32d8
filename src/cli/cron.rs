//! `hive cron`: publish on a channel later or on a cron rule (`op.cron.*`): schedule,
//! list, cancel. A schedule publishes with the authority of the credential that made
//! it, so it is made with the same token as a publish there would be.

use super::connect::call;
use super::output::{ago, cell, now_ms, Out};
use super::task::parse_json;
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive cron ...`.
#[derive(Subcommand)]
pub(crate) enum CronCmd {
    /// Publish a payload on a channel on a cron rule, or once after a delay.
    #[command(after_help = examples!(
        "hive cron schedule ops:standup --cron \"0 9 * * 1-5\" --tz +01:00 --text \"standup\"",
        "hive cron schedule ops:ping --cron \"*/5 * * * *\" --tz UTC --payload-json '{\"ping\":1}'",
        "hive cron schedule bip-43:general --in 10m --text \"review the draft\" --missed run_once",
    ))]
    Schedule {
        /// The channel each firing is published on (`room:channel`).
        address: String,
        /// A cron rule: 5 fields (minute hour day month weekday), or 6 with seconds first.
        #[arg(long, conflicts_with_all = ["after", "delay_ms"], requires = "tz")]
        cron: Option<String>,
        /// The rule's zone: `UTC` or a fixed offset like `+02:00` (no zone names).
        #[arg(long)]
        tz: Option<String>,
        /// Fire once after this long (`90s`, `10m`, `2h`).
        #[arg(long = "in", value_name = "DURATION", conflicts_with = "delay_ms")]
        after: Option<humantime::Duration>,
        /// Fire once after this many milliseconds.
        #[arg(long)]
        delay_ms: Option<u64>,
        /// The payload, as JSON.
        #[arg(long, conflicts_with = "text")]
        payload_json: Option<String>,
        /// The payload as `{"text": ...}`.
        #[arg(long)]
        text: Option<String>,
        /// Firings missed while the broker was down: `skip` them, or `run_once` now.
        #[arg(long, default_value = "skip", value_parser = ["skip", "run_once"])]
        missed: String,
    },
    /// Your schedules (an admin sees everyone's), next firing first.
    #[command(after_help = examples!("hive cron list", "hive cron list --json"))]
    List,
    /// Cancel a schedule (yours, or any as an admin).
    #[command(after_help = examples!("hive cron cancel cron-3f2a9b1c0d4e"))]
    Cancel {
        /// The schedule's id, from `hive cron list`.
        id: String,
    },
}

/// Runs one `hive cron` subcommand.
pub(crate) async fn run(c: &Client, cmd: CronCmd, out: &Out) -> Result<(), String> {
    match cmd {
        CronCmd::Schedule {
            address,
            cron,
            tz,
            after,
            delay_ms,
            payload_json,
            text,
            missed,
        } => {
            let payload = match (payload_json, text) {
                (Some(j), _) => parse_json(&j, "--payload-json")?,
                (None, Some(t)) => json!({"text": t}),
                (None, None) => {
                    return Err("give the payload: --payload-json '{...}' or --text \"...\"".into())
                }
            };
            let mut args = json!({"address": address, "payload": payload, "missed": missed});
            match (cron, after, delay_ms) {
                (Some(rule), None, None) => {
                    args["cron"] = json!(rule);
                    args["tz"] = json!(tz);
                }
                (None, Some(d), None) => {
                    args["delay_ms"] = json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                }
                (None, None, Some(ms)) => args["delay_ms"] = json!(ms),
                _ => return Err("say when: --cron \"<rule>\" --tz UTC, or --in 10m".into()),
            }
            let r = call(c, "op.cron.schedule", args).await?;
            if out.json {
                out.json(&r);
            } else {
                println!(
                    "{}: first firing {} on {}; cancel it with `hive cron cancel {}`",
                    cell(&r["id"]),
                    ago(r["next_ms"].as_u64(), now_ms()),
                    cell(&r["address"]),
                    cell(&r["id"])
                );
            }
        }
        CronCmd::List => {
            let r = call(c, "op.cron.list", json!({})).await?;
            out.answer(&r, list_table);
        }
        CronCmd::Cancel { id } => {
            let r = call(c, "op.cron.cancel", json!({"id": id})).await?;
            if out.json {
                out.json(&r);
            } else {
                println!("{id}: cancelled after {} firing(s)", cell(&r["runs"]));
            }
        }
    }
    Ok(())
}

fn when(s: &Value) -> String {
    match s["cron"].as_str() {
        Some(rule) => format!("{} {}", super::output::safe(rule), cell(&s["tz"])),
        None => "once".into(),
    }
}

fn list_table(out: &Out, r: &Value) {
    let now = now_ms();
    let list = r["schedules"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!(
            "no schedules; make one with `hive cron schedule <room:channel> --in 10m --text hi`"
        );
        return;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                cell(&s["id"]),
                cell(&s["owner"]),
                cell(&s["address"]),
                when(s),
                ago(s["next_ms"].as_u64(), now),
                cell(&s["missed"]),
                format!("{}/{}", cell(&s["runs"]), cell(&s["failures"])),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "OWNER",
            "ADDRESS",
            "WHEN",
            "NEXT",
            "MISSED",
            "RUNS/FAILED",
        ],
        &rows,
        &[],
    );
}
