//! The queue's in-memory state machine: tasks, ready lanes, consumers, timers. One
//! `std::sync::Mutex` guards it (see `mod.rs`); every method here runs under that lock
//! and never awaits.
//!
//! Side effects happen under the lock on purpose, in the order of the state changes:
//! store writes are *enqueued* to the writer thread (never awaited here), frames are
//! published with `Bus::publish_text` and leases sent with `Bus::send_private_text`
//! (both synchronous, bounded by the bus's own queues; the text is written by
//! `frames`). Keeping publish and the stored-stream
//! append inside one critical section is what makes `hive tail` gap-free: a replay
//! read enqueued under the same lock sees every frame published before it.

use super::config::QueueConfig;
use super::model::{now_ms, TaskRecord, TaskSpec, TaskState};
use super::scheduler::{Ready, Scheduler};
use super::store::{Row, TaskStore};
use super::tracelog::TraceLog;
use crate::address::Address;
use crate::bus::Bus;
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// A task the queue holds in memory.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) rec: TaskRecord,
    /// False until the submit's commit: the task is reported as `submitted` and is
    /// not yet in a ready lane.
    pub(crate) durable: bool,
    pub(crate) lease: Option<LeaseState>,
    /// Backoff: becomes ready at this instant.
    pub(crate) not_before: Option<Instant>,
    pub(crate) stream_next: u64,
    pub(crate) stream_dropped: u64,
    /// Bumped whenever a timer for this task is armed; older heap entries are ignored.
    pub(crate) timer_gen: u64,
    /// While `waiting_approval`: the request waiting for a decision (see `approvals`).
    pub(crate) pending: Option<Box<super::approvals::Pending>>,
}

/// The queue's record of a consumer's hold on one attempt of a task: who holds it and
/// until when. (Not the consumer SDK's [`crate::consumer::Lease`], which is that
/// consumer's handle on the same attempt, on the other side of the socket.)
#[derive(Debug, Clone)]
pub(crate) struct LeaseState {
    pub(crate) id: String,
    pub(crate) consumer: String,
    pub(crate) expires: Instant,
    pub(crate) length: Duration,
}

impl LeaseState {
    /// Pushes the expiry a full lease length past `now` (HEARTBEAT, EVENT, APPROVAL),
    /// never earlier than it already is: a lease held through an approval's wait
    /// stays held however the consumer heartbeats.
    pub(crate) fn renew(&mut self, now: Instant) {
        self.expires = self.expires.max(now + self.length);
    }
}

/// A consumer session: what it runs and how many at once.
#[derive(Debug)]
pub(crate) struct ConsumerState {
    pub(crate) kinds: Vec<String>,
    pub(crate) slots: u32,
    pub(crate) held: HashSet<String>,
    /// What its credential may read: it is leased only tasks on those channels.
    pub(crate) scope: crate::auth::Permissions,
}

/// Counters for `stats` (camelCase on the wire, as every answer).
#[derive(Debug, Default, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counters {
    pub(crate) submitted: u64,
    pub(crate) duplicates: u64,
    pub(crate) rejected: u64,
    pub(crate) leases: u64,
    pub(crate) expired: u64,
    pub(crate) retries: u64,
    pub(crate) succeeded: u64,
    pub(crate) dead: u64,
    pub(crate) stale_refused: u64,
    pub(crate) cancelled: u64,
    pub(crate) approvals_expired: u64,
}

/// What a submit answers, and the commit to wait for before answering.
pub(crate) struct SubmitOutcome {
    pub(crate) reply: Value,
    /// The new task's id when this submit created one (to finish after commit).
    pub(crate) created: Option<String>,
}

pub(crate) struct Core {
    pub(crate) cfg: QueueConfig,
    pub(crate) bus: Bus,
    pub(crate) store: TaskStore,
    pub(crate) log: Option<TraceLog>,
    /// Boxed: a `Live` is a few hundred bytes, and the map grows by rehashing; moving
    /// pointers instead of records made growth cheap (the profile showed `tasks`
    /// growth at about 6% of the broker's CPU in a fresh broker).
    pub(crate) tasks: HashMap<String, Box<Live>>,
    /// scoped idempotency key (see [`idem_scope`]) -> (task id, created ms, body
    /// fingerprint); kept for the whole window even after the task left memory (it is
    /// then read back from SQLite).
    pub(crate) idem: HashMap<String, (String, u64, u64)>,
    pub(crate) idem_order: VecDeque<(u64, String)>,
    /// trace id -> task id, only for tasks whose trace id is not their task id (the
    /// default): lookups fall back to the key itself.
    pub(crate) traces: HashMap<String, String>,
    pub(crate) sched: Scheduler,
    pub(crate) consumers: HashMap<String, ConsumerState>,
    pub(crate) timers: BinaryHeap<Reverse<(Instant, u64, String)>>,
    pub(crate) terminal_order: VecDeque<String>,
    pub(crate) rng: fastrand::Rng,
    pub(crate) next_seq: u64,
    pub(crate) lease_counter: u64,
    /// Distinguishes lease ids across broker restarts.
    pub(crate) boot: String,
    pub(crate) counters: Counters,
    pub(crate) wake: std::sync::Arc<tokio::sync::Notify>,
    /// The last task id's number (see `next_task_id`).
    pub(crate) last_id: u64,
    /// Observers of task events and action gates (see `hooks`).
    pub(crate) hooks: super::hooks::Hooks,
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    )
}

