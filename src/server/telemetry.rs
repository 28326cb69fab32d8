//! The telemetry stream: broker stats every `interval_ms`, and agent activity
//! (consumer joined or left, task leased or finished, approval asked or decided), as
//! EVENT frames on `[server.telemetry] address` (`hive:telemetry` by default). Any
//! session allowed to join that channel receives them (`docs/PROTOCOL.md`,
//! "Telemetry").
//!
//! One task, the observer, reads the queue's task events (when there is a queue: its
//! TASK, EVENT, SYSTEM, APPROVAL and RESULT steps; a lease is an EVENT step, so the
//! queue builds an event for each progress frame too) and the sessions' consumer
//! notices, and also fills the task-duration and
//! approval-wait histograms of `/metrics`, whether or not the stream is on.
//!
//! Invariants:
//! - **Bounded in rate**: activity frames take a token from a bucket of
//!   `max_events_per_sec`; those without one are skipped and counted (`dropped` in the
//!   next `stats` frame). `stats` frames come at most once a second.
//! - **Costs nothing unwatched**: nothing is built or published while the channel
//!   does not exist (nobody joined it); the bus makes it on the first join.
//! - **Never slows what it watches**: sessions hand notices over with `try_send`, the
//!   queue's events come through its bounded observer channel (a full one loses
//!   events, never blocks the queue), and the maps of in-flight tasks and approvals
//!   are bounded by [`MAX_TRACKED`].

use super::ServerCtx;
use crate::address::Address;
use crate::frame::{Envelope, FrameType};
use crate::ops::queue::hooks::TaskEvent;
use crate::ops::queue::TaskState;
use crate::ops::Caller;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// In-flight tasks and approvals remembered for the histograms; past this, new ones
/// are not timed (their durations are missing from the histograms, nothing else).
const MAX_TRACKED: usize = 65_536;

/// Consumer notices waiting for the observer; past this they are dropped (counted).
pub(super) const NOTICES: usize = 1024;

/// Task events the queue may hold for the observer before it loses some.
const EVENTS: usize = 4096;

/// What sessions tell the observer.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A consumer session finished its handshake.
    Joined {
        session: String,
        name: Option<String>,
        capabilities: Vec<String>,
        slots: Option<u32>,
    },
    /// A consumer session ended.
    Left { session: String },
}

/// The sending side, held by the server context.
pub(crate) type Notices = mpsc::Sender<Notice>;

/// Tells the observer that a consumer joined (only consumers are reported).
pub(super) fn joined(ctx: &ServerCtx, caller: &Caller) {
    if caller.info.role == "consumer" {
        send(
            ctx,
            Notice::Joined {
                session: caller.session.clone(),
                name: caller.info.name.clone(),
                capabilities: caller.info.capabilities.clone(),
                slots: caller.info.slots,
            },
        );
    }
}

/// Tells the observer that a consumer left.
pub(super) fn left(ctx: &ServerCtx, caller_role: &str, session: &str) {
    if caller_role == "consumer" {
        send(
            ctx,
            Notice::Left {
                session: session.to_owned(),
            },
        );
    }
}

fn send(ctx: &ServerCtx, n: Notice) {
    if ctx.notices.try_send(n).is_err() {
        super::Counters::inc(&ctx.counters.telemetry_dropped);
    }
}

/// Starts the observer.
///
/// # Errors
/// A sentence when `[server.telemetry] address` is not a channel address.
pub(super) fn start(
    ctx: &Arc<ServerCtx>,
    notices: mpsc::Receiver<Notice>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let cfg = &ctx.config.telemetry;
    let address = match cfg.address.as_str() {
        "" => None,
        a => Some(Address::parse(a).map_err(|e| format!("server.telemetry.address `{a}`: {e}"))?),
    };
    let events = ctx.queue.as_ref().map(|q| {
        q.events_of(
            EVENTS,
            // EVENT for the `leased` step (the queue publishes it as progress).
            &[
                FrameType::Task,
                FrameType::Event,
                FrameType::System,
                FrameType::Approval,
                FrameType::Result,
            ],
        )
    });
    let per_sec = f64::from(cfg.max_events_per_sec);
    let observer = Observer {
        ctx: ctx.clone(),
        address,
        tokens: per_sec,
        per_sec,
        refilled: Instant::now(),
        started: HashMap::new(),
        asked: HashMap::new(),
        dropped: 0,
        last: None,
    };
    Ok(tokio::spawn(observer.run(notices, events, stop)))
}

struct Observer {
    ctx: Arc<ServerCtx>,
    address: Option<Address>,
    /// Token bucket of activity frames.
    tokens: f64,
    per_sec: f64,
    refilled: Instant,
    /// Submission instants of tasks not yet final (for task duration).
    started: HashMap<String, Instant>,
    /// Request instants of approvals not yet decided (for approval wait).
    asked: HashMap<String, Instant>,
    /// Activity frames skipped since the last `stats` frame.
    dropped: u64,
    /// The previous `stats` frame's counters, for rates.
    last: Option<(Instant, u64, u64)>,
}

