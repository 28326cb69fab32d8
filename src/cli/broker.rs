//! `hive broker`: a hivebus broker with the task queue registered, its state under
//! `<dir>/.hive/` (`queue.db`, `logs/`, `port`). Stops on Ctrl-C or SIGTERM, flushing
//! the store; a SIGKILL loses nothing that was acknowledged (see docs/RELIABILITY.md).

use clap::Args;
use hivebus::ops::queue::{Queue, QueueConfig};
use hivebus::ops::Operators;
use hivebus::server::port;
use hivebus::{Bus, Config};
use std::path::Path;
use std::sync::Arc;

/// Flags of `hive broker`.
#[derive(Args)]
pub(crate) struct BrokerArgs {
    /// Port; default: HIVE_WS_PORT, else a free port in 49152-65535.
    #[arg(long, env = "HIVE_WS_PORT")]
    port: Option<u16>,
    /// `synchronous=NORMAL` instead of FULL (faster; may lose the last commits on
    /// power loss, never on a process crash).
    #[arg(long)]
    sync_normal: bool,
    /// Default lease length in ms.
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    /// Backpressure soft threshold per kind.
    #[arg(long, default_value_t = 10_000)]
    soft: usize,
    /// Backpressure hard threshold per kind.
    #[arg(long, default_value_t = 50_000)]
    hard: usize,
    /// Backoff base in ms.
    #[arg(long, default_value_t = 1_000)]
    backoff_base_ms: u64,
    /// Default attempts before dead-lettering.
    #[arg(long, default_value_t = 5)]
    max_attempts: u32,
    /// No ndjson trace logs.
    #[arg(long)]
    no_logs: bool,
}

pub(crate) async fn run(a: &BrokerArgs, dir: &Path) -> Result<(), String> {
    let hive = dir.join(".hive");
    let cfg = QueueConfig {
        db_path: Some(hive.join("queue.db")),
        logs_dir: (!a.no_logs).then(|| hive.join("logs")),
        synchronous_full: !a.sync_normal,
        lease_ms: a.lease_ms,
        soft_limit: a.soft,
        hard_limit: a.hard,
        backoff_base_ms: a.backoff_base_ms,
        max_attempts: a.max_attempts,
        ..QueueConfig::default()
    };
    let config = Config::default();
    let bus = Bus::new(config.bus.clone()).map_err(|e| e.to_string())?;
    let queue = Queue::open(bus.clone(), cfg).map_err(|e| e.to_string())?;
    let (listener, _) = port::bind("127.0.0.1".parse().map_err(|_| "address")?, a.port)
        .await
        .map_err(|e| format!("cannot bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let port_file = port::port_file(dir);
    port::write_port_file(&port_file, addr.port()).map_err(|e| e.to_string())?;
    tracing::info!(%addr, "hive broker listening on ws://{addr}/");
    let ops = Operators::new().with(Arc::new(queue));
    let result = hivebus::server::run(listener, bus, config.server, ops.clone(), shutdown()).await;
    ops.stop().await;
    if port::read_port_file(&port_file).ok() == Some(addr.port()) {
        let _ = std::fs::remove_file(&port_file);
    }
    result.map_err(|e| e.to_string())
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
