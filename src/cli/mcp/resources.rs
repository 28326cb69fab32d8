//! The MCP resources of `hive mcp`: the task list (`hive://tasks`), a task's stream
//! (`hive://tasks/{task}/stream`), a task's trace log (`hive://tasks/{task}/log`) and
//! the approval policy (`hive://approval-policy`).
//!
//! Every task resource is read through the broker with the caller's credential
//! (`op.queue.list`, `show`, `stream`), so a resource shows exactly what the same
//! tool would. The trace log is a file the broker writes (`<dir>/.hive/logs/<task
//! id>.ndjson`): it is read only after `op.queue.show` on the caller's session
//! accepted the task, under the id the broker answered (never the one asked for),
//! and only its last [`MAX_LOG_BYTES`]. Texts are bounded: a stream resource is at
//! most [`MAX_STREAM_FRAMES`] frames.

use super::tools::Hive;
use hivebus::client::ClientError;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate,
};
use rmcp::ErrorData;
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};

/// Most bytes of a trace log one read returns (its end).
const MAX_LOG_BYTES: u64 = 1024 * 1024;
/// Most frames a stream resource holds (the first ones; `tail_task` pages further).
const MAX_STREAM_FRAMES: u64 = 500;

const TASKS: &str = "hive://tasks";
const POLICY: &str = "hive://approval-policy";

/// The fixed resources.
pub(super) fn list() -> ListResourcesResult {
    ListResourcesResult::with_all_items(vec![
        Resource::new(TASKS, "tasks")
            .with_description("the tasks this credential may read, newest first (op.queue.list)")
            .with_mime_type("application/json"),
        Resource::new(POLICY, "approval-policy")
            .with_description(
                "the [approval] policy approval_prompt applies (from --config), as TOML",
            )
            .with_mime_type("application/toml"),
    ])
}

/// The per-task resources.
pub(super) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new("hive://tasks/{task}/stream", "task-stream")
            .with_description("a task's stream: its frames as JSON lines (first 500)")
            .with_mime_type("application/x-ndjson"),
        ResourceTemplate::new("hive://tasks/{task}/log", "task-trace-log")
            .with_description("a task's trace log as the broker wrote it (its last MiB)")
            .with_mime_type("application/x-ndjson"),
    ])
}

fn text(uri: &str, mime: &str, body: String) -> ReadResourceResult {
    ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(mime.to_owned()),
        text: body,
        meta: None,
    }])
}

/// A broker refusal as a JSON-RPC error carrying our code in `data`.
fn refused(e: ClientError) -> ErrorData {
    let (code, message) = match &e {
        ClientError::Server(w) => (w.code.as_str().to_owned(), w.message.clone()),
        other => ("internal".to_owned(), other.to_string()),
    };
    let data = json!({"code": code});
    if code == "not_found" {
        ErrorData::resource_not_found(message, Some(data))
    } else {
        ErrorData::invalid_request(format!("{code}: {message}"), Some(data))
    }
}

/// Reads one resource.
pub(super) async fn read(h: &Hive, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    if uri == TASKS {
        let v = h
            .client
            .command("op.queue.list", json!({"limit": 1000}))
            .await
            .map_err(refused)?;
        return Ok(text(uri, "application/json", v.to_string()));
    }
    if uri == POLICY {
        return Ok(text(uri, "application/toml", h.permission.policy_text()));
    }
    let rest = uri.strip_prefix("hive://tasks/").unwrap_or_default();
    let (task, what) = rest.rsplit_once('/').unwrap_or_default();
    if task.is_empty() || task.contains('/') {
        return Err(ErrorData::resource_not_found(
            format!("no resource {uri}"),
            Some(json!({"code": "not_found"})),
        ));
    }
    match what {
        "stream" => {
            let v = h
                .client
                .command(
                    "op.queue.stream",
                    json!({"task": task, "after": 0, "limit": MAX_STREAM_FRAMES}),
                )
                .await
                .map_err(refused)?;
            let lines: Vec<String> = v["frames"]
                .as_array()
                .map(|fs| fs.iter().map(|f| f["frame"].to_string()).collect())
                .unwrap_or_default();
            Ok(text(uri, "application/x-ndjson", lines.join("\n")))
        }
        "log" => {
            let show = h
                .client
                .command("op.queue.show", json!({"task": task}))
                .await
                .map_err(refused)?;
            let id = show["task"].as_str().unwrap_or_default();
            let log = trace_log(&h.logs, id).map_err(|m| {
                ErrorData::resource_not_found(m, Some(json!({"code": "not_found"})))
            })?;
            Ok(text(uri, "application/x-ndjson", log))
        }
        _ => Err(ErrorData::resource_not_found(
            format!("no resource {uri}"),
            Some(json!({"code": "not_found"})),
        )),
    }
}

/// The last [`MAX_LOG_BYTES`] of the trace log of task `id` (a broker-made id), from
/// its first whole line.
fn trace_log(dir: &std::path::Path, id: &str) -> Result<String, String> {
    // The broker names tasks `t-<hex>`; anything else is not a file name to open.
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("no trace log for task `{id}`"));
    }
    let path = dir.join(format!("{id}.ndjson"));
    let mut f = std::fs::File::open(&path).map_err(|e| {
        format!(
            "no trace log at {} ({e}); this MCP server reads the logs of the broker of its --dir",
            path.display()
        )
    })?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_LOG_BYTES);
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    f.take(MAX_LOG_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    let mut s = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // Cut at the first newline: a partial first line is not JSON.
        s = s
            .split_once('\n')
            .map(|(_, r)| r.to_owned())
            .unwrap_or_default();
    }
    Ok(s)
}