impl Core {
    pub(crate) fn new(
        cfg: QueueConfig,
        bus: Bus,
        store: TaskStore,
        log: Option<TraceLog>,
        wake: std::sync::Arc<tokio::sync::Notify>,
    ) -> Core {
        let aging = Duration::from_millis(cfg.aging_ms);
        Core {
            cfg,
            bus,
            store,
            log,
            tasks: HashMap::new(),
            idem: HashMap::new(),
            idem_order: VecDeque::new(),
            traces: HashMap::new(),
            sched: Scheduler::new(aging),
            consumers: HashMap::new(),
            timers: BinaryHeap::new(),
            terminal_order: VecDeque::new(),
            rng: fastrand::Rng::new(),
            next_seq: 1,
            lease_counter: 0,
            boot: new_id("")[..6].to_owned(),
            counters: Counters::default(),
            wake,
            last_id: 0,
            hooks: super::hooks::Hooks::default(),
        }
    }

    /// The state a client sees.
    pub(crate) fn visible_state(live: &Live) -> TaskState {
        if live.durable {
            live.rec.state
        } else {
            TaskState::Submitted
        }
    }

    /// The task's row as the store writes it.
    pub(crate) fn row(&self, id: &str) -> Option<Row> {
        let r = &self.tasks.get(id)?.rec;
        // A record of strings, numbers and `Value`s always serializes.
        let body = serde_json::to_string(r).unwrap_or_default();
        Some(Row {
            id: r.id.clone(),
            state: r.state.as_str(),
            kind: r.spec.kind.clone(),
            idem: r.spec.idempotency_key.clone(),
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
            body,
            trace: (r.trace_id != r.id).then(|| r.trace_id.clone()),
        })
    }

    /// Enqueues the task's row to the store.
    pub(crate) fn persist(&self, id: &str) {
        if let Some(row) = self.row(id) {
            self.store.put(row);
        }
    }

    /// Drops the trace -> task entry of a task leaving memory (there is one only when
    /// the trace id differs from the task id).
    pub(crate) fn forget_trace(&mut self, rec: &TaskRecord) {
        if rec.trace_id != rec.id {
            self.traces.remove(&rec.trace_id);
        }
    }

