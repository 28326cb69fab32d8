//! An example task consumer: takes leases for the given kinds, streams progress in
//! `--steps` EVENTs (with `pct`), and finishes each task with RESULT `ok` (or `fail`,
//! when the task's args hold `"fail": true`).
//!
//! ```text
//! cargo run --example consumer -- [--url ws://127.0.0.1:N/] [--kinds verify_bip,implement_bip] [--slots 4] [--step-ms 200]
//! ```
//! Without `--url` it finds the broker through `HIVE_WS_PORT` or `.hive/port`.

use clap::Parser;
use hivebus::consumer::{Consumer, Lease};
use std::time::Duration;

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
}

async fn work(lease: Lease, steps: u8, step: Duration) -> Result<(), hivebus::client::ClientError> {
    let steps = steps.max(1);
    for i in 1..=steps {
        let pct = (u32::from(i) * 100 / u32::from(steps)) as u8;
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            loss = lease.until_lost() => {
                tracing::info!(task = %lease.task, ?loss, "lease lost; stopping");
                return Ok(());
            }
        }
        lease
            .event(
                "work",
                &format!("step {i}/{steps} of {}", lease.kind),
                Some(pct),
            )
            .await?;
    }
    if lease.args.get("fail").and_then(serde_json::Value::as_bool) == Some(true) {
        return lease.fail("asked to fail").await;
    }
    let summary = format!("{} done in {steps} steps", lease.kind);
    lease.complete(&summary, None).await
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = Args::parse();
    let url = match a.url.clone() {
        Some(u) => u,
        None => match hivebus::server::port::discover(&a.dir) {
            Ok(p) => format!("ws://127.0.0.1:{p}/"),
            Err(e) => {
                tracing::error!("cannot find the broker: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
    };
    let kinds: Vec<&str> = a.kinds.split(',').filter(|k| !k.is_empty()).collect();
    let mut consumer = match Consumer::connect(&url, &kinds, a.slots).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot connect to {url}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(
        session = consumer.session(),
        ?kinds,
        slots = a.slots,
        "consumer ready"
    );
    let step = Duration::from_millis(a.step_ms);
    while let Some(lease) = consumer.next_lease().await {
        tracing::info!(task = %lease.task, attempt = lease.attempt, kind = %lease.kind, "leased");
        let steps = a.steps;
        tokio::spawn(async move {
            if let Err(e) = work(lease, steps, step).await {
                tracing::warn!("task aborted: {e}");
            }
        });
    }
    std::process::ExitCode::SUCCESS
}
