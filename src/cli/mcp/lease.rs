//! The agent as a consumer through MCP: `lease_next_task`, `report_progress`,
//! `request_approval`, `complete_task`.
//!
//! One consumer session (the consumer SDK, `hivebus::consumer`) is opened on the
//! first `lease_next_task`, for the kinds it names; its heartbeats keep every held
//! lease alive between tool calls. The leases this process holds are kept by task id,
//! so a tool names a task, never a lease id it could forge: a task this process does
//! not hold is `not_found` here, and the broker still checks each frame's lease.
//!
//! An approval request is asked once, in the background, and its decision kept: a
//! `request_approval` that times out returns `pending`, and the next call with the
//! same task (and no request) waits on the same decision, never asks twice.

use super::{fail, invalid, ok, refused, Reach};
use hivebus::consumer::{Consumer, Lease};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// Longest `lease_next_task` wait.
const MAX_LEASE_WAIT_MS: u64 = 60_000;
/// Longest `request_approval` wait per call.
const MAX_ASK_WAIT_SECS: u64 = 600;
/// Most kinds one consumer session declares.
const MAX_KINDS: usize = 64;

/// `lease_next_task` arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LeaseNext {
    /// The task kinds this agent runs (at most 64); fixed by the first call of the
    /// session.
    kinds: Vec<String>,
    /// How long to wait for a task, in ms (default 10000, at most 60000).
    #[serde(default)]
    wait_ms: Option<u64>,
}

/// `report_progress` arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Progress {
    /// The leased task's id.
    task: String,
    /// A short stage name (`build`, `test`).
    stage: String,
    /// What is happening.
    message: String,
    /// Percent done, 0..=100.
    #[serde(default)]
    pct: Option<u8>,
}

/// `request_approval` arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AskApproval {
    /// The leased task's id.
    task: String,
    /// The action to approve: `{"tool": "shell", "command": "git push origin x"}`,
    /// `{"tool": "write", "path": "src/x.rs"}`, `{"tool": "net", "host": "..."}`, with
    /// an optional `reason`. Absent: keep waiting for the request already asked.
    #[serde(default)]
    request: Option<Map<String, Value>>,
    /// How long to wait for the decision this call, in seconds (default 60, at
    /// most 600).
    #[serde(default)]
    wait_secs: Option<u64>,
}

/// `complete_task` arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Complete {
    /// The leased task's id.
    task: String,
    /// `ok` (default) or `fail` (the queue retries, parks or dead-letters it).
    #[serde(default)]
    status: Option<Status>,
    /// One line on what was done.
    summary: String,
    /// Anything to hand back (branch, files, links), ok results only.
    #[serde(default)]
    artifacts: Option<Value>,
}

/// How an attempt ended.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum Status {
    /// Done.
    Ok,
    /// Failed.
    Fail,
}

/// A held lease and its approval request in flight, if any.
struct Held {
    lease: Arc<Lease>,
    /// The decision of the request asked last (`None` inside while undecided).
    asked: Option<watch::Receiver<Option<Value>>>,
}

/// The consumer session and the leases it holds.
pub(super) struct Leases {
    reach: Reach,
    slots: u32,
    consumer: Mutex<Option<(Vec<String>, Consumer)>>,
    held: Mutex<HashMap<String, Held>>,
}

