//! `hive`: the command-line client of the hivebus task queue (BIP-43), and a broker
//! with the queue built in (`hive broker`).
//!
//! It finds the broker through `--url`, else the port file of the live broker of
//! `<dir>/.hive/` (warning when `HIVE_WS_PORT` disagrees), else `HIVE_WS_PORT` (see
//! `hivebus::server::state_dir::locate`). It presents `--token` / `HIVE_TOKEN` when
//! set, so a restricted credential is restricted here as everywhere; the role is
//! `client`, or `admin` for `dlq purge`, unless `--role` / `HIVE_ROLE` says otherwise
//! (with a token, the token's role).
//!
//! Output: tables on a terminal, JSON when stdout is not one, `--output`/`--json` to
//! choose (`cli/output.rs`). Every subcommand's `--help` shows examples and the exit
//! codes (`exit_codes!`, the one place they are written).
//!
//! `HIVE_WORKERS` sets the number of runtime worker threads (default: one per core).

/// The exit codes, as every `--help` shows them (docs/QUEUE.md repeats them).
macro_rules! exit_codes {
    () => {
        "Exit codes:
  0  success (tail: the task succeeded)
  1  tail: the task failed (parked) or is dead
  2  usage, connection or server error (the message says which)
  3  tail: the task was cancelled
  4  tail --no-follow: the task has not finished yet"
    };
}

/// An `after_help` text: the example command lines, then the exit codes.
macro_rules! examples {
    ($($line:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $line, "\n",)+ "\n", exit_codes!())
    };
}

#[path = "../cli/agent.rs"]
mod agent;
#[path = "../cli/approvals.rs"]
mod approvals;
#[path = "../cli/audit.rs"]
mod audit;
#[path = "../cli/broker.rs"]
mod broker;
#[path = "../cli/connect.rs"]
mod connect;
#[path = "../cli/consume.rs"]
mod consume;
#[path = "../cli/cron.rs"]
mod cron;
#[path = "../cli/dlq.rs"]
mod dlq;
#[path = "../cli/exec.rs"]
mod exec;
#[path = "../cli/gov.rs"]
mod gov;
#[path = "../cli/kv.rs"]
mod kv;
#[path = "../cli/mcp.rs"]
mod mcp;
#[path = "../cli/output.rs"]
mod output;
#[path = "../cli/policy.rs"]
mod policy;
#[path = "../cli/tail.rs"]
mod tail;
#[path = "../cli/task.rs"]
mod task;
#[path = "../cli/webhook.rs"]
mod webhook;

use clap::{CommandFactory, Parser, Subcommand};
use std::io::IsTerminal;

