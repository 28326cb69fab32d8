//! Operators that cooperate with the queue (`docs/OPERATORS.md`): task events in
//! stream order, action gates deciding before a person is asked (deny > ask > allow),
//! and another operator observing frames the queue owns. Real broker, real clients.

use crate::harness::*;
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::queue::hooks::{ActionGate, ActionRequest, Verdict};
use hivebus::ops::queue::TaskState;
use hivebus::ops::{BoxFuture, Caller, Operator};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Denies any command with `rm -rf`, allows `cargo test`, asks about the rest.
struct Policy;

impl ActionGate for Policy {
    fn check<'a>(&'a self, a: &'a ActionRequest) -> BoxFuture<'a, Verdict> {
        Box::pin(async move {
            let cmd = a.action["command"].as_str().unwrap_or_default();
            if cmd.contains("rm -rf") {
                Verdict::Deny {
                    by: "no-rm".into(),
                    reason: "destructive".into(),
                }
            } else if cmd.starts_with("cargo test") {
                Verdict::Allow {
                    by: "tests".into(),
                    reason: "tests are safe".into(),
                }
            } else {
                Verdict::Ask
            }
        })
    }
}

async fn ask(c: &hivebus::client::Client, lease: &Envelope, command: &str) -> Value {
    c.request(about(
        lease,
        FrameType::Approval,
        json!({"command": command, "reason": "step 1"}),
    ))
    .await
    .unwrap()
}

#[tokio::test]
async fn observers_get_every_step_of_a_task_in_stream_order() {
    let q = start(config()).await;
    let mut events = q.queue.events(64);
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    let id = submit(&c, task("build", "ev-1", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease = next_lease(&mut w).await;
    w.request(about(&lease, FrameType::Event, json!({"pct": 50})))
        .await
        .unwrap();
    finish(&w, &lease, "ok").await.unwrap();
    let mut seen = Vec::new();
    while seen
        .last()
        .map(|e: &hivebus::ops::queue::hooks::TaskEvent| e.state)
        != Some(TaskState::Succeeded)
    {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.task, id);
        assert_eq!(
            (e.bip_id, e.kind.as_str(), e.owner.as_str()),
            (43, "build", "anonymous")
        );
        seen.push(e);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");
    let frames: Vec<FrameType> = seen.iter().map(|e| e.frame).collect();
    assert_eq!(frames.first(), Some(&FrameType::Task), "{frames:?}");
    assert!(frames.contains(&FrameType::Event), "{frames:?}");
    assert_eq!(frames.last(), Some(&FrameType::Result), "{frames:?}");
    let progress = seen
        .iter()
        .find(|e| e.frame == FrameType::Event && e.payload.get("pct").is_some())
        .unwrap_or_else(|| panic!("no progress event: {seen:?}"));
    assert_eq!(progress.payload["pct"], 50);
    assert_eq!(progress.state, TaskState::Working);
    q.stop().await;
}

#[tokio::test]
async fn gates_decide_before_a_person_is_asked_deny_over_ask_over_allow() {
    let q = start(config()).await;
    q.queue.add_gate(Arc::new(Policy));
    let mut events = q.queue.events(256);
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    submit(&c, task("build", "gate-1", "normal")).await.unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);

    // Denied by the gate: the consumer is told at once, the task works on.
    let r = ask(&w, &lease, "rm -rf /").await;
    assert_eq!(
        (r["decision"].as_str(), r["by"].as_str()),
        (Some("deny"), Some("policy:no-rm")),
        "{r}"
    );
    let d = next_decision(&mut w).await;
    assert_eq!(d.payload["decision"], "deny");
    assert_eq!(d.payload["reason"], "destructive");
    assert_eq!(d.payload["lease"], lease.payload["lease"]);
    assert_eq!(show(&c, &id).await["state"], "working");

    // Allowed by the gate.
    let r = ask(&w, &lease, "cargo test --all").await;
    assert_eq!(r["decision"], "approve", "{r}");
    assert_eq!(next_decision(&mut w).await.payload["by"], "policy:tests");

    // Neither: a person decides; until then the task waits.
    let r = ask(&w, &lease, "git push").await;
    assert_eq!(r["state"], "waiting_approval", "{r}");
    assert_eq!(show(&c, &id).await["state"], "waiting_approval");
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    let d = next_decision(&mut w).await;
    assert_eq!(
        (d.payload["decision"].as_str(), d.payload["by"].as_str()),
        (Some("approve"), Some("anonymous"))
    );

    // Every request and decision was on the stream, policy decisions named as such.
    finish(&w, &lease, "ok").await.unwrap();
    let mut approvals = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        if e.frame == FrameType::Approval {
            approvals.push(e.payload.clone());
        }
        if e.state == TaskState::Succeeded {
            break;
        }
    }
    let by: Vec<&str> = approvals.iter().filter_map(|p| p["by"].as_str()).collect();
    assert_eq!(
        by,
        ["policy:no-rm", "policy:tests", "anonymous"],
        "{approvals:?}"
    );
    assert_eq!(
        approvals.len(),
        6,
        "three requests, three decisions: {approvals:?}"
    );
    q.stop().await;
}

/// Counts the RESULT frames it sees; owns nothing.
struct Watcher(AtomicU64);

impl Operator for Watcher {
    fn namespace(&self) -> &str {
        "watch"
    }

    fn command<'a>(
        &'a self,
        _: &'a Caller,
        _: &'a str,
        _: Value,
    ) -> BoxFuture<'a, Result<Value, hivebus::error::WireError>> {
        Box::pin(async { Ok(Value::Null) })
    }

    fn observes(&self, kind: FrameType) -> bool {
        kind == FrameType::Result
    }

    fn observe(&self, _: &Caller, env: &Envelope) {
        assert_eq!(env.kind, FrameType::Result);
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn another_operator_observes_frames_the_queue_owns() {
    let watcher = Arc::new(Watcher(AtomicU64::new(0)));
    let q = start_with(config(), temp_dir("observe"), vec![watcher.clone()]).await;
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    let id = submit(&c, task("build", "obs-1", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let lease = next_lease(&mut w).await;
    // A RESULT the queue refuses (bad status) is not observed.
    let bad = w
        .request(about(&lease, FrameType::Result, json!({"status": "maybe"})))
        .await;
    assert!(bad.is_err());
    assert_eq!(watcher.0.load(Ordering::Relaxed), 0);
    finish(&w, &lease, "ok").await.unwrap();
    assert_eq!(watcher.0.load(Ordering::Relaxed), 1);
    // The queue still owns RESULT: the task succeeded.
    assert_eq!(show(&c, &id).await["state"], "succeeded");
    q.stop().await;
}