impl Observer {
    async fn run(
        mut self,
        mut notices: mpsc::Receiver<Notice>,
        mut events: Option<mpsc::Receiver<TaskEvent>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let period = Duration::from_millis(self.ctx.config.telemetry.interval_ms.max(1000));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => self.stats(),
                Some(n) = notices.recv() => self.notice(n),
                Some(ev) = next(&mut events) => self.task_event(ev),
            }
        }
    }

    fn notice(&mut self, n: Notice) {
        let payload = match n {
            Notice::Joined {
                session,
                name,
                capabilities,
                slots,
            } => json!({"event": "consumer_joined", "session": session, "name": name,
                        "capabilities": capabilities, "slots": slots}),
            Notice::Left { session } => json!({"event": "consumer_left", "session": session}),
        };
        self.activity(payload);
    }

    fn task_event(&mut self, ev: TaskEvent) {
        let now = Instant::now();
        let m = &self.ctx.metrics;
        let summary = |event: &str| {
            json!({"event": event, "task": ev.task, "kind": ev.kind, "bip": ev.bip_id,
                   "state": ev.state.as_str(), "attempt": ev.attempt})
        };
        let out = match (ev.frame, ev.state) {
            (FrameType::Task, _) => {
                if self.started.len() < MAX_TRACKED {
                    self.started.insert(ev.task.clone(), now);
                }
                None
            }
            (FrameType::Event, _) if ev.payload.get("stage").is_some_and(|s| s == "leased") => {
                Some(summary("task_leased"))
            }
            (FrameType::Approval, TaskState::WaitingApproval) => {
                if self.asked.len() < MAX_TRACKED {
                    self.asked.insert(ev.task.clone(), now);
                }
                let mut p = summary("approval_asked");
                p["command"] = ev.payload.get("command").cloned().unwrap_or(Value::Null);
                Some(p)
            }
            (FrameType::Approval, _) if ev.payload.get("decision").is_some() => {
                if let Some(t) = self.asked.remove(&ev.task) {
                    m.approval_wait.observe(now.duration_since(t).as_secs_f64());
                }
                let mut p = summary("approval_decided");
                p["decision"] = ev.payload["decision"].clone();
                p["by"] = ev.payload.get("by").cloned().unwrap_or(Value::Null);
                Some(p)
            }
            (frame, state) if state.is_terminal() => {
                self.asked.remove(&ev.task);
                let timed = self.started.remove(&ev.task);
                if let Some(t) = timed {
                    m.task_duration.observe(now.duration_since(t).as_secs_f64());
                }
                (timed.is_some() || frame == FrameType::Result).then(|| summary("task_finished"))
            }
            _ => None,
        };
        if let Some(p) = out {
            self.activity(p);
        }
    }

    /// Publishes an activity frame if the bucket has a token and anyone can hear it.
    fn activity(&mut self, payload: Value) {
        let Some(addr) = self.watched() else { return };
        let now = Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + refill).min(self.per_sec.max(1.0));
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            super::Counters::inc(&self.ctx.counters.telemetry_dropped);
            return;
        }
        self.tokens -= 1.0;
        self.publish(&addr, payload);
    }

    fn stats(&mut self) {
        let Some(addr) = self.watched() else { return };
        let s = self.ctx.bus.stats();
        let c = &self.ctx.counters;
        let now = Instant::now();
        let rates = self.last.map(|(t, msgs, dels)| {
            let secs = now.duration_since(t).as_secs_f64().max(0.001);
            (
                (s.messages.saturating_sub(msgs)) as f64 / secs,
                (s.deliveries.saturating_sub(dels)) as f64 / secs,
            )
        });
        self.last = Some((now, s.messages, s.deliveries));
        let mut p = json!({
            "event": "stats",
            "connections": s.connections,
            "rooms": s.rooms,
            "channels": s.channels,
            "messagesTotal": s.messages,
            "deliveriesTotal": s.deliveries,
            "droppedTotal": s.dropped,
            "framesInTotal": c.frames_in.load(Ordering::Relaxed),
            "framesOutTotal": c.frames_out.load(Ordering::Relaxed),
            "messagesPerSec": rates.map(|r| r.0),
            "deliveriesPerSec": rates.map(|r| r.1),
            "uptimeSecs": s.uptime_secs,
            "telemetryDropped": self.dropped,
        });
        if let Some(q) = &self.ctx.queue {
            let snap = q.snapshot();
            let mut states: HashMap<&str, u64> = HashMap::new();
            for counts in snap.tasks.values() {
                for (i, n) in counts.iter().enumerate() {
                    *states.entry(TaskState::ALL[i].as_str()).or_default() += n;
                }
            }
            p["queue"] = json!({
                "states": states,
                "ready": snap.depth.values().map(|d| d.iter().sum::<u64>()).sum::<u64>(),
                "oldestWaitingSecs": snap.oldest_waiting_secs,
                "approvalsPending": snap.approvals_pending,
                "consumers": snap.consumers,
                "slotsBusy": snap.slots_busy,
                "slots": snap.slots_total,
            });
        }
        self.dropped = 0;
        self.publish(&addr, p);
    }

    /// The stream's address when it is on and its channel exists (someone joined).
    fn watched(&self) -> Option<Address> {
        let addr = self.address.as_ref()?;
        self.ctx.bus.channel_info(addr).ok()?;
        Some(addr.clone())
    }

    fn publish(&self, addr: &Address, payload: Value) {
        if let Err(e) = self
            .ctx
            .bus
            .publish(addr, Envelope::new(FrameType::Event, payload))
        {
            tracing::debug!(error = %e.message, "telemetry frame not published");
        }
    }
}

/// The next task event, or never when there is no queue.
async fn next(events: &mut Option<mpsc::Receiver<TaskEvent>>) -> Option<TaskEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
