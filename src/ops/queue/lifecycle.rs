//! What happens to a task after it is leased: progress, results, failures
//! with retry / park / dead-letter, cancellation, human retry and DLQ requeue / purge,
//! consumer loss, and recovery after a restart. All under the core lock (see `core`).

use super::backoff;
use super::core::{Core, LeaseState, Live};
use super::model::{now_ms, TaskRecord, TaskState};
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde_json::{json, Value};
use tokio::time::Instant;

/// A consumer frame that names a task and the lease it holds.
#[derive(Debug)]
pub(crate) struct LeaseRef<'a> {
    pub(crate) session: &'a str,
    pub(crate) task: &'a str,
    pub(crate) lease: &'a str,
}

fn stale(task: &str, why: &str, current: Option<u32>) -> WireError {
    WireError::new(ErrorCode::StaleLease, format!("task {task}: {why}"))
        .with_details(json!({"task": task, "attempt": current}))
}

impl Core {
    /// The live task behind a consumer frame, when its lease is the current one.
    ///
    /// # Errors
    /// `not_found` for an unknown task; `stale_lease` when the lease is not the task's
    /// current lease, or belongs to another session.
    pub(crate) fn check_lease(&mut self, r: &LeaseRef<'_>) -> Result<&mut Live, WireError> {
        let Some(live) = self.tasks.get_mut(r.task) else {
            return Err(WireError::new(
                ErrorCode::NotFound,
                format!("no task {}", r.task),
            ));
        };
        let attempt = live.rec.attempt;
        match &live.lease {
            Some(l) if l.id == r.lease && l.consumer == r.session => Ok(live),
            Some(l) if l.id == r.lease => Err(stale(
                r.task,
                "lease held by another session",
                Some(attempt),
            )),
            _ => {
                self.counters.stale_refused += 1;
                Err(stale(
                    r.task,
                    &format!(
                        "lease {} is not current (task is {})",
                        r.lease,
                        live.rec.state.as_str()
                    ),
                    Some(attempt),
                ))
            }
        }
    }

    /// [`Core::check_lease`], then renews that lease: a consumer frame about a task is
    /// a sign of life for it.
    pub(crate) fn renew_lease(&mut self, r: &LeaseRef<'_>) -> Result<&mut Live, WireError> {
        let now = Instant::now();
        let live = self.check_lease(r)?;
        if let Some(l) = live.lease.as_mut() {
            l.renew(now);
        }
        Ok(live)
    }

    /// Renews every lease a consumer holds (HEARTBEAT).
    pub(crate) fn heartbeat(&mut self, session: &str) -> usize {
        let now = Instant::now();
        let Some(c) = self.consumers.get(session) else {
            return 0;
        };
        let held: Vec<String> = c.held.iter().cloned().collect();
        for id in &held {
            if let Some(l) = self.tasks.get_mut(id).and_then(|t| t.lease.as_mut()) {
                l.renew(now);
            }
        }
        held.len()
    }

    /// A progress EVENT: renews the lease, marks the task working, publishes it.
    pub(crate) fn event(
        &mut self,
        r: &LeaseRef<'_>,
        mut payload: Value,
    ) -> Result<Value, WireError> {
        let live = self.renew_lease(r)?;
        if live.rec.state == TaskState::Leased {
            live.rec
                .advance(TaskState::Working, now_ms(), "progress".into())?;
            self.persist(r.task);
        }
        let attempt = self.tasks.get(r.task).map_or(0, |l| l.rec.attempt);
        strip(&mut payload, attempt);
        self.publish(r.task, FrameType::Event, payload);
        Ok(json!({"task": r.task, "renewed": true}))
    }

