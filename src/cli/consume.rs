//! `hive consume`: the reference consumer. It takes leases for `--kinds` and runs a
//! real agent per task, as a child process built from a command template, safely:
//! no shell, a scrubbed environment, its own worktree, its own process group, a time
//! limit, bounded output, approvals through the broker's policy and people.
//! `docs/CONSUME.md` is the manual (the protocol on the agent's stdio above all).
//!
//! # Layout
//! - `template`: `{field}` placeholders, each filling part of one argv word.
//! - `env`: the scrubbed environment.
//! - `workdir`: the repository check and the per-task git worktree.
//! - `agent`: the child process, its group, its lines.
//! - `output`: bounds on what is streamed (line length, lines per second, tail).
//! - `protocol`: the JSON lines on the agent's stdio, and decision lines.
//! - `gate`: the private socket `hive exec` asks through.
//! - `control`: `op.queue.control` requests (model, restarts, chat) applied.
//! - `attempt`: one lease from start to end (the protocol loop).
//!
//! This file: the flags, the connection (reconnect with backoff and full jitter) and
//! the drain on SIGINT / SIGTERM.
//!
//! Leases are not resumed across a reconnection: a lease belongs to the session that
//! took it, and the queue ends an attempt when its consumer's session goes (and a
//! restarted broker retries every running attempt). So when the connection ends,
//! every running agent is killed (its lease is lost) and the task comes back, to this
//! consumer or another, as a new attempt.

#[path = "consume/agent.rs"]
mod agent;
#[path = "consume/attempt.rs"]
mod attempt;
#[path = "consume/control.rs"]
mod control;
#[path = "consume/env.rs"]
mod env;
#[path = "consume/gate.rs"]
mod gate;
#[path = "consume/output.rs"]
mod output;
#[path = "consume/protocol.rs"]
mod protocol;
#[path = "consume/template.rs"]
mod template;
#[path = "consume/workdir.rs"]
mod workdir;

use super::output::Out;
use clap::Args;
use hivebus::client::{ClientError, Hello};
use hivebus::consumer::Consumer;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};
use tokio::task::JoinSet;

/// `hive consume --help`, after the flags.
pub(crate) const HELP: &str = "Examples:
  hive consume --kinds implement_bip --slots 2 -- claude -p \"implement BIP {bipId}: {args.goal}\"
  hive consume --kinds review_bip -- ./agents/review.sh --bip={bipId} --branch={branch}
  hive consume --kinds verify_bip --timeout 20m --keep-worktrees -- make verify BIP={bipId}
  hive consume --kinds build --allow-repo /srv/repos --pass-env SSH_AUTH_SOCK -- ./agents/build.sh {task}
  hive consume --kinds implement_bip --model claude-sonnet-4.5 -- claude --model {model} -p \"{args.goal}\"

Placeholders: {bipId} {kind} {repo} {branch} {traceId} {task} {attempt} {lease}
{model} {args.<name>}; each fills part of one argument (no shell runs), see
docs/CONSUME.md. {model} needs --model; `hive agent control` switches it.

Agents ask for approvals with JSON lines on their stdout, or run commands through
`\"$HIVE_BIN\" exec -- <command>` (exit 126 when refused).

Exit codes:
  0  stopped on SIGINT/SIGTERM after every running task finished
  1  stopped, but --drain-timeout ran out: running agents were killed and their
     tasks left to the queue's retry
  2  usage error (a bad template, root or flag), or the broker refused the
     credential or the role";

