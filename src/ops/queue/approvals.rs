//! Approvals while a task is leased: the lease holder asks (an APPROVAL request, which
//! puts the task in `waiting_approval` and creates a durable approval object, see
//! `approval_store`), gates (see `hooks`) or a person decide, and the decision goes
//! privately to the lease holder and publicly on the task's stream. All under the
//! core lock (see `core`); the gates are asked outside it, by the operator.
//!
//! Who may decide is the dispatcher's check (`access`: the `approve` right, never the
//! lease holder's session), plus one here: never the identity that asked (a second
//! session on the consumer's own credential). The task's state decides whether a
//! decision is still wanted (`conflict` otherwise), and only `approve` / `deny` with
//! scope `once` / `task` / `session` / `always` are accepted (what a scope means is
//! the approvals operator's: `ops::approval::memory`). What survives a restart is
//! `approval_resume`'s.

use super::approval_store::{self, ApprovalRecord, ApprovalState, Decided, NewApproval};
use super::core::Core;
use super::lifecycle::{strip, LeaseRef};
use super::model::{now_ms, TaskState};
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// An approval request waiting for a decision (or, after a restart, for its consumer).
#[derive(Debug)]
pub(crate) struct Pending {
    /// The request as published (without `lease`, with `attempt`).
    pub(crate) request: Value,
    /// When it was asked, wall-clock ms.
    pub(crate) asked_ms: u64,
    /// When it expires.
    pub(crate) due: Instant,
    /// How long it waits in all (the policy's rule may say, else `[approval]`).
    pub(crate) timeout: Duration,
    /// Whether the warning before expiry went out.
    pub(crate) warned: bool,
    /// The durable object, as last written.
    pub(crate) record: ApprovalRecord,
    /// A decision made while no session held the lease (after a broker restart),
    /// sent to the consumer when it resumes the lease.
    pub(crate) undelivered: Option<Value>,
    /// While no session holds the lease: when the attempt is given up.
    pub(crate) orphan_until: Option<Instant>,
}

/// When to warn about a request due at `due`: `warn` before it, unless that is no
/// warning at all (0, or as long as the whole wait).
pub(crate) fn warn_at(due: Instant, timeout: Duration, warn: Duration) -> Instant {
    if warn.is_zero() || warn >= timeout {
        due
    } else {
        due - warn
    }
}

/// The fields only a decision carries. A request that brings them would read, on the
/// stream and to a naive observer or gate, like a decision the lease holder made for
/// itself; they are removed.
const DECISION_FIELDS: [&str; 6] = ["decision", "by", "scope", "session", "consumer", "approval"];

fn unforge(request: &mut Value) {
    if let Some(o) = request.as_object_mut() {
        for k in DECISION_FIELDS {
            o.remove(k);
        }
    }
}

impl Core {
    /// A request's timer came due at `now`: warn once, then expire it, failing closed:
    /// the lease holder is told `expired` (not `denied`: nobody decided) and works on.
    /// While no session holds the lease (see `approval_resume`), gives the attempt up
    /// at its deadline. Returns false when the task is not waiting for an approval
    /// any more.
    pub(crate) fn approval_due(&mut self, id: &str, now: Instant) -> bool {
        let Some(live) = self.tasks.get_mut(id) else {
            return false;
        };
        let Some(p) = live.pending.as_ref() else {
            return false;
        };
        if p.undelivered.is_some() {
            return self.orphan_due(id, now);
        }
        let (due, warned, timeout) = (p.due, p.warned, p.timeout);
        if live.rec.state != TaskState::WaitingApproval {
            live.pending = None;
            return false;
        }
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        if now >= due {
            self.counters.approvals_expired += 1;
            let reason = format!("no decision within {}s", timeout.as_secs());
            let _ = self.decide(&Decision {
                task: id,
                approval: None,
                decision: "expired",
                scope: None,
                reason: Some(&reason),
                by: "timeout",
                session: None,
            });
            return true;
        }
        if !warned && now >= warn_at(due, timeout, warn) {
            if let Some(p) = live.pending.as_mut() {
                p.warned = true;
            }
            let left = due.saturating_duration_since(now).as_millis() as u64;
            let approval = live.pending.as_ref().map(|p| p.record.id.clone());
            let notice = json!({"event": "approval_expiring", "task": id,
                                "approval": approval, "expiresInMs": left});
            if let Some(l) = &live.lease {
                let mut env = crate::frame::Envelope::new(FrameType::System, notice.clone());
                if let Some(o) = env.payload.as_object_mut() {
                    o.insert("lease".into(), json!(l.id));
                }
                let _ = self
                    .bus
                    .send_private(std::slice::from_ref(&l.consumer), env);
            }
            self.publish(id, FrameType::System, notice);
            self.arm(id, due);
        } else if !warned {
            self.arm(id, warn_at(due, timeout, warn));
        } else {
            self.arm(id, due);
        }
        true
    }

