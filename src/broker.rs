//! The assembled broker: a [`Bus`], the task queue operator, the WebSocket server and
//! the `.hive/port` file, started and stopped in the right order. Both
//! `examples/hive_broker.rs` and `hive broker` are thin flag parsers over [`run`].
//!
//! Order of a run: refuse remote mode (a non-loopback host) without an auth method;
//! claim `<dir>/.hive/` (an exclusive lock: a second broker on the same directory, and
//! so on the same `queue.db`, is refused naming the first's PID and port); install the
//! safety policy on the bus; open the queue (recovering unfinished tasks) before
//! binding, so that no client connects to a broker that cannot take tasks (with
//! `[gitops] repo` set, its lock store `.hive/gitops.db` too, see `docs/GITOPS.md`);
//! write the port file only once listening; on shutdown stop the server (sessions
//! closed with 1001), then the operators (the queue flushes its store), then remove
//! the port file and release the claim.
//!
//! # Layout
//! - `config`: the aggregate [`Config`] of the TOML file, and the joints that need the
//!   whole of it ([`Security::from_config`], [`Safety::from_file`]).

use crate::ops::queue::Queue;
use crate::ops::Operators;
use crate::safety::{Safety, SafetyOperator};
use crate::server::port::{self, Chosen, Want};
use crate::server::state_dir::Claim;
use crate::server::Security;
use crate::Bus;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

mod config;

pub use config::Config;

/// What a broker run needs.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// Address to bind.
    pub host: IpAddr,
    /// Port policy (see [`want_port`]).
    pub want: Want,
    /// Working directory holding `.hive/` (port file, queue database, trace logs).
    pub dir: PathBuf,
    /// Everything else.
    pub config: Config,
    /// The file `config` was read from, re-read by `op.safety.reload`.
    pub config_path: Option<PathBuf>,
}

/// The port policy of the command line: `--port` is strict, else `HIVE_WS_PORT` is a
/// preference with fallback, else any free port of the dynamic range.
///
/// # Errors
/// When `HIVE_WS_PORT` is set but is not a port number.
pub fn want_port(flag: Option<u16>) -> Result<Want, String> {
    Ok(match (flag, std::env::var("HIVE_WS_PORT").ok()) {
        (Some(p), _) => Want::Exactly(p),
        (None, Some(v)) => Want::Preferably(
            v.trim()
                .parse()
                .map_err(|e| format!("HIVE_WS_PORT={v:?} is not a port: {e}"))?,
        ),
        (None, None) => Want::Any,
    })
}

/// Runs a broker until `shutdown` completes.
///
/// # Errors
/// A sentence saying what could not be done: claim the directory, open the queue,
/// bind, write the port file.
pub async fn run(opts: BrokerOptions, shutdown: impl Future) -> Result<(), String> {
    run_with(opts, shutdown, |_| {}).await
}