/// Flags of `hive consume`.
#[derive(Args)]
pub(crate) struct ConsumeArgs {
    /// Task kinds to take, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    kinds: Vec<String>,
    /// Tasks run at once (1..=1024).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    slots: u32,
    /// Longest run of one attempt (`30m`, `90s`); a task's `args.timeout` can make
    /// it shorter, never longer. Over it the agent's group is killed and the attempt
    /// fails.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// On SIGINT/SIGTERM: no new leases, and running tasks get this long to finish.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    drain_timeout: Duration,
    /// Between SIGTERM and SIGKILL to the agent's process group.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    kill_grace: Duration,
    /// Keep each task's git worktree after the task (default: removed; the branch
    /// stays either way).
    #[arg(long)]
    keep_worktrees: bool,
    /// A directory the tasks' `repo` may name (repeatable); default: `--dir`.
    #[arg(long = "allow-repo", value_name = "DIR")]
    allow_repo: Vec<PathBuf>,
    /// Pass this variable to the agent although its name looks like a secret's
    /// (repeatable; values that match a secret rule are dropped all the same).
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
    /// The model for `{model}` in the template (and `HIVE_MODEL`) until a client
    /// switches it (`hive agent control <consumer> model=<name>`).
    #[arg(long)]
    model: Option<String>,
    /// The agent command template, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// What every attempt shares.
pub(super) struct Ctx {
    template: template::Template,
    env: Vec<(OsString, OsString)>,
    dir: PathBuf,
    roots: Vec<PathBuf>,
    timeout: Duration,
    grace: Duration,
    keep_worktrees: bool,
    /// Serializes git worktree changes (see `workdir`).
    git_lock: Mutex<()>,
    /// Set when the drain time is up: every attempt kills its agent and ends.
    abort: watch::Receiver<bool>,
    /// `{model}`: `--model`, then the last `model` control.
    model: std::sync::RwLock<Option<String>>,
    /// The running attempts, for control orders.
    attempts: control::Attempts,
    /// This `hive`, for agents that call `"$HIVE_BIN" exec`.
    hive_bin: Option<PathBuf>,
}

/// Longest pause between reconnection attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// First pause after a lost connection.
const BACKOFF_START: Duration = Duration::from_millis(200);

/// Runs `hive consume` until SIGINT / SIGTERM.
pub(crate) async fn run(
    a: ConsumeArgs,
    url: &Option<String>,
    dir: &Path,
    token: Option<&str>,
    role: Option<&str>,
    out: &Out,
) -> Result<ExitCode, String> {
    let template = template::Template::parse(&a.command)?;
    if template.uses_model() && a.model.is_none() {
        return Err("the template names {model}: give the first one with --model".into());
    }
    if let Some(m) = &a.model {
        if m.is_empty() || m.starts_with('-') {
            return Err("--model takes a model name (not empty, not starting with -)".into());
        }
    }
    if template.shell_string() {
        eprintln!(
            "hive: warning: the template hands a placeholder to a shell's -c string; \
             a task's values can then run commands. Pass them as arguments instead."
        );
    }
    let canon = |p: &Path| {
        std::fs::canonicalize(p).map_err(|e| format!("--allow-repo {}: {e}", p.display()))
    };
    let roots = if a.allow_repo.is_empty() {
        vec![canon(dir)?]
    } else {
        a.allow_repo
            .iter()
            .map(|p| canon(p))
            .collect::<Result<_, _>>()?
    };
    let (env, dropped) = env::scrub(std::env::vars_os(), &a.pass_env);
    if !dropped.is_empty() {
        tracing::info!(dropped = %dropped.join(","), "left out of the agent's environment");
    }
    let (abort_tx, abort) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        template,
        env,
        dir: std::fs::canonicalize(dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?,
        roots,
        timeout: a.timeout,
        grace: a.kill_grace,
        keep_worktrees: a.keep_worktrees,
        git_lock: Mutex::new(()),
        abort,
        model: std::sync::RwLock::new(a.model.clone()),
        attempts: control::Attempts::default(),
        hive_bin: std::env::current_exe().ok(),
    });
    let kinds: Vec<String> = a.kinds.iter().filter(|k| !k.is_empty()).cloned().collect();
    if kinds.is_empty() {
        return Err("--kinds names no kind".into());
    }
    let mut running: JoinSet<(String, Value)> = JoinSet::new();
    let stop = hivebus::broker::shutdown_signal();
    tokio::pin!(stop);
    let mut backoff = BACKOFF_START;
    'connect: loop {
        let mut consumer = match connect(url, dir, token, role, &kinds, a.slots).await {
            Ok(c) => c,
            Err(Fatal(e)) => return Err(e),
            Err(Retry(e)) => {
                // Full jitter: the consumers of one restarted broker do not return in step.
                let wait = backoff.mul_f64(fastrand::f64());
                eprintln!("hive: {e}; retrying in {} ms", wait.as_millis());
                backoff = (backoff * 2).min(BACKOFF_CAP);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue 'connect,
                    _ = &mut stop => return Ok(ExitCode::SUCCESS),
                }
            }
        };
        backoff = BACKOFF_START;
        let mut controls = consumer
            .take_controls()
            .unwrap_or_else(|| tokio::sync::mpsc::channel(1).1);
        report(
            out,
            "ready",
            &json!({"session": consumer.session(), "kinds": kinds, "slots": a.slots}),
        );
        loop {
            tokio::select! {
                lease = consumer.next_lease() => match lease {
                    Some(lease) => {
                        report(out, "leased", &json!({"task": lease.task, "kind": lease.kind,
                            "attempt": lease.attempt, "traceId": lease.trace_id}));
                        running.spawn(attempt::run(lease, ctx.clone()));
                    }
                    None => {
                        eprintln!("hive: disconnected from the broker; running agents lose their leases; reconnecting");
                        // Their leases are lost with the session: they end promptly.
                        while let Some(r) = running.join_next().await {
                            ended(out, r);
                        }
                        continue 'connect;
                    }
                },
                Some(r) = running.join_next(), if !running.is_empty() => ended(out, r),
                Some(c) = controls.recv() => {
                    report(out, "control", &json!({"action": c.action, "by": c.by}));
                    tokio::spawn(control::apply(c, ctx.clone()));
                }
                _ = &mut stop => {
                    let clean = drain(consumer, &mut running, &a, &abort_tx, out, &ctx).await;
                    return Ok(if clean { ExitCode::SUCCESS } else { ExitCode::FAILURE });
                }
            }
        }
    }
}

