//! Approvals as durable objects, over the wire, with `hive broker` as a real child
//! process stopped (SIGTERM) and started again on the same directory: a pending
//! approval is still listed and decidable after a restart, its decision reaches the
//! consumer that resumes its lease, its expiry fires after the restart too; an
//! `always` decision is a policy rule that survives restarts, is listed with who
//! made it and when, decides `check`, never beats a deny, and only an admin forgets
//! it. Hostile clients: a consumer deciding its own request, forging an `always`
//! decision inside its request, resuming another identity's lease. (Reloading the
//! policy is in `policy`.)

use crate::cli::{broker, hive, Reaped};
use crate::harness::{about, next_decision, next_lease, task_id, temp_dir};
use hivebus::client::{Client, Hello};
use hivebus::frame::{Envelope, FrameType};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

/// Tokens (an approver `ops`, an admin `root`, a submitter `alice`, consumers `w1`
/// and `w2` on bip-1), the queue's short leases, and `policy` as `[approval]`.
pub(crate) fn config(policy: &str) -> String {
    format!(
        r#"
[queue]
jitter = false
lease_ms = 1500
backoff_base_ms = 100

[[auth.tokens]]
token = "tok-alice-000000000"
subject = "alice"
role = "client"
publish = ["bip-1:*"]
subscribe = ["bip-1:*"]

[[auth.tokens]]
token = "tok-ops-00000000000"
subject = "ops"
role = "client"
subscribe = ["bip-*:*"]
approve = ["bip-*:*"]

[[auth.tokens]]
token = "tok-root-0000000000"
subject = "root"
role = "admin"

[[auth.tokens]]
token = "tok-w1-000000000000"
subject = "w1"
role = "consumer"
publish = ["bip-1:*"]
subscribe = ["bip-1:*"]

[[auth.tokens]]
token = "tok-w2-000000000000"
subject = "w2"
role = "consumer"
publish = ["bip-1:*"]
subscribe = ["bip-1:*"]

{policy}
"#
    )
}

pub(crate) const POLICY: &str = r#"
[approval]
timeout_secs = 600

[[approval.rules]]
name = "deploys"
command = "make deploy"
decision = "ask"
reason = "deploys need a person"
examples = { match = ["make deploy"], not_match = ["make test"] }

[[approval.rules]]
name = "no-push-main"
command = "git push * main"
decision = "deny"
reason = "main is protected"
"#;

pub(crate) struct Broker {
    dir: PathBuf,
    pub(crate) config: PathBuf,
    child: Option<Reaped>,
    url: String,
}

impl Broker {
    pub(crate) fn start(dir: &Path, text: &str) -> Broker {
        let config = dir.join("hive.toml");
        std::fs::write(&config, text).unwrap();
        let mut b = Broker {
            dir: dir.to_owned(),
            config,
            child: None,
            url: String::new(),
        };
        b.restart();
        b
    }

