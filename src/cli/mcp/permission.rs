//! `approval_prompt`: Claude Code's permission prompt tool
//! (`--permission-prompt-tool mcp__hive__approval_prompt`), answered from the hivebus
//! approval policy.
//!
//! Claude Code calls it with `{tool_name, input, tool_use_id?}` before a tool use its
//! own settings neither allow nor deny, and reads the first text content as JSON:
//! `{"behavior": "allow", "updatedInput": <input>}` or `{"behavior": "deny",
//! "message": "..."}`. The tool use becomes an action of our policy: `Bash` a shell
//! command, `Write` / `Edit` / `MultiEdit` / `NotebookEdit` a write of the file,
//! `Read` a read, `WebFetch` a net action on the URL's host; paths are judged against
//! the worktree (`--worktree`, default the directory `hive mcp` runs in).
//!
//! The policy is decided first here, with the code `hive policy check` runs
//! (`Policy::decide`) and the `[approval]` section of `--config` (the broker's file):
//! `allow` and `deny` answer at once. `ask`, and any tool use that is not one of those
//! actions (`Glob`, `WebSearch`, another server's tool: the policy could not read
//! it, so it asks, failing closed), goes to a person through hivebus: a task
//! `permission-<id>` on `bip-<permission_bip>` is submitted with the caller's
//! credential, leased by this process's own consumer session, and its APPROVAL request
//! carries the action; the broker's policy gate sees it first (a remembered decision,
//! or the broker's own rules, may answer at once), else it waits for a person
//! (`hive approvals approve`, the `decide_approval` tool of another agent). Only an
//! explicit `approve` allows; a deny, an expiry, a lost lease or no decision within
//! `--permission-wait` denies; so does a question hivebus refused or could not carry
//! (the message names our code, e.g. `forbidden` for a token that may not publish
//! on the permission room). The task then ends with the verdict as its result, so
//! the question and its answer stay in the task's stream.

use super::Reach;
use hivebus::client::{Client, ClientError};
use hivebus::consumer::Consumer;
use hivebus::ops::approval::{Action, ApprovalConfig, Effect, Policy, Tool};
use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;
use tokio::sync::Mutex;

/// Most bytes of a tool use's `input` carried into the question's task (a `Write`
/// of a large file: the content is not needed to decide on the path).
const MAX_INPUT_BYTES: usize = 16 * 1024;

/// `approval_prompt` arguments, as Claude Code sends them.
#[derive(Deserialize, JsonSchema)]
pub(super) struct Prompt {
    /// The tool Claude Code wants to use (`Bash`, `Write`, `Edit`, `Read`,
    /// `WebFetch`, ...).
    tool_name: String,
    /// The tool's input (`{"command": ...}`, `{"file_path": ...}`, `{"url": ...}`).
    input: Map<String, Value>,
    /// Claude Code's id of this tool use.
    #[serde(default)]
    tool_use_id: Option<String>,
}

/// The policy `approval_prompt` applies, and its `[approval]` section as TOML text
/// (the `hive://approval-policy` resource).
pub(super) struct Loaded {
    policy: Policy,
    text: String,
}

/// Reads the `[approval]` section of `config` (as `hive policy check` does).
///
/// # Errors
/// An unreadable file or a policy that does not load, as one line for stderr.
pub(super) fn load_policy(config: Option<&Path>) -> Result<Loaded, String> {
    let (cfg, text) = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let cfg = ApprovalConfig::from_toml(&text)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            // Only the `[approval]` table: the file may hold tokens too.
            let section = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("approval").cloned())
                .map(|a| {
                    let mut t = toml::Table::new();
                    t.insert("approval".into(), a);
                    toml::to_string(&t).unwrap_or_default()
                })
                .unwrap_or_else(|| "# no [approval] section: the built-in list and the default (ask)\n".into());
            (cfg, format!("# from {}\n{section}", path.display()))
        }
        None => (
            ApprovalConfig::default(),
            "# no --config: the built-in list and the default (ask) apply\n[approval]\ndefault = \"ask\"\nbuiltin = true\n".into(),
        ),
    };
    let policy = Policy::from_config(&cfg).map_err(|e| format!("invalid policy: {e}"))?;
    Ok(Loaded { policy, text })
}

