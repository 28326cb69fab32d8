//! `hive mcp` end to end: `hive broker` and `hive mcp` as child processes, MCP spoken
//! by hand over the MCP server's stdin/stdout (newline-delimited JSON-RPC), a person
//! over the bus as a real WebSocket client. One task goes the whole way (initialize,
//! tools/list, submit, lease as a consumer, progress, an approval asked and decided,
//! the result, the stream and the resources); Claude Code's permission prompt tool
//! answers allow, deny and ask (decided by a person both ways); a restricted token is
//! refused through MCP with our codes.

mod stdio;

use crate::cli::{broker, hive, Reaped};
use hivebus::client::{Client, Hello};
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use stdio::{Mcp, REVISION};

const CONFIG: &str = r#"
[approval]
default = "ask"

[[approval.rules]]
name = "tests"
command = "cargo test"
decision = "allow"
reason = "tests only build and run"

[[approval.rules]]
name = "no-main"
command = "git push * main"
decision = "deny"
reason = "main is protected"

[[auth.tokens]]
token = "alice-token-0123456789abcdef"
subject = "alice"
role = "client"
publish = ["bip-1:*"]
subscribe = ["bip-1:*"]
"#;

const TOOLS: [&str; 15] = [
    "submit_task",
    "task_status",
    "tail_task",
    "list_tasks",
    "cancel_task",
    "list_approvals",
    "decide_approval",
    "lease_next_task",
    "report_progress",
    "request_approval",
    "complete_task",
    "publish",
    "history",
    "channel_info",
    "approval_prompt",
];

fn setup(tag: &str) -> (std::path::PathBuf, Reaped, String) {
    let dir = crate::harness::temp_dir(tag);
    std::fs::write(dir.join("hive.toml"), CONFIG).unwrap();
    let cfg = dir.join("hive.toml");
    let (b, port) = broker(&dir, &["--config", cfg.to_str().unwrap()]);
    (dir, b, format!("ws://127.0.0.1:{port}/"))
}

/// A person over the bus: a client session without a token (local mode).
async fn person(url: &str) -> Client {
    Client::connect(url, Hello::role("client")).await.unwrap()
}

