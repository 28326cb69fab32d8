//! What clients read about a task: the answers of `op.queue.show`, `list` and
//! `dlq.list`, built from a [`TaskRecord`].
//!
//! Invariant: every field name here is camelCase, as the rest of the protocol
//! (`traceId`, `idempotencyKey`, `bipId`); the stored JSON of a record keeps its own
//! (snake_case) names, which SQL queries rely on, so the two are mapped here and only
//! here. `show` also carries `id`, the old name of `task`, for one release
//! (docs/QUEUE.md, "Answers").

use super::model::{TaskRecord, TaskState};
use serde_json::{json, Value};

/// The row of a listing (`list`, `dlq.list`), as the task is seen in `state`.
pub(super) fn summary(rec: &TaskRecord, state: TaskState) -> Value {
    let mut v = json!({
        "task": rec.id,
        "traceId": rec.trace_id,
        "owner": rec.owner,
        "kind": rec.spec.kind,
        "bipId": rec.spec.bip_id,
        "address": rec.spec.address(),
        "priority": rec.spec.priority,
        "state": state,
        "attempt": rec.attempt,
        "idempotencyKey": rec.spec.idempotency_key,
        "createdMs": rec.created_ms,
        "updatedMs": rec.updated_ms,
    });
    if let Some(e) = last_error(rec) {
        v["lastError"] = json!(e);
    }
    v
}

/// Why a failed or dead task failed: its last failure's summary, else the last
/// history note.
pub(super) fn last_error(rec: &TaskRecord) -> Option<String> {
    if !matches!(rec.state, TaskState::Failed | TaskState::Dead) {
        return None;
    }
    let from_result = rec
        .result
        .as_ref()
        .and_then(|r| r.get("summary"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    from_result.or_else(|| rec.history.last().map(|h| h.note.clone()))
}

/// The full record of `show` and `dlq.show`, as the task is seen in `state`.
pub(super) fn record(rec: &TaskRecord, state: TaskState) -> Value {
    let history: Vec<Value> = rec
        .history
        .iter()
        .map(|h| json!({"atMs": h.at_ms, "state": h.state, "attempt": h.attempt, "note": h.note}))
        .collect();
    let mut v = summary(rec, state);
    v["id"] = json!(rec.id);
    v["spec"] = serde_json::to_value(&rec.spec).unwrap_or(Value::Null);
    v["seq"] = json!(rec.seq);
    v["a2aState"] = json!(super::a2a::a2a_state(state));
    v["result"] = rec.result.clone().unwrap_or(Value::Null);
    v["history"] = json!(history);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_camel_case_and_say_why_a_dead_task_died() {
        let rec: TaskRecord = serde_json::from_value(json!({
            "id": "t-1", "trace_id": "tr-1", "owner": "me",
            "spec": {"kind": "k", "args": {}, "repo": ".", "idempotencyKey": "x",
                     "priority": "core", "bipId": 43, "idempotent": true},
            "state": "dead", "attempt": 3, "seq": 1, "created_ms": 5, "updated_ms": 9,
            "result": {"status": "fail", "state": "dead", "summary": "boom"},
            "history": [{"at_ms": 5, "state": "queued", "attempt": 0, "note": "durable"}],
        }))
        .unwrap();
        let v = record(&rec, rec.state);
        assert_eq!(v["traceId"], "tr-1");
        assert_eq!(v["createdMs"], 5);
        assert_eq!(v["lastError"], "boom");
        assert_eq!(v["history"][0]["atMs"], 5);
        let text = v.to_string();
        for snake in ["trace_id", "created_ms", "updated_ms", "at_ms"] {
            assert!(!text.contains(snake), "{snake} in {text}");
        }
    }
}