/// The permission prompt: the policy, and the sessions that ask a person.
pub(super) struct Permission {
    policy: Policy,
    policy_text: String,
    reach: Reach,
    client: Arc<Client>,
    bip: u64,
    wait: Duration,
    worktree: PathBuf,
    /// This process's own kind, so that no other consumer leases its questions.
    kind: String,
    /// The consumer session that leases the questions (opened on the first `ask`);
    /// one question at a time.
    consumer: Mutex<Option<Consumer>>,
    /// The question tasks this process holds a lease on.
    held: SyncMutex<HashSet<String>>,
}

impl Permission {
    pub(super) fn new(
        loaded: Loaded,
        reach: Reach,
        client: Arc<Client>,
        bip: u64,
        wait: Duration,
        worktree: PathBuf,
    ) -> Self {
        Permission {
            policy: loaded.policy,
            policy_text: loaded.text,
            reach,
            client,
            bip,
            wait,
            worktree,
            kind: format!("permission-{:08x}", fastrand::u32(..)),
            consumer: Mutex::new(None),
            held: SyncMutex::new(HashSet::new()),
        }
    }

    /// The `[approval]` section the policy came from, as TOML.
    pub(super) fn policy_text(&self) -> String {
        self.policy_text.clone()
    }

    /// Whether `task` is a question this process holds.
    pub(super) fn holds(&self, task: &str) -> bool {
        self.held.lock().map(|h| h.contains(task)).unwrap_or(false)
    }

    /// The tool use as a policy action, or `None` when it is none of ours.
    fn action(&self, p: &Prompt) -> Option<Action> {
        let s = |k: &str| p.input.get(k).and_then(Value::as_str).map(str::to_owned);
        let wt = self.worktree.to_string_lossy().into_owned();
        let mut a = Action {
            cwd: Some(wt.clone()),
            worktree: Some(wt),
            ..Action::default()
        };
        match p.tool_name.as_str() {
            "Bash" => {
                a.tool = Tool::Shell;
                a.command = Some(s("command")?);
            }
            "Write" | "Edit" | "MultiEdit" => {
                a.tool = Tool::Write;
                a.paths = vec![s("file_path")?];
            }
            "NotebookEdit" => {
                a.tool = Tool::Write;
                a.paths = vec![s("notebook_path")?];
            }
            "Read" => {
                a.tool = Tool::Read;
                a.paths = vec![s("file_path")?];
            }
            "WebFetch" => {
                a.tool = Tool::Net;
                a.host = Some(s("url")?);
            }
            _ => return None,
        }
        Some(a)
    }

    pub(super) async fn prompt(&self, p: Prompt) -> CallToolResult {
        let action = self.action(&p);
        if let Some(a) = &action {
            let d = self.policy.decide(a);
            let by = d.rule.as_ref().map_or("default", |r| r.name.as_str());
            match d.verdict {
                Effect::Allow => return allow(&p),
                Effect::Deny => {
                    return deny(&format!(
                        "denied by the hivebus approval policy (rule {by}): {}",
                        d.reason
                    ))
                }
                Effect::Ask => {}
            }
        }
        self.ask_person(&p, action.as_ref()).await
    }

    /// The request the question task's APPROVAL carries.
    fn request(&self, p: &Prompt, action: Option<&Action>) -> Value {
        let mut r = json!({"reason": format!("Claude Code wants to use {}", p.tool_name)});
        match action {
            Some(a) => {
                r["tool"] = json!(a.tool.as_str());
                r["cwd"] = json!(a.cwd);
                r["worktree"] = json!(a.worktree);
                if let Some(c) = &a.command {
                    r["command"] = json!(c);
                }
                if let Some(path) = a.paths.first() {
                    r["path"] = json!(path);
                }
                if let Some(h) = &a.host {
                    r["host"] = json!(h);
                }
            }
            // Not an action the policy reads: the broker's gate asks a person.
            None => r["tool"] = json!(format!("mcp:{}", p.tool_name)),
        }
        r
    }