    /// A RESULT `{status: ok|fail, summary, artifacts?}` from the lease holder.
    pub(crate) fn result(
        &mut self,
        r: &LeaseRef<'_>,
        mut payload: Value,
    ) -> Result<Value, WireError> {
        let status = payload
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if status != "ok" && status != "fail" {
            return Err(
                WireError::new(ErrorCode::InvalidField, "`status` must be ok or fail")
                    .with_details(json!({"field": "status"})),
            );
        }
        self.check_lease(r)?;
        if status == "fail" {
            let summary = payload
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("failed")
                .to_owned();
            return Ok(self.attempt_failed(r.task, &summary, payload));
        }
        let now = now_ms();
        let live = self.check_lease(r)?;
        let lease = live.lease.take();
        live.rec
            .advance(TaskState::Succeeded, now, "result ok".into())?;
        let attempt = live.rec.attempt;
        strip(&mut payload, attempt);
        payload["state"] = json!("succeeded");
        live.rec.result = Some(payload.clone());
        self.free_slot(lease.as_ref(), r.task);
        if let Some(row) = self.row(r.task) {
            self.store.finish(row, attempt, now, payload.to_string());
        }
        self.counters.succeeded += 1;
        self.publish(r.task, FrameType::Result, payload);
        self.finished(r.task);
        self.fill(r.session);
        Ok(json!({"task": r.task, "state": "succeeded"}))
    }

    /// An ERROR `{code, message, details}` from the lease holder: the attempt failed.
    pub(crate) fn consumer_error(
        &mut self,
        r: &LeaseRef<'_>,
        payload: Value,
    ) -> Result<Value, WireError> {
        self.check_lease(r)?;
        let msg = payload
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("error")
            .to_owned();
        Ok(self.attempt_failed(r.task, &msg, payload))
    }

    fn free_slot(&mut self, lease: Option<&LeaseState>, task: &str) {
        self.approval_ended(task);
        if let Some(l) = lease {
            if let Some(c) = self.consumers.get_mut(&l.consumer) {
                c.held.remove(task);
            }
        }
    }

    /// The current attempt ended badly: retry after backoff, park (non-idempotent) or
    /// dead-letter (out of attempts).
    pub(crate) fn attempt_failed(&mut self, id: &str, why: &str, detail: Value) -> Value {
        let now = now_ms();
        let Some(live) = self.tasks.get_mut(id) else {
            return Value::Null;
        };
        let lease = live.lease.take();
        let eff = self.cfg.for_kind(&live.rec.spec.kind);
        let max = live.rec.spec.max_attempts.unwrap_or(eff.max_attempts);
        let attempt = live.rec.attempt;
        let failure = json!({"attempt": attempt, "reason": why, "detail": detail});
        let (state, reply) = if !live.rec.spec.idempotent {
            (TaskState::Failed, "failed")
        } else if attempt >= max {
            (TaskState::Dead, "dead")
        } else {
            (TaskState::Queued, "queued")
        };
        let note = format!("attempt {attempt} failed: {why}");
        if live.rec.advance(state, now, note).is_err() {
            return Value::Null;
        }
        self.free_slot(lease.as_ref(), id);
        let Some(live) = self.tasks.get_mut(id) else {
            return Value::Null;
        };
        let mut out = json!({"task": id, "state": reply, "attempt": attempt});
        match state {
            TaskState::Queued => {
                let d = backoff::delay(attempt, eff.base, eff.cap, self.cfg.jitter, &mut self.rng);
                live.not_before = Some(Instant::now() + d);
                // `retry_in_ms`: the old name of `retryInMs`, kept for one release.
                out["retryInMs"] = json!(d.as_millis() as u64);
                out["retry_in_ms"] = json!(d.as_millis() as u64);
                self.counters.retries += 1;
                self.persist(id);
                self.publish(
                    id,
                    FrameType::Error,
                    json!({"task": id, "code": "attempt_failed", "message": why,
                           "details": {"attempt": attempt, "retryInMs": d.as_millis() as u64,
                                   "retry_in_ms": d.as_millis() as u64, "failure": failure}}),
                );
                self.make_ready(id);
            }
            _ => {
                live.rec.result = Some(
                    json!({"status": "fail", "state": reply, "summary": why, "failure": failure}),
                );
                if state == TaskState::Dead {
                    self.counters.dead += 1;
                }
                let summary = if state == TaskState::Failed {
                    format!("attempt {attempt} failed ({why}); not idempotent: waiting for a human `retry`")
                } else {
                    format!("dead after {attempt} attempt(s): {why}")
                };
                self.persist(id);
                self.publish(
                    id,
                    FrameType::Result,
                    json!({"task": id, "status": "fail", "state": reply, "summary": summary, "attempt": attempt}),
                );
            }
        }
        self.dispatch();
        out
    }

