//! Leases: renewal by HEARTBEAT and EVENT, expiry and re-delivery as a new attempt,
//! refusal of a stale result, cancellation of queued and running tasks, and loss of
//! a consumer.

use crate::harness::*;
use hivebus::frame::{Envelope, FrameType};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn heartbeats_and_events_keep_a_lease_alive() {
    let q = start(config()).await; // lease 5 s
    let c = q.client().await;
    let id = submit(&c, task("work", "long", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["work"], 1).await;
    let l = next_lease(&mut w).await;
    for i in 0..10 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if i % 2 == 0 {
            let r = w
                .request(Envelope::new(FrameType::Heartbeat, json!({})))
                .await
                .unwrap();
            assert_eq!(r["renewed"], 1);
        } else {
            w.request(about(
                &l,
                FrameType::Event,
                json!({"stage": "s", "message": "m", "pct": i * 10}),
            ))
            .await
            .unwrap();
        }
    }
    // 30 s later (six lease lengths), the lease still holds.
    assert_eq!(show(&c, &id).await["state"], "working");
    assert_eq!(finish(&w, &l, "ok").await.unwrap()["state"], "succeeded");
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_redelivered_as_a_new_attempt_and_its_late_result_refused() {
    let q = start(config()).await; // lease 5 s, backoff 1 s
    let c = q.client().await;
    let id = submit(&c, task("work", "slow", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut a = q.consumer(&["work"], 1).await;
    let t0 = Instant::now();
    let first = next_lease(&mut a).await;
    // A stops taking this kind (so the re-delivery must go to B) and goes silent.
    a.command("op.queue.consume", json!({"kinds": ["other"]}))
        .await
        .unwrap();
    let mut b = q.consumer(&["work"], 1).await;
    let second = next_lease(&mut b).await;
    let waited = Instant::now().duration_since(t0);
    assert_eq!(task_id(&second), id);
    assert_eq!(
        (
            first.payload["attempt"].as_u64(),
            second.payload["attempt"].as_u64()
        ),
        (Some(1), Some(2))
    );
    // Lease (5 s) then backoff after attempt 1 (1 s).
    assert_eq!(waited, Duration::from_secs(6));
    let notice = next_notice(&mut a).await;
    assert_eq!(
        (
            notice.payload["event"].as_str(),
            notice.payload["task"].as_str()
        ),
        (Some("lease_expired"), Some(id.as_str()))
    );
    // The first consumer wakes up and reports: refused, the task is not touched.
    let e = finish(&a, &first, "ok").await.unwrap_err();
    assert_eq!(e.code(), Some("stale_lease"));
    let e = a
        .request(about(
            &first,
            FrameType::Event,
            json!({"stage": "x", "message": "late"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("stale_lease"));
    assert_eq!(show(&c, &id).await["state"], "leased");
    assert_eq!(
        finish(&b, &second, "ok").await.unwrap()["state"],
        "succeeded"
    );
    let shown = show(&c, &id).await;
    assert_eq!(
        (
            shown["attempt"].as_u64(),
            shown["result"]["attempt"].as_u64()
        ),
        (Some(2), Some(2))
    );
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_removes_a_queued_task_and_stops_a_running_one() {
    let q = start(config()).await;
    let c = q.client().await;
    let t1 = submit(&c, task("work", "one", "critical")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let t2 = submit(&c, task("work", "two", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = q.consumer(&["work"], 1).await;
    let l = next_lease(&mut w).await;
    assert_eq!(task_id(&l), t1);
    let r = c
        .command("op.queue.cancel", json!({"task": t2}))
        .await
        .unwrap();
    assert_eq!(
        (r["state"].as_str(), r["consumerTold"].as_bool()),
        (Some("cancelled"), Some(false))
    );
    let r = c
        .command("op.queue.cancel", json!({"task": t1}))
        .await
        .unwrap();
    assert_eq!(r["consumerTold"], true);
    let notice = next_notice(&mut w).await;
    assert_eq!(
        (
            notice.payload["event"].as_str(),
            notice.payload["task"].as_str()
        ),
        (Some("cancel"), Some(t1.as_str()))
    );
    assert_eq!(
        finish(&w, &l, "ok").await.unwrap_err().code(),
        Some("stale_lease")
    );
    // Nothing else to run: t2 was cancelled while queued.
    no_lease_within(&mut w, Duration::from_secs(60)).await;
    for t in [&t1, &t2] {
        assert_eq!(show(&c, t).await["state"], "cancelled");
    }
    let e = c
        .command("op.queue.cancel", json!({"task": t1}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("conflict"));
    let e = c
        .command("op.queue.cancel", json!({"task": "t-nope"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("not_found"));
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_consumer_that_disconnects_loses_its_leases_to_another() {
    let q = start(config()).await;
    let c = q.client().await;
    let id = submit(&c, task("work", "x", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut a = q.consumer(&["work"], 1).await;
    next_lease(&mut a).await;
    a.close().await;
    let mut b = q.consumer(&["work"], 1).await;
    let l = next_lease(&mut b).await;
    assert_eq!((task_id(&l), l.payload["attempt"].as_u64()), (id, Some(2)));
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn slots_from_the_handshake_bound_concurrent_leases() {
    let q = start(config()).await;
    let c = q.client().await;
    for i in 0..5 {
        submit(&c, task("work", &format!("s{i}"), "normal"))
            .await
            .unwrap();
    }
    let mut w = q.consumer(&["work"], 2).await;
    let a = next_lease(&mut w).await;
    next_lease(&mut w).await;
    // Keep the two leases alive while checking that no third arrives.
    let beat = w
        .request(Envelope::new(FrameType::Heartbeat, json!({})))
        .await
        .unwrap();
    assert_eq!(beat["renewed"], 2);
    no_lease_within(&mut w, Duration::from_secs(2)).await;
    finish(&w, &a, "ok").await.unwrap();
    next_lease(&mut w).await;
    // A session without the consumer role cannot take leases.
    let e = c.command("op.queue.consume", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some("forbidden"));
    q.stop().await;
}
