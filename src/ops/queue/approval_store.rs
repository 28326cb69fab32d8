//! The durable approval object: what a consumer asked, who asked, until when, and
//! what became of it (`pending` -> `approved` | `denied` | `expired` | `cancelled`),
//! one row per request in the store's `approvals` table (operator `approvals` in
//! `schema_versions`, sharing the queue's database and writer).
//!
//! The queue's core (`approvals`) changes the object under its lock and enqueues the
//! row here after every change, in order with the task's own rows: after a restart
//! the row says what the last committed state was. A `pending` row whose task is
//! still `waiting_approval` is loaded back (`Core::restore_approval`); an `approved`
//! or `denied` row with scope `always` is a rule the policy learned, read back by the
//! approvals operator ([`Queue::learned_rules`]) until an admin forgets it.
//!
//! Invariants: a row leaves `pending` once and never returns; only `pending` rows
//! are loaded as waiting; the table is bounded in time: decided rows that are not
//! live `always` rules are dropped [`KEEP_DECIDED_MS`] after they were asked (at
//! open), and there is at most one pending row per task (one request waits at a
//! time).
//!
//! Versions:
//! 1. `approvals (id, task, state, scope, created_ms, forgotten_ms, body)`.

use super::Queue;
use crate::error::{ErrorCode, WireError};
use crate::store::{Batch, Migration, Schema};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};

/// How long a decided approval is kept (30 days), unless it is a live `always` rule.
pub const KEEP_DECIDED_MS: u64 = 30 * 24 * 3600 * 1000;

/// The approvals' schema, opened beside the queue's.
pub(crate) static SCHEMA: Schema = Schema {
    operator: "approvals",
    steps: &[Migration {
        what: "approvals: one row per approval request and its outcome",
        apply: |tx| {
            tx.execute_batch(
                "CREATE TABLE approvals (
                    id TEXT PRIMARY KEY,
                    task TEXT NOT NULL,
                    state TEXT NOT NULL,
                    scope TEXT,
                    created_ms INTEGER NOT NULL,
                    forgotten_ms INTEGER,
                    body TEXT NOT NULL
                ) WITHOUT ROWID;",
            )
        },
    }],
    unrecorded: None,
};

const PUT: &str = "INSERT INTO approvals (id, task, state, scope, created_ms, forgotten_ms, body)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT(id) DO UPDATE SET state = excluded.state, scope = excluded.scope,
        forgotten_ms = excluded.forgotten_ms, body = excluded.body";

/// The `always` decisions still in force (approvals and denials).
const LEARNED: &str = "SELECT body FROM approvals
     WHERE state IN ('approved', 'denied') AND scope = 'always' AND forgotten_ms IS NULL
     ORDER BY created_ms";

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a decision.
    Pending,
    /// A person (or the policy) approved it.
    Approved,
    /// A person (or the policy) refused it.
    Denied,
    /// Nobody decided in time: refused, failing closed.
    Expired,
    /// The attempt that asked ended first (result, failure, cancel, lease lost).
    Cancelled,
}

impl ApprovalState {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Cancelled => "cancelled",
        }
    }

    /// The state a decision leads to.
    pub(crate) fn of_decision(decision: &str) -> ApprovalState {
        match decision {
            "approve" => ApprovalState::Approved,
            "deny" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            _ => ApprovalState::Cancelled,
        }
    }
}

/// Who decided, when, how far it reaches, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    /// A subject, `policy:<rule>`, `timeout` or `queue`.
    pub by: String,
    /// Wall-clock ms.
    pub at: u64,
    /// `once`, `task`, `session` or `always` (people's approvals and denials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The deciding session, for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// One approval, as stored and as `op.queue.approvals` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// `a-` and 16 hex digits, growing.
    pub id: String,
    /// The task whose lease asked.
    pub task: String,
    /// The task's trace id.
    pub trace_id: String,
    /// The task's BIP.
    pub bip_id: u64,
    /// The task's kind.
    pub kind: String,
    /// The attempt that asked.
    pub attempt: u32,
    /// The request as the policy and people see it (no lease, no decision fields).
    pub action: Value,
    /// The consumer's reason, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What it would run: `suggestedCommand`, else `command` of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_command: Option<String>,
    /// Where it would run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The identity (subject) of the consumer that asked: only it may resume the lease.
    pub requested_by: String,
    /// The consumer session holding the lease (the latest, after a resume).
    pub session: String,
    /// The lease the request was made on.
    pub lease: String,
    /// When it was asked, wall-clock ms.
    pub created: u64,
    /// When it expires unless decided, wall-clock ms.
    pub expires_at: u64,
    /// Where it stands.
    pub state: ApprovalState,
    /// The decision, once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided: Option<Decided>,
    /// For an `always` approval an admin forgot: who and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten: Option<Decided>,
}

