//! Approvals while a task is leased: the lease holder asks (an APPROVAL request, which
//! puts the task in `waiting_approval`), gates (see `hooks`) or a person decide, and
//! the decision goes privately to the lease holder and publicly on the task's stream.
//! All under the core lock (see `core`); the gates are asked outside it, by the
//! operator.
//!
//! Who may decide is the dispatcher's check (`access`: the `approve` right, never the
//! lease holder's session); here only the task's state decides whether a decision is
//! still wanted (`conflict` otherwise), and only `approve` / `deny` with scope `once` /
//! `task` / `session` / `always` are accepted (what a scope means is the approvals
//! operator's: `ops::approval::memory`).

use super::core::Core;
use super::lifecycle::{strip, LeaseRef};
use super::model::{now_ms, TaskState};
use crate::error::{ErrorCode, WireError};
use crate::frame::FrameType;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// An approval request waiting for a decision.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The request as published (without `lease`, with `attempt`).
    pub(crate) request: Value,
    /// When it was asked, wall-clock ms.
    pub(crate) asked_ms: u64,
    /// When it expires.
    pub(crate) due: Instant,
    /// Whether the warning before expiry went out.
    pub(crate) warned: bool,
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
const DECISION_FIELDS: [&str; 5] = ["decision", "by", "scope", "session", "consumer"];

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
    /// Returns false when the task is not waiting for an approval any more.
    pub(crate) fn approval_due(&mut self, id: &str, now: Instant) -> bool {
        let Some(live) = self.tasks.get_mut(id) else {
            return false;
        };
        let Some((due, warned)) = live.pending.as_ref().map(|p| (p.due, p.warned)) else {
            return false;
        };
        if live.rec.state != TaskState::WaitingApproval {
            live.pending = None;
            return false;
        }
        let timeout = Duration::from_millis(self.cfg.approval_timeout_ms);
        let warn = Duration::from_millis(self.cfg.approval_warn_ms);
        if now >= due {
            self.counters.approvals_expired += 1;
            let reason = format!("no decision within {}s", timeout.as_secs());
            let _ = self.decide(&Decision {
                task: id,
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
            let notice = json!({"event": "approval_expiring", "task": id, "expiresInMs": left});
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

    /// An APPROVAL request from the consumer: the task waits for a decision.
    pub(crate) fn approval_request(
        &mut self,
        r: &LeaseRef<'_>,
        mut payload: Value,
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
        // The lease is held while a person thinks: no expiry, no retry, until the
        // request itself expires (then `fire_due` answers `expired`).
        let due = now + timeout;
        if let Some(l) = live.lease.as_mut() {
            l.expires = l.expires.max(due + l.length);
        }
        let attempt = live.rec.attempt;
        strip(&mut payload, attempt);
        unforge(&mut payload);
        live.pending = Some(Box::new(Pending {
            request: payload.clone(),
            asked_ms: now_ms(),
            due,
            warned: false,
        }));
        self.arm(r.task, warn_at(due, timeout, warn));
        self.persist(r.task);
        self.publish(r.task, FrameType::Approval, payload);
        Ok(json!({"task": r.task, "state": "waiting_approval"}))
    }

    /// An APPROVAL decision `{task, decision: approve|deny, scope?: once|task|session|always,
    /// reason?}`, from a caller the dispatcher let decide (never the lease holder):
    /// forwarded to the consumer, published, and the task is working again (the
    /// consumer acts on a denial itself). Only those fields travel on.
    ///
    /// # Errors
    /// `not_found`; `invalid_field` for another decision or scope; `conflict` when the
    /// task is not waiting for an approval.
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
        let by = caller.identity.subject.as_str();
        self.decide(&Decision {
            task,
            decision: &decision,
            scope: scope.as_deref(),
            reason: reason.as_deref(),
            by,
            session: Some(&caller.session),
        })
    }

    /// Applies a decision on the approval `d.task` waits for, from a person or a gate:
    /// the task is working again, the lease holder is told privately, and the
    /// decision is published on the task's stream.
    ///
    /// # Errors
    /// `not_found`; `conflict` when the task is not waiting for an approval.
    pub(crate) fn decide(&mut self, d: &Decision<'_>) -> Result<Value, WireError> {
        let Decision {
            task,
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
        if live.rec.state != TaskState::WaitingApproval {
            return Err(WireError::new(
                ErrorCode::Conflict,
                format!(
                    "task {task} is {}, not waiting for an approval",
                    live.rec.state.as_str()
                ),
            ));
        }
        live.rec.advance(
            TaskState::Working,
            now_ms(),
            format!("approval {decision} by {by}"),
        )?;
        // The wait is over: the lease goes back to living on heartbeats.
        let request = live.pending.take().map(|p| p.request);
        let now = tokio::time::Instant::now();
        if let Some(l) = live.lease.as_mut() {
            l.expires = now + l.length;
        }
        let lease = live.lease.clone();
        if let Some(l) = &lease {
            self.arm(task, l.expires);
        }
        self.persist(task);
        // The decision names what it decided on and who asked, so that the stream is
        // its own record and an observer can remember it (`ops::approval::memory`).
        let mut p = json!({"task": task, "decision": decision, "by": by});
        if let Some(r) = request {
            p["request"] = r;
        }
        if let Some(l) = &lease {
            p["consumer"] = json!(l.consumer);
        }
        if let Some(s) = session {
            p["session"] = json!(s);
        }
        if let Some(s) = scope {
            p["scope"] = json!(s);
        }
        if let Some(r) = reason {
            p["reason"] = json!(r);
        }
        if let Some(l) = lease {
            let mut env = crate::frame::Envelope::new(FrameType::Approval, p.clone());
            if let Some(o) = env.payload.as_object_mut() {
                o.insert("lease".into(), json!(l.id));
            }
            let _ = self
                .bus
                .send_private(std::slice::from_ref(&l.consumer), env);
        }
        self.publish(task, FrameType::Approval, p);
        Ok(json!({"task": task, "state": "working", "decision": decision, "by": by}))
    }
}

/// A decision on an approval: what, with which scope and why, by whom (a subject, or
/// `policy:<rule>` for a gate), from which session (none for a gate).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decision<'a> {
    pub(crate) task: &'a str,
    pub(crate) decision: &'a str,
    pub(crate) scope: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) by: &'a str,
    pub(crate) session: Option<&'a str>,
}
