//! `hive mcp`: an MCP (Model Context Protocol) server on stdin/stdout, so that a
//! coding agent (Claude Code, Codex, Cursor, any MCP client) reaches the bus and the
//! task queue through tools and resources.
//!
//! It is a thin edge over the client SDK: every tool is one or a few broker commands
//! sent on a WebSocket session opened with the caller's credential (`--token` /
//! `HIVE_TOKEN`), so the broker's one authority check decides every call exactly as
//! it decides the same command from `hive task` or the Python SDK. Nothing here
//! grants or widens a right: a restricted token is restricted through MCP too, and a
//! refusal reaches the MCP client as a tool error carrying our stable code.
//!
//! Sessions: one `client` session (opened at start, so a wrong URL or credential fails
//! before the MCP handshake); a `consumer` session opened on the first
//! `lease_next_task` (the agent as a consumer); and one more consumer session for
//! `approval_prompt`, opened on the first prompt that a person must decide. stdout
//! carries JSON-RPC only; logs go to stderr.
//!
//! Modules: `tools` (the tool schemas and handlers), `lease` (the agent's leases),
//! `permission` (Claude Code's permission prompt), `resources`, `tasks` (`submit_task`
//! as an MCP task, for clients that declare the tasks extension).

#[path = "mcp/lease.rs"]
mod lease;
#[path = "mcp/permission.rs"]
mod permission;
#[path = "mcp/resources.rs"]
mod resources;
#[path = "mcp/tasks.rs"]
mod tasks;
#[path = "mcp/tools.rs"]
mod tools;

use clap::Args;
use hivebus::client::{Client, ClientError, Hello};
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The `after_help` of `hive mcp`.
pub(crate) const HELP: &str = "Examples:
  hive mcp                                          # the broker of ./.hive, no token
  claude mcp add hive -- hive --dir /path/to/project mcp --config /path/to/hive.toml
  claude -p \"...\" --permission-prompt-tool mcp__hive__approval_prompt
  HIVE_TOKEN=... hive --url ws://127.0.0.1:7000/ mcp

It speaks MCP over stdin/stdout (newline-delimited JSON-RPC); see docs/AGENTS.md for
Claude Code, Codex and Cursor configuration.

Exit codes:
  0  the MCP client closed stdin
  2  usage or connection error (the message says which)";

/// Flags of `hive mcp`.
#[derive(Args)]
pub(crate) struct McpArgs {
    /// The broker's config file: its `[approval]` section is the policy that
    /// `approval_prompt` applies first (and the `hive://approval-policy` resource);
    /// without it, only the built-in list and the default (ask).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Credential of the consumer sessions (`lease_next_task`, and the tasks that
    /// carry `approval_prompt` questions); default: `--token`.
    #[arg(long, env = "HIVE_CONSUMER_TOKEN", hide_env_values = true)]
    consumer_token: Option<String>,
    /// Tasks the agent may hold at once as a consumer.
    #[arg(long, default_value_t = 1)]
    slots: u32,
    /// The BIP whose room carries the permission questions a person must decide
    /// (`bip-<N>:permission-<id>`).
    #[arg(long, default_value_t = 0)]
    permission_bip: u64,
    /// Longest wait of `approval_prompt` for a person's decision (then: deny).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    permission_wait: Duration,
    /// The worktree the permission policy judges paths against; default: the
    /// current directory (where the MCP client started `hive mcp`).
    #[arg(long)]
    worktree: Option<PathBuf>,
}

/// How the MCP server reaches the broker: the resolved URL and the credentials.
#[derive(Clone)]
pub(crate) struct Reach {
    /// `ws://...` of the broker.
    url: String,
    /// Credential of the consumer sessions.
    consumer_token: Option<String>,
}

impl Reach {
    /// Opens a consumer session for `kinds`.
    async fn consumer(
        &self,
        kinds: &[String],
        slots: u32,
    ) -> Result<hivebus::consumer::Consumer, ClientError> {
        let mut hello = Hello::role("consumer");
        hello.capabilities = kinds.to_vec();
        hello.slots = Some(slots.max(1));
        hello.auth = self.consumer_token.clone();
        hello.name = Some("hive-mcp".into());
        hivebus::consumer::Consumer::connect_with(&self.url, hello).await
    }
}

/// Runs the MCP server until the client closes stdin.
pub(crate) async fn run(
    a: McpArgs,
    cli_url: &Option<String>,
    dir: &Path,
    token: Option<&str>,
    role: Option<&str>,
) -> Result<ExitCode, String> {
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
    let policy = permission::load_policy(a.config.as_deref())?;
    let client =
        super::connect::connect(&Some(url.clone()), dir, role.unwrap_or("client"), token).await?;
    let worktree = match &a.worktree {
        Some(w) => w.clone(),
        None => std::env::current_dir().map_err(|e| format!("current directory: {e}"))?,
    };
    let reach = Reach {
        url,
        consumer_token: a.consumer_token.clone().or(token.map(str::to_owned)),
    };
    let server = tools::Hive::new(tools::Setup {
        client,
        reach,
        slots: a.slots,
        policy,
        permission_bip: a.permission_bip,
        permission_wait: a.permission_wait,
        worktree,
        logs: dir.join(".hive").join("logs"),
    });
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP handshake failed: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("MCP session ended: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

/// A tool's success: the broker's answer as structured content (an object; anything
/// else is wrapped as `{"result": ...}`) and as JSON text for clients that read text.
fn ok(v: Value) -> CallToolResult {
    let v = if v.is_object() {
        v
    } else {
        json!({"result": v})
    };
    CallToolResult::structured(v)
}

/// A tool error (`isError: true`) with our stable code: `{code, message, details?}`
/// as structured content, and `code: message` as text.
fn fail(code: &str, message: &str, details: Option<Value>) -> CallToolResult {
    let mut v = json!({"code": code, "message": message});
    if let Some(d) = details {
        v["details"] = d;
    }
    let mut r = CallToolResult::structured_error(v);
    r.content = vec![ContentBlock::text(format!("{code}: {message}"))];
    r
}

/// A refused or failed broker call as a tool error: the server's code, or for
/// failures on this side `timeout` / `closed` / `internal`.
fn refused(e: ClientError) -> CallToolResult {
    match e {
        ClientError::Server(w) => fail(w.code.as_str(), &w.message, w.details),
        ClientError::Timeout => fail(
            "timeout",
            "the broker did not answer in time; try again",
            None,
        ),
        ClientError::Closed => fail(
            "closed",
            "the connection to the broker is closed; restart `hive mcp` (is the broker running?)",
            None,
        ),
        other => fail("internal", &other.to_string(), None),
    }
}

/// An argument this side refuses before asking the broker.
fn invalid(field: &str, message: &str) -> CallToolResult {
    fail("invalid_field", message, Some(json!({"field": field})))
}

/// Runs one command on the client session: the answer, or the refusal as a tool error.
async fn command(c: &Client, name: &str, args: Value) -> CallToolResult {
    match c.command(name, args).await {
        Ok(v) => ok(v),
        Err(e) => refused(e),
    }
}
