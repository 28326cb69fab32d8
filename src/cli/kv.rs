//! `hive kv`: the key-value store (`op.store.*`): get, set, list, delete, in your own
//! namespace by default (`--ns @me`), or a room's (`--ns room:<name>`).
//!
//! Values are JSON (`hive kv set k 42`, `hive kv set k '{"a":1}'`); `--string` stores
//! the text as a string. `--if-version` makes a set or delete a compare-and-set.

use super::connect::call;
use super::output::{ago, cell, now_ms, safe, Out};
use clap::Subcommand;
use hivebus::client::Client;
use serde_json::{json, Value};

/// `hive kv ...`.
#[derive(Subcommand)]
pub(crate) enum KvCmd {
    /// Read one value.
    #[command(after_help = examples!(
        "hive kv get deploy/last",
        "hive kv get counter --ns room:team --json",
    ))]
    Get {
        /// The key.
        key: String,
        /// `@me`, `id:<subject>` (admins) or `room:<name>`.
        #[arg(long, default_value = "@me")]
        ns: String,
    },
    /// Store a value (JSON, or text with `--string`).
    #[command(after_help = examples!(
        "hive kv set deploy/last '{\"sha\":\"4f2a\",\"ok\":true}'",
        "hive kv set note \"back at 3\" --string --ttl 2h",
        "hive kv set counter 8 --ns room:team --if-version 41   # refused if someone wrote first",
    ))]
    Set {
        /// The key.
        key: String,
        /// The value: JSON, or any text with `--string`.
        value: String,
        /// Store the value as a JSON string, not parsed.
        #[arg(long)]
        string: bool,
        /// `@me`, `id:<subject>` (admins) or `room:<name>`.
        #[arg(long, default_value = "@me")]
        ns: String,
        /// Store only if the key is at this version (0: only if it does not exist).
        #[arg(long)]
        if_version: Option<u64>,
        /// Expire the value after this long (`30s`, `10m`, `2h`).
        #[arg(long)]
        ttl: Option<humantime::Duration>,
    },
    /// Keys by prefix, a page at a time.
    #[command(after_help = examples!(
        "hive kv list",
        "hive kv list deploy/ --limit 20",
        "hive kv list --ns room:team --cursor c1.6465706c6f79",
    ))]
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// `@me`, `id:<subject>` (admins) or `room:<name>`.
        #[arg(long, default_value = "@me")]
        ns: String,
        /// Most keys on the page.
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Where the previous page stopped (its `cursor`).
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Delete a value.
    #[command(after_help = examples!(
        "hive kv delete note",
        "hive kv delete lock --ns room:team --if-version 12",
    ))]
    Delete {
        /// The key.
        key: String,
        /// `@me`, `id:<subject>` (admins) or `room:<name>`.
        #[arg(long, default_value = "@me")]
        ns: String,
        /// Delete only if the key is at this version.
        #[arg(long)]
        if_version: Option<u64>,
    },
}

/// A conflict says what to do next: read again.
fn hint(e: String, key: &str, ns: &str) -> String {
    if e.starts_with("conflict") {
        format!("{e}; read the current value with `hive kv get {key} --ns {ns}`, then retry with its version")
    } else {
        e
    }
}

/// Runs one `hive kv` subcommand.
pub(crate) async fn run(c: &Client, cmd: KvCmd, out: &Out) -> Result<(), String> {
    match cmd {
        KvCmd::Get { key, ns } => {
            let r = call(c, "op.store.get", json!({"ns": ns, "key": key})).await?;
            out.answer(&r, |_, r| {
                let pretty = serde_json::to_string_pretty(&r["value"]).unwrap_or_default();
                for line in pretty.lines() {
                    println!("{}", safe(line));
                }
                println!(
                    "version {}{}",
                    cell(&r["version"]),
                    expiry(&r["expires_ms"])
                );
            });
        }
        KvCmd::Set {
            key,
            value,
            string,
            ns,
            if_version,
            ttl,
        } => {
            let value = if string {
                json!(value)
            } else {
                serde_json::from_str::<Value>(&value).map_err(|e| {
                    format!("the value is not JSON ({e}); quote it as JSON or pass --string to store it as text")
                })?
            };
            let mut args = json!({"ns": ns, "key": key, "value": value});
            if let Some(v) = if_version {
                args["expected_version"] = json!(v);
            }
            if let Some(t) = ttl {
                args["ttl_ms"] = json!(u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            }
            let r = call(c, "op.store.set", args)
                .await
                .map_err(|e| hint(e, &key, &ns))?;
            if out.json {
                out.json(&r);
            } else {
                println!(
                    "{} stored at version {}{}",
                    safe(&key),
                    cell(&r["version"]),
                    expiry(&r["expires_ms"])
                );
            }
        }
        KvCmd::List {
            prefix,
            ns,
            limit,
            cursor,
        } => {
            let r = call(
                c,
                "op.store.list",
                json!({"ns": ns, "prefix": prefix, "limit": limit, "cursor": cursor}),
            )
            .await?;
            out.answer(&r, |out, r| list_table(out, r, &ns));
        }
        KvCmd::Delete {
            key,
            ns,
            if_version,
        } => {
            let mut args = json!({"ns": ns, "key": key});
            if let Some(v) = if_version {
                args["expected_version"] = json!(v);
            }
            let r = call(c, "op.store.delete", args)
                .await
                .map_err(|e| hint(e, &key, &ns))?;
            if out.json {
                out.json(&r);
            } else {
                println!(
                    "{} deleted (it was at version {})",
                    safe(&key),
                    cell(&r["version"])
                );
            }
        }
    }
    Ok(())
}

fn expiry(v: &Value) -> String {
    match v.as_u64() {
        Some(ms) => format!(", expires {}", ago(Some(ms), now_ms())),
        None => String::new(),
    }
}

fn list_table(out: &Out, r: &Value, ns: &str) {
    let now = now_ms();
    let items = r["items"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            let mut v = i["value"].to_string();
            if v.len() > 60 {
                let cut = (0..=57).rev().find(|n| v.is_char_boundary(*n)).unwrap_or(0);
                v.truncate(cut);
                v.push_str("...");
            }
            vec![
                cell(&i["key"]),
                cell(&i["version"]),
                ago(i["expires_ms"].as_u64(), now),
                safe(&v),
            ]
        })
        .collect();
    out.table(&["KEY", "VERSION", "EXPIRES", "VALUE"], &rows, &[]);
    if let Some(c) = r["cursor"].as_str() {
        println!("more: hive kv list --ns {ns} --cursor {c}");
    }
}
