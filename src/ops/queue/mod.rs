//! The task queue operator (BIP-43): durable TASK lifecycle on top of the bus.
//!
//! A TASK published on `bip-<id>:<kind>` (or `op.queue.submit`) is validated, made
//! durable in SQLite (group commit, see [`crate::store`]) and only then acknowledged;
//! it is ordered (`critical > core > normal`, FIFO, aging), deduplicated by
//! `idempotencyKey`, leased to a consumer whose capabilities include its kind (a
//! private TASK frame), renewed by HEARTBEAT and EVENT, retried with backoff and full
//! jitter, parked for a human when not idempotent, dead-lettered after `max_attempts`.
//! Everything a task does is published on its channel with its `traceId`, stored for
//! replay, and appended to `.hive/logs/<task id>.ndjson`. `docs/QUEUE.md` explains the
//! choices.
//!
//! Concurrency: the scheduling state lives in one `core` behind a `std::sync::Mutex`,
//! held for short synchronous sections only (never across an await); durability waits
//! happen outside it. One timer task fires lease expiries and backoff ends.
//!
//! # Layout
//! - `model`: task spec, states and the transition table, the stored record with
//!   its [`Transition`](model::Transition)s.
//! - `config`: every knob and its default.
//! - `scheduler`: ready lanes with priority, FIFO and aging.
//! - `backoff`: exponential backoff with full jitter.
//! - `core`: submit, backpressure, dispatch, leases.
//! - `hooks`: the contract with cooperating operators: task events, action gates.
//! - `idem`: idempotency keys scoped to owner and room, trace ids owned by one task.
//! - `lifecycle`: progress, results, retries, cancel, DLQ, recovery.
//! - `approvals`: a leased task's approval requests and their decisions.
//! - `access`: who may run each command and send each frame (the queue's needs).
//! - `listing`: `list`, `dlq.list` and `stats`, filtered by what the caller may read.
//! - `operator`: the [`Operator`](crate::ops::Operator) glue: commands and frames.
//! - `commit`: the task that answers frames once their commit is durable.
//! - `schema`: the queue's tables and their migrations (operator `queue` in the store).
//! - `store`: the queue's writes (rows, stream frames, results) and its recovery read.
//! - `frames`: the frames the queue writes itself, serialized straight to text.
//! - `stream`: a task's stream: published, stored, logged, observed, in one place.
//! - `timers`: lease expiries, backoff ends, lease-loss notices.
//! - `tracelog`: ndjson trace files with rotation.
//! - `views`: the camelCase answers of `show`, `list` and `dlq.list`.
//! - `a2a`: each task state as A2A v1 names it (`a2aState` in `show`).
//! - `snapshot`: a read-only snapshot of the queue for the broker's metrics.

pub mod a2a;
mod access;
mod approval_resume;
pub mod approval_store;
mod approvals;
mod backoff;
mod commit;
pub mod config;
pub(crate) mod control;
mod core;
mod frames;
pub mod hooks;
mod idem;
mod lifecycle;
mod listing;
pub mod model;
mod operator;
mod scheduler;
mod schema;
mod snapshot;
mod store;
mod stream;
mod timers;
pub mod tracelog;
mod views;

pub use approval_store::{ApprovalRecord, ApprovalState};
pub use config::{KindConfig, QueueConfig};
pub use model::{Priority, TaskRecord, TaskSpec, TaskState};
pub use snapshot::{QueueCounters, QueueSnapshot};

use crate::bus::Bus;
use crate::store::{StoreError, StoreOptions};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::TaskStore;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// Why the queue could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The store failed to open or recover.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The trace-log directory could not be made.
    #[error("trace logs: {0}")]
    Io(#[from] std::io::Error),
}

/// The queue operator. Cheap to clone; register it with
/// [`Operators::with`](crate::ops::Operators::with).
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    core: Mutex<core::Core>,
    store: TaskStore,
    bus: Bus,
    wake: Arc<Notify>,
    /// Notes from the store's commit callbacks to the commit task (see `commit`).
    done: mpsc::UnboundedSender<commit::Committed>,
    stop: watch::Sender<bool>,
    timer: Mutex<Option<JoinHandle<()>>>,
    /// The action gates, asked without the core's lock (see `hooks`).
    gates: Arc<std::sync::RwLock<Vec<Arc<dyn hooks::ActionGate>>>>,
    controls: control::Controls,
}

impl Queue {
    /// Opens the store (migrating an older database to the queue's schema version),
    /// recovers every task that is not final, and starts the timer task. Must run
    /// inside a tokio runtime.
    ///
    /// # Errors
    /// [`QueueError`] when the database or the log directory cannot be opened; a
    /// database written by a newer hivebus is refused
    /// ([`StoreError::SchemaTooNew`]) and left as it was.
    ///
    /// ```no_run
    /// # async fn doc() -> Result<(), Box<dyn std::error::Error>> {
    /// use hivebus::ops::{queue::{Queue, QueueConfig}, Operators};
    /// let bus = hivebus::Bus::new(Default::default())?;
    /// let cfg = QueueConfig { db_path: Some(".hive/queue.db".into()), ..Default::default() };
    /// let queue = Queue::open(bus.clone(), cfg)?;
    /// let ops = Operators::new().with(std::sync::Arc::new(queue.clone()));
    /// # Ok(()) }
    /// ```
    pub fn open(bus: Bus, cfg: QueueConfig) -> Result<Queue, QueueError> {
        Self::open_with(bus, cfg, StoreOptions::default())
    }

