//! The WebSocket transport: accept loop, connection limit, shutdown, and the shared
//! context every session reads.
//!
//! [`run`] takes the listener, the bus, the operators and a shutdown future, after
//! mini-redis: each connection gets one task (see `session`); a watch channel tells
//! every session to close with 1001; completion is awaited through a dropped sender.

mod handler;
mod http;
pub mod port;
mod session;

use crate::bus::Bus;
use crate::cmd::ServerInfo;
use crate::config::ServerConfig;
use crate::ops::Operators;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// Protocol version spoken by this server.
pub const PROTOCOL_VERSION: u32 = 1;

/// How long shutdown waits for sessions to finish their close handshakes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by the accept loop and every session.
pub(crate) struct ServerCtx {
    pub(crate) bus: Bus,
    pub(crate) config: ServerConfig,
    pub(crate) ops: Operators,
    pub(crate) info: ServerInfo,
    pub(crate) counters: Counters,
    pub(crate) stopping: AtomicBool,
}

/// Transport-level counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) errors_out: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Serves WebSocket sessions (and `/healthz`, `/readyz`, `/metrics`) on `listener`
/// until `shutdown` completes, then closes every session with 1001 and waits for them.
///
/// # Errors
/// Only errors that stop the whole server; a failing connection closes alone.
///
/// ```no_run
/// # async fn doc() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let bus = hivebus::Bus::new(Default::default()).unwrap();
/// hivebus::server::run(listener, bus, Default::default(), Default::default(), tokio::signal::ctrl_c()).await
/// # }
/// ```
pub async fn run(
    listener: TcpListener,
    bus: Bus,
    config: ServerConfig,
    ops: Operators,
    shutdown: impl Future,
) -> std::io::Result<()> {
    let ctx = Arc::new(ServerCtx {
        bus: bus.clone(),
        ops,
        info: ServerInfo {
            server: format!("hivebus/{}", env!("CARGO_PKG_VERSION")),
            protocol: PROTOCOL_VERSION,
        },
        counters: Counters::default(),
        stopping: AtomicBool::new(false),
        config,
    });
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each session holds a clone; recv() returns None once all are gone.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let sweeper = tokio::spawn(sweep_loop(bus.clone(), stop_rx.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let permit = limit.clone().try_acquire_owned().ok();
                    let (ctx, stop, done) = (ctx.clone(), stop_rx.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        session::serve(stream, peer, ctx, stop, permit).await;
                        drop(done);
                    });
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning on accept.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tracing::info!("shutting down: closing sessions");
    ctx.stopping.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    drop(done_tx);
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, done_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not close within {DRAIN_TIMEOUT:?}");
    }
    sweeper.abort();
    Ok(())
}

async fn sweep_loop(bus: Bus, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(bus.config().channel_idle_secs.clamp(1, 60));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let n = bus.sweep();
                if n > 0 {
                    tracing::debug!(removed = n, "swept idle channels");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
