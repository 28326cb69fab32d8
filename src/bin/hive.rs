//! `hive`: the command-line client of the hivebus task queue (BIP-43), and a broker
//! with the queue built in (`hive broker`).
//!
//! It finds the broker through `--url`, else `HIVE_WS_PORT`, else `<dir>/.hive/port`
//! (see `hivebus::server::port::discover`). It presents `--token` / `HIVE_TOKEN` when
//! set, so a restricted credential is restricted here as everywhere; the role is
//! `client`, or `admin` for `dlq purge`, unless `--role` / `HIVE_ROLE` says otherwise
//! (with a token, the token's role). Every subcommand has `--help`.
//!
//! Exit codes: 0 success (for `tail`: the task succeeded); 1 the task failed or went
//! to the dead-letter store; 3 the task was cancelled; 2 usage, connection or server
//! errors.
//!
//! `HIVE_WORKERS` sets the number of runtime worker threads (default: one per core).

#[path = "../cli/broker.rs"]
mod broker;
#[path = "../cli/tail.rs"]
mod tail;

use clap::{Args, Parser, Subcommand};

/// mimalloc instead of glibc malloc: the broker allocates per frame on every runtime
/// thread and frees much of it on the store's writer thread; the queue profile
/// (`docs/PERFORMANCE.md, "The durable task queue"`) showed glibc malloc/free at about a quarter of the
/// broker's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use hivebus::client::{Client, ClientError, Hello};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "hivebus task queue client (BIP-43)",
    propagate_version = true
)]
struct Cli {
    /// Broker URL; default: ws://127.0.0.1:<HIVE_WS_PORT or .hive/port>/.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Working directory holding `.hive/`.
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    /// Credential to present (a static token or a JWT); needed in remote mode.
    #[arg(long, global = true, env = "HIVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Role to connect as: client, consumer, admin, observer. Default: client
    /// (admin for `dlq purge`). With a token, it must be the token's role.
    #[arg(long, global = true, env = "HIVE_ROLE")]
    role: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Submit, list, show, cancel and retry tasks.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Follow a task's stream: replays its history, then follows it live; exits with
    /// the task's status.
    Tail(tail::TailArgs),
    /// The dead-letter store: list, show, requeue, purge.
    #[command(subcommand)]
    Dlq(DlqCmd),
    /// Queue and broker status.
    Status,
    /// Run a broker with the task queue (state under `<dir>/.hive/`).
    Broker(broker::BrokerArgs),
}

