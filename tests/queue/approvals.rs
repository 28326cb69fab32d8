//! Approval requests that wait: the lease is held while a person thinks (no expiry,
//! no retry), a warning comes before the request expires, and an expired request
//! fails closed: the lease holder is told `expired` (not `denied`), the task works on,
//! and a late decision is refused; a consumer that reconnects resumes its lease and
//! hears the decision made while it was away. Also `op.queue.approvals`: who sees
//! which pending request. On a paused clock.

use crate::harness::*;
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::queue::QueueConfig;
use serde_json::{json, Value};
use std::time::Duration;

fn cfg() -> QueueConfig {
    QueueConfig {
        approval_timeout_ms: 60_000,
        approval_warn_ms: 10_000,
        ..config() // lease 5 s
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_holds_the_lease_warns_then_expires_closed() {
    let q = start(cfg()).await;
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    submit(&c, task("build", "wait-1", "normal")).await.unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    let r = w
        .request(about(
            &lease,
            FrameType::Approval,
            json!({"command": "make deploy"}),
        ))
        .await
        .unwrap();
    assert_eq!(r["state"], "waiting_approval");
    // It is listed for people to decide: what, by whom, how long is left.
    let list = c.command("op.queue.approvals", json!({})).await.unwrap();
    let a = &list["approvals"][0];
    assert_eq!(a["task"], id.as_str(), "{list}");
    assert_eq!(a["request"]["command"], "make deploy");
    assert_eq!(a["consumer"], w.session());
    assert_eq!(a["expiresInMs"], 60_000);
    // Eight lease lengths without a heartbeat: the lease holds while a person thinks.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(show(&c, &id).await["state"], "waiting_approval");
    // Ten seconds before the end, the consumer is warned.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let warn = next_of(&mut w, FrameType::System).await;
    assert_eq!(
        warn.payload["event"],
        "approval_expiring",
        "{}",
        warn.to_text()
    );
    assert_eq!(warn.payload["lease"], lease.payload["lease"]);
    assert!(warn.payload["expiresInMs"].as_u64().unwrap() <= 10_000);
    // Then it expires: the consumer is told `expired`, by the timeout, not a denial.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let d = next_of(&mut w, FrameType::Approval).await;
    assert_eq!(d.payload["decision"], "expired", "{}", d.to_text());
    assert_eq!(d.payload["by"], "timeout");
    let s = show(&c, &id).await;
    assert_eq!(s["state"], "working");
    let list = c.command("op.queue.approvals", json!({})).await.unwrap();
    assert_eq!(
        list["approvals"],
        json!([]),
        "expired requests are not pending"
    );
    // A late decision changes nothing.
    let late = c
        .command(
            "op.queue.approve",
            json!({"task": id, "decision": "approve"}),
        )
        .await;
    assert_eq!(late.unwrap_err().code(), Some("conflict"));
    // The wait is over: the lease lives on heartbeats again, and lapses without them.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = show(&c, &id).await;
    assert_ne!(
        after["state"], "working",
        "the lease should have expired: {after}"
    );
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_decision_before_the_timeout_ends_the_hold() {
    let q = start(cfg()).await;
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    submit(&c, task("build", "wait-2", "normal")).await.unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    w.request(about(&lease, FrameType::Approval, json!({"command": "ls"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    assert_eq!(
        next_of(&mut w, FrameType::Approval).await.payload["decision"],
        "approve"
    );
    // No warning, no expiry later: the request is gone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    finish(&w, &lease, "ok").await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(show(&c, &id).await["state"], "succeeded");
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_consumer_that_reconnects_resumes_its_lease_and_hears_the_decision() {
    let q = start(cfg()).await;
    let c = q.client().await;
    let mut w = q.consumer(&["build"], 1).await;
    submit(&c, task("build", "away-1", "normal")).await.unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    let r = w
        .request(about(
            &lease,
            FrameType::Approval,
            json!({"command": "make x"}),
        ))
        .await
        .unwrap();
    let approval = r["approval"].as_str().unwrap().to_owned();
    // The consumer goes away: the task keeps waiting, the lease is orphaned.
    drop(w);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(show(&c, &id).await["state"], "waiting_approval");
    let list = c.command("op.queue.approvals", json!({})).await.unwrap();
    assert_eq!(list["approvals"][0]["orphaned"], true, "{list}");
    c.command(
        "op.queue.approve",
        json!({"task": id, "approval": approval, "decision": "deny", "reason": "not now"}),
    )
    .await
    .unwrap();
    // Back within a lease length of the decision: the lease and the decision are its.
    let mut w = q.consumer(&["build"], 1).await;
    let r = w
        .command(
            "op.queue.resume",
            json!({"task": id, "lease": lease.payload["lease"]}),
        )
        .await
        .unwrap();
    assert_eq!(r["decision"]["decision"], "deny", "{r}");
    assert_eq!(r["decision"]["reason"], "not now");
    assert_eq!(
        next_of(&mut w, FrameType::Approval).await.payload["decision"],
        "deny"
    );
    finish(&w, &lease, "ok").await.unwrap();
    assert_eq!(show(&c, &id).await["state"], "succeeded");

    // Another time nobody comes back: one lease length after the expiry the attempt
    // is over and the task runs again; resuming then is too late.
    submit(&c, task("build", "away-2", "normal")).await.unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    w.request(about(
        &lease,
        FrameType::Approval,
        json!({"command": "make y"}),
    ))
    .await
    .unwrap();
    drop(w);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let frames = c
        .command("op.queue.stream", json!({"task": id}))
        .await
        .unwrap();
    assert!(
        frames.to_string().contains("\"decision\":\"expired\""),
        "{frames}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(show(&c, &id).await["state"], "queued");
    let w = q.consumer(&["build"], 1).await;
    let late = w
        .command(
            "op.queue.resume",
            json!({"task": id, "lease": lease.payload["lease"]}),
        )
        .await;
    assert_eq!(late.unwrap_err().code(), Some("stale_lease"));
    q.stop().await;
}

/// A real `hive broker` (policy and scope memory as assembled), a client, and a
/// consumer of `build` tasks with two slots.
async fn broker_client_consumer(
    tag: &str,
) -> (
    std::path::PathBuf,
    crate::cli::Reaped,
    hivebus::client::Client,
    hivebus::client::Client,
) {
    let dir = temp_dir(tag);
    let (broker, port) = crate::cli::broker(&dir, &[]);
    let url = format!("ws://127.0.0.1:{port}/");
    let c = hivebus::client::Client::connect(&url, hivebus::client::Hello::role("client"))
        .await
        .unwrap();
    let mut h = hivebus::client::Hello::role("consumer");
    h.capabilities = vec!["build".into()];
    h.slots = Some(2);
    let w = hivebus::client::Client::connect(&url, h).await.unwrap();
    w.command("op.queue.consume", json!({})).await.unwrap();
    (dir, broker, c, w)
}

#[tokio::test]
async fn hive_approvals_lists_and_decides_a_waiting_request() {
    use crate::cli::{json_of, run, text};
    let (dir, _broker, c, mut w) = broker_client_consumer("cli-approvals").await;
    submit(&c, task("build", "cli-appr-1", "normal"))
        .await
        .unwrap();
    let lease = next_lease(&mut w).await;
    let id = task_id(&lease);
    // Neither allowed nor denied by the built-in list: a person decides.
    w.request(about(
        &lease,
        FrameType::Approval,
        json!({"command": "make release", "reason": "ship 1.2"}),
    ))
    .await
    .unwrap();
    let listed = run(&dir, &["approvals", "list", "--json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let l = json_of(&listed);
    assert_eq!(l["approvals"][0]["task"], id.as_str(), "{l}");
    assert_eq!(l["approvals"][0]["request"]["command"], "make release");
    // The tail shows the request as something to answer, and how.
    let tail = run(&dir, &["--output", "table", "tail", &id, "--no-follow"]);
    assert_eq!(
        tail.status.code(),
        Some(4),
        "still running: {}",
        text(&tail)
    );
    let shown = text(&tail);
    assert!(
        shown.contains("APPROVAL asks to run: make release (because: ship 1.2)"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("hive approvals approve {id}")),
        "{shown}"
    );
    let shown = run(&dir, &["approvals", "show", &id]);
    assert!(text(&shown).contains("make release"), "{}", text(&shown));
    let ok = run(
        &dir,
        &[
            "approvals",
            "approve",
            &id,
            "--reason",
            "release day",
            "--json",
        ],
    );
    assert!(ok.status.success(), "{}", text(&ok));
    assert_eq!(json_of(&ok)["decision"], "approve");
    let d = next_of(&mut w, FrameType::Approval).await;
    assert_eq!(
        (d.payload["decision"].as_str(), d.payload["reason"].as_str()),
        (Some("approve"), Some("release day"))
    );
    // Twice: refused, with what to do next.
    let again = run(&dir, &["approvals", "deny", &id, "--reason", "late"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again).contains("hive task show"), "{}", text(&again));
}

#[tokio::test]
async fn a_decision_with_a_scope_answers_the_same_action_again_and_no_other() {
    use crate::cli::{run, text};
    let (dir, _broker, c, mut w) = broker_client_consumer("cli-scope").await;
    submit(&c, task("build", "scope-1", "normal"))
        .await
        .unwrap();
    let first = next_lease(&mut w).await;
    let ask = |lease: &Envelope, cmd: &str| {
        about(
            lease,
            FrameType::Approval,
            json!({"command": cmd, "reason": "why not"}),
        )
    };
    let r = w.request(ask(&first, "make release")).await.unwrap();
    assert_eq!(r["state"], "waiting_approval", "{r}");
    let id = task_id(&first);
    let ok = run(&dir, &["approvals", "approve", &id, "--scope", "session"]);
    assert!(ok.status.success(), "{}", text(&ok));
    next_of(&mut w, FrameType::Approval).await;
    // The same action from the same consumer session, on another task: remembered.
    submit(&c, task("build", "scope-2", "normal"))
        .await
        .unwrap();
    let second = next_lease(&mut w).await;
    let mut again = Value::Null;
    for _ in 0..50 {
        // The memory learns from the event stream; give it a moment.
        again = w.request(ask(&second, "make release")).await.unwrap();
        if again["decision"] == "approve" {
            break;
        }
        c.command(
            "op.queue.approve",
            json!({"task": task_id(&second), "decision": "deny"}),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(again["decision"], "approve", "{again}");
    assert_eq!(again["by"], "policy:remembered:session:anonymous");
    // Anything else still asks a person.
    let other = w
        .request(ask(&second, "make release --force"))
        .await
        .unwrap();
    assert_eq!(other["state"], "waiting_approval", "{other}");
}
