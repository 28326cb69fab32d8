//! Approvals across a broker restart or a consumer's reconnection: a request that
//! was waiting for a person when the broker stopped (or its consumer's session
//! ended) still waits, and its consumer takes its lease back (`op.queue.resume`) to
//! hear the decision.
//!
//! At startup, a task recovered in `waiting_approval` whose approval row is still
//! `pending` keeps waiting (instead of being retried like every other running
//! attempt): listed, decidable, its `expiresAt` (wall clock) honoured. Nobody holds
//! its lease meanwhile: the lease is *orphaned*. A decision (or the expiry) made
//! while orphaned is recorded and published at once, and kept for the consumer.
//! The consumer that asked resumes the lease with `{task, lease}`: only the identity
//! that asked, only that lease, only while orphaned; it then gets the decision (in
//! the reply and as the usual private APPROVAL frame) or keeps waiting.
//!
//! Invariants: an orphaned attempt ends, like any attempt a restart interrupted
//! (`restarted_during_attempt`), one lease length after its decision (or after the
//! request's expiry) when nobody resumed it; a pending row whose task is not waiting
//! any more is recorded `cancelled` at startup.

use super::approval_store::{self, ApprovalRecord, ApprovalState, Decided};
use super::approvals::{warn_at, Pending};
use super::core::{Core, LeaseState};
use super::model::{now_ms, TaskState};
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Pending approvals read at startup, by task.
pub(crate) type Waiting = HashMap<String, ApprovalRecord>;

/// Indexes the recovered pending approvals by task (the newest wins: at most one
/// waits per task).
pub(crate) fn by_task(rows: Vec<ApprovalRecord>) -> Waiting {
    let mut m = Waiting::new();
    for a in rows {
        if m.get(&a.task).is_none_or(|b| b.created <= a.created) {
            m.insert(a.task.clone(), a);
        }
    }
    m
}

impl Core {
    /// How long a lease on `task` lasts (its own timeout, else its kind's).
    pub(crate) fn lease_length(&self, task: &str) -> Duration {
        self.tasks
            .get(task)
            .map_or(Duration::from_millis(self.cfg.lease_ms), |l| {
                let eff = self.cfg.for_kind(&l.rec.spec.kind);
                l.rec
                    .spec
                    .timeout_ms
                    .map_or(eff.lease, Duration::from_millis)
            })
    }

    /// At startup: keeps `task` waiting when its approval is still pending. False
    /// when there is none (the attempt is over like any other).
    pub(crate) fn restore_approval(&mut self, task: &str, waiting: &mut Waiting) -> bool {
        let state = self.tasks.get(task).map(|l| l.rec.state);
        if state != Some(TaskState::WaitingApproval) {
            return false;
        }
        let Some(record) = waiting.remove(task) else {
            return false;
        };
        let now = Instant::now();
        let left = Duration::from_millis(record.expires_at.saturating_sub(now_ms()));
        let due = now + left;
        let timeout = Duration::from_millis(record.expires_at.saturating_sub(record.created));
        let length = self.lease_length(task);
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        let id = record.id.clone();
        let Some(live) = self.tasks.get_mut(task) else {
            return false;
        };
        live.pending = Some(Box::new(Pending {
            request: record.action.clone(),
            asked_ms: record.created,
            due,
            timeout,
            warned: false,
            record,
            undelivered: None,
            orphan_until: Some(due + length),
        }));
        self.arm(task, warn_at(due, timeout, warn));
        self.publish(
            task,
            FrameType::Event,
            json!({"task": task, "stage": "approval_restored", "approval": id,
                   "message": format!("broker restarted; approval {id} still waits; its consumer may resume its lease")}),
        );
        true
    }

    /// The consumer holding `task`'s lease went away while the task waits for a
    /// person: the lease is orphaned, the request waits on, and the consumer (the same
    /// identity, on a new session) may resume the lease until one lease length after
    /// the request is decided or expires. False when the task is not waiting.
    pub(crate) fn orphan_approval(&mut self, task: &str) -> bool {
        let length = self.lease_length(task);
        let Some(live) = self.tasks.get_mut(task) else {
            return false;
        };
        let waiting = live.rec.state == TaskState::WaitingApproval && live.lease.is_some();
        let Some(p) = live.pending.as_mut().filter(|p| {
            waiting && p.undelivered.is_none() && p.record.state == ApprovalState::Pending
        }) else {
            return false;
        };
        p.orphan_until = Some(p.due + length);
        let (due, timeout) = (p.due, p.timeout);
        let lease = live.lease.take();
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        self.arm(task, warn_at(due, timeout, warn));
        if let Some(l) = lease {
            self.publish(
                task,
                FrameType::Event,
                json!({"task": task, "stage": "lease_orphaned",
                       "message": format!("{} went away while its approval waits; its lease may be resumed", l.consumer)}),
            );
        }
        true
    }