#[derive(Subcommand)]
enum TaskCmd {
    /// Submit a task; prints the queue's answer (task id, traceId, position, hints).
    Submit(SubmitArgs),
    /// List tasks the broker holds in memory, newest first.
    List {
        /// Only this state (queued, working, succeeded, dead, ...).
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
    Show {
        /// Task id or traceId.
        task: String,
    },
    /// Cancel a queued or running task; its consumer is told.
    Cancel {
        /// Task id.
        task: String,
    },
    /// Retry a failed (parked, non-idempotent) task.
    Retry {
        /// Task id.
        task: String,
        /// Replace the args with this JSON object.
        #[arg(long)]
        args_json: Option<String>,
    },
}

#[derive(Args)]
struct SubmitArgs {
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
}

#[derive(Subcommand)]
enum DlqCmd {
    /// List dead tasks.
    List {
        /// Most rows (<= 1000).
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
    /// Show a dead task with its full history.
    Show {
        /// Task id.
        task: String,
    },
    /// Put a dead task back in the queue, attempts reset.
    Requeue {
        /// Task id.
        task: String,
        /// Replace the args with this JSON object.
        #[arg(long)]
        args_json: Option<String>,
    },
    /// Delete dead tasks for good.
    Purge {
        /// Task id.
        task: Option<String>,
        /// Every dead task.
        #[arg(long)]
        all: bool,
    },
}

/// Connects as `role` (with the credential, when given) to the broker named by the
/// flags or discovered.
async fn connect(
    cli_url: &Option<String>,
    dir: &std::path::Path,
    role: &str,
    token: Option<&str>,
) -> Result<Client, String> {
    let url = match cli_url {
        Some(u) => u.clone(),
        None => {
            let port = hivebus::server::port::discover(dir)
                .map_err(|e| format!("cannot find the broker (HIVE_WS_PORT or .hive/port): {e}"))?;
            format!("ws://127.0.0.1:{port}/")
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
        e => format!("cannot connect to {url}: {e}"),
    })
}

fn parse_json(s: &str, what: &str) -> Result<Value, String> {
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

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn server_error(e: ClientError) -> String {
    match e {
        ClientError::Server(w) => match w.details {
            Some(d) => format!("{}: {} {}", w.code, w.message, d),
            None => format!("{}: {}", w.code, w.message),
        },
        other => other.to_string(),
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let cmd = match cli.cmd {
        Cmd::Broker(b) => return broker::run(&b, &cli.dir).await.map(|()| ExitCode::SUCCESS),
        other => other,
    };
    let default_role = match cmd {
        Cmd::Dlq(DlqCmd::Purge { .. }) => "admin",
        _ => "client",
    };
    let role = cli.role.as_deref().unwrap_or(default_role);
    let client = connect(&cli.url, &cli.dir, role, cli.token.as_deref()).await?;
    let (name, args) = match cmd {
        Cmd::Tail(t) => return tail::run(client, &t).await,
        Cmd::Broker(_) => return Err("`broker` does not take a client connection".into()),
        Cmd::Status => {
            let bus = client
                .command("status", json!({}))
                .await
                .map_err(server_error)?;
            let queue = client
                .command("op.queue.stats", json!({}))
                .await
                .map_err(server_error)?;
            print(&json!({"broker": bus, "queue": queue}));
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Task(TaskCmd::Submit(a)) => ("op.queue.submit", submit_body(&a)?),
        Cmd::Task(TaskCmd::List { state, kind, limit }) => (
            "op.queue.list",
            json!({"state": state, "kind": kind, "limit": limit}),
        ),
        Cmd::Task(TaskCmd::Show { task }) => ("op.queue.show", json!({"task": task})),
        Cmd::Task(TaskCmd::Cancel { task }) => ("op.queue.cancel", json!({"task": task})),
        Cmd::Task(TaskCmd::Retry { task, args_json }) => {
            let mut a = json!({"task": task});
            if let Some(j) = args_json {
                a["args"] = parse_json(&j, "--args-json")?;
            }
            ("op.queue.retry", a)
        }
        Cmd::Dlq(DlqCmd::List { limit }) => ("op.queue.dlq.list", json!({"limit": limit})),
        Cmd::Dlq(DlqCmd::Show { task }) => ("op.queue.dlq.show", json!({"task": task})),
        Cmd::Dlq(DlqCmd::Requeue { task, args_json }) => {
            let mut a = json!({"task": task});
            if let Some(j) = args_json {
                a["args"] = parse_json(&j, "--args-json")?;
            }
            ("op.queue.dlq.requeue", a)
        }
        Cmd::Dlq(DlqCmd::Purge { task, all }) => {
            if task.is_none() && !all {
                return Err("dlq purge: name a task or pass --all".into());
            }
            ("op.queue.dlq.purge", json!({"task": task, "all": all}))
        }
    };
    let args = strip_nulls(args);
    let r = client.command(name, args).await.map_err(server_error)?;
    print(&r);
    Ok(ExitCode::SUCCESS)
}

fn strip_nulls(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
    }
    v
}

fn main() -> ExitCode {
    // `HIVE_WORKERS` sets the runtime's worker threads (default: one per core).
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = std::env::var("HIVE_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        rt.worker_threads(n);
    }
    match rt.enable_all().build() {
        Ok(rt) => rt.block_on(async_main()),
        Err(e) => {
            eprintln!("hive: cannot start the runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn async_main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hive: {e}");
            ExitCode::from(2)
        }
    }
}
