//! An example task consumer: takes leases for the given kinds, streams progress in
//! `--steps` EVENTs (with `pct`), and finishes each task with RESULT `ok` (or `fail`,
//! when the task's args hold `"fail": true`). It logs each task's end.
//!
//! It stays up across broker restarts: when the connection ends it reconnects with
//! exponential backoff and full jitter (finding the broker again through `.hive/port`
//! unless `--url` pins it). On SIGTERM or Ctrl-C it drains: it stops taking leases,
//! lets running tasks finish for at most `--drain-secs`, then exits (a task still
//! running then is abandoned, and the queue retries it).
//!
//! ```text
//! cargo run --example consumer -- [--url ws://127.0.0.1:N/] [--kinds verify_bip,implement_bip] [--slots 4] [--step-ms 200]
//! ```
//! Without `--url` it finds the broker through `.hive/port` or `HIVE_WS_PORT`.

use clap::Parser;
use hivebus::consumer::{Consumer, Lease};
use std::io::IsTerminal;
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(about = "example hivebus task consumer")]
struct Args {
    /// Broker URL.
    #[arg(long)]
    url: Option<String>,
    /// Directory holding `.hive/port`.
    #[arg(long, default_value = ".")]
    dir: std::path::PathBuf,
    /// Task kinds, comma-separated.
    #[arg(
        long,
        default_value = "start_bip,implement_bip,continue_impl,verify_bip,create_impl_summary,review_bip"
    )]
    kinds: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 4)]
    slots: u32,
    /// Progress events per task.
    #[arg(long, default_value_t = 4)]
    steps: u8,
    /// Pause between events, ms.
    #[arg(long, default_value_t = 200)]
    step_ms: u64,
    /// On SIGTERM, how long running tasks may take to finish.
    #[arg(long, default_value_t = 30)]
    drain_secs: u64,
}

/// Longest pause between reconnection attempts.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Runs one lease to its end and says how it ended.
async fn work(lease: Lease, steps: u8, step: Duration) {
    let (task, kind) = (lease.task.clone(), lease.kind.clone());
    let steps = steps.max(1);
    for i in 1..=steps {
        let pct = (u32::from(i) * 100 / u32::from(steps)) as u8;
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            loss = lease.until_lost() => {
                tracing::info!(%task, %kind, ?loss, "task ended: lease lost, stopped");
                return;
            }
        }
        let msg = format!("step {i}/{steps} of {kind}");
        if let Err(e) = lease.event("work", &msg, Some(pct)).await {
            tracing::warn!(%task, %kind, "task ended: cannot report progress ({e})");
            return;
        }
    }
    let (end, r) = if lease.args.get("fail").and_then(serde_json::Value::as_bool) == Some(true) {
        ("fail", lease.fail("asked to fail").await)
    } else {
        let summary = format!("{kind} done in {steps} steps");
        ("ok", lease.complete(&summary, None).await)
    };
    match r {
        Ok(()) => tracing::info!(%task, %kind, result = end, "task ended"),
        Err(e) => {
            tracing::warn!(%task, %kind, result = end, "task ended, but the result was not delivered ({e})")
        }
    }
}

/// Where to connect now: `--url`, else the broker of `--dir` (found again at every
/// attempt, since a restarted broker may listen on another port).
fn url(a: &Args) -> Result<String, String> {
    match &a.url {
        Some(u) => Ok(u.clone()),
        None => hivebus::server::port::discover(&a.dir)
            .map(|p| format!("ws://127.0.0.1:{p}/"))
            .map_err(|e| format!("cannot find the broker: {e}")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = Args::parse();
    let kinds: Vec<&str> = a.kinds.split(',').filter(|k| !k.is_empty()).collect();
    let step = Duration::from_millis(a.step_ms);
    let mut running = JoinSet::new();
    let stop = hivebus::broker::shutdown_signal();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(200);
    'connect: loop {
        let connected = match url(&a) {
            Ok(u) => Consumer::connect(&u, &kinds, a.slots)
                .await
                .map_err(|e| format!("cannot connect to {u}: {e}")),
            Err(e) => Err(e),
        };
        let mut consumer = match connected {
            Ok(c) => c,
            Err(e) => {
                // Full jitter: many consumers of one restarted broker do not come back
                // in step.
                let wait = backoff.mul_f64(fastrand::f64());
                tracing::warn!("{e}; retrying in {} ms", wait.as_millis());
                backoff = (backoff * 2).min(BACKOFF_CAP);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => continue 'connect,
                    _ = &mut stop => break 'connect,
                }
            }
        };
        backoff = Duration::from_millis(200);
        tracing::info!(
            session = consumer.session(),
            ?kinds,
            slots = a.slots,
            "consumer ready"
        );
        loop {
            tokio::select! {
                lease = consumer.next_lease() => match lease {
                    Some(lease) => {
                        tracing::info!(task = %lease.task, attempt = lease.attempt, kind = %lease.kind, "leased");
                        running.spawn(work(lease, a.steps, step));
                    }
                    None => {
                        tracing::warn!("disconnected from the broker; reconnecting");
                        continue 'connect;
                    }
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = &mut stop => {
                    drain(consumer, &mut running, &a, step).await;
                    return std::process::ExitCode::SUCCESS;
                }
            }
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Stops taking leases, runs what was already leased, and waits for running tasks
/// for at most `--drain-secs`.
async fn drain(mut consumer: Consumer, running: &mut JoinSet<()>, a: &Args, step: Duration) {
    tracing::info!(
        running = running.len(),
        "draining: no new leases, waiting for running tasks"
    );
    if let Err(e) = consumer.drain().await {
        tracing::warn!("cannot tell the broker to stop leasing ({e})");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(a.drain_secs);
    loop {
        tokio::select! {
            // Leases the queue sent before it saw the drain are run too.
            Some(lease) = consumer.next_lease() => {
                tracing::info!(task = %lease.task, kind = %lease.kind, "leased while draining");
                running.spawn(work(lease, a.steps, step));
            }
            r = running.join_next() => {
                if r.is_none() {
                    tracing::info!("drained; bye");
                    break;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!(abandoned = running.len(), "drain time is up; the queue retries what is left");
                running.abort_all();
                break;
            }
        }
    }
    // Results still queued in this process reach the broker before we exit.
    consumer.close().await;
}