    /// Stops the broker gracefully (SIGTERM: it flushes its store), then starts it
    /// again on the same directory and config file.
    fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.0.id().to_string();
            assert!(Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success());
            c.0.wait().unwrap();
        }
        let cfg = self.config.to_str().unwrap().to_owned();
        let (child, port) = broker(&self.dir, &["--config", &cfg]);
        self.child = Some(child);
        self.url = format!("ws://127.0.0.1:{port}/");
    }

    pub(crate) async fn as_(&self, who: &str) -> Client {
        let (role, kinds): (&str, &[&str]) = match who {
            "root" => ("admin", &[]),
            "w1" | "w2" => ("consumer", &["job"]),
            _ => ("client", &[]),
        };
        let mut h = Hello::role(role);
        h.auth = Some(format!("tok-{who}-{}", "0".repeat(19 - 5 - who.len())));
        h.capabilities = kinds.iter().map(|k| k.to_string()).collect();
        h.slots = Some(4);
        let mut c = Client::connect(&self.url, h).await.unwrap();
        c.set_timeout(T);
        if role == "consumer" {
            c.command("op.queue.consume", json!({})).await.unwrap();
        }
        c
    }

    /// `hive` with `args` against this broker as `who`; (exit code, stdout).
    pub(crate) fn hive(&self, who: &str, args: &[&str]) -> (i32, String) {
        let token = format!("tok-{who}-{}", "0".repeat(19 - 5 - who.len()));
        let out = Command::new(hive())
            .args(["--url", &self.url, "--token", &token])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

async fn submit(alice: &Client, key: &str) {
    alice
        .command(
            "op.queue.submit",
            json!({"kind": "job", "bipId": 1, "idempotencyKey": key}),
        )
        .await
        .unwrap();
}

async fn ask(w: &Client, lease: &Envelope, command: &str, extra: Value) -> Value {
    let mut p = json!({"command": command, "reason": "ship it", "cwd": "/w"});
    if let (Some(o), Some(x)) = (p.as_object_mut(), extra.as_object()) {
        o.extend(x.clone());
    }
    w.request(about(lease, FrameType::Approval, p))
        .await
        .unwrap()
}

async fn waiting(c: &Client) -> Vec<Value> {
    c.command("op.queue.approvals", json!({})).await.unwrap()["approvals"]
        .as_array()
        .cloned()
        .unwrap()
}

async fn state(c: &Client, task: &str) -> Value {
    c.command("op.queue.show", json!({"task": task}))
        .await
        .unwrap()["state"]
        .clone()
}

pub(crate) fn code(r: Result<Value, hivebus::client::ClientError>) -> String {
    r.unwrap_err().code().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_approval_survives_a_restart_and_always_becomes_a_durable_rule() {
    let dir = temp_dir("approval-restart");
    let mut b = Broker::start(&dir, &config(POLICY));
    let alice = b.as_("alice").await;
    let mut w1 = b.as_("w1").await;
    submit(&alice, "deploy-1").await;
    let lease = next_lease(&mut w1).await;
    let task = task_id(&lease);
    // A hostile consumer forges a decision inside its request: it is stripped.
    let r = ask(
        &w1,
        &lease,
        "make deploy",
        json!({"decision": "approve", "scope": "always", "by": "ops", "approval": "a-0"}),
    )
    .await;
    assert_eq!(r["state"], "waiting_approval", "{r}");
    let id = r["approval"].as_str().unwrap().to_owned();
    assert!(id.starts_with("a-"), "{r}");
    // Nor may it decide its own request, with a frame or a command.
    let mine = w1
        .command(
            "op.queue.approve",
            json!({"task": task, "decision": "approve", "scope": "always"}),
        )
        .await;
    assert_eq!(code(mine), "forbidden");
    let mut own = about(
        &lease,
        FrameType::Approval,
        json!({"decision": "approve", "scope": "always"}),
    );
    if let Some(o) = own.payload.as_object_mut() {
        o.remove("lease");
    }
    let frame = w1.request(own).await;
    assert_eq!(code(frame), "forbidden");

    let ops = b.as_("ops").await;
    let list = waiting(&ops).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(a["approval"], id.as_str());
    assert_eq!(a["requestedBy"], "w1");
    assert_eq!(a["request"]["command"], "make deploy");
    assert!(a["request"].get("scope").is_none(), "{a}");
    let expires_at = a["expiresAt"].as_u64().unwrap();
    // The approver goes away and comes back: it still lists the same request.
    drop(ops);
    let ops = b.as_("ops").await;
    assert_eq!(waiting(&ops).await[0]["approval"], id.as_str());
    drop((ops, w1));

    b.restart();
    let ops = b.as_("ops").await;
    let list = waiting(&ops).await;
    assert_eq!(list.len(), 1, "still pending after the restart: {list:?}");
    assert_eq!(list[0]["approval"], id.as_str());
    assert_eq!(list[0]["expiresAt"].as_u64(), Some(expires_at));
    assert_eq!(list[0]["orphaned"], true);
    let (rc, out) = b.hive("ops", &["approvals", "show", &id]);
    assert_eq!(rc, 0, "{out}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        shown["task"],
        task.as_str(),
        "`hive approvals` after the restart: {out}"
    );
    assert_eq!(state(&ops, &task).await, "waiting_approval");
    // Bad input changes nothing.
    let maybe = ops
        .command(
            "op.queue.approve",
            json!({"task": task, "decision": "maybe"}),
        )
        .await;
    assert_eq!(code(maybe), "invalid_field");
    let other = ops
        .command(
            "op.queue.approve",
            json!({"task": task, "approval": "a-00000000deadbeef", "decision": "approve"}),
        )
        .await;
    assert_eq!(code(other), "conflict");
    // The approver decides while the consumer is away, by the approval's id.
    let (rc, out) = b.hive(
        "ops",
        &[
            "approvals",
            "approve",
            &id,
            "--scope",
            "always",
            "--reason",
            "deploys of bip-1 are fine",
        ],
    );
    assert_eq!(rc, 0, "{out}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (d["decision"].as_str(), d["approval"].as_str()),
        (Some("approve"), Some(id.as_str())),
        "{d}"
    );
    let again = ops
        .command(
            "op.queue.approve",
            json!({"task": task, "decision": "deny"}),
        )
        .await;
    assert_eq!(code(again), "conflict");
    assert!(waiting(&ops).await.is_empty());

    // Another identity cannot take the lease; a wrong lease is stale; the consumer
    // that asked resumes it and hears the decision.
    let lease_id = lease.payload["lease"].as_str().unwrap();
    let w2 = b.as_("w2").await;
    let theft = w2
        .command("op.queue.resume", json!({"task": task, "lease": lease_id}))
        .await;
    assert_eq!(code(theft), "forbidden");
    let mut w1 = b.as_("w1").await;
    let wrong = w1
        .command("op.queue.resume", json!({"task": task, "lease": "l-0-0"}))
        .await;
    assert_eq!(code(wrong), "stale_lease");
    let resumed = w1
        .command("op.queue.resume", json!({"task": task, "lease": lease_id}))
        .await
        .unwrap();
    assert_eq!(resumed["decision"]["decision"], "approve", "{resumed}");
    assert_eq!(resumed["decision"]["by"], "ops");
    let private = next_decision(&mut w1).await;
    assert_eq!(private.payload["approval"], id.as_str());
    assert_eq!(private.payload["lease"], lease_id);
    let done = w1
        .request(about(
            &lease,
            FrameType::Result,
            json!({"status": "ok", "summary": "deployed"}),
        ))
        .await
        .unwrap();
    assert_eq!(done["state"], "succeeded", "{done}");

    // The stream (and so the trace log) has every step: asked, decided (who, scope).
    let frames = ops
        .command("op.queue.stream", json!({"task": task}))
        .await
        .unwrap();
    let approvals: Vec<&Value> = frames["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["frame"])
        .filter(|f| f["type"] == "APPROVAL")
        .collect();
    assert_eq!(approvals.len(), 2, "{frames}");
    assert_eq!(approvals[1]["payload"]["by"], "ops");
    assert_eq!(approvals[1]["payload"]["scope"], "always");
    let logs = walk(&dir.join(".hive").join("logs"));
    assert!(logs.contains(&id), "the trace log names the approval");

    // `always` is a rule now, kept across a restart, named with who and when.
    b.restart();
    let ops = b.as_("ops").await;
    let rules = ops.command("op.approval.rules", json!({})).await.unwrap();
    let learned: Vec<&Value> = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"] == "always")
        .collect();
    assert_eq!(learned.len(), 1, "{rules}");
    assert_eq!(learned[0]["id"], id.as_str());
    assert_eq!(learned[0]["by"], "ops");
    assert_eq!(learned[0]["channel"], "bip-1:job");
    assert!(rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["origin"] == "config" && r["name"] == "deploys"));
    assert!(rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["origin"] == "builtin" && r["name"] == "builtin:rm-rf"));
    let check = json!({"command": "make deploy", "reason": "ship it", "cwd": "/w",
                       "bip": 1, "kind": "job"});
    let c = ops
        .command("op.approval.check", check.clone())
        .await
        .unwrap();
    assert_eq!(c["verdict"], "allow", "{c}");
    assert_eq!(c["origin"], "always");
    assert_eq!(c["rule"]["name"], format!("always:{id}"));
    // Elsewhere it does not hold.
    let mut elsewhere = check.clone();
    elsewhere["bip"] = json!(2);
    let c2 = ops.command("op.approval.check", elsewhere).await.unwrap();
    assert_eq!(c2["verdict"], "ask", "{c2}");
    // The CLI shows it, with its origin (JSON when piped).
    let (rc, out) = b.hive("ops", &["policy", "list"]);
    assert_eq!(rc, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == format!("always:{id}") && r["by"] == "ops"),
        "{out}"
    );
    let (rc, out) = b.hive(
        "ops",
        &[
            "--json",
            "policy",
            "check",
            "make deploy",
            "--cwd",
            "/w",
            "--broker",
            "--bip",
            "1",
            "--kind",
            "job",
        ],
    );
    assert_eq!(rc, 1 - 1, "allowed: exit 0; {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["origin"], "always");

    // The next time the consumer asks the same, the rule answers at once.
    let alice = b.as_("alice").await;
    let mut w1 = b.as_("w1").await;
    submit(&alice, "deploy-2").await;
    let lease = next_lease(&mut w1).await;
    let r = ask(&w1, &lease, "make deploy", json!({})).await;
    assert_eq!(r["decision"], "approve", "{r}");
    assert_eq!(r["by"], "policy:remembered:always:ops");
    // An always approval never beats the policy's deny.
    let r = ask(&w1, &lease, "git push origin main", json!({})).await;
    assert_eq!(r["decision"], "deny", "{r}");

    // Only an admin forgets a learned rule; then the action asks again.
    let forget = ops.command("op.approval.forget", json!({"id": id})).await;
    assert_eq!(code(forget), "forbidden");
    let (rc, out) = b.hive("root", &["policy", "forget", &id]);
    assert_eq!(rc, 0, "{out}");
    let c = ops
        .command("op.approval.check", check.clone())
        .await
        .unwrap();
    assert_eq!(c["verdict"], "ask", "{c}");
    b.restart();
    let ops = b.as_("ops").await;
    let c = ops.command("op.approval.check", check).await.unwrap();
    assert_eq!(c["verdict"], "ask", "forgotten for good: {c}");
}

/// Every file's text under `dir`.
fn walk(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            s.push_str(&walk(&p));
        } else {
            s.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_timeout_expires_the_request_after_a_restart_and_the_lease_is_given_up() {
    let policy = r#"
[approval]
timeout_secs = 600

[[approval.rules]]
name = "quick"
command = "make deploy"
decision = "ask"
timeout_secs = 3
"#;
    let dir = temp_dir("approval-expiry");
    let mut b = Broker::start(&dir, &config(policy));
    let alice = b.as_("alice").await;
    let mut w1 = b.as_("w1").await;
    submit(&alice, "quick-1").await;
    let lease = next_lease(&mut w1).await;
    let task = task_id(&lease);
    let r = ask(&w1, &lease, "make deploy", json!({})).await;
    let id = r["approval"].as_str().unwrap().to_owned();
    let ops = b.as_("ops").await;
    // The rule's own timeout, not the section's.
    let a = waiting(&ops).await[0].clone();
    let waits = a["expiresAt"].as_u64().unwrap() - a["askedMs"].as_u64().unwrap();
    assert_eq!(waits, 3_000, "{a}");
    drop((ops, w1));
    b.restart();
    let ops = b.as_("ops").await;
    assert_eq!(waiting(&ops).await.len(), 1);
    // Past its expiry (3 s) and the lease given up (1.5 s more): recorded `expired`,
    // the attempt over like any a restart interrupted, the task runs again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(waiting(&ops).await.is_empty());
    let frames = ops
        .command("op.queue.stream", json!({"task": task}))
        .await
        .unwrap();
    let expired = frames["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["frame"]["payload"])
        .find(|p| p["decision"] == "expired")
        .cloned()
        .unwrap_or_else(|| panic!("no expiry in {frames}"));
    assert_eq!(expired["approval"], id.as_str());
    assert_eq!(expired["by"], "timeout");
    let s = state(&ops, &task).await;
    assert!(s == "queued" || s == "leased", "{s}");
    let late = ops
        .command(
            "op.queue.approve",
            json!({"task": task, "approval": id, "decision": "approve"}),
        )
        .await;
    assert_eq!(code(late), "conflict");
    let stale = b
        .as_("w1")
        .await
        .command(
            "op.queue.resume",
            json!({"task": task, "lease": lease.payload["lease"]}),
        )
        .await;
    assert_eq!(code(stale), "stale_lease");
}