/// mimalloc instead of glibc malloc: the broker allocates per frame on every runtime
/// thread and frees much of it on the store's writer thread; the queue profile
/// (`docs/PERFORMANCE.md, "The durable task queue"`) showed glibc malloc/free at about a quarter of the
/// broker's CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    version,
    about = "hivebus task queue client (BIP-43)",
    propagate_version = true,
    after_help = examples!(
        "hive broker &                                   # start a broker in ./.hive",
        "hive task submit implement_bip --bip 43 --arg step=1",
        "hive tail <traceId>                             # follow it to its end",
        "hive task list --state dead",
        "hive dlq list",
        "hive policy check \"git push --force\" --config hive.toml",
        "hive completions bash > ~/.local/share/bash-completion/completions/hive",
    )
)]
struct Cli {
    /// Broker URL; default: the broker of `--dir` (`.hive/port`), else
    /// ws://127.0.0.1:$HIVE_WS_PORT/.
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
    /// Output: tables on a terminal and JSON otherwise (auto), or always one.
    #[arg(long, global = true, value_enum, default_value_t = output::Mode::Auto)]
    output: output::Mode,
    /// Short for `--output json`.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Submit, list, show, cancel and retry tasks.
    #[command(subcommand, after_help = examples!(
        "hive task submit verify_bip --bip 43 --priority core",
        "hive task list",
        "hive task show <task or traceId>",
    ))]
    Task(task::TaskCmd),
    /// Follow a task's stream: replays its history, then follows it live; exits with
    /// the task's final state.
    #[command(after_help = examples!(
        "hive tail <traceId>",
        "hive tail <task> --no-follow          # print what happened so far; 4 if still running",
        "hive tail <traceId> --json            # one JSON frame per line",
    ))]
    Tail(tail::TailArgs),
    /// The dead-letter store: list, show, requeue, purge.
    #[command(subcommand, after_help = examples!(
        "hive dlq list",
        "hive dlq requeue <task>",
        "hive dlq purge --all --yes",
    ))]
    Dlq(dlq::DlqCmd),
    /// Requests of running agents that wait for a person: list, show, approve, deny.
    #[command(subcommand, after_help = examples!(
        "hive approvals list",
        "hive approvals approve <task>",
        "hive approvals deny <task> --reason \"use a branch\"",
    ))]
    Approvals(approvals::ApprovalsCmd),
    /// The consumers (agents) connected, and control of one: model, clear, new
    /// session, chat.
    #[command(subcommand, after_help = examples!(
        "hive agent list",
        "hive agent control <consumer> model=claude-sonnet-4.5",
        "hive agent control <consumer> chat \"use the v2 API\"",
    ))]
    Agent(agent::AgentCmd),
    /// Webhooks: POST a pattern's envelopes to a URL, signed; list, unregister,
    /// dead letters.
    #[command(subcommand, after_help = examples!(
        "hive webhook register 'bip-43:*' https://ci.example.com/hive",
        "hive webhook list",
        "hive webhook deadletters <id>",
    ))]
    Webhook(webhook::WebhookCmd),
    /// Publish on a channel later, or on a cron rule: schedule, list, cancel.
    #[command(subcommand, after_help = examples!(
        "hive cron schedule ops:standup --cron \"0 9 * * 1-5\" --tz UTC --text standup",
        "hive cron schedule ops:ping --in 10m --text ping",
        "hive cron list",
    ))]
    Cron(cron::CronCmd),
    /// Key-value state, yours or a room's: get, set, list, delete.
    #[command(subcommand, after_help = examples!(
        "hive kv set deploy/last '{\"sha\":\"4f2a\"}'",
        "hive kv get deploy/last",
        "hive kv list deploy/ --ns room:team",
    ))]
    Kv(kv::KvCmd),
    /// Queue and broker status.
    #[command(after_help = examples!("hive status", "hive status --json"))]
    Status,
    /// Run a broker with the task queue (state under `<dir>/.hive/`).
    #[command(after_help = examples!(
        "hive broker                       # 127.0.0.1, HIVE_WS_PORT or a free high port",
        "hive --dir /srv/hive broker --port 7000 --config hive.toml",
    ))]
    Broker(broker::BrokerArgs),
    /// The approval policy: what it decides about an action; the broker's rules.
    #[command(subcommand, after_help = policy::CHECK_HELP)]
    Policy(policy::PolicyCmd),
    /// Run an agent per leased task (a child process from a command template):
    /// worktree, scrubbed environment, time limit, approvals, streamed output.
    #[command(after_help = consume::HELP)]
    Consume(consume::ConsumeArgs),
    /// The broker's hash-chained audit log: verify it, or print its last records
    /// (reads the file; no broker needed).
    #[command(subcommand, after_help = audit::HELP)]
    Audit(audit::AuditCmd),
    /// Inside an agent run by `hive consume`: ask the approval policy (and maybe a
    /// person) for a command on the running task's behalf, then run it or refuse (126).
    #[command(after_help = exec::HELP)]
    Exec(exec::ExecArgs),
    /// The governance repository without a broker: tally a minute, verify its voting
    /// chain, list the TASK kinds' contracts, run a built-in kind.
    #[command(subcommand, after_help = gov::GOV_HELP)]
    Gov(gov::GovCmd),
    /// An MCP server on stdin/stdout: the queue, approvals and channels as tools and
    /// resources for Claude Code, Codex, Cursor or any MCP client (docs/AGENTS.md).
    #[command(after_help = mcp::HELP)]
    Mcp(mcp::McpArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = examples!(
        "hive completions bash > ~/.local/share/bash-completion/completions/hive",
        "hive completions zsh > \"${fpath[1]}/_hive\"",
        "hive completions fish > ~/.config/fish/completions/hive.fish",
    ))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    let cmd = match cli.cmd {
        Cmd::Broker(b) => return broker::run(&b, &cli.dir).await.map(|()| ExitCode::SUCCESS),
        Cmd::Exec(e) => return Ok(exec::run(&e)),
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hive", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Cmd::Policy(p) => {
            let mode = if cli.json {
                output::Mode::Json
            } else {
                cli.output
            };
            let reach = policy::Reach {
                url: &cli.url,
                dir: &cli.dir,
                token: cli.token.as_deref(),
                role: cli.role.as_deref(),
            };
            return policy::run(p, &output::Out::new(mode), reach).await;
        }
        Cmd::Audit(a) => {
            let mode = if cli.json {
                output::Mode::Json
            } else {
                cli.output
            };
            return audit::run(a, &cli.dir, &output::Out::new(mode)).await;
        }
        Cmd::Gov(g) => {
            let mode = if cli.json {
                output::Mode::Json
            } else {
                cli.output
            };
            let out = output::Out::new(mode);
            return gov::run(g, &cli.url, &cli.dir, cli.token.as_deref(), &out).await;
        }
        Cmd::Consume(c) => {
            let mode = if cli.json {
                output::Mode::Json
            } else {
                cli.output
            };
            let out = output::Out::new(mode);
            let (token, role) = (cli.token.as_deref(), cli.role.as_deref());
            return consume::run(c, &cli.url, &cli.dir, token, role, &out).await;
        }
        Cmd::Mcp(m) => {
            let (token, role) = (cli.token.as_deref(), cli.role.as_deref());
            return mcp::run(m, &cli.url, &cli.dir, token, role).await;
        }
        other => other,
    };
    let out = output::Out::new(if cli.json {
        output::Mode::Json
    } else {
        cli.output
    });
    let default_role = match cmd {
        Cmd::Dlq(dlq::DlqCmd::Purge { .. }) => "admin",
        _ => "client",
    };
    let role = cli.role.as_deref().unwrap_or(default_role);
    let client = connect::connect(&cli.url, &cli.dir, role, cli.token.as_deref()).await?;
    match cmd {
        Cmd::Tail(t) => tail::run(client, &t, &out).await,
        Cmd::Task(t) => task::run(&client, t, &out)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Dlq(d) => dlq::run(&client, d, &out).await.map(|()| ExitCode::SUCCESS),
        Cmd::Agent(a) => agent::run(&client, a, &out)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Webhook(w) => webhook::run(&client, w, &out)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Cron(c) => cron::run(&client, c, &out)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Kv(k) => kv::run(&client, k, &out).await.map(|()| ExitCode::SUCCESS),
        Cmd::Approvals(a) => approvals::run(&client, a, &out)
            .await
            .map(|()| ExitCode::SUCCESS),
        Cmd::Status => {
            let bus = client
                .command("status", json!({}))
                .await
                .map_err(connect::server_error)?;
            let queue = client
                .command("op.queue.stats", json!({}))
                .await
                .map_err(connect::server_error)?;
            let v = json!({"broker": bus, "queue": queue});
            if out.json {
                out.json(&v);
            } else {
                print_status(&out, &v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Broker(_)
        | Cmd::Completions { .. }
        | Cmd::Policy(_)
        | Cmd::Consume(_)
        | Cmd::Audit(_)
        | Cmd::Exec(_)
        | Cmd::Gov(_)
        | Cmd::Mcp(_) => Err("this subcommand does not take a client connection".into()),
    }
}

fn print_status(out: &output::Out, v: &serde_json::Value) {
    use output::cell;
    let b = &v["broker"];
    let q = &v["queue"];
    println!(
        "broker    {} (protocol {}), operators {}",
        cell(&b["server"]),
        cell(&b["protocol"]),
        cell(&b["operators"])
    );
    let states = q["states"].as_object().cloned().unwrap_or_default();
    let states: Vec<String> = states
        .iter()
        .map(|(k, n)| format!("{} {}", out.state(k), cell(n)))
        .collect();
    println!(
        "tasks     {} in memory: {}",
        cell(&q["inMemory"]),
        if states.is_empty() {
            "none".to_owned()
        } else {
            states.join(", ")
        }
    );
    let c = &q["counters"];
    println!(
        "counters  submitted {}, succeeded {}, retries {}, dead {}, cancelled {}",
        cell(&c["submitted"]),
        cell(&c["succeeded"]),
        cell(&c["retries"]),
        cell(&c["dead"]),
        cell(&c["cancelled"])
    );
    let rows = agent::consumer_rows(&q["consumers"]);
    if rows.is_empty() {
        println!("consumers none connected: tasks wait until one is");
    } else {
        println!();
        out.table(&["CONSUMER", "KINDS", "BUSY/SLOTS"], &rows, &[]);
    }
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
        // Colour codes only for a person: a log file or pipe gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            // Server messages can quote what others wrote (task ids, kinds).
            eprintln!("hive: {}", output::safe(&e));
            ExitCode::from(2)
        }
    }
}