    /// [`Queue::open`] with explicit store options (`blocking_acks` for tests on a
    /// paused clock). `synchronous_full` and `max_batch` come from `cfg`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    pub fn open_with(bus: Bus, cfg: QueueConfig, opts: StoreOptions) -> Result<Queue, QueueError> {
        let opts = StoreOptions {
            synchronous_full: cfg.synchronous_full,
            max_batch: cfg.max_batch,
            ..opts
        };
        let keep_since = model::now_ms().saturating_sub(cfg.idempotency_window_ms);
        let (store, recovered) = TaskStore::open(cfg.db_path.as_deref(), keep_since, opts)?;
        let log = match &cfg.logs_dir {
            Some(d) => Some(tracelog::TraceLog::start(
                d.clone(),
                cfg.log_max_bytes,
                cfg.log_keep,
            )?),
            None => None,
        };
        let wake = Arc::new(Notify::new());
        let mut core = core::Core::new(cfg, bus.clone(), store.clone(), log, wake.clone());
        let n = recovered.tasks.len();
        let mut waiting = approval_resume::by_task(recovered.approvals);
        for (body, next) in &recovered.tasks {
            core.recover(body, *next, &mut waiting);
        }
        core.cancel_unclaimed(waiting);
        core.prune();
        if n > 0 {
            tracing::info!(tasks = n, "queue recovered");
        }
        let (stop, stop_rx) = watch::channel(false);
        let (done, done_rx) = mpsc::unbounded_channel();
        let gates = core.hooks.gates();
        let inner = Arc::new(Inner {
            gates,
            core: Mutex::new(core),
            store,
            bus,
            wake,
            done,
            stop,
            timer: Mutex::new(None),
            controls: control::Controls::default(),
        });
        tokio::spawn(commit::run(Arc::downgrade(&inner), done_rx));
        let handle = tokio::spawn(timer_loop(Arc::downgrade(&inner), stop_rx));
        *inner.timer.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(Queue { inner })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, core::Core> {
        // A panic under the lock leaves the state as it was at the panic; serving
        // on is better than wedging every session.
        self.inner.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every step of every task from now on, as [`hooks::TaskEvent`]s, with room for
    /// `capacity` events not yet received; an observer that falls behind loses
    /// events rather than slowing the queue (see `hooks`).
    pub fn events(&self, capacity: usize) -> mpsc::Receiver<hooks::TaskEvent> {
        self.lock().hooks.observe(capacity, None)
    }

    /// [`Queue::events`] of the stream frames of `kinds` only (APPROVAL, RESULT, ...):
    /// the queue builds no event for the others, so a narrow observer costs the
    /// queue's path nothing on the frames it does not want.
    pub fn events_of(
        &self,
        capacity: usize,
        kinds: &[crate::frame::FrameType],
    ) -> mpsc::Receiver<hooks::TaskEvent> {
        self.lock().hooks.observe(capacity, Some(kinds.to_vec()))
    }

    /// Adds a gate that decides on every action a leased task asks for before a person
    /// is asked (see `hooks`).
    pub fn add_gate(&self, gate: Arc<dyn hooks::ActionGate>) {
        self.inner
            .gates
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(gate);
    }

    /// Counts for the broker's metrics (see [`QueueSnapshot`]); one pass over the
    /// tasks in memory under the queue's lock.
    pub fn snapshot(&self) -> QueueSnapshot {
        self.lock().snapshot()
    }

    /// The queue's store: commit latency, batch size, failed batches.
    pub fn store_stats(&self) -> crate::store::StoreStats {
        self.inner.store.stats()
    }

    /// Whether the queue can take tasks now: its store's writer answers a read within
    /// `within` and its latest batch committed. `Err` says what is wrong, for
    /// `/readyz`.
    ///
    /// # Errors
    /// A sentence naming the store's problem.
    pub async fn ready(&self, within: Duration) -> Result<(), String> {
        let probe = self
            .inner
            .store
            .read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)));
        match tokio::time::timeout(within, probe.wait()).await {
            Err(_) => return Err(format!("store: no answer within {within:?}")),
            Ok(Err(e)) => return Err(format!("store: {e}")),
            Ok(Ok(_)) => {}
        }
        if self.inner.store.stats().last_batch_failed {
            return Err("store: the latest commit failed".to_owned());
        }
        Ok(())
    }

    /// Stops the timer task and flushes and closes the store. Call after the server
    /// stopped; idempotent.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let handle = self
            .inner
            .timer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = h.await;
        }
        let store = self.inner.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

/// How often idempotency keys past the window and surplus final tasks are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

async fn timer_loop(inner: std::sync::Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(me) = inner.upgrade() else { return };
        let next = me
            .core
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_deadline();
        let wake = me.wake.clone();
        drop(me);
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let mut do_prune = false;
        tokio::select! {
            _ = sleep => {}
            _ = wake.notified() => {}
            _ = prune.tick() => do_prune = true,
            _ = stop.changed() => return,
        }
        let Some(me) = inner.upgrade() else { return };
        let mut core = me.core.lock().unwrap_or_else(|p| p.into_inner());
        core.fire_due(tokio::time::Instant::now());
        if do_prune {
            core.prune();
        }
    }
}
