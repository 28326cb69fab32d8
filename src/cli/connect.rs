//! How `hive` reaches its broker: `--url`, else the port file of the live broker of
//! `--dir` (warning on stderr when `HIVE_WS_PORT` disagrees with it), else
//! `HIVE_WS_PORT` (see `hivebus::server::state_dir::locate`).
//!
//! Invariant: every failure is one sentence that says what to do next (start a broker,
//! fix the credential, pass `--role`), never a bare "Connection refused".

use hivebus::client::{Client, ClientError, Hello};
use std::path::Path;

/// Connects as `role` (with the credential, when given) to the broker named by the
/// flags or discovered.
pub(crate) async fn connect(
    cli_url: &Option<String>,
    dir: &Path,
    role: &str,
    token: Option<&str>,
) -> Result<Client, String> {
    let url = match cli_url {
        Some(u) => u.clone(),
        None => {
            let found = hivebus::server::state_dir::locate(dir).map_err(|e| e.to_string())?;
            for w in &found.warnings {
                eprintln!("hive: warning: {w}");
            }
            format!("ws://127.0.0.1:{}/", found.port)
        }
    };
    let mut hello = Hello::role(role);
    hello.auth = token.map(str::to_owned);
    Client::connect(&url, hello).await.map_err(|e| match e {
        ClientError::Server(w) if w.code == hivebus::ErrorCode::Unauthorized => format!(
            "{url} refused the credential ({}); set --token or HIVE_TOKEN to a valid one",
            w.message
        ),
        ClientError::Server(w) if w.code == hivebus::ErrorCode::Forbidden => format!(
            "{url} refused role {role} ({}); pass --role with the token's role",
            w.message
        ),
        e => format!("cannot connect to {url}: {e} (is the broker running? `hive broker`)"),
    })
}

/// Runs `name` with `args` on the broker; a refusal becomes one line for stderr.
pub(crate) async fn call(
    c: &Client,
    name: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, String> {
    c.command(name, args).await.map_err(server_error)
}

/// A command's error as one line: `code: message details`.
pub(crate) fn server_error(e: ClientError) -> String {
    match e {
        ClientError::Server(w) => match w.details {
            Some(d) => format!("{}: {} {}", w.code, w.message, d),
            None => format!("{}: {}", w.code, w.message),
        },
        other => other.to_string(),
    }
}