/// A connection failure: worth retrying, or not.
enum Failure {
    Retry(String),
    Fatal(String),
}
use Failure::{Fatal, Retry};

async fn connect(
    url: &Option<String>,
    dir: &Path,
    token: Option<&str>,
    role: Option<&str>,
    kinds: &[String],
    slots: u32,
) -> Result<Consumer, Failure> {
    // Found again at every attempt: a restarted broker may listen on another port.
    let url = match url {
        Some(u) => u.clone(),
        None => {
            let found = hivebus::server::state_dir::locate(dir)
                .map_err(|e| Retry(format!("cannot find the broker: {e}")))?;
            format!("ws://127.0.0.1:{}/", found.port)
        }
    };
    let mut hello = Hello::role(role.unwrap_or("consumer"));
    hello.capabilities = kinds.to_vec();
    hello.slots = Some(slots);
    hello.auth = token.map(str::to_owned);
    hello.name = Some("hive consume".into());
    Consumer::connect_with(&url, hello)
        .await
        .map_err(|e| match e {
            ClientError::Server(w)
                if matches!(
                    w.code,
                    hivebus::ErrorCode::Unauthorized | hivebus::ErrorCode::Forbidden
                ) =>
            {
                Fatal(format!(
                    "{url} refused this consumer: {}: {}",
                    w.code, w.message
                ))
            }
            e => Retry(format!("cannot connect to {url}: {e}")),
        })
}

/// Stops taking leases, lets running tasks finish for `--drain-timeout`, then kills
/// what is left. True when every task finished on its own.
async fn drain(
    mut consumer: Consumer,
    running: &mut JoinSet<(String, Value)>,
    a: &ConsumeArgs,
    abort: &watch::Sender<bool>,
    out: &Out,
    ctx: &Arc<Ctx>,
) -> bool {
    report(out, "draining", &json!({"running": running.len()}));
    if let Err(e) = consumer.drain().await {
        eprintln!("hive: cannot tell the broker to stop leasing ({e})");
    }
    let deadline = tokio::time::Instant::now() + a.drain_timeout;
    let mut clean = true;
    loop {
        tokio::select! {
            // Leases the queue sent before it saw the drain run too.
            Some(lease) = consumer.next_lease() => {
                report(out, "leased", &json!({"task": lease.task, "kind": lease.kind,
                    "attempt": lease.attempt, "traceId": lease.trace_id}));
                running.spawn(attempt::run(lease, ctx.clone()));
            }
            r = running.join_next() => match r {
                Some(r) => ended(out, r),
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if clean => {
                clean = false;
                let _ = abort.send(true);
                eprintln!("hive: drain time is up: killing {} agent(s); the queue retries their tasks", running.len());
            }
        }
    }
    // Results still queued in this process reach the broker before it exits.
    consumer.close().await;
    report(out, "stopped", &json!({"clean": clean}));
    clean
}

/// Reports an attempt's end.
fn ended(out: &Out, r: Result<(String, Value), tokio::task::JoinError>) {
    match r {
        Ok((end, mut v)) => {
            v["end"] = json!(end);
            report(out, "ended", &v);
        }
        Err(e) => eprintln!("hive: an attempt panicked: {e}"),
    }
}

/// One line per happening: JSON lines for scripts, text for people. A closed
/// stdout (`hive consume | head -1`) must not stop the consumer: write errors are
/// ignored.
fn report(out: &Out, what: &str, v: &Value) {
    use std::io::Write;
    let line = if out.json {
        let mut v = v.clone();
        v["event"] = json!(what);
        v.to_string()
    } else {
        let s = |k: &str| super::output::safe(v[k].as_str().unwrap_or_default());
        match what {
            "ready" => format!(
                "ready    session {} kinds {} slots {}",
                s("session"),
                v["kinds"],
                v["slots"]
            ),
            "leased" => format!(
                "leased   {} {} attempt {}",
                s("task"),
                s("kind"),
                v["attempt"]
            ),
            "ended" => format!("ended    {} {}: {}", s("task"), s("end"), s("summary")),
            other => format!("{other:<8} {v}"),
        }
    };
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
