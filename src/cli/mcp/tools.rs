//! The MCP tools of `hive mcp`: one typed input schema each (generated from the
//! parameter structs below, whose doc comments are the field descriptions), and each
//! a broker command on the caller's session (`op.queue.*`, `publish`, `history`,
//! `channel_info`) or the agent's consumer session (`lease`).
//!
//! Invariant: a tool never decides who may do what. It checks only what the broker
//! cannot see (a wait bound, a cursor, which leases this process holds) and passes
//! everything else on; the broker's answer or refusal is the tool's result.

use super::lease::Leases;
use super::permission::Permission;
use super::{command, fail, invalid, ok, refused, Reach};
use hivebus::client::Client;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, GetTaskParams,
    GetTaskResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Most frames one `tail_task` call returns (the broker's page is at most this too).
pub(super) const TAIL_MAX: u64 = 500;

/// What `Hive::new` needs.
pub(super) struct Setup {
    /// The client session (the caller's credential).
    pub(super) client: Client,
    /// Where the consumer sessions connect.
    pub(super) reach: Reach,
    /// Leases the agent may hold at once.
    pub(super) slots: u32,
    /// The `[approval]` policy `approval_prompt` applies first.
    pub(super) policy: super::permission::Loaded,
    /// The BIP of the permission questions' room.
    pub(super) permission_bip: u64,
    /// Longest wait for a person's decision on a permission question.
    pub(super) permission_wait: Duration,
    /// The worktree permission paths are judged against.
    pub(super) worktree: PathBuf,
    /// The broker's trace-log directory (`<dir>/.hive/logs`).
    pub(super) logs: PathBuf,
}

/// The MCP server: the broker sessions and the tool router.
#[derive(Clone)]
pub(super) struct Hive {
    pub(super) client: Arc<Client>,
    pub(super) leases: Arc<Leases>,
    pub(super) permission: Arc<Permission>,
    pub(super) logs: Arc<PathBuf>,
    /// The tools (`call_tool` and the generated `list_tools` route through it).
    tool_router: ToolRouter<Self>,
}

impl Hive {
    pub(super) fn new(s: Setup) -> Self {
        let client = Arc::new(s.client);
        Hive {
            leases: Arc::new(Leases::new(s.reach.clone(), s.slots)),
            permission: Arc::new(Permission::new(
                s.policy,
                s.reach,
                client.clone(),
                s.permission_bip,
                s.permission_wait,
                s.worktree,
            )),
            client,
            logs: Arc::new(s.logs),
            tool_router: Self::tool_router(),
        }
    }
}

/// `submit_task`: a task for the queue.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SubmitTask {
    /// Task kind; the task is filed on channel `bip-<bip>:<kind>` (names are
    /// `[a-z0-9][a-z0-9._-]{0,63}`).
    kind: String,
    /// BIP number.
    bip: u64,
    /// The task's arguments (a JSON object; default `{}`).
    #[serde(default)]
    args: Option<Map<String, Value>>,
    /// `critical`, `core` or `normal` (default).
    #[serde(default)]
    priority: Option<Priority>,
    /// Idempotency key: a repeat with the same key answers the first task; default:
    /// a fresh key.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Repository (default `.`).
    #[serde(default)]
    repo: Option<String>,
    /// Branch.
    #[serde(default)]
    branch: Option<String>,
    /// Attempts before the task is dead-lettered.
    #[serde(default)]
    max_attempts: Option<u32>,
    /// Lease length of one attempt, e.g. `30s`, `10m`.
    #[serde(default)]
    timeout: Option<String>,
    /// `false`: a failed attempt waits for a human retry instead of being retried.
    #[serde(default)]
    idempotent: Option<bool>,
}

/// A task's priority lane.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum Priority {
    /// Ahead of everything.
    Critical,
    /// Ahead of normal.
    Core,
    /// The default.
    Normal,
}

/// A task named by its task id or its traceId.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TaskRef {
    /// Task id (`t-...`) or traceId.
    task: String,
}

/// `tail_task`: a page of a task's stream.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TailTask {
    /// Task id or traceId.
    task: String,
    /// The `cursor` of the previous call; absent or 0: from the start.
    #[serde(default)]
    cursor: Option<u64>,
    /// Most frames (1..=500, default 100).
    #[serde(default)]
    limit: Option<u64>,
}