    async fn ask_person(&self, p: &Prompt, action: Option<&Action>) -> CallToolResult {
        let mut input = Value::Object(p.input.clone());
        if input.to_string().len() > MAX_INPUT_BYTES {
            input = json!({"truncated": true, "keys": p.input.keys().collect::<Vec<_>>()});
        }
        let body = json!({
            "kind": self.kind, "bipId": self.bip, "priority": "critical",
            "idempotencyKey": format!("mcp-perm-{}", uuid::Uuid::new_v4().simple()),
            "idempotent": false, "max_attempts": 1,
            "args": {"tool_name": p.tool_name, "input": input, "tool_use_id": p.tool_use_id},
        });
        // One question at a time: the session's next lease is this question's.
        let mut slot = self.consumer.lock().await;
        if slot.is_none() {
            match self
                .reach
                .consumer(std::slice::from_ref(&self.kind), 1)
                .await
            {
                Ok(c) => *slot = Some(c),
                Err(e) => return cannot_ask(&e),
            }
        }
        let submitted = match self.client.command("op.queue.submit", body).await {
            Ok(v) => v,
            Err(e) => return cannot_ask(&e),
        };
        let task = submitted["task"].as_str().unwrap_or_default().to_owned();
        let Some(consumer) = slot.as_mut() else {
            return deny("hivebus could not ask a person (no consumer session)");
        };
        let deadline = tokio::time::Instant::now() + self.wait;
        let lease = loop {
            match tokio::time::timeout_at(deadline, consumer.next_lease()).await {
                Err(_) => {
                    let _ = self
                        .client
                        .command("op.queue.cancel", json!({"task": task}))
                        .await;
                    return deny("no decision in time (the question was never leased)");
                }
                Ok(None) => {
                    *slot = None;
                    return deny("hivebus could not ask a person (closed: the permission consumer session closed; the next prompt reconnects)");
                }
                Ok(Some(l)) if l.task == task => break l,
                // An older question of ours, retried by the queue: not asked again.
                Ok(Some(l)) => {
                    let _ = l.fail("superseded").await;
                }
            }
        };
        self.mark(&task, true);
        let asked = tokio::time::timeout_at(deadline, lease.ask(self.request(p, action))).await;
        let verdict = match asked {
            Ok(Ok(Some(d))) if d["decision"] == "approve" => Ok(by_of(&d)),
            Ok(Ok(Some(d))) => Err(format!(
                "{} by {}{}",
                d["decision"].as_str().unwrap_or("deny"),
                by_of(&d),
                d["reason"]
                    .as_str()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )),
            Ok(Ok(None)) => Err("the question's lease was lost before a decision".into()),
            Ok(Err(_)) => Err("the permission consumer session closed".into()),
            Err(_) => Err(format!("no decision within {}s", self.wait.as_secs())),
        };
        let summary = match &verdict {
            Ok(by) => format!("allowed by {by}"),
            Err(why) => format!("denied: {why}"),
        };
        let _ = lease.complete(&summary, None).await;
        self.mark(&task, false);
        match verdict {
            Ok(_) => allow(p),
            Err(why) => deny(&format!("hivebus: {why}")),
        }
    }

    fn mark(&self, task: &str, on: bool) {
        if let Ok(mut h) = self.held.lock() {
            if on {
                h.insert(task.to_owned());
            } else {
                h.remove(task);
            }
        }
    }
}

/// A question that could not reach a person fails closed: a deny naming our code
/// (Claude Code reads an answer, not a tool error).
fn cannot_ask(e: &ClientError) -> CallToolResult {
    let code = e.code().unwrap_or(match e {
        ClientError::Timeout => "timeout",
        ClientError::Closed => "closed",
        _ => "internal",
    });
    deny(&format!("hivebus could not ask a person ({code}: {e})"))
}

fn by_of(d: &Value) -> String {
    d["by"].as_str().unwrap_or("someone").to_owned()
}

/// Claude Code's answer, as the JSON text of the tool's only content.
fn answer(v: Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(v.to_string())])
}

fn allow(p: &Prompt) -> CallToolResult {
    answer(json!({"behavior": "allow", "updatedInput": Value::Object(p.input.clone())}))
}

fn deny(message: &str) -> CallToolResult {
    answer(json!({"behavior": "deny", "message": message}))
}
