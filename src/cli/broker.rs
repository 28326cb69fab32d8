//! `hive broker`: a hivebus broker with the task queue registered, its state under
//! `<dir>/.hive/` (`queue.db`, `logs/`, `port`, `broker.lock`). One broker per
//! directory: a second one is refused, naming the first. Prints one line on stderr
//! once it listens (address, PID, state directory), whatever `RUST_LOG` says. Stops
//! on Ctrl-C or SIGTERM, flushing the store; a SIGKILL loses nothing that was
//! acknowledged (see docs/RELIABILITY.md).

use clap::Args;
use hivebus::broker::{self, BrokerOptions};
use hivebus::Config;
use std::path::{Path, PathBuf};

/// Flags of `hive broker`; each overrides the `[queue]` section of `--config`.
#[derive(Args)]
pub(crate) struct BrokerArgs {
    /// Port to bind, or fail; default: HIVE_WS_PORT if free, else a free port in
    /// 49152-65535.
    #[arg(long)]
    port: Option<u16>,
    /// TOML configuration file (`[server]`, `[bus]`, `[queue]`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// `synchronous=NORMAL` instead of FULL (faster; may lose the last commits on
    /// power loss, never on a process crash).
    #[arg(long)]
    sync_normal: bool,
    /// Default lease length in ms.
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Backpressure soft threshold per kind.
    #[arg(long)]
    soft: Option<usize>,
    /// Backpressure hard threshold per kind.
    #[arg(long)]
    hard: Option<usize>,
    /// Backoff base in ms.
    #[arg(long)]
    backoff_base_ms: Option<u64>,
    /// Default attempts before dead-lettering.
    #[arg(long)]
    max_attempts: Option<u32>,
    /// No ndjson trace logs.
    #[arg(long)]
    no_logs: bool,
}

/// Runs the broker until Ctrl-C or SIGTERM.
pub(crate) async fn run(a: &BrokerArgs, dir: &Path) -> Result<(), String> {
    let mut config = match &a.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    let q = &mut config.queue;
    q.synchronous_full &= !a.sync_normal;
    q.logs &= !a.no_logs;
    q.lease_ms = a.lease_ms.unwrap_or(q.lease_ms);
    q.soft_limit = a.soft.unwrap_or(q.soft_limit);
    q.hard_limit = a.hard.unwrap_or(q.hard_limit);
    q.backoff_base_ms = a.backoff_base_ms.unwrap_or(q.backoff_base_ms);
    q.max_attempts = a.max_attempts.unwrap_or(q.max_attempts);
    let opts = BrokerOptions {
        host: [127, 0, 0, 1].into(),
        want: broker::want_port(a.port)?,
        dir: dir.to_owned(),
        config,
        config_path: a.config.clone(),
    };
    let hive = dir.join(".hive");
    broker::run_with(opts, broker::shutdown_signal(), |addr| {
        eprintln!(
            "hive broker: listening on ws://{addr}/ (PID {}, state in {}); Ctrl-C stops it",
            std::process::id(),
            hive.display()
        );
    })
    .await
}