    /// Cancels a task that is not final; the consumer holding it is told.
    ///
    /// # Errors
    /// `not_found`, or `conflict` for a final or not-yet-durable task.
    pub(crate) fn cancel(&mut self, id: &str, by: &str) -> Result<Value, WireError> {
        let live = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {id}")))?;
        if !live.durable {
            return Err(WireError::new(
                ErrorCode::Conflict,
                "task is not durable yet; try again",
            ));
        }
        live.rec
            .advance(TaskState::Cancelled, now_ms(), format!("cancelled by {by}"))?;
        live.timer_gen += 1; // disarms a pending backoff or lease timer
        live.not_before = None;
        let lease = live.lease.take();
        live.rec.result = Some(
            json!({"status": "fail", "state": "cancelled", "summary": format!("cancelled by {by}")}),
        );
        let kind = live.rec.spec.kind.clone();
        self.sched.remove(&kind, id);
        if let Some(l) = &lease {
            self.tell_consumer(l, "cancel", id);
        }
        self.free_slot(lease.as_ref(), id);
        self.counters.cancelled += 1;
        self.persist(id);
        self.publish(
            id,
            FrameType::Result,
            json!({"task": id, "status": "fail", "state": "cancelled", "summary": format!("cancelled by {by}")}),
        );
        self.finished(id);
        self.dispatch();
        // `consumer_told`: the old spelling, kept for one release (docs/QUEUE.md).
        let told = lease.is_some();
        Ok(json!({"task": id, "state": "cancelled", "consumerTold": told, "consumer_told": told}))
    }

    /// A human retry of a parked (failed) task, or a DLQ requeue of a dead one,
    /// optionally with new args. Attempts start again from zero.
    ///
    /// # Errors
    /// `not_found`; `conflict` unless the task is in `from`.
    pub(crate) fn requeue(
        &mut self,
        id: &str,
        from: TaskState,
        args: Option<Value>,
        by: &str,
    ) -> Result<Value, WireError> {
        let live = self
            .tasks
            .get_mut(id)
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {id}")))?;
        if live.rec.state != from {
            return Err(super::model::requeue_conflict(id, live.rec.state, from));
        }
        live.rec
            .advance(TaskState::Queued, now_ms(), format!("requeued by {by}"))?;
        live.rec.attempt = 0;
        live.rec.result = None;
        live.not_before = None;
        if let Some(a) = args {
            live.rec.spec.args = a;
        }
        self.persist(id);
        self.publish(
            id,
            FrameType::Event,
            json!({"task": id, "stage": "requeued", "message": format!("requeued by {by}")}),
        );
        self.make_ready(id);
        self.dispatch();
        Ok(json!({"task": id, "state": "queued"}))
    }

    /// Removes dead tasks from memory and storage.
    pub(crate) fn purge(&mut self, ids: &[String]) -> Vec<String> {
        let mut gone = Vec::new();
        for id in ids {
            if self
                .tasks
                .get(id)
                .is_some_and(|l| l.rec.state == TaskState::Dead)
            {
                if let Some(l) = self.tasks.remove(id) {
                    self.forget_trace(&l.rec);
                }
                self.store.delete(id);
                gone.push(id.clone());
            }
        }
        gone
    }

    /// A consumer session ended: every attempt it held failed, except one waiting for
    /// a person (see `approval_resume`).
    pub(crate) fn consumer_gone(&mut self, session: &str) {
        let Some(c) = self.consumers.remove(session) else {
            return;
        };
        for id in c.held {
            // A request waiting for a person outlives its consumer's session.
            if self.orphan_approval(&id) {
                continue;
            }
            if self.tasks.get(&id).is_some_and(|l| l.lease.is_some()) {
                self.attempt_failed(
                    &id,
                    "consumer disconnected",
                    json!({"code": "consumer_gone"}),
                );
            }
        }
    }

