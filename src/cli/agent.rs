//! `hive agent`: the consumers (agents) connected to the broker, and control of one
//! (BIP-43): switch its model, clear its memory, start a new session, chat.
//!
//! `control` sends `op.queue.control` and prints the consumer's answer; the broker
//! decides who may (an admin, or a client that may manage every task the consumer
//! runs; docs/CONSUME.md, "Control") and the consumer may refuse (`conflict`).

use super::connect::call;
use super::output::{cell, Out};
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive agent ...`.
#[derive(Subcommand)]
pub(crate) enum AgentCmd {
    /// The consumers this credential may see: session, kinds, busy/slots.
    #[command(after_help = examples!("hive agent list", "hive agent list --json"))]
    List,
    /// Ask a running consumer to switch model, clear memory, start a new session or
    /// read a chat message.
    #[command(after_help = examples!(
        "hive agent control s-3f2a model=claude-sonnet-4.5   # {model} of the next agent",
        "hive agent control s-3f2a clear                     # restart its agents, memory cleared",
        "hive agent control s-3f2a new-session               # restart its agents, new session",
        "hive agent control s-3f2a chat \"use the v2 API, not v1\"",
        "hive task show <task>            # lease.consumer names the consumer running it",
    ))]
    Control {
        /// The consumer's session (`hive agent list`, or a task's `lease.consumer`).
        consumer: String,
        /// `model=<name>`, `clear`, `new-session` or `chat`.
        setting: String,
        /// The message, for `chat`.
        message: Option<String>,
    },
}

/// The rows of the consumers table (`hive agent list`, `hive status`): session,
/// kinds, busy/slots, from `op.queue.stats`'s `consumers`.
pub(crate) fn consumer_rows(consumers: &Value) -> Vec<Vec<String>> {
    consumers
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|c| {
            vec![
                cell(&c["session"]),
                c["kinds"]
                    .as_array()
                    .map(|k| k.iter().map(cell).collect::<Vec<_>>().join(","))
                    .unwrap_or_default(),
                format!("{}/{}", cell(&c["busy"]), cell(&c["slots"])),
            ]
        })
        .collect()
}

/// Runs `hive agent ...`.
pub(crate) async fn run(c: &Client, cmd: AgentCmd, out: &Out) -> Result<(), String> {
    match cmd {
        AgentCmd::List => {
            let stats = call(c, "op.queue.stats", json!({})).await?;
            let consumers = stats["consumers"].clone();
            out.answer(&consumers, |out, v| {
                let rows = consumer_rows(v);
                if rows.is_empty() {
                    println!("no consumer this credential may see is connected");
                } else {
                    out.table(&["CONSUMER", "KINDS", "BUSY/SLOTS"], &rows, &[]);
                }
            });
            Ok(())
        }
        AgentCmd::Control {
            consumer,
            setting,
            message,
        } => {
            let (action, value) = parse_setting(&setting, message)?;
            let r = call(
                c,
                "op.queue.control",
                json!({"consumer": consumer, "action": action, "value": value}),
            )
            .await?;
            out.answer(&r, |_, v| {
                println!(
                    "{} {}: {}",
                    cell(&v["consumer"]),
                    cell(&v["action"]),
                    describe(&v["result"])
                );
            });
            Ok(())
        }
    }
}

/// `model=<name>`, `clear`, `new-session`, `chat` (+ message) as the wire's action
/// and value.
pub(crate) fn parse_setting(
    setting: &str,
    message: Option<String>,
) -> Result<(&'static str, Value), String> {
    let no_message = |a: &'static str| match &message {
        None => Ok((a, Value::Null)),
        Some(_) => Err(format!("`{setting}` takes no message")),
    };
    match setting.split_once('=') {
        Some(("model", name)) if !name.is_empty() && message.is_none() => {
            Ok(("model", json!(name)))
        }
        Some(("model", _)) => Err("write `model=<name>`, e.g. model=claude-sonnet-4.5".into()),
        Some(_) => Err(format!(
            "unknown setting `{setting}`: model=<name>, clear, new-session, chat \"...\""
        )),
        None => match setting {
            "clear" | "clear-memory" | "clear_memory" => no_message("clear_memory"),
            "new-session" | "new_session" => no_message("new_session"),
            "chat" => match message {
                Some(m) if !m.is_empty() => Ok(("chat", json!(m))),
                _ => Err(
                    "`chat` needs the message: hive agent control <consumer> chat \"...\"".into(),
                ),
            },
            other => Err(format!(
                "unknown setting `{other}`: model=<name>, clear, new-session, chat \"...\""
            )),
        },
    }
}

/// The consumer's answer, for people.
fn describe(r: &Value) -> String {
    if let Some(m) = r["model"].as_str() {
        return format!(
            "model {} for agents started from now on",
            super::output::safe(m)
        );
    }
    if let Some(n) = r["restarted"].as_u64() {
        return format!("{n} running agent(s) restarted");
    }
    if let Some(n) = r["delivered"].as_u64() {
        return format!("delivered to {n} agent(s)");
    }
    cell(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_as_actions() {
        assert_eq!(
            parse_setting("model=m-2", None).unwrap(),
            ("model", json!("m-2"))
        );
        assert_eq!(parse_setting("clear", None).unwrap().0, "clear_memory");
        assert_eq!(parse_setting("new-session", None).unwrap().0, "new_session");
        assert_eq!(
            parse_setting("chat", Some("hi".into())).unwrap(),
            ("chat", json!("hi"))
        );
        assert!(parse_setting("chat", None).is_err());
        assert!(parse_setting("model=", None).is_err());
        assert!(parse_setting("clear", Some("x".into())).is_err());
        assert!(parse_setting("reboot", None).is_err());
    }
}