/// Builds the durable object of a request just made.
pub(crate) struct NewApproval<'a> {
    pub(crate) rec: &'a super::model::TaskRecord,
    pub(crate) request: &'a Value,
    pub(crate) requested_by: &'a str,
    pub(crate) session: &'a str,
    pub(crate) lease: &'a str,
    pub(crate) now_ms: u64,
    pub(crate) timeout_ms: u64,
}

static LAST_ID: AtomicU64 = AtomicU64::new(0);

/// A new approval id: `a-` and the wall clock in microseconds, or one more than the
/// last id this process gave (ids grow, like task ids, so rows append).
fn next_id() -> String {
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut last = LAST_ID.load(Ordering::Relaxed);
    loop {
        let next = now_us.max(last + 1);
        match LAST_ID.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("a-{next:016x}"),
            Err(seen) => last = seen,
        }
    }
}

impl NewApproval<'_> {
    /// The pending object.
    pub(crate) fn build(&self) -> ApprovalRecord {
        let text = |k: &str| {
            self.request
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        ApprovalRecord {
            id: next_id(),
            task: self.rec.id.clone(),
            trace_id: self.rec.trace_id.clone(),
            bip_id: self.rec.spec.bip_id,
            kind: self.rec.spec.kind.clone(),
            attempt: self.rec.attempt,
            action: self.request.clone(),
            reason: text("reason"),
            suggested_command: text("suggestedCommand").or_else(|| text("command")),
            cwd: text("cwd"),
            requested_by: self.requested_by.to_owned(),
            session: self.session.to_owned(),
            lease: self.lease.to_owned(),
            created: self.now_ms,
            expires_at: self.now_ms.saturating_add(self.timeout_ms),
            state: ApprovalState::Pending,
            decided: None,
            forgotten: None,
        }
    }
}

/// Enqueues the row of `a` (insert or update), after every write enqueued before.
pub(crate) fn put(store: &super::store::TaskStore, a: &ApprovalRecord) {
    let body = serde_json::to_string(a).unwrap_or_default();
    let (id, task, state, created) = (a.id.clone(), a.task.clone(), a.state.as_str(), a.created);
    let scope = a.decided.as_ref().and_then(|d| d.scope.clone());
    let forgotten = a.forgotten.as_ref().map(|f| f.at as i64);
    store.write_with(move |b: &mut Batch<'_>| {
        b.prepare(PUT)?
            .execute(params![
                id,
                task,
                state,
                scope,
                created as i64,
                forgotten,
                body
            ])
            .map(drop)
    });
}

/// The recovery read of pending approvals, on the connection before the writer owns
/// it; drops decided rows past [`KEEP_DECIDED_MS`] first.
pub(crate) fn recover(conn: &Connection, now_ms: u64) -> rusqlite::Result<Vec<ApprovalRecord>> {
    conn.execute(
        "DELETE FROM approvals WHERE state != 'pending' AND created_ms < ?1
           AND NOT (state IN ('approved', 'denied') AND scope = 'always' AND forgotten_ms IS NULL)",
        [now_ms.saturating_sub(KEEP_DECIDED_MS) as i64],
    )?;
    let mut q = conn.prepare("SELECT body FROM approvals WHERE state = 'pending'")?;
    let rows = q.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        match serde_json::from_str(&body?) {
            Ok(a) => out.push(a),
            Err(e) => tracing::error!(error = %e, "unreadable approval row skipped"),
        }
    }
    Ok(out)
}

impl Queue {
    /// The `always` decisions in force (not forgotten), oldest first: the rules the
    /// policy learned from people (see `ops::approval`).
    ///
    /// # Errors
    /// `internal` when the store cannot be read.
    pub async fn learned_rules(&self) -> Result<Vec<ApprovalRecord>, WireError> {
        let bodies: Vec<String> = self
            .inner
            .store
            .read(|c| {
                let mut q = c.prepare(LEARNED)?;
                let rows = q.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect()
            })
            .wait()
            .await
            .map_err(super::operator::internal)?;
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// Forgets the `always` approval `id` (it stops being a rule): recorded with who
    /// and when; answers the record once the change is durable.
    ///
    /// # Errors
    /// `not_found` when no `always` rule in force has this id; `internal`.
    pub async fn forget_rule(&self, id: &str, by: &str) -> Result<ApprovalRecord, WireError> {
        let mut a = self
            .learned_rules()
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| {
                WireError::new(
                    ErrorCode::NotFound,
                    format!("no learned rule {id} (see `hive policy`)"),
                )
                .with_details(serde_json::json!({"field": "id"}))
            })?;
        a.forgotten = Some(Decided {
            by: by.to_owned(),
            at: super::model::now_ms(),
            scope: None,
            reason: None,
            session: None,
        });
        let ticket = {
            let core = self.lock();
            put(&core.store, &a);
            core.store.ack()
        };
        ticket.wait().await.map_err(super::operator::internal)?;
        Ok(a)
    }
}
