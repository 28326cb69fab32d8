//! The hivebus broker: binds 127.0.0.1 on a high port, writes `.hive/port`, serves
//! WebSocket sessions until Ctrl-C or SIGTERM, then closes every session and removes
//! the port file.
//!
//! ```text
//! cargo run --release --example hive_broker -- [--host 127.0.0.1] [--port N] [--config hive.toml] [--dir .]
//! ```
//! `HIVE_WS_PORT` sets the port when `--port` is absent. `RUST_LOG` sets the log level.
//!
//! The `[safety]` policy of the config is installed on the bus, and `op.safety.get` /
//! `op.safety.reload` (admin) read and reload it. Binding a non-loopback `--host`
//! (remote mode) needs `[auth]` tokens or `[auth.jwt]`; without them the broker exits.

use clap::Parser;
use hivebus::ops::Operators;
use hivebus::safety::{Safety, SafetyOperator};
use hivebus::server::port::{self, Chosen};
use hivebus::server::Security;
use hivebus::{Bus, Config};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    version,
    about = "hivebus broker: rooms, channels and a task queue over WebSocket"
)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port; default: HIVE_WS_PORT, else a free port in 49152-65535.
    #[arg(long, env = "HIVE_WS_PORT")]
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
    let safety = match &args.config {
        Some(p) => Safety::from_file(config.safety.clone(), p.clone()),
        None => Safety::new(config.safety.clone()),
    }
    .map_err(|e| format!("[safety]: {e}"))?;
    safety.attach(&bus).map_err(|e| e.to_string())?;
    let ops = Operators::new().with(Arc::new(SafetyOperator::new(safety)));
    if !args.host.is_loopback() && !config.auth.has_method() {
        return Err(format!(
            "remote mode ({}) needs an auth method: configure [auth] tokens or [auth.jwt]",
            args.host
        ));
    }
    let (listener, chosen) = port::bind(args.host, args.port)
        .await
        .map_err(|e| format!("cannot bind {}:{:?}: {e}", args.host, args.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if chosen == Chosen::OsAssigned {
        tracing::warn!(
            "no free port in {:?}; the OS assigned {}",
            port::RANGE,
            addr.port()
        );
    }
    let port_file = port::port_file(&args.dir);
    port::write_port_file(&port_file, addr.port())
        .map_err(|e| format!("cannot write {}: {e}", port_file.display()))?;
    tracing::info!(%addr, port_file = %port_file.display(), "hivebus broker listening on ws://{addr}/");
    let security = Security::from_config(&config);
    let result = hivebus::server::serve(
        listener,
        bus,
        config.server,
        ops,
        security,
        shutdown_signal(),
    )
    .await;
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
