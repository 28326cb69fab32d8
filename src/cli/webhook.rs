//! `hive webhook`: route a pattern's envelopes to an HTTP endpoint (register), see
//! yours (list), remove one (unregister), and read what could not be delivered
//! (deadletters).
//!
//! The secret is printed once, at registration: the broker never shows it again, so
//! the human output says to keep it. A restricted token registers only on patterns it
//! may read, and sees and removes only its own webhooks (admins: all).

use super::connect::call;
use super::output::{ago, cell, now_ms, Out};
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive webhook ...`.
#[derive(Subcommand)]
pub(crate) enum WebhookCmd {
    /// POST every envelope published on channels PATTERN covers to URL, signed.
    #[command(after_help = examples!(
        "hive webhook register 'bip-43:*' https://ci.example.com/hive",
        "hive webhook register 'bip-*:review_*' https://hooks.example.com/x --secret \"$SECRET\"",
        "hive webhook register ops:deploys https://example.com/h --json   # id and secret as JSON",
    ))]
    Register {
        /// `room:channel`, `room` (every channel of it) or a glob (`bip-*:review_*`);
        /// your credential must be allowed to subscribe to all of it.
        pattern: String,
        /// http or https URL; private, loopback and link-local hosts are refused unless
        /// the broker's `[webhook] allow_private = true`.
        // Not `url`: that id is the global `--url` of the broker's address.
        #[arg(value_name = "URL")]
        target: String,
        /// The HMAC secret (16 to 256 printable characters); generated when omitted.
        #[arg(long, env = "HIVE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
    /// Your webhooks (all of them for an admin), with delivery counters.
    #[command(after_help = examples!("hive webhook list", "hive webhook list --json"))]
    List,
    /// Remove a webhook (yours, or any as an admin); pending deliveries are dropped.
    #[command(after_help = examples!("hive webhook unregister wh-3f9c2a1b4d5e6f70"))]
    Unregister {
        /// Webhook id (`hive webhook list` shows them).
        id: String,
    },
    /// Deliveries given up after their last attempt, newest last.
    #[command(after_help = examples!(
        "hive webhook deadletters wh-3f9c2a1b4d5e6f70",
        "hive webhook deadletters wh-3f9c2a1b4d5e6f70 --limit 5 --json",
    ))]
    Deadletters {
        /// Webhook id.
        id: String,
        /// Most rows (at most the broker's `deadletter_max`).
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// Runs one `hive webhook` subcommand.
pub(crate) async fn run(c: &Client, cmd: WebhookCmd, out: &Out) -> Result<(), String> {
    match cmd {
        WebhookCmd::Register {
            pattern,
            target,
            secret,
        } => {
            let mut args = json!({"pattern": pattern, "url": target});
            if let Some(s) = secret {
                args["secret"] = json!(s);
            }
            let r = call(c, "op.webhook.register", args).await?;
            out.answer(&r, |out, r| {
                println!(
                    "{}: {} -> {}",
                    cell(&r["id"]),
                    cell(&r["pattern"]),
                    cell(&r["url"])
                );
                println!("secret: {}", cell(&r["secret"]));
                println!(
                    "{}",
                    out.dim(
                        "keep the secret: it is not shown again. Receivers verify \
                         X-Hive-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>"
                    )
                );
            });
        }
        WebhookCmd::List => {
            let r = call(c, "op.webhook.list", json!({})).await?;
            out.answer(&r, list_table);
        }
        WebhookCmd::Unregister { id } => {
            let r = call(c, "op.webhook.unregister", json!({"id": id})).await?;
            out.answer(&r, |_, _| println!("{id}: removed"));
        }
        WebhookCmd::Deadletters { id, limit } => {
            let mut args = json!({"id": id});
            if let Some(l) = limit {
                args["limit"] = json!(l);
            }
            let r = call(c, "op.webhook.deadletters", args).await?;
            out.answer(&r, dead_table);
        }
    }
    Ok(())
}

fn list_table(out: &Out, r: &Value) {
    let now = now_ms();
    let hooks = r["webhooks"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = hooks
        .iter()
        .map(|w| {
            vec![
                cell(&w["id"]),
                cell(&w["owner"]),
                cell(&w["pattern"]),
                cell(&w["url"]),
                cell(&w["delivered"]),
                cell(&w["queued"]),
                cell(&w["dropped"]),
                cell(&w["deadLetters"]),
                ago(w["createdMs"].as_u64(), now),
                cell(&w["lastError"]),
            ]
        })
        .collect();
    out.table(
        &[
            "ID",
            "OWNER",
            "PATTERN",
            "URL",
            "DELIVERED",
            "QUEUED",
            "DROPPED",
            "DEAD",
            "CREATED",
            "LAST ERROR",
        ],
        &rows,
        &[],
    );
    println!(
        "{}",
        out.dim(&format!(
            "{} webhook(s); `hive webhook deadletters <id>` shows what was given up",
            rows.len()
        ))
    );
}

fn dead_table(out: &Out, r: &Value) {
    let now = now_ms();
    let dead = r["deadletters"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = dead
        .iter()
        .map(|d| {
            vec![
                cell(&d["seq"]),
                ago(d["atMs"].as_u64(), now),
                cell(&d["attempts"]),
                cell(&d["reason"]),
                cell(&d["error"]),
                cell(&d["delivery"]),
            ]
        })
        .collect();
    out.table(
        &["#", "GIVEN UP", "ATTEMPTS", "REASON", "ERROR", "DELIVERY"],
        &rows,
        &[],
    );
    println!(
        "{}",
        out.dim(&format!(
            "{} dead letter(s) of {}; `--json` shows each envelope",
            rows.len(),
            cell(&r["id"])
        ))
    );
}