    /// What the lease holder asks to do, for the gates (see `hooks`).
    ///
    /// # Errors
    /// As the lease check: `not_found`, `stale_lease`.
    pub(crate) fn action_of(
        &mut self,
        r: &LeaseRef<'_>,
        payload: &Value,
    ) -> Result<super::hooks::ActionRequest, WireError> {
        let live = self.check_lease(r)?;
        let mut action = payload.clone();
        if let Some(o) = action.as_object_mut() {
            o.remove("task");
            o.remove("lease");
        }
        unforge(&mut action);
        let rec = &live.rec;
        Ok(super::hooks::ActionRequest {
            task: rec.id.clone(),
            trace_id: rec.trace_id.clone(),
            owner: rec.owner.clone(),
            bip_id: rec.spec.bip_id,
            kind: rec.spec.kind.clone(),
            consumer: r.session.to_owned(),
            attempt: rec.attempt,
            action,
        })
    }

    /// An APPROVAL request from the consumer (identity `subject`): the task waits for
    /// a decision, and the approval object is created and written.
    pub(crate) fn approval_request(
        &mut self,
        r: &LeaseRef<'_>,
        mut payload: Value,
        subject: &str,
    ) -> Result<Value, WireError> {
        let (timeout, warn) = (
            Duration::from_millis(self.cfg.approval_timeout_ms),
            Duration::from_millis(self.cfg.approval_warn_ms),
        );
        let now = tokio::time::Instant::now();
        let live = self.renew_lease(r)?;
        live.rec.advance(
            TaskState::WaitingApproval,
            now_ms(),
            "approval requested".into(),
        )?;
        // A request replaced by a newer one on the same lease is over.
        if let Some(old) = live.pending.take() {
            let mut rec = old.record;
            if rec.state == ApprovalState::Pending {
                rec.state = ApprovalState::Cancelled;
                rec.decided = Some(by_queue("replaced by a newer request"));
                approval_store::put(&self.store, &rec);
            }
        }
        let Some(live) = self.tasks.get_mut(r.task) else {
            return Err(WireError::new(ErrorCode::NotFound, "task left"));
        };
        // The lease is held while a person thinks: no expiry, no retry, until the
        // request itself expires (then `fire_due` answers `expired`).
        let due = now + timeout;
        if let Some(l) = live.lease.as_mut() {
            l.expires = l.expires.max(due + l.length);
        }
        let attempt = live.rec.attempt;
        strip(&mut payload, attempt);
        unforge(&mut payload);
        let record = NewApproval {
            rec: &live.rec,
            request: &payload,
            requested_by: subject,
            session: r.session,
            lease: r.lease,
            now_ms: now_ms(),
            timeout_ms: timeout.as_millis() as u64,
        }
        .build();
        let id = record.id.clone();
        approval_store::put(&self.store, &record);
        live.pending = Some(Box::new(Pending {
            request: payload.clone(),
            asked_ms: record.created,
            due,
            timeout,
            warned: false,
            record,
            undelivered: None,
            orphan_until: None,
        }));
        self.arm(r.task, warn_at(due, timeout, warn));
        self.persist(r.task);
        let mut published = payload;
        published["approval"] = json!(id);
        self.publish(r.task, FrameType::Approval, published);
        Ok(json!({"task": r.task, "state": "waiting_approval", "approval": id}))
    }

