//! The WebSocket transport: accept loop, connection limit, shutdown, and the shared
//! context every session reads.
//!
//! [`run`] takes the listener, the bus, the operators and a shutdown future, after
//! mini-redis: each connection gets one task (see `session`); a watch channel tells
//! every session to close with 1001; completion is awaited through a dropped sender.
//!
//! The transport moves bytes and enforces the limits of a connection (count, frame
//! size, rate, sessions per identity, write time); every decision about what a frame
//! may do is the [`Dispatcher`](crate::dispatch::Dispatcher)'s.
//!
//! # Layout
//! - `config`: the `[server]` and `[limits]` sections ([`ServerConfig`],
//!   [`TlsConfig`], [`LimitsConfig`]).
//! - `session`: one socket's task: the select loop, the inbound path, batched writes.
//! - `handshake`: HELLO to WELCOME, authentication, the per-identity session count.
//! - `close`: close codes and reasons, and the bounded close handshake.
//! - `dedup`: the window of a session's recent frame ids.
//! - `tls`: the optional TLS acceptor and the stream a session owns.
//! - `http`: hyper on the same listener: the WebSocket upgrade, `/healthz`,
//!   `/readyz`, `/version`, `/metrics` and the static assets at `/`.
//! - `metrics`: the Prometheus metrics `/metrics` exposes.
//! - `telemetry`: the `hive:telemetry` stream of broker stats and agent activity.
//! - [`port`]: port selection and the `.hive/port` file.
//! - [`state_dir`]: one broker per `.hive/` (the lock) and discovery of the live one.

mod close;
mod config;
mod dedup;
mod handshake;
mod http;
mod metrics;
pub mod port;
mod session;
pub mod state_dir;
mod telemetry;
mod tls;

pub use config::{LimitsConfig, ServerConfig, TelemetryConfig, TlsConfig};

use crate::auth::{AuthConfig, Authenticator};
use crate::bus::Bus;
use crate::cmd::ServerInfo;
use crate::ops::queue::Queue;
use crate::ops::Operators;
use dashmap::DashMap;
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
    pub(crate) counters: Arc<Counters>,
    pub(crate) stopping: AtomicBool,
    /// The queue, when the broker runs one: `/readyz` probes its store and
    /// `/metrics` reads its counts.
    pub(crate) queue: Option<Queue>,
    /// What `/metrics` exposes.
    pub(crate) metrics: metrics::Metrics,
    /// Whether `/metrics` needs an admin credential (`Authorization: Bearer`): in
    /// remote mode and whenever `[auth] required` is set.
    pub(crate) metrics_need_auth: bool,
    /// Consumer notices for the telemetry observer.
    pub(crate) notices: telemetry::Notices,
    pub(crate) auth: Authenticator,
    pub(crate) limits: LimitsConfig,
    /// Live sessions per authenticated identity (subject), for
    /// `max_sessions_per_identity`. Entries are removed when they reach zero.
    pub(crate) identities: DashMap<String, usize>,
    /// TLS acceptor, when `[server.tls]` is set.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// Every frame's checks and routing.
    pub(crate) dispatch: crate::dispatch::Dispatcher,
}

/// Access control for [`serve`]: auth methods and limits (see `docs/SECURITY.md`).
/// [`Security::from_config`] takes both from the broker's aggregate config; it is
/// written beside that config (`broker/config.rs`), since the transport does not know
/// the aggregate.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// Where refused credentials, authority refusals and admin commands are recorded
    /// (disabled by default).
    pub audit: crate::audit::Audit,
    /// Signed-envelope keys and requirements (none by default).
    pub signatures: Option<Arc<crate::auth::signature::Signatures>>,
}

/// Transport-level counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) frames_in: AtomicU64,
    pub(crate) errors_out: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) slow_consumers: AtomicU64,
    /// Frames written to sessions (deliveries and the server's own frames).
    pub(crate) frames_out: AtomicU64,
    /// Telemetry activity frames skipped by the stream's rate bound.
    pub(crate) telemetry_dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: usize) {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Serves WebSocket sessions (and the HTTP endpoints, see `http`) on `listener`
/// until `shutdown` completes, then closes every session with 1001 and waits for them.
/// No auth methods and no limits beyond the defaults: [`serve`] with
/// `Security::default()`, so it refuses a non-loopback listener.
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
    serve(listener, bus, config, ops, Security::default(), shutdown).await
}

/// [`run`] with access control. A listener on a loopback address is local mode
/// (credentials optional unless `auth.required`); any other address is remote mode,
/// where every session must authenticate.
///
/// # Errors
/// `InvalidInput` before serving anything when the listener is not on loopback and no
/// auth method is configured, or when the auth config cannot be loaded (unset token
/// variable, unreadable key); then only errors that stop the whole server.
pub async fn serve(
    listener: TcpListener,
    bus: Bus,
    config: ServerConfig,
    ops: Operators,
    security: Security,
    shutdown: impl Future,
) -> std::io::Result<()> {
    serve_with(listener, bus, config, ops, security, None, shutdown).await
}

/// [`serve`], knowing the broker's task queue: `/readyz` then probes its store,
/// `/metrics` adds the queue's and the store's metrics, and the telemetry stream
/// reports its consumers, leases, results and approvals.
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    bus: Bus,
    config: ServerConfig,
    ops: Operators,
    security: Security,
    queue: Option<Queue>,
    shutdown: impl Future,
) -> std::io::Result<()> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let local = listener.local_addr()?.ip().is_loopback();
    if !local && !security.auth.has_method() {
        return Err(invalid(format!(
            "remote mode ({}) needs an auth method: configure [auth] tokens or [auth.jwt], \
             or bind a loopback address",
            listener.local_addr()?
        )));
    }
    let auth = Authenticator::new(&security.auth, !local).map_err(invalid)?;
    let acceptor = config
        .tls
        .as_ref()
        .map(tls::acceptor)
        .transpose()
        .map_err(invalid)?;
    if !local && acceptor.is_none() {
        tracing::warn!("remote mode without [server.tls]: credentials travel in clear text");
    }
    tracing::info!(
        mode = if local { "local" } else { "remote" },
        tls = acceptor.is_some(),
        ?auth,
        "access control"
    );
    let info = ServerInfo {
        server: format!("hivebus/{}", env!("CARGO_PKG_VERSION")),
        protocol: PROTOCOL_VERSION,
    };
    let counters = Arc::new(Counters::default());
    let metrics = metrics::Metrics::new(bus.clone(), counters.clone(), queue.clone());
    let (notices, notices_rx) = mpsc::channel(telemetry::NOTICES);
    let metrics_need_auth = !local || security.auth.required;
    let ctx = Arc::new(ServerCtx {
        auth,
        notices,
        metrics_need_auth,
        queue,
        metrics,
        limits: security.limits,
        identities: DashMap::new(),
        tls: acceptor,
        dispatch: crate::dispatch::Dispatcher::new(bus.clone(), ops.clone(), info.clone())
            .with_audit(security.audit)
            .with_signatures(security.signatures),
        bus: bus.clone(),
        ops,
        info,
        counters,
        stopping: AtomicBool::new(false),
        config,
    });
    let limit = Arc::new(Semaphore::new(ctx.config.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each session holds a clone; recv() returns None once all are gone.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let sweeper = tokio::spawn(sweep_loop(bus.clone(), stop_rx.clone()));
    let telemetry = telemetry::start(&ctx, notices_rx, stop_rx.clone()).map_err(invalid)?;
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
    telemetry.abort();
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