/// [`run`], calling `ready` with the listening address once the port file is written
/// (`hive broker` prints it).
///
/// # Errors
/// As [`run`].
pub async fn run_with(
    opts: BrokerOptions,
    shutdown: impl Future,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), String> {
    let BrokerOptions {
        host,
        want,
        dir,
        mut config,
        config_path,
    } = opts;
    if !host.is_loopback() && !config.auth.has_method() {
        return Err(format!(
            "remote mode ({host}) needs an auth method: configure [auth] tokens or [auth.jwt]"
        ));
    }
    // Before the queue opens its database: two brokers must never share it.
    let mut claim = Claim::acquire(&dir).map_err(|e| e.to_string())?;
    let hive = dir.join(".hive");
    let q = &mut config.queue;
    let db = q
        .db_path
        .get_or_insert_with(|| hive.join("queue.db"))
        .clone();
    // A database outside `.hive/` gets a lock of its own (held until the run ends).
    let _db_lock = if db.parent() == Some(hive.as_path()) {
        None
    } else {
        Some(crate::server::state_dir::lock_database(&db).map_err(|e| e.to_string())?)
    };
    if q.logs {
        q.logs_dir.get_or_insert_with(|| hive.join("logs"));
    } else {
        q.logs_dir = None;
    }
    let bus = Bus::new(config.bus.clone()).map_err(|e| e.to_string())?;
    // The safety layer goes on the bus before anything can publish.
    // `op.approval.reload` reads the same file again.
    let approval_file = config_path.clone();
    let safety = match config_path {
        Some(p) => Safety::from_file(config.safety.clone(), p),
        None => Safety::new(config.safety.clone()),
    }
    .map_err(|e| format!("[safety]: {e}"))?;
    safety.attach(&bus).map_err(|e| e.to_string())?;
    // The approval policy is checked (its rules' examples included) before the queue
    // opens: a broker with a policy it cannot read does not start.
    let policy = crate::ops::approval::Policy::from_config(&config.approval)
        .map_err(|e| format!("[approval]: {e}"))?;
    // One timeout for approval requests, said once, in `[approval]`.
    config.queue.approval_timeout_ms = config.approval.timeout_secs.saturating_mul(1000);
    let queue = Queue::open(bus.clone(), config.queue.clone())
        .map_err(|e| format!("cannot open the task queue: {e}"))?;
    // Leased tasks' actions meet the policy, and what people decided for a wider
    // scope than once, before a person is asked.
    let memory = Arc::new(crate::ops::approval::Memory::new());
    // Branch discipline (`[gitops]` with a repo): its git commands meet the same
    // policy; its locks live in `.hive/gitops.db` and end with their tasks.
    let gitops = match &config.gitops.repo {
        None => None,
        Some(_) => Some(open_gitops(&config, &policy, &hive, &queue)?),
    };
    let gate = crate::ops::approval::PolicyGate::with_memory(policy, memory.clone());
    queue.add_gate(Arc::new(gate.clone()));
    let approvals = crate::ops::approval::ApprovalOperator::new(gate, queue.clone(), approval_file);
    // `always` decisions are policy rules, kept in the store.
    approvals
        .load()
        .await
        .map_err(|e| format!("cannot read learned approval rules: {e}"))?;
    // Only APPROVAL frames: the queue builds no event for its other steps.
    let mut decisions = queue.events_of(4096, &[crate::frame::FrameType::Approval]);
    tokio::spawn(async move {
        while let Some(ev) = decisions.recv().await {
            memory.learn(&ev);
        }
    });
    // Scheduled publishes and key-value state keep their own files beside the
    // queue's, under the same claim of `.hive/`.
    let mut _op_locks = Vec::new();
    let cron_db = config
        .cron
        .db_path
        .get_or_insert_with(|| hive.join("cron.db"))
        .clone();
    let kv_db = config
        .kv
        .db_path
        .get_or_insert_with(|| hive.join("kv.db"))
        .clone();
    for db in [&cron_db, &kv_db] {
        if db.parent() != Some(hive.as_path()) {
            _op_locks.push(crate::server::state_dir::lock_database(db).map_err(|e| e.to_string())?);
        }
    }
    let cron = crate::ops::cron::Cron::open(bus.clone(), config.cron.clone(), Default::default())
        .map_err(|e| format!("cannot open the schedules: {e}"))?;
    let kv = crate::ops::kv::Kv::open(bus.clone(), config.kv.clone(), Default::default())
        .map_err(|e| format!("cannot open the key-value store: {e}"))?;
    let mut _webhook_lock = None;
    let mut ops = Operators::new()
        .with(Arc::new(SafetyOperator::new(safety)))
        .with(Arc::new(queue.clone()))
        .with(Arc::new(approvals))
        .with(Arc::new(cron))
        .with(Arc::new(kv))
        .with(Arc::new(crate::ops::governance::GovernanceOperator::new()));
    if config.webhook.enabled {
        let mut w = config.webhook.clone();
        let wdb = w
            .db_path
            .get_or_insert_with(|| hive.join("webhook.db"))
            .clone();
        // As the queue's: a database outside `.hive/` is locked for the run.
        if wdb.parent() != Some(hive.as_path()) {
            let lock = crate::server::state_dir::lock_database(&wdb).map_err(|e| e.to_string())?;
            _webhook_lock = Some(lock);
        }
        let hooks = crate::ops::webhook::Webhooks::open(bus.clone(), w)
            .map_err(|e| format!("cannot open the webhook operator: {e}"))?;
        ops = ops.with(Arc::new(hooks));
    }
    if let Some(g) = gitops {
        ops = ops.with(Arc::new(crate::ops::gitops::GitopsOperator::new(g)));
    }
    // Opened before binding: a broker that cannot keep its audit log does not start.
    let audit = if config.audit.enabled {
        let path = config
            .audit
            .path
            .clone()
            .unwrap_or_else(|| hive.join("audit.log"));
        crate::audit::Audit::open(&path, &config.audit)
            .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?
    } else {
        crate::audit::Audit::disabled()
    };
    let (listener, chosen) = port::bind(host, want)
        .await
        .map_err(|e| format!("cannot bind {host} ({want:?}): {e}"))?;
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
    let port_file = claim.port_file();
    claim
        .publish(addr.port())
        .map_err(|e| format!("cannot write {}: {e}", port_file.display()))?;
    tracing::info!(%addr, port_file = %port_file.display(), "hivebus broker listening on ws://{addr}/");
    ready(addr);
    let mut security = Security::from_config(&config);
    security.audit = audit.clone();
    security.signatures = Some(Arc::new(
        crate::auth::signature::Signatures::from_config(&config.signatures, &config.auth)
            .map_err(|e| format!("[signatures]: {e}"))?,
    ));
    // The queue goes to the server too: `/readyz` probes its store, `/metrics` and the
    // telemetry stream read its counts and events.
    let result = crate::server::serve_with(
        listener,
        bus,
        config.server,
        ops.clone(),
        security,
        Some(queue),
        shutdown,
    )
    .await;
    // Operators stop after the server: the queue flushes and closes its store.
    ops.stop().await;
    audit.flush().await;
    // Removes the port file (ours: we held the lock all along), then unlocks.
    drop(claim);
    tracing::info!("stopped");
    result.map_err(|e| e.to_string())
}

/// The gitops assembly: the lock store in `<hive>/gitops.db`, released on the queue's
/// task ends, and branch discipline over `[gitops] repo` under `policy`.
fn open_gitops(
    config: &Config,
    policy: &crate::ops::approval::Policy,
    hive: &std::path::Path,
    queue: &Queue,
) -> Result<crate::ops::gitops::Gitops, String> {
    use crate::ops::gitops::{Gitops, Locks};
    let locks = Locks::open(Some(&hive.join("gitops.db"))).map_err(|e| format!("[gitops]: {e}"))?;
    locks.watch(queue.events_of(crate::ops::gitops::lock::WATCH_CAPACITY, &Locks::WATCHED));
    Gitops::from_config(config.gitops.clone(), Arc::new(policy.clone()), locks, hive)
        .map_err(|e| format!("[gitops]: {e}"))
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a signal that arrives between the
/// call and the first poll (say, right after the broker said it listens) still stops
/// it gracefully instead of killing the process. Call it inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            return futures_util::future::Either::Left(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            });
        }
    }
    futures_util::future::Either::Right(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