    /// At startup: pending rows no task waits for any more are `cancelled`.
    pub(crate) fn cancel_unclaimed(&mut self, waiting: Waiting) {
        for (_, mut a) in waiting {
            a.state = ApprovalState::Cancelled;
            a.decided = Some(Decided {
                by: "queue".into(),
                at: now_ms(),
                scope: None,
                reason: Some("the broker restarted and the attempt did not survive".into()),
                session: None,
            });
            approval_store::put(&self.store, &a);
        }
    }

    /// The timer of an orphaned, decided request: nobody resumed the lease in time,
    /// so the attempt ends as a restart's would. Always true (the timer was its).
    pub(crate) fn orphan_due(&mut self, task: &str, now: Instant) -> bool {
        let until = self
            .tasks
            .get(task)
            .and_then(|l| l.pending.as_ref())
            .and_then(|p| p.orphan_until);
        match until {
            Some(at) if now < at => self.arm(task, at),
            _ => {
                if let Some(live) = self.tasks.get_mut(task) {
                    live.pending = None;
                }
                self.restarted_during_attempt(task);
            }
        }
        true
    }

    /// `op.queue.resume {task, lease}` from `session` (identity `subject`): takes
    /// back the lease of an approval that outlived a broker restart.
    ///
    /// # Errors
    /// `not_found`; `stale_lease` when the task has no orphaned lease `lease`;
    /// `forbidden` when another identity asked for the approval.
    pub(crate) fn resume(
        &mut self,
        session: &str,
        subject: &str,
        task: &str,
        lease: &str,
    ) -> Result<Value, WireError> {
        let length = self.lease_length(task);
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        let live = self
            .tasks
            .get_mut(task)
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {task}")))?;
        let orphan = live.lease.is_none()
            && live
                .pending
                .as_ref()
                .is_some_and(|p| p.orphan_until.is_some() && p.record.lease == lease);
        if !orphan {
            return Err(WireError::new(
                ErrorCode::StaleLease,
                format!("task {task}: lease {lease} cannot be resumed (only a lease left without its consumer by a restart, while its approval waits or its decision is undelivered)"),
            )
            .with_details(json!({"task": task, "attempt": live.rec.attempt})));
        }
        let Some(mut p) = live.pending.take() else {
            return Err(WireError::new(ErrorCode::StaleLease, "no approval"));
        };
        if p.record.requested_by != subject {
            live.pending = Some(p);
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "only the identity that asked for the approval resumes its lease",
            )
            .with_details(json!({"reason": "requested_by"})));
        }
        let now = Instant::now();
        p.orphan_until = None;
        p.record.session = session.to_owned();
        approval_store::put(&self.store, &p.record);
        let approval = p.record.id.clone();
        let undelivered = p.undelivered.take();
        let (expires, timer) = match &undelivered {
            Some(_) => (now + length, now + length),
            None => (p.due + length, warn_at(p.due, p.timeout, warn)),
        };
        live.lease = Some(LeaseState {
            id: lease.to_owned(),
            consumer: session.to_owned(),
            expires,
            length,
        });
        if undelivered.is_none() {
            live.pending = Some(p);
        }
        let state = live.rec.state;
        if let Some(c) = self.consumers.get_mut(session) {
            c.held.insert(task.to_owned());
        }
        self.arm(task, timer);
        if let Some(d) = &undelivered {
            let mut env = crate::frame::Envelope::new(FrameType::Approval, d.clone());
            if let Some(o) = env.payload.as_object_mut() {
                o.insert("lease".into(), json!(lease));
            }
            let _ = self.bus.send_private(&[session.to_owned()], env);
        }
        self.publish(
            task,
            FrameType::Event,
            json!({"task": task, "stage": "lease_resumed", "approval": approval,
                   "message": format!("lease resumed by {session}")}),
        );
        Ok(
            json!({"task": task, "lease": lease, "state": state.as_str(),
                  "approval": approval, "decision": undelivered}),
        )
    }
}