    /// Validates and accepts a submit. The reply must be sent only once everything
    /// enqueued to the store so far is committed: the caller enqueues that wait
    /// (`Store::ack` or `Store::then`) before it lets go of the lock.
    ///
    /// # Errors
    /// `overloaded` above the hard threshold (with `retry_after_ms`).
    pub(crate) fn submit(
        &mut self,
        spec: TaskSpec,
        trace: Option<String>,
        owner: &str,
    ) -> Result<SubmitOutcome, WireError> {
        let now = now_ms();
        let scoped = super::idem::idem_scope(owner, spec.bip_id, &spec.idempotency_key);
        let fp = super::idem::fingerprint(&spec);
        if let Some(&(ref task, created, seen)) = self.idem.get(&scoped) {
            if now.saturating_sub(created) < self.cfg.idempotency_window_ms {
                if seen != fp {
                    // Stripe's rule: a key names one request; another body under the
                    // same key is a mistake to report, not a duplicate to swallow.
                    return Err(WireError::new(
                        ErrorCode::Conflict,
                        format!(
                            "idempotencyKey `{}` was used for task {task} with a different body; use a new key",
                            spec.idempotency_key
                        ),
                    )
                    .with_details(json!({"task": task, "field": "idempotencyKey", "reason": "key_reused"})));
                }
                let task = task.clone();
                self.counters.duplicates += 1;
                let reply = match self.tasks.get(&task) {
                    Some(live) => Self::dup_reply(live),
                    // Left memory: the operator reads it back from SQLite.
                    None => json!({"task": task, "duplicate": true, "evicted": true}),
                };
                return Ok(SubmitOutcome {
                    reply,
                    created: None,
                });
            }
        }
        if let Some(t) = &trace {
            self.check_trace(t)?;
        }
        let eff = self.cfg.for_kind(&spec.kind);
        let depth = self.sched.depth(&spec.kind);
        if depth >= eff.hard {
            self.counters.rejected += 1;
            return Err(WireError::new(
                ErrorCode::Overloaded,
                format!(
                    "queue `{}` holds {depth} waiting tasks (hard limit {})",
                    spec.kind, eff.hard
                ),
            )
            .with_details(json!({
                "retry_after_ms": self.cfg.retry_after_ms,
                "depth": depth, "soft": eff.soft, "hard": eff.hard,
            })));
        }
        let id = self.next_task_id();
        let trace_id = trace.unwrap_or_else(|| id.clone());
        let seq = self.next_seq;
        self.next_seq += 1;
        let position = self.sched.position_of_new(&spec.kind, spec.priority);
        let mut rec = TaskRecord {
            id: id.clone(),
            trace_id: trace_id.clone(),
            owner: owner.to_owned(),
            spec,
            state: TaskState::Submitted,
            attempt: 0,
            seq,
            created_ms: now,
            updated_ms: now,
            result: None,
            history: Vec::new(),
        };
        rec.history.push(super::model::Transition {
            at_ms: now,
            state: TaskState::Submitted,
            attempt: 0,
            note: "submitted".into(),
        });
        // Submitted -> Queued is always legal; the row is written as queued because
        // the client is answered only once that row is durable.
        let _ = rec.advance(TaskState::Queued, now, "durable".into());
        self.idem.insert(scoped.clone(), (id.clone(), now, fp));
        self.idem_order.push_back((now, scoped));
        if self.idem_order.len() > self.cfg.max_keys {
            if let Some((at, old)) = self.idem_order.pop_front() {
                if self.idem.get(&old).is_some_and(|(_, c, _)| *c == at) {
                    self.idem.remove(&old);
                }
            }
        }
        if trace_id != id {
            self.traces.insert(trace_id.clone(), id.clone());
        }
        let mut reply = json!({
            "task": id, "traceId": trace_id, "state": "queued",
            "position": position, "address": rec.spec.address(), "duplicate": false,
        });
        if depth >= eff.soft {
            reply["backpressure"] = json!("soft");
            reply["hint"] = json!(format!(
                "queue `{}` is busy ({depth} waiting, soft limit {}); slow down",
                rec.spec.kind, eff.soft
            ));
        }
        self.tasks.insert(
            id.clone(),
            Box::new(Live {
                rec,
                durable: false,
                lease: None,
                not_before: None,
                stream_next: 1,
                stream_dropped: 0,
                timer_gen: 0,
                pending: None,
            }),
        );
        self.counters.submitted += 1;
        self.persist(&id);
        Ok(SubmitOutcome {
            reply,
            created: Some(id),
        })
    }

    /// A new task id: `t-` and 16 hex digits of a number that only grows: the wall
    /// clock in microseconds, or one more than the last id (also the largest
    /// recovered one). Growing ids make every SQLite insert an append to the end of
    /// its B-tree (tasks by id, stream by task and seq), so a commit writes a few
    /// pages instead of one page per row; they also sort by submission.
    fn next_task_id(&mut self) -> String {
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        self.last_id = now_us.max(self.last_id + 1);
        format!("t-{:016x}", self.last_id)
    }

    fn dup_reply(live: &Live) -> Value {
        let mut v = json!({
            "task": live.rec.id, "traceId": live.rec.trace_id,
            "state": Self::visible_state(live), "duplicate": true,
            "address": live.rec.spec.address(),
        });
        if live.rec.state.is_terminal() {
            v["result"] = live.rec.result.clone().unwrap_or(Value::Null);
        }
        v
    }

    /// After the submit's commit: the task becomes ready, is announced and may be
    /// leased at once.
    pub(crate) fn submitted_durable(&mut self, id: &str) {
        self.mark_durable(id);
        self.dispatch();
    }

    /// [`Core::submitted_durable`] without the dispatch, for a caller that marks a
    /// whole commit's submits and then dispatches once.
    pub(crate) fn mark_durable(&mut self, id: &str) {
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        if live.durable {
            return;
        }
        live.durable = true;
        let payload = super::frames::announce(&live.rec);
        self.make_ready(id);
        self.publish(id, FrameType::Task, payload);
    }

    /// The submit's commit failed: forget the task.
    pub(crate) fn submit_failed(&mut self, id: &str) {
        if let Some(live) = self.tasks.remove(id) {
            self.idem.remove(&live.rec.spec.idempotency_key);
            self.forget_trace(&live.rec);
        }
    }

    /// Puts a queued task in its lane (or arms its backoff timer).
    pub(crate) fn make_ready(&mut self, id: &str) {
        let now = Instant::now();
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        if let Some(at) = live.not_before {
            if at > now {
                self.arm(id, at);
                return;
            }
            live.not_before = None;
        }
        let r = &live.rec;
        self.sched.push(
            &r.spec.kind,
            r.spec.priority,
            Ready {
                id: r.id.clone(),
                seq: r.seq,
                since: now,
            },
        );
    }