    /// Gives the request waiting on `task` another timeout (a policy rule's own),
    /// counted from when it was asked. Nothing when none waits.
    pub(crate) fn approval_timeout(&mut self, task: &str, timeout: Duration) {
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        let Some(live) = self.tasks.get_mut(task) else {
            return;
        };
        let Some(p) = live.pending.as_mut().filter(|p| p.undelivered.is_none()) else {
            return;
        };
        let due = p.due - p.timeout + timeout;
        p.due = due;
        p.timeout = timeout;
        p.record.expires_at = p.record.created.saturating_add(timeout.as_millis() as u64);
        let record = p.record.clone();
        if let Some(l) = live.lease.as_mut() {
            l.expires = l.expires.max(due + l.length);
        }
        approval_store::put(&self.store, &record);
        self.arm(task, warn_at(due, timeout, warn));
    }

    /// An APPROVAL decision `{task, approval?, decision: approve|deny, scope?:
    /// once|task|session|always, reason?}`, from a caller the dispatcher let decide
    /// (never the lease holder, never the identity that asked): forwarded to the
    /// consumer, published, and the task is working again (the consumer acts on a
    /// denial itself). Only those fields travel on.
    ///
    /// # Errors
    /// `not_found`; `invalid_field` for another decision or scope; `forbidden` for
    /// the identity that asked; `conflict` when the task is not waiting for an
    /// approval, or `approval` names another one than the one waiting.
    pub(crate) fn approval_decision(
        &mut self,
        task: &str,
        caller: &crate::ops::Caller,
        payload: &Value,
    ) -> Result<Value, WireError> {
        let field =
            |k: &str, allowed: &[&str], required: bool| -> Result<Option<String>, WireError> {
                match payload.get(k) {
                    None | Some(Value::Null) if !required => Ok(None),
                    Some(Value::String(v)) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
                    _ => Err(WireError::new(
                        ErrorCode::InvalidField,
                        format!("`{k}` must be one of: {}", allowed.join(", ")),
                    )
                    .with_details(json!({"field": k, "allowed": allowed}))),
                }
            };
        let decision = field("decision", &["approve", "deny"], true)?.unwrap_or_default();
        let scope = field("scope", &["once", "task", "session", "always"], false)?;
        let reason = match payload.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.len() <= 4096 => Some(r.clone()),
            Some(_) => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`reason` must be a string of at most 4096 bytes",
                )
                .with_details(json!({"field": "reason"})))
            }
        };
        let approval = match payload.get("approval") {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) if a.len() <= 64 => Some(a.clone()),
            Some(_) => {
                return Err(WireError::new(
                    ErrorCode::InvalidField,
                    "`approval` must be an approval id (`a-...`)",
                )
                .with_details(json!({"field": "approval"})))
            }
        };
        let by = caller.identity.subject.as_str();
        let asker = self
            .tasks
            .get(task)
            .and_then(|l| l.pending.as_ref())
            .map(|p| p.record.requested_by.as_str());
        // Sessions without a credential all share the subject `anonymous`: only the
        // session check (the dispatcher's) tells them apart.
        if asker == Some(by) && caller.identity.method != "none" {
            return Err(WireError::new(
                ErrorCode::Forbidden,
                "an approval is never decided by the identity that asked for it",
            )
            .with_details(json!({"right": "approve", "reason": "requested_by"})));
        }
        self.decide(&Decision {
            task,
            approval: approval.as_deref(),
            decision: &decision,
            scope: scope.as_deref(),
            reason: reason.as_deref(),
            by,
            session: Some(&caller.session),
        })
    }

    /// Applies a decision on the approval `d.task` waits for, from a person or a gate:
    /// the approval object records it, the task is working again, the lease holder is
    /// told privately (or, with no holder after a restart, when it resumes), and the
    /// decision is published on the task's stream.
    ///
    /// # Errors
    /// `not_found`; `conflict` when the task is not waiting for an approval, or not
    /// for `d.approval`.
    pub(crate) fn decide(&mut self, d: &Decision<'_>) -> Result<Value, WireError> {
        let Decision {
            task,
            approval,
            decision,
            scope,
            reason,
            by,
            session,
        } = *d;
        let live = self
            .tasks
            .get_mut(task)
            .ok_or_else(|| WireError::new(ErrorCode::NotFound, format!("no task {task}")))?;
        let waiting = live.pending.as_ref().map(|p| p.record.id.as_str());
        if live.rec.state != TaskState::WaitingApproval
            || approval.is_some_and(|a| Some(a) != waiting)
        {
            let what = approval.map_or_else(|| format!("task {task}"), |a| format!("approval {a}"));
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "{what} is not waiting for a decision (task {task} is {})",
                    live.rec.state.as_str()
                ),
            )
            .with_details(json!({"task": task, "waiting": waiting})));
        }
        live.rec.advance(
            TaskState::Working,
            now_ms(),
            format!("approval {decision} by {by}"),
        )?;
        let now = tokio::time::Instant::now();
        let Some(mut pending) = live.pending.take() else {
            return Err(WireError::new(ErrorCode::Conflict, "no approval waiting"));
        };
        pending.record.state = ApprovalState::of_decision(decision);
        pending.record.decided = Some(Decided {
            by: by.to_owned(),
            at: now_ms(),
            scope: scope.map(str::to_owned),
            reason: reason.map(str::to_owned),
            session: session.map(str::to_owned),
        });
        let id = pending.record.id.clone();
        approval_store::put(&self.store, &pending.record);
        // The decision names what it decided on and who asked, so that the stream is
        // its own record and an observer can remember it (`ops::approval::memory`).
        let mut p = json!({"task": task, "approval": id, "decision": decision, "by": by,
                           "request": pending.request, "requestedBy": pending.record.requested_by});
        let lease = live.lease.clone();
        p["consumer"] = json!(lease
            .as_ref()
            .map_or(&pending.record.session, |l| &l.consumer));
        if let Some(s) = session {
            p["session"] = json!(s);
        }
        if let Some(s) = scope {
            p["scope"] = json!(s);
        }
        if let Some(r) = reason {
            p["reason"] = json!(r);
        }
        match &lease {
            // The wait is over: the lease goes back to living on heartbeats.
            Some(l) => {
                if let Some(l) = live.lease.as_mut() {
                    l.expires = now + l.length;
                }
                let mut env = crate::frame::Envelope::new(FrameType::Approval, p.clone());
                if let Some(o) = env.payload.as_object_mut() {
                    o.insert("lease".into(), json!(l.id));
                }
                let _ = self
                    .bus
                    .send_private(std::slice::from_ref(&l.consumer), env);
                self.arm(task, now + l.length);
            }
            // Nobody holds the lease (a restart): kept for the consumer's resume.
            None => {
                let length = self.lease_length(task);
                pending.undelivered = Some(p.clone());
                pending.orphan_until = Some(now + length);
                if let Some(live) = self.tasks.get_mut(task) {
                    live.pending = Some(pending);
                }
                self.arm(task, now + length);
            }
        }
        self.persist(task);
        self.publish(task, FrameType::Approval, p);
        Ok(
            json!({"task": task, "approval": id, "state": "working", "decision": decision, "by": by}),
        )
    }

    /// The attempt of `task` ended (result, failure, cancel, lost lease): a request
    /// still waiting is `cancelled`, recorded and published.
    pub(crate) fn approval_ended(&mut self, task: &str) {
        let Some(live) = self.tasks.get_mut(task) else {
            return;
        };
        let Some(p) = live.pending.take() else {
            return;
        };
        let mut rec = p.record;
        if rec.state != ApprovalState::Pending {
            return;
        }
        rec.state = ApprovalState::Cancelled;
        rec.decided = Some(by_queue("the attempt ended before a decision"));
        approval_store::put(&self.store, &rec);
        self.publish(
            task,
            FrameType::Approval,
            json!({"task": task, "approval": rec.id, "decision": "cancelled", "by": "queue",
                   "reason": "the attempt ended before a decision"}),
        );
    }
}

/// A decision the queue itself records (a request replaced or left behind).
fn by_queue(reason: &str) -> Decided {
    Decided {
        by: "queue".into(),
        at: now_ms(),
        scope: None,
        reason: Some(reason.into()),
        session: None,
    }
}

/// A decision on an approval: what, with which scope and why, by whom (a subject, or
/// `policy:<rule>` for a gate), from which session (none for a gate).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision<'a> {
    pub(crate) task: &'a str,
    /// The approval the decider saw, when it named one: another is `conflict`.
    pub(crate) approval: Option<&'a str>,
    pub(crate) decision: &'a str,
    pub(crate) scope: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) by: &'a str,
    pub(crate) session: Option<&'a str>,
}
