//! A repeated idempotencyKey with the same body returns the original task, before,
//! during and after its completion, and never runs it twice; with another body it is a
//! `conflict`; past the window it is a new task.

use crate::harness::*;
use hivebus::ops::queue::QueueConfig;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn resubmitting_a_key_returns_the_original_before_during_and_after_completion() {
    let q = start(config()).await;
    let c = q.client().await;
    let first = submit(&c, task("work", "same", "normal")).await.unwrap();
    assert_eq!(first["duplicate"], false);
    let id = first["task"].as_str().unwrap().to_owned();

    // The same key with another body is a mistake, reported with the original task.
    let e = submit(&c, task("work", "same", "critical"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("conflict"));
    let before = submit(&c, task("work", "same", "normal")).await.unwrap();
    assert_eq!(
        (
            before["task"].as_str(),
            &before["state"],
            &before["duplicate"]
        ),
        (Some(id.as_str()), &"queued".into(), &true.into())
    );

    let mut w = q.consumer(&["work"], 4).await;
    let lease = next_lease(&mut w).await;
    assert_eq!(task_id(&lease), id);
    let during = submit(&c, task("work", "same", "normal")).await.unwrap();
    assert_eq!(
        (during["task"].as_str(), during["state"].as_str()),
        (Some(id.as_str()), Some("leased"))
    );

    finish(&w, &lease, "ok").await.unwrap();
    let after = submit(&c, task("work", "same", "normal")).await.unwrap();
    assert_eq!(
        (after["task"].as_str(), after["state"].as_str()),
        (Some(id.as_str()), Some("succeeded"))
    );
    assert_eq!(after["result"]["status"], "ok");
    assert_eq!(after["result"]["summary"], "ok!");
    // It never ran twice: no second lease, one task in the queue.
    no_lease_within(&mut w, Duration::from_secs(60)).await;
    let stats = c
        .command("op.queue.stats", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(stats["counters"]["submitted"], 1);
    assert_eq!(stats["counters"]["duplicates"], 3);
    assert_eq!(stats["counters"]["leases"], 1);
    q.stop().await;
}

#[tokio::test]
async fn past_the_window_the_same_key_is_a_new_task() {
    let q = start(QueueConfig {
        idempotency_window_ms: 300,
        ..config()
    })
    .await;
    let c = q.client().await;
    let a = submit(&c, task("work", "k", "normal")).await.unwrap();
    let b = submit(&c, task("work", "k", "normal")).await.unwrap();
    assert_eq!(a["task"], b["task"]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let d = submit(&c, task("work", "k", "normal")).await.unwrap();
    assert_ne!(a["task"], d["task"]);
    assert_eq!(d["duplicate"], false);
    q.stop().await;
}

/// A TASK frame for `bip-43:<kind>` with `key`.
fn task_frame(kind: &str, key: &str) -> hivebus::frame::Envelope {
    let mut e = hivebus::frame::Envelope::new(
        hivebus::frame::FrameType::Task,
        serde_json::json!({"idempotencyKey": key, "args": {"k": key}}),
    );
    e.room = Some("bip-43".into());
    e.channel = Some(kind.into());
    e
}

#[tokio::test(start_paused = true)]
async fn finished_tasks_past_the_memory_bound_are_still_found_in_sqlite() {
    let q = start(QueueConfig {
        max_terminal_in_memory: 2,
        ..config()
    })
    .await;
    let c = q.client().await;
    // Pipelined TASK frames: each is answered once its commit is durable.
    let replies = futures_util::future::join_all(
        (0..5).map(|i| c.request(task_frame("work", &format!("m{i}")))),
    )
    .await;
    let ids: Vec<String> = replies
        .into_iter()
        .map(|r| r.unwrap()["task"].as_str().unwrap().to_owned())
        .collect();
    let mut w = q.consumer(&["work"], 5).await;
    for _ in 0..5 {
        let lease = next_lease(&mut w).await;
        finish(&w, &lease, "ok").await.unwrap();
    }
    let stats = c
        .command("op.queue.stats", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(stats["counters"]["succeeded"], 5);
    assert_eq!(
        stats["in_memory"], 2,
        "the oldest three left memory: {stats}"
    );
    // The first task left memory; `show` reads it back, result included.
    let first = show(&c, &ids[0]).await;
    assert_eq!(first["state"], "succeeded");
    assert_eq!(first["result"]["summary"], "ok!");
    // Its key still deduplicates, through a TASK frame as well.
    let again = c.request(task_frame("work", "m0")).await.unwrap();
    assert_eq!(
        (again["task"].as_str(), again["duplicate"].as_bool()),
        (Some(ids[0].as_str()), Some(true))
    );
    assert_eq!(again["state"], "succeeded");
    no_lease_within(&mut w, Duration::from_secs(60)).await;
    q.stop().await;
}

#[tokio::test]
async fn a_misspelt_submit_field_is_refused_not_dropped() {
    // `trace_id` for `traceId`: dropped silently, the task would run under another
    // trace than the one the submitter follows.
    let q = start(config()).await;
    let c = q.client().await;
    let mut body = task("build", "strict-1", "normal");
    body["trace_id"] = serde_json::json!("tr-mine");
    let e = submit(&c, body).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_field"), "{e}");
    assert!(e.to_string().contains("trace_id"), "{e}");
    // Nothing was accepted: the same key with the right field is a new task.
    let mut body = task("build", "strict-1", "normal");
    body["traceId"] = serde_json::json!("tr-mine");
    let r = submit(&c, body).await.unwrap();
    assert_eq!(
        (r["duplicate"].as_bool(), r["traceId"].as_str()),
        (Some(false), Some("tr-mine"))
    );
    q.stop().await;
}