/// `list_tasks`: filters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListTasks {
    /// Only this state: queued, leased, working, waiting_approval, succeeded,
    /// failed, dead, cancelled.
    #[serde(default)]
    state: Option<String>,
    /// Only this kind.
    #[serde(default)]
    kind: Option<String>,
    /// Most rows (1..=1000, default 50).
    #[serde(default)]
    limit: Option<u64>,
}

/// No arguments.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Nothing {}

/// `decide_approval`: a person's decision on a waiting request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DecideApproval {
    /// The task whose request waits.
    task: String,
    /// `approve` or `deny`.
    decision: Verdict,
    /// How far an approval reaches: `once` (default), `task`, `session`, `always`.
    #[serde(default)]
    scope: Option<Scope>,
    /// Why (shown to the agent and in the task's stream).
    #[serde(default)]
    reason: Option<String>,
}

/// A decision.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum Verdict {
    /// Let it run.
    Approve,
    /// Refuse it.
    Deny,
}

/// How far an approval reaches (docs/APPROVALS.md).
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum Scope {
    /// This request only.
    Once,
    /// The same action again in this task.
    Task,
    /// The same action from the consumer session that asked.
    Session,
    /// The same action from anyone, on this channel.
    Always,
}

/// `publish`: a message on a channel.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Publish {
    /// `room:channel`, e.g. `bip-43:general`.
    address: String,
    /// The message payload (any JSON; an object such as `{"text": "..."}` is usual).
    payload: Value,
}

/// `history`: a page of a channel's retained messages.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct History {
    /// `room:channel`.
    address: String,
    /// Only messages after this offset (oldest first); absent: the newest `limit`.
    #[serde(default)]
    since: Option<u64>,
    /// Most messages (default 100).
    #[serde(default)]
    limit: Option<u64>,
}

/// `channel_info`: one channel.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChannelInfo {
    /// `room:channel`.
    address: String,
}

fn as_str<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl serde::Serialize for Priority {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Priority::Critical => "critical",
            Priority::Core => "core",
            Priority::Normal => "normal",
        })
    }
}

