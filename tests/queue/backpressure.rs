//! Backpressure: below soft accepted; between soft and hard accepted with position and
//! hint; at hard refused with `retry_after_ms`. Told in the reply to both the submit
//! command and a TASK frame.

use crate::harness::*;
use hivebus::frame::{Envelope, FrameType};
use hivebus::ops::queue::QueueConfig;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn each_threshold_gets_its_own_answer() {
    let q = start(QueueConfig {
        soft_limit: 2,
        hard_limit: 4,
        retry_after_ms: 750,
        ..config()
    })
    .await;
    let c = q.client().await;
    for i in 0..2 {
        let r = submit(&c, task("work", &format!("b{i}"), "normal"))
            .await
            .unwrap();
        assert_eq!(r["position"], i);
        assert!(r.get("hint").is_none(), "{r}");
    }
    for i in 2..4 {
        let r = submit(&c, task("work", &format!("b{i}"), "normal"))
            .await
            .unwrap();
        assert_eq!(
            (r["position"].as_u64(), r["backpressure"].as_str()),
            (Some(i), Some("soft"))
        );
        assert!(r["hint"].as_str().unwrap().contains("slow down"), "{r}");
    }
    let e = submit(&c, task("work", "b4", "normal")).await.unwrap_err();
    assert_eq!(e.code(), Some("overloaded"));
    let hivebus::client::ClientError::Server(w) = e else {
        unreachable!()
    };
    let d = w.details.unwrap();
    assert_eq!(
        (
            d["retry_after_ms"].as_u64(),
            d["depth"].as_u64(),
            d["hard"].as_u64()
        ),
        (Some(750), Some(4), Some(4))
    );
    // The same through a TASK frame on bip-43:work.
    let mut frame = Envelope::new(FrameType::Task, json!({"idempotencyKey": "b5"}));
    frame.room = Some("bip-43".into());
    frame.channel = Some("work".into());
    let e = c.request(frame).await.unwrap_err();
    assert_eq!(e.code(), Some("overloaded"));
    // Another kind has its own queue.
    let r = submit(&c, task("other", "b6", "normal")).await.unwrap();
    assert_eq!(r["position"], 0);
    // Draining below soft brings plain acceptance back.
    let mut w = q.consumer(&["work"], 3).await;
    for _ in 0..3 {
        next_lease(&mut w).await;
    }
    let r = submit(&c, task("work", "b7", "normal")).await.unwrap();
    assert!(r.get("hint").is_none(), "{r}");
    q.stop().await;
}

#[tokio::test(start_paused = true)]
async fn bad_submits_get_stable_codes() {
    let q = start(config()).await;
    let c = q.client().await;
    let cases = [
        (json!({"kind": "work", "bipId": 1}), "missing_field"),
        (
            json!({"kind": "Bad Kind", "bipId": 1, "idempotencyKey": "k"}),
            "invalid_field",
        ),
        (
            json!({"kind": "work", "bipId": "x", "idempotencyKey": "k"}),
            "invalid_field",
        ),
        (
            json!({"kind": "work", "bipId": 1, "idempotencyKey": "k", "max_attempts": 0}),
            "invalid_field",
        ),
        (
            json!({"kind": "work", "bipId": 1, "idempotencyKey": "k", "timeout": "soon"}),
            "invalid_field",
        ),
        (json!([1, 2]), "invalid_field"),
    ];
    for (body, code) in cases {
        let e = submit(&c, body.clone()).await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{body}");
    }
    let mut frame = Envelope::new(FrameType::Task, json!({"idempotencyKey": "k"}));
    frame.room = Some("general".into());
    frame.channel = Some("work".into());
    assert_eq!(
        c.request(frame).await.unwrap_err().code(),
        Some("invalid_field")
    );
    let e = c.command("op.queue.nope", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some("unknown_command"));
    let e = c
        .request(Envelope::new(FrameType::Result, json!({"status": "ok"})))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("missing_field"));
    q.stop().await;
}
