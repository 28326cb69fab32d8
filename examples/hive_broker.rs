//! The hivebus broker: binds 127.0.0.1 on a high port, writes `.hive/port`, serves
//! WebSocket sessions until Ctrl-C or SIGTERM, then closes every session and removes
//! the port file.
//!
//! ```text
//! cargo run --release --example hive_broker -- [--host 127.0.0.1] [--port N] [--config hive.toml] [--dir .]
//! ```
//! `HIVE_WS_PORT` sets the port when `--port` is absent. `RUST_LOG` sets the log level.

use clap::Parser;
use hivebus::server::port::{self, Chosen, Want};
use hivebus::{Bus, Config};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "hivebus broker: rooms, channels and a task queue over WebSocket"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind, or fail. Without it: HIVE_WS_PORT if set and free, else a free
    /// port in 49152-65535 (random start, then the next ones, then OS-assigned).
    #[arg(long)]
    port: Option<u16>,
    /// TOML configuration file (see docs/PROTOCOL.md, "Limits").
    #[arg(long)]
    config: Option<PathBuf>,
    /// Working directory holding `.hive/` (port file, logs, state).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let config = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    let bus = Bus::new(config.bus.clone()).map_err(|e| e.to_string())?;
    // The task queue operator, its state under <dir>/.hive/ (queue.db, logs/).
    let hive = args.dir.join(".hive");
    let queue = hivebus::ops::queue::Queue::open(
        bus.clone(),
        hivebus::ops::queue::QueueConfig {
            db_path: Some(hive.join("queue.db")),
            logs_dir: Some(hive.join("logs")),
            ..Default::default()
        },
    )
    .map_err(|e| e.to_string())?;
    let ops = hivebus::ops::Operators::new().with(std::sync::Arc::new(queue));
    let want = match (args.port, std::env::var("HIVE_WS_PORT").ok()) {
        (Some(p), _) => Want::Exactly(p),
        (None, Some(v)) => Want::Preferably(
            v.trim()
                .parse()
                .map_err(|e| format!("HIVE_WS_PORT={v:?} is not a port: {e}"))?,
        ),
        (None, None) => Want::Any,
    };
    let (listener, chosen) = port::bind(args.host, want)
        .await
        .map_err(|e| format!("cannot bind {} ({want:?}): {e}", args.host))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    match (chosen, want) {
        (Chosen::OsAssigned, _) => tracing::warn!(
            "no free port in {:?}; the OS assigned {}",
            port::RANGE,
            addr.port()
        ),
        (Chosen::Dynamic, Want::Preferably(p)) => tracing::warn!(
            "HIVE_WS_PORT={p} was taken; fell back to {} (clients: read .hive/port)",
            addr.port()
        ),
        _ => {}
    }
    let port_file = port::port_file(&args.dir);
    port::write_port_file(&port_file, addr.port())
        .map_err(|e| format!("cannot write {}: {e}", port_file.display()))?;
    tracing::info!(%addr, port_file = %port_file.display(), "hivebus broker listening on ws://{addr}/");
    let result =
        hivebus::server::run(listener, bus, config.server, ops.clone(), shutdown_signal()).await;
    // Operators stop after the server: the queue flushes and closes its store.
    ops.stop().await;
    // Only remove the file if it still names us (another broker may have taken over).
    if port::read_port_file(&port_file).ok() == Some(addr.port()) {
        let _ = std::fs::remove_file(&port_file);
    }
    tracing::info!("stopped");
    result.map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