#[tool_router]
impl Hive {
    #[tool(
        description = "Submit a task to the queue (channel bip-<bip>:<kind>). Returns the task id, traceId, state and position; follow it with tail_task or task_status, stop it with cancel_task."
    )]
    async fn submit_task(&self, Parameters(p): Parameters<SubmitTask>) -> CallToolResult {
        command(&self.client, "op.queue.submit", submit_body(p)).await
    }

    #[tool(
        description = "A task's record: state (and a2aState), attempt, owner, lease, result, history."
    )]
    async fn task_status(&self, Parameters(p): Parameters<TaskRef>) -> CallToolResult {
        command(&self.client, "op.queue.show", json!({"task": p.task})).await
    }

    #[tool(
        description = "A task's stream so far (TASK, EVENTs, APPROVALs, RESULT frames) from a cursor, with the task's state. Call again with the returned cursor to continue; `final: true` once the task has ended and every frame was returned."
    )]
    async fn tail_task(&self, Parameters(p): Parameters<TailTask>) -> CallToolResult {
        let limit = p.limit.unwrap_or(100);
        if limit == 0 || limit > TAIL_MAX {
            return invalid("limit", "limit is 1..=500");
        }
        let after = p.cursor.unwrap_or(0);
        // The state first: a final state's RESULT was stored before the state was
        // visible, so the page read after it holds it (as `hive tail` does).
        let show = match self
            .client
            .command("op.queue.show", json!({"task": p.task}))
            .await
        {
            Ok(v) => v,
            Err(e) => return refused(e),
        };
        let page = match self
            .client
            .command(
                "op.queue.stream",
                json!({"task": p.task, "after": after, "limit": limit}),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => return refused(e),
        };
        let frames = page["frames"].as_array().cloned().unwrap_or_default();
        let cursor = frames
            .last()
            .and_then(|f| f["seq"].as_u64())
            .unwrap_or(after);
        let state = show["state"].as_str().unwrap_or_default();
        let terminal = matches!(state, "succeeded" | "failed" | "dead" | "cancelled");
        let more = frames.len() as u64 == limit;
        ok(json!({
            "task": show["task"], "traceId": show["traceId"], "state": state,
            "a2aState": show["a2aState"],
            "frames": frames.iter().map(|f| f["frame"].clone()).collect::<Vec<_>>(),
            "cursor": cursor, "more": more, "final": terminal && !more,
        }))
    }

    #[tool(
        description = "Tasks the broker holds in memory that this credential may read, newest first."
    )]
    async fn list_tasks(&self, Parameters(p): Parameters<ListTasks>) -> CallToolResult {
        let mut args = json!({"limit": p.limit.unwrap_or(50)});
        if let Some(s) = p.state {
            args["state"] = json!(s);
        }
        if let Some(k) = p.kind {
            args["kind"] = json!(k);
        }
        command(&self.client, "op.queue.list", args).await
    }

    #[tool(
        description = "Cancel a queued, running or parked task; its consumer is told. Needs the manage right (the owner, or a manage grant)."
    )]
    async fn cancel_task(&self, Parameters(p): Parameters<TaskRef>) -> CallToolResult {
        command(&self.client, "op.queue.cancel", json!({"task": p.task})).await
    }

    #[tool(
        description = "Approval requests of running agents that wait for a person (those this credential may read)."
    )]
    async fn list_approvals(&self, Parameters(_): Parameters<Nothing>) -> CallToolResult {
        command(&self.client, "op.queue.approvals", json!({})).await
    }

    #[tool(
        description = "Approve or deny a waiting approval request of a task (needs the approve right on its channel). Refused for a task whose lease this MCP server holds: an agent does not approve its own requests."
    )]
    async fn decide_approval(&self, Parameters(p): Parameters<DecideApproval>) -> CallToolResult {
        if self.leases.holds(&p.task).await || self.permission.holds(&p.task) {
            return fail(
                "forbidden",
                "this MCP server holds the task's lease: its approval is for someone else to decide",
                Some(json!({"reason": "lease_holder"})),
            );
        }
        let mut args = json!({"task": p.task, "decision": as_verdict(p.decision)});
        if let Some(s) = p.scope {
            args["scope"] = json!(match s {
                Scope::Once => "once",
                Scope::Task => "task",
                Scope::Session => "session",
                Scope::Always => "always",
            });
        }
        if let Some(r) = p.reason {
            args["reason"] = json!(r);
        }
        command(&self.client, "op.queue.approve", args).await
    }

    #[tool(
        description = "As a consumer: wait (at most wait_ms, default 10000, max 60000) for the next task of the given kinds and hold its lease (kept alive by heartbeats) until complete_task. Returns {leased: false} when none came."
    )]
    async fn lease_next_task(
        &self,
        Parameters(p): Parameters<super::lease::LeaseNext>,
    ) -> CallToolResult {
        self.leases.next(p).await
    }

    #[tool(
        description = "As a consumer: report progress on a leased task (stage, message, pct 0..100); renews the lease."
    )]
    async fn report_progress(
        &self,
        Parameters(p): Parameters<super::lease::Progress>,
    ) -> CallToolResult {
        self.leases.progress(p).await
    }

    #[tool(
        description = "As a consumer: ask for an approval before an action ({tool: shell|git|read|write|net|publish, command|path|host, ...}, see docs/APPROVALS.md). The policy answers at once or a person decides; waits at most wait_secs (default 60, max 600) and returns {pending: true} if undecided: call again with the task and no request to keep waiting."
    )]
    async fn request_approval(
        &self,
        Parameters(p): Parameters<super::lease::AskApproval>,
    ) -> CallToolResult {
        self.leases.ask(p).await
    }

    #[tool(
        description = "As a consumer: end a leased task with status ok (default) or fail, a summary and optional artifacts."
    )]
    async fn complete_task(
        &self,
        Parameters(p): Parameters<super::lease::Complete>,
    ) -> CallToolResult {
        self.leases.complete(p).await
    }

    #[tool(description = "Publish a message on a channel (`room:channel`); returns its offset.")]
    async fn publish(&self, Parameters(p): Parameters<Publish>) -> CallToolResult {
        match self.client.publish(&p.address, p.payload).await {
            Ok(pos) => ok(json!({"address": p.address, "offset": pos.offset, "epoch": pos.epoch})),
            Err(e) => refused(e),
        }
    }

    #[tool(
        description = "A channel's retained messages: after `since` (oldest first), or the newest `limit`."
    )]
    async fn history(&self, Parameters(p): Parameters<History>) -> CallToolResult {
        let mut args = json!({"address": p.address});
        if let Some(s) = p.since {
            args["since"] = json!(s);
        }
        if let Some(l) = p.limit {
            args["limit"] = json!(l);
        }
        command(&self.client, "history", args).await
    }

    #[tool(description = "One channel's position, metadata and participants.")]
    async fn channel_info(&self, Parameters(p): Parameters<ChannelInfo>) -> CallToolResult {
        command(&self.client, "channel_info", json!({"address": p.address})).await
    }

    #[tool(
        description = "Claude Code's permission prompt tool (--permission-prompt-tool mcp__hive__approval_prompt): decides a tool use from the hivebus approval policy (Bash: shell command; Write/Edit: write path; Read: read path; WebFetch: net host), asking a person through hivebus when the policy says ask. Answers {\"behavior\":\"allow\",\"updatedInput\":...} or {\"behavior\":\"deny\",\"message\":...} as JSON text."
    )]
    async fn approval_prompt(
        &self,
        Parameters(p): Parameters<super::permission::Prompt>,
    ) -> CallToolResult {
        self.permission.prompt(p).await
    }
}

