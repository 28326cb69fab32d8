//! Retry schedule (exponential backoff), dead-lettering with full history, DLQ
//! requeue with edited args and purge, and `idempotent: false` waiting for a human.

use crate::harness::*;
use hivebus::ops::queue::QueueConfig;
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn failed_attempts_back_off_exponentially_then_dead_letter_with_history() {
    let cfg = QueueConfig {
        max_attempts: 4,
        backoff_base_ms: 1_000,
        backoff_cap_ms: 3_000,
        ..config()
    };
    let q = start(cfg).await;
    let c = q.client().await;
    let id = submit(&c, task("work", "flaky", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["work"], 1).await;
    let mut waits = Vec::new();
    let mut failed_at = None;
    for attempt in 1..=4u64 {
        let l = next_lease(&mut w).await;
        if let Some(t) = failed_at {
            waits.push(Instant::now().duration_since(t).as_millis());
        }
        assert_eq!(l.payload["attempt"], attempt);
        let r = finish(&w, &l, "fail").await.unwrap();
        failed_at = Some(Instant::now());
        if attempt < 4 {
            assert_eq!(r["state"], "queued");
        } else {
            assert_eq!(r["state"], "dead");
        }
    }
    // base * 2^(n-1), capped: 1 s, 2 s, then 3 s (cap instead of 4 s).
    assert_eq!(waits, [1_000, 2_000, 3_000]);
    no_lease_within(&mut w, Duration::from_secs(120)).await;
    let dlq = c.command("op.queue.dlq.list", json!({})).await.unwrap();
    assert_eq!(dlq["tasks"][0]["task"], id.as_str());
    let dead = c
        .command("op.queue.dlq.show", json!({"task": id}))
        .await
        .unwrap();
    let failures = dead["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["note"].as_str().unwrap().contains("failed"))
        .count();
    assert_eq!(failures, 4, "{dead}");
    assert_eq!(dead["state"], "dead");
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dead_tasks_can_be_requeued_with_edited_args_or_purged() {
    let q = start(QueueConfig {
        max_attempts: 1,
        ..config()
    })
    .await;
    let c = q.client().await;
    let a = submit(&c, task("work", "a", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = submit(&c, task("work", "b", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["work"], 1).await;
    for _ in 0..2 {
        let l = next_lease(&mut w).await;
        assert_eq!(finish(&w, &l, "fail").await.unwrap()["state"], "dead");
    }
    // Requeue with new args: leased again from attempt 1, with the edited args.
    let r = c
        .command(
            "op.queue.dlq.requeue",
            json!({"task": a, "args": {"fixed": true}}),
        )
        .await
        .unwrap();
    assert_eq!(r["state"], "queued");
    let l = next_lease(&mut w).await;
    assert_eq!(
        (task_id(&l), &l.payload["attempt"], &l.payload["args"]),
        (a.clone(), &json!(1), &json!({"fixed": true}))
    );
    finish(&w, &l, "ok").await.unwrap();
    assert_eq!(show(&c, &a).await["state"], "succeeded");
    // Requeueing a task that is not dead is refused.
    let e = c
        .command("op.queue.dlq.requeue", json!({"task": a}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("conflict"));
    // Purge (admin only) removes it from memory and storage.
    let admin = hivebus::client::Client::connect(&q.url, hivebus::client::Hello::role("admin"))
        .await
        .unwrap();
    let e = c
        .command("op.queue.dlq.purge", json!({"task": b}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    let p = admin
        .command("op.queue.dlq.purge", json!({"task": b}))
        .await
        .unwrap();
    assert_eq!(p["purged"], json!([b]));
    let e = c
        .command("op.queue.show", json!({"task": b}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_non_idempotent_task_is_not_retried_until_a_human_says_so() {
    let q = start(config()).await;
    let c = q.client().await;
    let mut body = task("work", "side-effects", "normal");
    body["idempotent"] = json!(false);
    let id = submit(&c, body).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["work"], 1).await;
    let l = next_lease(&mut w).await;
    assert_eq!(finish(&w, &l, "fail").await.unwrap()["state"], "failed");
    // Parked: no automatic retry, however long we wait.
    no_lease_within(&mut w, Duration::from_secs(3_600)).await;
    assert_eq!(show(&c, &id).await["state"], "failed");
    // A lease that expires on such a task parks it too.
    let r = c
        .command("op.queue.retry", json!({"task": id}))
        .await
        .unwrap();
    assert_eq!(r["state"], "queued");
    let l2 = next_lease(&mut w).await;
    assert_eq!(task_id(&l2), id);
    assert_ne!(l2.payload["lease"], l.payload["lease"]);
    let notice = next_notice(&mut w).await; // no heartbeat: the lease expires
    assert_eq!(notice.payload["event"], "lease_expired");
    assert_eq!(show(&c, &id).await["state"], "failed");
    no_lease_within(&mut w, Duration::from_secs(600)).await;
    q.stop().await;
}
