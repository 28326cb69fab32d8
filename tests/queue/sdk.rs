//! The consumer SDK: automatic heartbeats keep a lease, a dropped lease is abandoned
//! (and re-delivered), a cancellation reaches the work through `until_lost`.

use crate::harness::*;
use hivebus::consumer::{Consumer, LeaseLoss};
use serde_json::json;
use std::time::Duration;

// Real time: the SDK's fire-and-forget heartbeats race the paused clock's
// auto-advance (a frame in flight on a socket does not hold the clock back).
#[tokio::test]
async fn the_sdk_heartbeats_abandons_dropped_leases_and_sees_cancels() {
    let cfg = hivebus::ops::queue::QueueConfig {
        lease_ms: 300,
        backoff_base_ms: 10,
        ..config()
    };
    let q = start(cfg).await;
    let c = q.client().await;
    let id = submit(&c, task("work", "sdk", "normal")).await.unwrap()["task"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut w = Consumer::connect(&q.url, &["work"], 1).await.unwrap();
    assert_eq!(w.registration()["slots"], 1);
    let l = w.next_lease().await.unwrap();
    assert_eq!((l.task.as_str(), l.attempt), (id.as_str(), 1));
    // Five lease lengths later the lease still holds: the SDK heartbeats on its own.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let rec = show(&c, &id).await;
    assert_eq!(rec["state"], "leased", "{rec}");
    l.event("work", "half", Some(50)).await.unwrap();
    // Dropped without a result: abandoned at once, retried as attempt 2.
    drop(l);
    let l2 = w.next_lease().await.unwrap();
    assert_eq!((l2.task.as_str(), l2.attempt), (id.as_str(), 2));
    let rec = show(&c, &id).await;
    assert!(
        rec["history"].to_string().contains("dropped the lease"),
        "{rec}"
    );
    c.command("op.queue.cancel", json!({"task": id}))
        .await
        .unwrap();
    assert_eq!(l2.until_lost().await, LeaseLoss::Cancelled);
    assert_eq!(l2.lost(), Some(LeaseLoss::Cancelled));
    q.stop().await;
}