impl Leases {
    pub(super) fn new(reach: Reach, slots: u32) -> Self {
        Leases {
            reach,
            slots,
            consumer: Mutex::new(None),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this process holds `task`'s lease (by task id or trace id).
    pub(super) async fn holds(&self, task: &str) -> bool {
        self.held
            .lock()
            .await
            .iter()
            .any(|(id, h)| id == task || h.lease.trace_id == task)
    }

    pub(super) async fn next(&self, p: LeaseNext) -> super::CallToolResult {
        let wait = p.wait_ms.unwrap_or(10_000);
        if wait > MAX_LEASE_WAIT_MS {
            return invalid("wait_ms", "wait_ms is at most 60000");
        }
        if p.kinds.is_empty() || p.kinds.len() > MAX_KINDS {
            return invalid("kinds", "name 1 to 64 kinds");
        }
        let mut kinds = p.kinds;
        kinds.sort();
        kinds.dedup();
        let mut slot = self.consumer.lock().await;
        if let Some((have, _)) = slot.as_ref() {
            if *have != kinds {
                return invalid(
                    "kinds",
                    &format!(
                        "this MCP session consumes {have:?}; lease with those kinds (restart `hive mcp` to change them)"
                    ),
                );
            }
        } else {
            match self.reach.consumer(&kinds, self.slots).await {
                Ok(c) => *slot = Some((kinds, c)),
                Err(e) => return refused(e),
            }
        }
        let Some((_, consumer)) = slot.as_mut() else {
            return fail("internal", "no consumer session", None);
        };
        let lease =
            match tokio::time::timeout(Duration::from_millis(wait), consumer.next_lease()).await {
                Err(_) => return ok(json!({"leased": false})),
                Ok(None) => {
                    *slot = None;
                    return fail(
                        "closed",
                        "the consumer session closed; call lease_next_task again to reconnect",
                        None,
                    );
                }
                Ok(Some(l)) => l,
            };
        let v = json!({
            "leased": true, "task": lease.task, "lease": lease.lease, "attempt": lease.attempt,
            "kind": lease.kind, "args": lease.args, "traceId": lease.trace_id,
            "bipId": lease.payload["bipId"], "repo": lease.payload["repo"],
            "branch": lease.payload["branch"], "leaseMs": lease.lease_ms(),
        });
        self.held.lock().await.insert(
            lease.task.clone(),
            Held {
                lease: Arc::new(lease),
                asked: None,
            },
        );
        ok(v)
    }

    /// The held lease of `task`, or the tool error saying it is not held (or lost).
    async fn lease_of(&self, task: &str) -> Result<Arc<Lease>, super::CallToolResult> {
        let mut held = self.held.lock().await;
        let Some(h) = held.get(task) else {
            return Err(fail(
                "not_found",
                &format!("this MCP session holds no lease on {task}; lease_next_task first"),
                Some(json!({"task": task})),
            ));
        };
        if let Some(loss) = h.lease.lost() {
            held.remove(task);
            return Err(fail(
                "stale_lease",
                &format!("the lease on {task} was lost ({loss:?}); the queue decides what happens to the task"),
                Some(json!({"task": task})),
            ));
        }
        Ok(h.lease.clone())
    }

    pub(super) async fn progress(&self, p: Progress) -> super::CallToolResult {
        if p.pct.is_some_and(|x| x > 100) {
            return invalid("pct", "pct is 0..=100");
        }
        let lease = match self.lease_of(&p.task).await {
            Ok(l) => l,
            Err(e) => return e,
        };
        match lease.event(&p.stage, &p.message, p.pct).await {
            Ok(()) => ok(json!({"task": p.task, "reported": true})),
            Err(e) => refused(e),
        }
    }

    pub(super) async fn ask(&self, p: AskApproval) -> super::CallToolResult {
        let wait = p.wait_secs.unwrap_or(60);
        if wait > MAX_ASK_WAIT_SECS {
            return invalid("wait_secs", "wait_secs is at most 600");
        }
        let lease = match self.lease_of(&p.task).await {
            Ok(l) => l,
            Err(e) => return e,
        };
        let mut rx = {
            let mut held = self.held.lock().await;
            let Some(h) = held.get_mut(&p.task) else {
                return fail("not_found", "the lease is gone", None);
            };
            let undecided = h.asked.as_ref().is_some_and(|rx| rx.borrow().is_none());
            match p.request {
                Some(_) if undecided => {
                    return fail(
                        "conflict",
                        "a request of this task still waits for its decision; call request_approval with no request to keep waiting",
                        None,
                    )
                }
                Some(req) => {
                    let (tx, rx) = watch::channel(None);
                    let asking = lease.clone();
                    tokio::spawn(async move {
                        let d = match asking.ask(Value::Object(req)).await {
                            Ok(Some(d)) => d,
                            Ok(None) => json!({"decision": "lost", "reason": "the lease was lost before a decision"}),
                            Err(_) => json!({"decision": "lost", "reason": "the consumer session closed"}),
                        };
                        let _ = tx.send(Some(d));
                    });
                    h.asked = Some(rx.clone());
                    rx
                }
                None => match &h.asked {
                    Some(rx) => rx.clone(),
                    None => return invalid("request", "no request was asked for this task; give one"),
                },
            }
        };
        let decided =
            tokio::time::timeout(Duration::from_secs(wait), rx.wait_for(Option::is_some)).await;
        // The guard is not held across an await (the future must stay `Send`).
        let decided = decided.map(|r| r.map(|d| d.clone().unwrap_or(Value::Null)));
        match decided {
            Ok(Ok(mut v)) => {
                if let Some(h) = self.held.lock().await.get_mut(&p.task) {
                    h.asked = None;
                }
                if v.is_object() {
                    v["task"] = json!(p.task);
                }
                ok(v)
            }
            Ok(Err(_)) => fail("internal", "the approval request was dropped", None),
            Err(_) => ok(json!({
                "pending": true, "task": p.task,
                "hint": "no decision yet: call request_approval again with this task and no request to keep waiting",
            })),
        }
    }

    pub(super) async fn complete(&self, p: Complete) -> super::CallToolResult {
        if let Err(e) = self.lease_of(&p.task).await {
            return e;
        }
        let Some(h) = self.held.lock().await.remove(&p.task) else {
            return fail("not_found", "the lease is gone", None);
        };
        let lease = match Arc::try_unwrap(h.lease) {
            Ok(l) => l,
            Err(arc) => {
                self.held.lock().await.insert(
                    p.task.clone(),
                    Held {
                        lease: arc,
                        asked: h.asked,
                    },
                );
                return fail(
                    "conflict",
                    "an approval request of this task still waits for its decision; wait for it (request_approval) first",
                    None,
                );
            }
        };
        let status = p.status.unwrap_or(Status::Ok);
        let sent = match status {
            Status::Ok => lease.complete(&p.summary, p.artifacts).await,
            Status::Fail => lease.fail(&p.summary).await,
        };
        match sent {
            Ok(()) => ok(
                json!({"task": p.task, "status": if status == Status::Ok { "ok" } else { "fail" }}),
            ),
            Err(e) => refused(e),
        }
    }
}