    /// An attempt that was running when the broker died is over, but it is the broker's
    /// failure, not the task's: it does not count against `max_attempts` (five crashes
    /// during one task used to dead-letter it). An idempotent task is queued again at
    /// once with its attempt counter rolled back; a non-idempotent one is parked for a
    /// human, since the attempt may have had side effects.
    pub(crate) fn restarted_during_attempt(&mut self, id: &str) {
        let Some(live) = self.tasks.get_mut(id) else {
            return;
        };
        if !live.rec.spec.idempotent {
            self.attempt_failed(
                id,
                "broker restarted during the attempt",
                json!({"code": "broker_restart"}),
            );
            return;
        }
        let ran = live.rec.attempt;
        live.rec.attempt = ran.saturating_sub(1);
        let note = format!("broker restarted during attempt {ran}; it does not count");
        if live
            .rec
            .advance(TaskState::Queued, now_ms(), note.clone())
            .is_err()
        {
            return;
        }
        self.persist(id);
        self.publish(
            id,
            FrameType::Event,
            json!({"task": id, "stage": "requeued", "message": note}),
        );
        self.make_ready(id);
    }

    /// Loads one stored task at startup. Attempts that were running when the broker
    /// stopped are over: see `restarted_during_attempt`.
    pub(crate) fn recover(
        &mut self,
        body: &str,
        stream_next: u64,
        waiting: &mut super::approval_resume::Waiting,
    ) {
        let rec: TaskRecord = match serde_json::from_str(body) {
            Ok(r) => r,
            Err(e) => return tracing::error!(error = %e, "unreadable task row skipped"),
        };
        let id = rec.id.clone();
        self.next_seq = self.next_seq.max(rec.seq + 1);
        if let Some(n) = id
            .strip_prefix("t-")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
        {
            self.last_id = self.last_id.max(n);
        }
        let scoped =
            super::idem::idem_scope(&rec.owner, rec.spec.bip_id, &rec.spec.idempotency_key);
        let fp = super::idem::fingerprint(&rec.spec);
        self.idem
            .insert(scoped.clone(), (id.clone(), rec.created_ms, fp));
        self.idem_order.push_back((rec.created_ms, scoped));
        if rec.trace_id != id {
            self.traces.insert(rec.trace_id.clone(), id.clone());
        }
        let running = rec.state.is_running();
        let state = rec.state;
        self.tasks.insert(
            id.clone(),
            Box::new(Live {
                rec,
                durable: true,
                lease: None,
                not_before: None,
                stream_next,
                stream_dropped: 0,
                timer_gen: 0,
                pending: None,
            }),
        );
        if running {
            // A request still waiting for a person keeps its task waiting (see
            // `approval_resume`); any other attempt is over.
            if !self.restore_approval(&id, waiting) {
                self.restarted_during_attempt(&id);
            }
        } else if state == TaskState::Queued {
            self.make_ready(&id);
        } else if state.is_terminal() {
            self.terminal_order.push_back(id);
        }
    }

    /// A task reached a final state: it joins the final tasks kept in memory, and the
    /// oldest of those leave once there are more than `max_terminal_in_memory` (they
    /// stay in SQLite, where `show` and duplicate submits find them). Evicting here
    /// rather than on the prune timer keeps memory flat under a steady flow.
    fn finished(&mut self, id: &str) {
        self.terminal_order.push_back(id.to_owned());
        self.evict_terminal();
    }

    fn evict_terminal(&mut self) {
        while self.terminal_order.len() > self.cfg.max_terminal_in_memory {
            let Some(id) = self.terminal_order.pop_front() else {
                break;
            };
            let keep = self.tasks.get(&id).is_some_and(|l| {
                matches!(l.rec.state, TaskState::Dead | TaskState::Failed)
                    || !l.rec.state.is_terminal()
            });
            if !keep {
                if let Some(l) = self.tasks.remove(&id) {
                    self.forget_trace(&l.rec);
                }
            }
        }
    }

    /// Drops tasks that left memory's bounds, and idempotency keys past the window.
    pub(crate) fn prune(&mut self) {
        let now = now_ms();
        while let Some((at, key)) = self.idem_order.front().cloned() {
            if now.saturating_sub(at) < self.cfg.idempotency_window_ms {
                break;
            }
            self.idem_order.pop_front();
            if self.idem.get(&key).is_some_and(|(_, c, _)| *c == at) {
                self.idem.remove(&key);
            }
        }
        self.evict_terminal();
    }
}

/// Removes the lease from a consumer payload and stamps the attempt.
pub(crate) fn strip(payload: &mut Value, attempt: u32) {
    if let Some(o) = payload.as_object_mut() {
        o.remove("lease");
        o.insert("attempt".into(), json!(attempt));
    }
}