/// The `op.queue.submit` arguments of a `submit_task` call.
pub(super) fn submit_body(p: SubmitTask) -> Value {
    let key = p
        .idempotency_key
        .unwrap_or_else(|| format!("mcp-{}", uuid::Uuid::new_v4().simple()));
    let mut body = json!({
        "kind": p.kind, "bipId": p.bip, "args": Value::Object(p.args.unwrap_or_default()),
        "priority": as_str(p.priority.unwrap_or(Priority::Normal)),
        "repo": p.repo.unwrap_or_else(|| ".".into()), "idempotencyKey": key,
        "idempotent": p.idempotent.unwrap_or(true),
    });
    for (k, v) in [
        ("branch", p.branch.map(Value::from)),
        ("max_attempts", p.max_attempts.map(Value::from)),
        ("timeout", p.timeout.map(Value::from)),
    ] {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    body
}

/// Every tool error carries our code: ours do already (structured content); the
/// router's own, for arguments that do not fit the schema (an unknown field, a wrong
/// type, a missing one), becomes `invalid_field` with the router's sentence.
fn with_code(r: CallToolResponse) -> CallToolResponse {
    match r {
        CallToolResponse::Complete(c)
            if c.is_error == Some(true) && c.structured_content.is_none() =>
        {
            let text = c
                .content
                .iter()
                .filter_map(|b| b.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join(" ");
            super::fail("invalid_field", &text, Some(json!({"field": "arguments"}))).into()
        }
        other => other,
    }
}

fn as_verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Approve => "approve",
        Verdict::Deny => "deny",
    }
}

#[tool_handler]
impl ServerHandler for Hive {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("hive", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "hivebus: a message bus and durable task queue with approvals. Submit and follow \
             tasks (submit_task, tail_task), decide approvals (list_approvals, \
             decide_approval), work as a consumer (lease_next_task, report_progress, \
             request_approval, complete_task), chat on channels (publish, history). Every \
             call runs with this server's hivebus credential; a refusal is a tool error \
             with a stable code (forbidden, not_found, invalid_field, conflict, ...).",
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == "submit_task"
            && context
                .client_capabilities()
                .is_some_and(|c| c.supports_tasks())
        {
            return super::tasks::submit(self, request).await;
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await.map(with_code)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        super::tasks::get(self, &request.task_id).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        super::tasks::cancel(self, &request.task_id).await
    }

    async fn list_resources(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(super::resources::list())
    }

    async fn list_resource_templates(
        &self,
        _: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(super::resources::templates())
    }

    async fn read_resource(
        &self,
        r: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        super::resources::read(self, &r.uri).await.map(Into::into)
    }
}