    /// Registers (or updates) a consumer session.
    pub(crate) fn register(
        &mut self,
        session: &str,
        kinds: Vec<String>,
        slots: Option<u32>,
        scope: crate::auth::Permissions,
    ) -> Value {
        let slots = slots
            .unwrap_or(self.cfg.default_slots)
            .clamp(1, self.cfg.max_slots);
        let c = self
            .consumers
            .entry(session.to_owned())
            .or_insert_with(|| ConsumerState {
                kinds: Vec::new(),
                slots,
                held: HashSet::new(),
                scope: crate::auth::Permissions::all(),
            });
        c.kinds = kinds.clone();
        c.scope = scope;
        c.slots = slots;
        self.dispatch();
        // `lease_ms`: the old name of `leaseMs`, kept for one release.
        json!({"session": session, "kinds": kinds, "slots": slots,
               "leaseMs": self.cfg.lease_ms, "lease_ms": self.cfg.lease_ms})
    }

    /// Leases ready tasks to consumers with free slots.
    pub(crate) fn dispatch(&mut self) {
        let now = Instant::now();
        let free: Vec<String> = self
            .consumers
            .iter()
            .filter(|(_, c)| {
                (c.held.len() as u32) < c.slots && c.kinds.iter().any(|k| self.sched.has(k))
            })
            .map(|(s, _)| s.clone())
            .collect();
        for session in free {
            self.fill_at(&session, now);
        }
    }

    /// Leases ready tasks to one consumer until its slots are full or nothing it
    /// takes is ready. After a RESULT this is all a dispatch can do: every other
    /// consumer was already full or had nothing ready, and only this one gained a slot.
    pub(crate) fn fill(&mut self, session: &str) {
        self.fill_at(session, Instant::now());
    }

    fn fill_at(&mut self, session: &str, now: Instant) {
        while let Some(c) = self.consumers.get(session) {
            if c.held.len() as u32 >= c.slots {
                break;
            }
            let Some(ready) = self.sched.pop_any(&c.kinds, now) else {
                break;
            };
            let readable = c.scope.reads_everything()
                || self.tasks.get(&ready.id).is_none_or(|l| {
                    Address::new(&format!("bip-{}", l.rec.spec.bip_id), &l.rec.spec.kind)
                        .is_ok_and(|a| c.scope.may_subscribe(&crate::address::Pattern::Exact(a)))
                });
            if !readable {
                // Back where it was (same seq and age); another consumer takes it. This
                // consumer waits until the head of its lanes is a task it may read.
                let (kind, p) = match self.tasks.get(&ready.id) {
                    Some(l) => (l.rec.spec.kind.clone(), l.rec.spec.priority),
                    None => break,
                };
                self.sched.push(&kind, p, ready);
                break;
            }
            self.lease(&ready.id, session, now);
        }
    }

    fn lease(&mut self, id: &str, session: &str, now: Instant) {
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        if live.rec.state != TaskState::Queued {
            return;
        }
        let eff = self.cfg.for_kind(&live.rec.spec.kind);
        let length = live
            .rec
            .spec
            .timeout_ms
            .map_or(eff.lease, Duration::from_millis);
        self.lease_counter += 1;
        let lease_id = format!("l-{}-{}", self.boot, self.lease_counter);
        live.rec.attempt += 1;
        let _ = live
            .rec
            .advance(TaskState::Leased, now_ms(), format!("leased to {session}"));
        live.lease = Some(LeaseState {
            id: lease_id.clone(),
            consumer: session.to_owned(),
            expires: now + length,
            length,
        });
        let r = &live.rec;
        let text = super::frames::lease_text(
            r,
            &format!("bip-{}", r.spec.bip_id),
            &lease_id,
            length.as_millis() as u64,
        );
        let attempt = r.attempt;
        if let Some(c) = self.consumers.get_mut(session) {
            c.held.insert(id.to_owned());
        }
        self.counters.leases += 1;
        // The lease itself is not written: after a crash every running attempt is
        // over anyway (see `recover`), so the row stays `queued` until the result.
        self.arm(id, now + length);
        // The args were inspected when the task was submitted.
        let missing = self.bus.send_private_text(&[session.to_owned()], text);
        self.publish(
            id,
            FrameType::Event,
            super::frames::Progress {
                attempt,
                message: format!("attempt {attempt} leased to {session}"),
                stage: "leased",
                task: id,
            },
        );
        if !missing.is_empty() {
            // The consumer vanished between registration and now.
            self.consumer_gone(session);
        }
    }
}
