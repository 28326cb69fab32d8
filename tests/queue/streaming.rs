//! The task stream: published on `bip-<id>:<kind>` with the task's traceId (so bots in
//! the BIP room see it), stored and replayable from the start, and logged as ndjson.
//! Also: approvals round-trip between the consumer and an approver, and a restarted
//! queue recovers its tasks.

use crate::harness::*;
use hivebus::frame::{Envelope, FrameType};
use serde_json::{json, Value};

#[tokio::test(start_paused = true)]
async fn a_bot_in_the_room_sees_the_whole_stream_and_a_late_reader_replays_it() {
    let q = start(config()).await;
    let mut bot = q.client().await;
    bot.join("bip-43:*").await.unwrap();
    let c = q.client().await;
    let sub = submit(&c, task("review_bip", "r1", "core")).await.unwrap();
    let (id, trace) = (
        sub["task"].as_str().unwrap().to_owned(),
        sub["traceId"].as_str().unwrap().to_owned(),
    );
    let mut w = q.consumer(&["review_bip"], 1).await;
    let l = next_lease(&mut w).await;
    w.request(about(
        &l,
        FrameType::Event,
        json!({"stage": "read", "message": "reading", "pct": 30}),
    ))
    .await
    .unwrap();
    // The consumer asks for an approval; a human decides; the consumer is told.
    let r = w
        .request(about(
            &l,
            FrameType::Approval,
            json!({"action": "git push", "reason": "publish", "suggestedCommand": "git push"}),
        ))
        .await
        .unwrap();
    assert_eq!(r["state"], "waiting_approval");
    assert_eq!(show(&c, &id).await["state"], "waiting_approval");
    let mut decision = Envelope::new(
        FrameType::Approval,
        json!({"task": id, "decision": "approve", "scope": "once"}),
    );
    decision.room = Some("bip-43".into());
    decision.channel = Some("review_bip".into());
    c.request(decision).await.unwrap();
    loop {
        let e = w.next_event_within(WAIT).await.unwrap();
        if e.kind == FrameType::Approval {
            assert_eq!(
                (e.payload["decision"].as_str(), e.payload["lease"].as_str()),
                (Some("approve"), l.payload["lease"].as_str())
            );
            break;
        }
    }
    finish(&w, &l, "ok").await.unwrap();

    let mut live = Vec::new();
    loop {
        let e = bot.next_event_within(WAIT).await.unwrap();
        assert_eq!(
            e.trace_id.as_deref(),
            Some(trace.as_str()),
            "{}",
            e.to_text()
        );
        let done = e.kind == FrameType::Result;
        live.push(e);
        if done {
            break;
        }
    }
    let kinds: Vec<&str> = live.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["TASK", "EVENT", "EVENT", "APPROVAL", "APPROVAL", "RESULT"]
    );
    assert_eq!(live[2].payload["pct"], 30);
    assert!(
        live[2].payload.get("lease").is_none(),
        "lease ids stay private"
    );
    assert_eq!(live[5].payload["state"], "succeeded");

    // A late reader replays everything from the start, identical to what was live.
    let page = c
        .command("op.queue.stream", json!({"trace": trace}))
        .await
        .unwrap();
    let stored: Vec<Envelope> = page["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_value(f["frame"].clone()).unwrap())
        .collect();
    assert_eq!(stored, live);
    let tail = c
        .command("op.queue.stream", json!({"task": id, "after": 4}))
        .await
        .unwrap();
    assert_eq!(tail["frames"].as_array().unwrap().len(), 2);

    // The ndjson trace log holds the same frames (written by a background thread).
    // Named from the task id, not the submitter's trace id.
    let path = q.dir.join("logs").join(format!("{id}.ndjson"));
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() == live.len() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let logged: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), live.len());
    assert_eq!(logged[5]["type"], "RESULT");
    q.stop().await;
}

#[tokio::test]
async fn a_restarted_queue_recovers_queued_and_running_tasks() {
    let dir = temp_dir("recover");
    let q = start_in(config(), dir.clone()).await;
    let c = q.client().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            submit(&c, task("work", &format!("r{i}"), "normal"))
                .await
                .unwrap()["task"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut w = q.consumer(&["work"], 1).await;
    let running = task_id(&next_lease(&mut w).await);
    drop(w);
    drop(c);
    q.stop().await;

    let q = start_in(config(), dir).await;
    let c = q.client().await;
    let shown = show(&c, &running).await;
    assert_eq!(
        shown["state"], "queued",
        "the running attempt ended with the broker"
    );
    let mut w = q.consumer(&["work"], 3).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let l = next_lease(&mut w).await;
        seen.push(task_id(&l));
        finish(&w, &l, "ok").await.unwrap();
    }
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    q.stop().await;
}
