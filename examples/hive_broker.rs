//! The hivebus broker: binds 127.0.0.1 on a high port, writes `.hive/port`, runs the
//! task queue (state in `.hive/queue.db`, trace logs in `.hive/logs/`), serves
//! WebSocket sessions until Ctrl-C or SIGTERM, then closes every session and removes
//! the port file.
//!
//! ```text
//! cargo run --release --example hive_broker -- [--host 127.0.0.1] [--port N] [--config hive.toml] [--dir .]
//! ```
//! `HIVE_WS_PORT` is the preferred port when `--port` is absent (a taken one falls back
//! to the dynamic range). `RUST_LOG` sets the log level. The `[safety]` policy is
//! installed on the bus (`op.safety.get` / `op.safety.reload` for admins); binding a
//! non-loopback `--host` (remote mode) needs `[auth]` tokens or `[auth.jwt]`.

use clap::Parser;
use hivebus::broker::{self, BrokerOptions};

/// mimalloc, as the `hive` binary: frames are allocated on one runtime thread and
/// freed on another, where glibc malloc was 10-28 % of the broker's CPU in profiles
/// (`docs/PERFORMANCE.md`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use hivebus::Config;
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
    /// TOML configuration file (see docs/PROTOCOL.md, "Limits", and docs/QUEUE.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Working directory holding `.hive/` (port file, queue database, logs).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        // Colour codes only on a terminal: logs redirected to a file stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            tracing::error!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match broker::run(opts, broker::shutdown_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn options(args: Args) -> Result<BrokerOptions, String> {
    Ok(BrokerOptions {
        host: args.host,
        want: broker::want_port(args.port)?,
        dir: args.dir,
        config: match &args.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        },
        config_path: args.config,
    })
}
