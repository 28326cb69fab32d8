//! The `hive:telemetry` stream as a subscriber sees it, over real connections: consumer,
//! task and approval activity and periodic stats, the rate bound on activity frames,
//! and the approval-wait histogram the same observer fills.

use crate::harness::*;
use crate::http::{poll_metrics, sample, start_queue};
use hivebus::client::{Client, Hello};
use hivebus::consumer::Consumer;
use hivebus::server::{ServerConfig, TelemetryConfig};
use serde_json::{json, Value};

#[tokio::test]
async fn telemetry_frames_reach_a_subscriber_of_hive_telemetry() {
    let server = ServerConfig {
        telemetry: TelemetryConfig {
            interval_ms: 1_000,
            ..TelemetryConfig::default()
        },
        ..ServerConfig::default()
    };
    let srv = start_queue(server).await;
    let mut watcher = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    watcher.set_timeout(WAIT);
    watcher.join("hive:telemetry").await.unwrap();
    let mut consumer = Consumer::connect(&srv.url(), &["lint"], 1).await.unwrap();
    let c = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    c.command(
        "op.queue.submit",
        json!({"kind": "lint", "bipId": 7, "idempotencyKey": "l-1", "args": {}}),
    )
    .await
    .unwrap();
    let lease = tokio::time::timeout(WAIT, consumer.next_lease())
        .await
        .unwrap()
        .unwrap();
    lease.complete("clean", None).await.unwrap();
    let session = consumer.session().to_owned();
    consumer.close().await;
    let mut seen: Vec<Value> = Vec::new();
    let want = [
        "consumer_joined",
        "task_leased",
        "task_finished",
        "consumer_left",
        "stats",
    ];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !want.iter().all(|w| seen.iter().any(|p| p["event"] == *w)) {
        assert!(tokio::time::Instant::now() < deadline, "saw only {seen:?}");
        let f = watcher.next_event_within(WAIT).await.unwrap();
        assert_eq!(f.kind.as_str(), "EVENT", "{f:?}");
        assert_eq!(
            (f.room.as_deref(), f.channel.as_deref()),
            (Some("hive"), Some("telemetry"))
        );
        seen.push(f.payload);
    }
    let of = |e: &str| seen.iter().find(|p| p["event"] == e).unwrap().clone();
    assert_eq!(of("consumer_joined")["session"], session);
    assert_eq!(of("consumer_joined")["capabilities"], json!(["lint"]));
    assert_eq!(of("task_leased")["kind"], "lint");
    assert_eq!(of("task_finished")["state"], "succeeded");
    let stats = of("stats");
    assert!(stats["connections"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["queue"]["states"].is_object(), "{stats}");
    srv.stop().await;
}

#[tokio::test]
async fn activity_frames_beyond_the_rate_bound_are_skipped_and_counted() {
    let server = ServerConfig {
        telemetry: TelemetryConfig {
            max_events_per_sec: 2,
            ..TelemetryConfig::default()
        },
        ..ServerConfig::default()
    };
    let srv = start_queue(server).await;
    let mut watcher = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    watcher.set_timeout(WAIT);
    watcher.join("hive:telemetry").await.unwrap();
    // Ten consumers join at once: ten activity frames asked for, two tokens.
    let mut consumers = Vec::new();
    for _ in 0..10 {
        consumers.push(Consumer::connect(&srv.url(), &["x"], 1).await.unwrap());
    }
    let m = poll_metrics(srv.addr, |m| {
        sample(m, "hivebus_telemetry_dropped_total").is_some_and(|n| n >= 7.0)
    })
    .await;
    let dropped = sample(&m, "hivebus_telemetry_dropped_total").unwrap();
    assert!((7.0..=8.0).contains(&dropped), "{dropped}\n{m}");
    let mut joined = 0;
    while let Ok(f) = watcher
        .next_event_within(std::time::Duration::from_millis(300))
        .await
    {
        joined += usize::from(f.payload["event"] == "consumer_joined");
    }
    assert!((2..=3).contains(&joined), "{joined}");
    for c in consumers {
        c.close().await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_approval_asked_and_decided_is_on_the_stream_and_in_the_wait_histogram() {
    let srv = start_queue(ServerConfig::default()).await;
    let mut watcher = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    watcher.set_timeout(WAIT);
    watcher.join("hive:telemetry").await.unwrap();
    let mut consumer = Consumer::connect(&srv.url(), &["deploy"], 1).await.unwrap();
    let mut c = Client::connect(&srv.url(), Hello::role("client"))
        .await
        .unwrap();
    c.set_timeout(WAIT);
    let task = c
        .command(
            "op.queue.submit",
            json!({"kind": "deploy", "bipId": 9, "idempotencyKey": "d-1", "args": {}}),
        )
        .await
        .unwrap();
    let id = task["task"].as_str().unwrap().to_owned();
    let lease = tokio::time::timeout(WAIT, consumer.next_lease())
        .await
        .unwrap()
        .unwrap();
    let asking = tokio::spawn(async move {
        let d = lease
            .ask(json!({"command": "make deploy", "reason": "ship it"}))
            .await
            .unwrap();
        (lease, d)
    });
    // Decided once the request is pending (the stream says so first).
    let mut seen: Vec<Value> = Vec::new();
    while !seen.iter().any(|p| p["event"] == "approval_asked") {
        seen.push(watcher.next_event_within(WAIT).await.unwrap().payload);
    }
    c.command(
        "op.queue.approve",
        json!({"task": id, "decision": "approve"}),
    )
    .await
    .unwrap();
    let (lease, decision) = asking.await.unwrap();
    assert_eq!(decision.unwrap()["decision"], "approve");
    lease.complete("deployed", None).await.unwrap();
    while !seen.iter().any(|p| p["event"] == "approval_decided") {
        seen.push(watcher.next_event_within(WAIT).await.unwrap().payload);
    }
    let asked = seen
        .iter()
        .find(|p| p["event"] == "approval_asked")
        .unwrap();
    assert_eq!(
        (asked["task"].as_str(), asked["command"].as_str()),
        (Some(id.as_str()), Some("make deploy"))
    );
    let decided = seen
        .iter()
        .find(|p| p["event"] == "approval_decided")
        .unwrap();
    assert_eq!(decided["decision"], "approve");
    let m = poll_metrics(srv.addr, |m| {
        sample(m, "hivebus_approval_wait_seconds_count") == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&m, "hivebus_approval_wait_seconds_count"),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "hivebus_queue_approvals_pending"),
        Some(0.0),
        "{m}"
    );
    consumer.close().await;
    srv.stop().await;
}
