//! `submit_task` as an MCP task (the `io.modelcontextprotocol/tasks` extension,
//! SEP-2663, which rmcp implements): for a client that declares the extension, a
//! `submit_task` call answers at once with a task handle (`resultType: "task"`) whose
//! `taskId` is the queue's task id; the client polls `tasks/get` and may send
//! `tasks/cancel`. A client without the extension gets the plain result (the task id
//! and traceId) and follows with `task_status` / `tail_task` / `cancel_task`.
//!
//! The MCP task *is* the queue task: nothing is kept here, so a handle stays valid
//! across `hive mcp` restarts, and every `tasks/get` / `tasks/cancel` is an
//! `op.queue.show` / `op.queue.cancel` on the caller's session, checked by the broker
//! like the tools.
//!
//! States: queued, leased, working and waiting_approval are `working` (the status
//! message says which; an approval waits for a person through hivebus, not for input
//! from this MCP client, so it is not `input_required`); succeeded, failed and dead
//! are `completed` with the task record as a tool result (`isError` for failed and
//! dead: the spec keeps `failed` for JSON-RPC errors); cancelled is `cancelled`.

use super::tools::{submit_body, Hive, SubmitTask};
use super::{fail, ok};
use hivebus::client::ClientError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CreateTaskResult, DetailedTask, GetTaskResult,
    JsonObject, Task, TaskPayload, TaskStatus,
};
use rmcp::ErrorData;
use serde_json::{json, Value};

/// How often a client should poll `tasks/get`, in ms.
const POLL_MS: u64 = 1_000;

/// An RFC 3339 time from the record's milliseconds (now when absent).
fn time(ms: Option<u64>) -> String {
    let t = match ms {
        Some(ms) => std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        None => std::time::SystemTime::now(),
    };
    humantime::format_rfc3339_millis(t).to_string()
}

/// A broker refusal as a JSON-RPC error with our code in `data`.
fn refused(e: ClientError) -> ErrorData {
    match e {
        ClientError::Server(w) => {
            let mut data = json!({"code": w.code.as_str()});
            if let Some(d) = w.details {
                data["details"] = d;
            }
            let data = Some(data);
            if w.code == hivebus::ErrorCode::NotFound {
                ErrorData::resource_not_found(w.message, data)
            } else {
                ErrorData::invalid_request(format!("{}: {}", w.code, w.message), data)
            }
        }
        other => ErrorData::internal_error(other.to_string(), Some(json!({"code": "internal"}))),
    }
}

/// `submit_task` with the tasks extension: the submit, answered as a task handle.
pub(super) async fn submit(
    h: &Hive,
    request: CallToolRequestParams,
) -> Result<CallToolResponse, ErrorData> {
    let args = Value::Object(request.arguments.unwrap_or_default());
    let p: SubmitTask = match serde_json::from_value(args) {
        Ok(p) => p,
        Err(e) => {
            return Err(ErrorData::invalid_params(
                format!("submit_task: {e}"),
                Some(json!({"code": "invalid_field"})),
            ))
        }
    };
    // A refused submit creates no task: it is the tool's error, not a task.
    let r = match h.client.command("op.queue.submit", submit_body(p)).await {
        Ok(r) => r,
        Err(ClientError::Server(w)) => {
            return Ok(fail(w.code.as_str(), &w.message, w.details).into())
        }
        Err(e) => return Ok(fail("internal", &e.to_string(), None).into()),
    };
    let id = r["task"].as_str().unwrap_or_default();
    let now = time(None);
    let task = Task::new(id, TaskStatus::Working, now.clone(), now)
        .with_status_message(format!(
            "{} on {} (traceId {})",
            r["state"].as_str().unwrap_or("queued"),
            r["address"].as_str().unwrap_or_default(),
            r["traceId"].as_str().unwrap_or_default()
        ))
        .with_poll_interval_ms(POLL_MS);
    Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
}

/// `tasks/get`: the queue task's state as an MCP task.
pub(super) async fn get(h: &Hive, id: &str) -> Result<GetTaskResult, ErrorData> {
    let r = h
        .client
        .command("op.queue.show", json!({"task": id}))
        .await
        .map_err(refused)?;
    let state = r["state"].as_str().unwrap_or_default();
    let task = Task::new(
        r["task"].as_str().unwrap_or(id),
        TaskStatus::Working,
        time(r["createdMs"].as_u64()),
        time(r["updatedMs"].as_u64()),
    )
    .with_status_message(format!(
        "{state} ({})",
        r["a2aState"].as_str().unwrap_or("")
    ))
    .with_poll_interval_ms(POLL_MS);
    let result = |is_error: bool| {
        let res = if is_error {
            fail(
                "task_failed",
                &format!(
                    "the task ended {state}: {}",
                    r["result"]["summary"]
                        .as_str()
                        .or(r["lastError"].as_str())
                        .unwrap_or("")
                ),
                Some(r.clone()),
            )
        } else {
            ok(r.clone())
        };
        let v = serde_json::to_value(res).unwrap_or(Value::Null);
        TaskPayload::Completed {
            result: v.as_object().cloned().unwrap_or_else(JsonObject::new),
        }
    };
    let payload = match state {
        "succeeded" => result(false),
        "failed" | "dead" => result(true),
        "cancelled" => TaskPayload::Cancelled,
        _ => TaskPayload::Working,
    };
    Ok(GetTaskResult::new(DetailedTask::new(task, payload)))
}

/// `tasks/cancel`: `op.queue.cancel` (the manage right, as the tool).
pub(super) async fn cancel(h: &Hive, id: &str) -> Result<(), ErrorData> {
    h.client
        .command("op.queue.cancel", json!({"task": id}))
        .await
        .map(|_| ())
        .map_err(refused)
}