/// Waits until a request of a task matching `pick` waits for a person; its task id.
async fn waiting(p: &Client, pick: impl Fn(&Value) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = p.command("op.queue.approvals", json!({})).await.unwrap();
        let list = r["approvals"].as_array().cloned().unwrap_or_default();
        if let Some(a) = list.iter().find(|a| pick(a)) {
            return a["task"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no request waits: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_a_whole_task_through_mcp_and_a_person_approves_over_the_bus() {
    let (dir, _broker, url) = setup("mcp-flow");
    let mut m = Mcp::start(&dir, None);
    let boss = person(&url).await;

    // Discovery: every tool, each with a typed object schema.
    let tools = m.request("tools/list", json!({}));
    let listed = tools["result"]["tools"].as_array().unwrap();
    let mut names: Vec<&str> = listed.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    let mut want = TOOLS.to_vec();
    want.sort();
    assert_eq!(names, want);
    for t in listed {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let submit = listed.iter().find(|t| t["name"] == "submit_task").unwrap();
    let required = submit["inputSchema"]["required"].as_array().unwrap();
    assert!(required.contains(&json!("kind")) && required.contains(&json!("bip")));

    // Bad input never reaches the broker and never kills the server: an unknown
    // field (a misspelt one), a missing one, an out-of-bounds wait or page.
    let bad = m.refused(
        "submit_task",
        json!({"kind": "x", "bip": 1, "trace_id": "z"}),
        "invalid_field",
    );
    assert!(
        bad["message"].as_str().unwrap().contains("trace_id"),
        "{bad}"
    );
    m.refused("submit_task", json!({"kind": "x"}), "invalid_field");
    m.refused(
        "lease_next_task",
        json!({"kinds": ["x"], "wait_ms": 3_600_000}),
        "invalid_field",
    );
    m.refused(
        "tail_task",
        json!({"task": "t-1", "limit": 100_000}),
        "invalid_field",
    );
    m.refused("task_status", json!({"task": "t-nope"}), "not_found");

    // A client submits; the same agent leases it as a consumer.
    let sub = m.ok(
        "submit_task",
        json!({"kind": "implement_bip", "bip": 43, "args": {"step": 1}, "priority": "core"}),
    );
    let task = sub["task"].as_str().unwrap().to_owned();
    assert_eq!(sub["address"], "bip-43:implement_bip");
    let lease = m.ok(
        "lease_next_task",
        json!({"kinds": ["implement_bip"], "wait_ms": 30_000}),
    );
    assert_eq!(
        (lease["leased"].as_bool(), lease["task"].as_str()),
        (Some(true), Some(task.as_str()))
    );
    assert_eq!(lease["args"]["step"], 1);
    m.ok(
        "report_progress",
        json!({"task": task, "stage": "build", "message": "compiling", "pct": 50}),
    );
    m.refused(
        "report_progress",
        json!({"task": "t-not-mine", "stage": "x", "message": "y"}),
        "not_found",
    );

    // An approval the policy leaves to a person (the built-in git-push-force asks).
    let asked = m.ok(
        "request_approval",
        json!({"task": task, "wait_secs": 1,
               "request": {"tool": "shell", "command": "git push --force origin feature", "reason": "publish"}}),
    );
    assert_eq!(asked["pending"], true, "{asked}");
    let listed = m.ok("list_approvals", json!({}));
    assert!(listed.to_string().contains(&task), "{listed}");
    // The agent holding the lease may not approve its own request, even through its
    // other (client) session.
    let own = m.refused(
        "decide_approval",
        json!({"task": task, "decision": "approve"}),
        "forbidden",
    );
    assert_eq!(own["details"]["reason"], "lease_holder");
    // A person decides over the bus.
    assert_eq!(waiting(&boss, |a| a["task"] == task.as_str()).await, task);
    boss.command(
        "op.queue.approve",
        json!({"task": task, "decision": "approve", "reason": "ok, feature branch"}),
    )
    .await
    .unwrap();
    let decided = m.ok("request_approval", json!({"task": task, "wait_secs": 30}));
    assert_eq!(decided["decision"], "approve", "{decided}");
    assert_eq!(decided["by"], "anonymous", "{decided}");

    // The result, then the task's state and its stream.
    m.ok(
        "complete_task",
        json!({"task": task, "summary": "pushed", "artifacts": {"branch": "feature"}}),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let s = m.ok("task_status", json!({"task": task}));
        if s["state"] == "succeeded" {
            break s;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(shown["a2aState"], "TASK_STATE_COMPLETED");
    assert_eq!(shown["result"]["summary"], "pushed");
    let first = m.ok("tail_task", json!({"task": task, "limit": 2}));
    assert_eq!(first["frames"].as_array().unwrap().len(), 2);
    assert_eq!(first["final"], false, "more frames follow: {first}");
    let rest = m.ok(
        "tail_task",
        json!({"task": task, "cursor": first["cursor"]}),
    );
    assert_eq!(rest["final"], true, "{rest}");
    let all: Vec<Value> = [&first, &rest]
        .iter()
        .flat_map(|p| p["frames"].as_array().unwrap().clone())
        .collect();
    let types: Vec<&str> = all.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"TASK"), "{types:?}");
    assert_eq!(types.last(), Some(&"RESULT"), "{types:?}");
    assert!(all.iter().any(|f| f["payload"]["pct"] == 50));
    assert!(all
        .iter()
        .any(|f| f["type"] == "APPROVAL" && f["payload"]["decision"] == "approve"));
    let after = m.ok("tail_task", json!({"task": task, "cursor": rest["cursor"]}));
    assert_eq!(after["frames"], json!([]));
    assert_eq!(after["cursor"], rest["cursor"]);

    // Resources: the list, the stream, the trace log, the policy.
    let res = m.request("resources/list", json!({}));
    let uris: Vec<&str> = res["result"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["hive://tasks", "hive://approval-policy"]);
    let read = |m: &mut Mcp, uri: &str| {
        let r = m.request("resources/read", json!({"uri": uri}));
        r["result"]["contents"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{uri}: {r}"))
            .to_owned()
    };
    assert!(read(&mut m, "hive://tasks").contains(&task));
    let stream = read(&mut m, &format!("hive://tasks/{task}/stream"));
    assert!(
        stream.lines().count() >= 4 && stream.contains("compiling"),
        "{stream}"
    );
    assert!(read(&mut m, "hive://approval-policy").contains("no-main"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = m.request(
            "resources/read",
            json!({"uri": format!("hive://tasks/{task}/log")}),
        );
        let text = r["result"]["contents"][0]["text"].as_str().unwrap_or("");
        if text.contains("RESULT") {
            assert!(text
                .lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok()));
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing = m.request(
        "resources/read",
        json!({"uri": "hive://tasks/t-nope/stream"}),
    );
    assert!(missing.get("error").is_some() || missing["result"]["contents"][0]["text"] == "");
    boss.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permission_prompt_tool_allows_denies_and_asks_a_person_through_hivebus() {
    let (dir, _broker, url) = setup("mcp-perm");
    let mut m = Mcp::start(&dir, None);
    let boss = person(&url).await;
    let prompt = |m: &mut Mcp, tool: &str, input: Value| {
        let r = m.request(
            "tools/call",
            json!({"name": "approval_prompt",
                   "arguments": {"tool_name": tool, "input": input, "tool_use_id": "toolu_1"}}),
        );
        Mcp::prompt_answer(&r)
    };

    // The policy allows: the input goes back unchanged as `updatedInput`.
    let input = json!({"command": "cargo test --all", "description": "run the tests"});
    let a = prompt(&mut m, "Bash", input.clone());
    assert_eq!(a, json!({"behavior": "allow", "updatedInput": input}));
    let a = prompt(&mut m, "Bash", json!({"command": "git push origin main"}));
    assert_eq!(a["behavior"], "deny");
    assert!(a["message"].as_str().unwrap().contains("no-main"), "{a}");

    // The policy asks (the built-in rm-rf): a person decides over the bus, both ways.
    for (command, decision) in [("rm -rf build", "approve"), ("sudo rm -rf dist", "deny")] {
        let input = json!({"command": command});
        let id = m.ask(
            "tools/call",
            json!({"name": "approval_prompt", "arguments": {"tool_name": "Bash", "input": input}}),
        );
        let task = waiting(&boss, |a| {
            a["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("permission-"))
                && a["request"]["command"] == command
        })
        .await;
        assert_eq!(
            m.refused(
                "decide_approval",
                json!({"task": task, "decision": "approve"}),
                "forbidden"
            )["details"]["reason"],
            "lease_holder"
        );
        boss.command(
            "op.queue.approve",
            json!({"task": task, "decision": decision, "reason": "checked"}),
        )
        .await
        .unwrap();
        let a = Mcp::prompt_answer(&m.answer(id));
        if decision == "approve" {
            assert_eq!(a, json!({"behavior": "allow", "updatedInput": input}));
        } else {
            assert_eq!(a["behavior"], "deny", "{a}");
            let msg = a["message"].as_str().unwrap();
            assert!(
                msg.contains("deny by anonymous") && msg.contains("checked"),
                "{msg}"
            );
        }
        // The question and its answer stay in the task's record.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut shown = boss
            .command("op.queue.show", json!({"task": task}))
            .await
            .unwrap();
        while shown["state"] != "succeeded" {
            assert!(Instant::now() < deadline, "{shown}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            shown = boss
                .command("op.queue.show", json!({"task": task}))
                .await
                .unwrap();
        }
        let summary = shown["result"]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(if decision == "approve" {
                "allowed by anonymous"
            } else {
                "denied: deny by anonymous"
            }),
            "{summary}"
        );
        assert_eq!(shown["spec"]["args"]["tool_name"], "Bash");
    }
    boss.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_token_is_restricted_through_mcp_with_our_codes() {
    let (dir, _broker, url) = setup("mcp-auth");
    // A task on bip-2 that alice (bip-1 only) may neither read nor cancel.
    let boss = person(&url).await;
    let other = boss
        .command(
            "op.queue.submit",
            json!({"kind": "verify_bip", "bipId": 2, "idempotencyKey": "k-2", "args": {}}),
        )
        .await
        .unwrap();
    let other = other["task"].as_str().unwrap().to_owned();

    let mut m = Mcp::start(&dir, Some("alice-token-0123456789abcdef"));
    let refused = m.refused(
        "submit_task",
        json!({"kind": "verify_bip", "bip": 2}),
        "forbidden",
    );
    assert_eq!(refused["details"]["permission"], "publish", "{refused}");
    m.refused("task_status", json!({"task": other}), "forbidden");
    m.refused("tail_task", json!({"task": other}), "forbidden");
    m.refused("cancel_task", json!({"task": other}), "forbidden");
    m.refused(
        "history",
        json!({"address": "bip-2:verify_bip"}),
        "forbidden",
    );
    m.refused(
        "publish",
        json!({"address": "bip-2:general", "payload": {"text": "hi"}}),
        "forbidden",
    );
    let r = m.request(
        "resources/read",
        json!({"uri": format!("hive://tasks/{other}/log")}),
    );
    assert_eq!(r["error"]["data"]["code"], "forbidden", "{r}");
    // A permission question alice may not file fails closed: a deny naming the code.
    let r = m.request(
        "tools/call",
        json!({"name": "approval_prompt",
               "arguments": {"tool_name": "Bash", "input": {"command": "rm -rf build"}}}),
    );
    let a = Mcp::prompt_answer(&r);
    assert_eq!(a["behavior"], "deny", "{a}");
    assert!(a["message"].as_str().unwrap().contains("forbidden"), "{a}");
    // What the token allows still works, and the list shows only its own room.
    let own = m.ok("submit_task", json!({"kind": "verify_bip", "bip": 1}));
    let list = m.ok("list_tasks", json!({}));
    assert!(list.to_string().contains(own["task"].as_str().unwrap()));
    assert!(!list.to_string().contains(&other), "{list}");

    // A wrong token fails before the MCP handshake, saying what to do.
    let out = Command::new(hive())
        .arg("--dir")
        .arg(&dir)
        .arg("mcp")
        .env("HIVE_TOKEN", "not-a-token-at-all-0000")
        .env_remove("HIVE_WS_PORT")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HIVE_TOKEN"));
    assert!(out.stdout.is_empty(), "nothing but JSON-RPC on stdout");
    boss.close().await;
}

/// Polls `tasks/get` until the task's status is `status`; its result.
fn task_until(m: &mut Mcp, id: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = m.request("tasks/get", json!({"taskId": id}));
        if r["result"]["status"] == status {
            return r["result"].clone();
        }
        assert!(Instant::now() < deadline, "{r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_task_is_an_mcp_task_for_a_client_with_the_tasks_extension() {
    let (dir, _broker, _url) = setup("mcp-tasks");
    let tasks_ext = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});
    let mut m = Mcp::start_with(&dir, None, tasks_ext);

    // The call answers with a handle at once; the handle is the queue's task.
    let r = m.call("submit_task", json!({"kind": "verify_bip", "bip": 7}));
    assert_eq!(r["resultType"], "task", "{r}");
    let id = r["taskId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("t-"), "{r}");
    assert_eq!(r["status"], "working");
    let got = task_until(&mut m, &id, "working");
    assert!(
        got["statusMessage"].as_str().unwrap().starts_with("queued"),
        "{got}"
    );

    // Run it as a consumer: the MCP task completes with the record as its result.
    let lease = m.ok(
        "lease_next_task",
        json!({"kinds": ["verify_bip"], "wait_ms": 30_000}),
    );
    assert_eq!(lease["task"], id.as_str());
    m.ok("complete_task", json!({"task": id, "summary": "verified"}));
    let done = task_until(&mut m, &id, "completed");
    assert_eq!(done["result"]["isError"], false, "{done}");
    assert_eq!(
        done["result"]["structuredContent"]["result"]["summary"],
        "verified"
    );

    // tasks/cancel is op.queue.cancel.
    let r = m.call("submit_task", json!({"kind": "other_kind", "bip": 7}));
    let second = r["taskId"].as_str().unwrap().to_owned();
    let c = m.request("tasks/cancel", json!({"taskId": second}));
    assert!(c.get("error").is_none(), "{c}");
    task_until(&mut m, &second, "cancelled");
    let missing = m.request("tasks/get", json!({"taskId": "t-nope"}));
    assert_eq!(missing["error"]["data"]["code"], "not_found", "{missing}");
    // A refused submit is a tool error and creates no task.
    let bad = m.call("submit_task", json!({"kind": "Bad Kind", "bip": 7}));
    assert_eq!(bad["isError"], true, "{bad}");

    // A client without the extension gets the plain answer (see the other tests);
    // one speaking the 2026-07-28 revision needs no handshake: its metadata rides
    // on each request.
    let mut s = Mcp::spawn(&dir, None);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "hivebus-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let d = s.request("server/discover", json!({"_meta": meta}));
    let versions = d["result"]["supportedVersions"].as_array().unwrap();
    assert!(versions.contains(&json!(REVISION)) && versions.contains(&json!("2026-07-28")));
    let r = s.request(
        "tools/call",
        json!({"_meta": meta, "name": "task_status", "arguments": {"task": id}}),
    );
    assert_eq!(
        r["result"]["structuredContent"]["state"], "succeeded",
        "{r}"
    );
}
