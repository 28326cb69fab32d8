//! What the queue shows: `list` / `dlq.list`, `approvals` and `stats`, filtered by
//! what the caller may read. A listing leaves out tasks whose channel the credential may not read
//! rather than refusing; `stats` counts over the same tasks and shows a restricted
//! credential only its own consumer entry (`docs/ROLES.md`).

use super::model::TaskState;
use super::Queue;
use crate::auth::authority::{Right, Target};
use crate::error::{ErrorCode, WireError};
use crate::ops::Caller;
use serde_json::{json, Value};

/// Most tasks one listing returns.
/// Most tasks one listing returns.
const MAX_LIST: usize = 1000;

impl Queue {
    /// The approval requests waiting for a decision, oldest first, on channels the
    /// caller may read: what was asked, by which consumer, how long is left.
    pub(crate) fn approvals(&self, caller: &Caller) -> Value {
        let core = self.lock();
        let now = tokio::time::Instant::now();
        let everything = caller.identity.permissions.reads_everything();
        let mut v: Vec<(u64, Value)> = core
            .tasks
            .values()
            .filter(|l| everything || may_read(caller, l))
            .filter_map(|l| {
                // A decision kept for a consumer that has not resumed is not waiting.
                let p = l.pending.as_ref().filter(|p| p.undelivered.is_none())?;
                let rec = &l.rec;
                Some((
                    p.asked_ms,
                    json!({
                        "task": rec.id, "traceId": rec.trace_id, "bipId": rec.spec.bip_id,
                        "kind": rec.spec.kind, "owner": rec.owner, "attempt": rec.attempt,
                        "consumer": l.lease.as_ref().map(|l| l.consumer.as_str()),
                        "request": p.request, "askedMs": p.asked_ms,
                        "expiresInMs": p.due.saturating_duration_since(now).as_millis() as u64,
                        "approval": p.record.id, "expiresAt": p.record.expires_at,
                        "requestedBy": p.record.requested_by,
                        "orphaned": l.lease.is_none(),
                    }),
                ))
            })
            .collect();
        v.sort_by_key(|(at, _)| *at);
        let approvals: Vec<Value> = v.into_iter().map(|(_, a)| a).collect();
        json!({"approvals": approvals})
    }

    /// Tasks in memory, newest first, that the caller may read.
    pub(crate) fn list(
        &self,
        caller: &Caller,
        args: &Value,
        only: Option<TaskState>,
    ) -> Result<Value, WireError> {
        let state = match args.get("state").and_then(Value::as_str) {
            Some(s) => Some(TaskState::parse(s).ok_or_else(|| {
                WireError::new(ErrorCode::InvalidField, format!("unknown state `{s}`"))
                    .with_details(json!({"field": "state"}))
            })?),
            None => only,
        };
        let kind = args.get("kind").and_then(Value::as_str);
        let limit = args
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .min(MAX_LIST as u64) as usize;
        let core = self.lock();
        let mut v: Vec<_> = core
            .tasks
            .values()
            .filter(|l| state.is_none_or(|s| super::core::Core::visible_state(l) == s))
            .filter(|l| kind.is_none_or(|k| l.rec.spec.kind == k))
            // Rooms the credential may not read are left out, not refused: a listing
            // shows what the caller may see.
            .filter(|l| caller.identity.permissions.reads_everything() || may_read(caller, l))
            .collect();
        v.sort_by_key(|l| l.rec.seq);
        let total = v.len();
        let tasks: Vec<Value> = v
            .iter()
            .rev()
            .take(limit)
            .map(|l| super::views::summary(&l.rec, super::core::Core::visible_state(l)))
            .collect();
        Ok(json!({"tasks": tasks, "total": total}))
    }

    /// Counts by state, ready depths by kind and the consumers. A credential that
    /// reads every room sees the whole queue; a restricted one sees counts over the
    /// tasks it may read and only its own consumer entry, never other sessions' ids,
    /// kinds or lanes, nor the queue-wide counters.
    pub(crate) fn stats(&self, caller: &Caller) -> Value {
        let everything = caller.identity.permissions.reads_everything();
        let core = self.lock();
        // Counted without allocating per task: this scan runs under the queue lock
        // and covers every task in memory (up to `max_terminal_in_memory`).
        let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut ready: std::collections::BTreeMap<&str, u64> = Default::default();
        for l in core.tasks.values() {
            if !everything && !may_read(caller, l) {
                continue;
            }
            let state = super::core::Core::visible_state(l);
            *counts.entry(state.as_str()).or_default() += 1;
            if !everything && state == TaskState::Queued {
                *ready.entry(l.rec.spec.kind.as_str()).or_default() += 1;
            }
        }
        let by_state: serde_json::Map<String, Value> = counts
            .into_iter()
            .map(|(k, n)| (k.to_owned(), json!(n)))
            .collect();
        let consumers: Vec<Value> = core
            .consumers
            .iter()
            .filter(|(s, _)| everything || s.as_str() == caller.session.as_str())
            .map(|(s, c)| json!({"session": s, "kinds": c.kinds, "slots": c.slots, "busy": c.held.len()}))
            .collect();
        if !everything {
            return json!({"states": by_state, "ready": ready, "consumers": consumers,
                          "scope": "restricted"});
        }
        let depths: serde_json::Map<String, Value> = core
            .sched
            .depths()
            .into_iter()
            .map(|(k, n)| (k, json!(n)))
            .collect();
        // `in_memory` and `idempotency_keys`: the old names, kept for one release.
        json!({"states": by_state, "ready": depths, "consumers": consumers, "counters": core.counters,
               "inMemory": core.tasks.len(), "idempotencyKeys": core.idem.len(),
               "in_memory": core.tasks.len(), "idempotency_keys": core.idem.len(),
               "eventsDropped": core.hooks.dropped.load(std::sync::atomic::Ordering::Relaxed),
               "scope": "all"})
    }
}

/// Whether `caller` may read the task `l`: `subscribe` on its channel `bip-<n>:<kind>`.
fn may_read(caller: &Caller, l: &super::core::Live) -> bool {
    crate::address::Address::new(&format!("bip-{}", l.rec.spec.bip_id), &l.rec.spec.kind)
        .is_ok_and(|a| caller.may(Right::Read, &Target::Address(a)))
}
