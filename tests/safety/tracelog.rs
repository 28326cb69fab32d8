//! Must-show 1, the third place: the queue's trace logs. A task whose args, progress
//! EVENTs and RESULT carry every corpus secret runs through the assembled broker
//! (`hivebus::broker`: safety in enforce mode, the queue writing `.hive/logs/`), and no
//! part of any secret reaches the log files.

use super::corpus::{leaks, secrets};
use super::harness::config_with;
use hivebus::broker::{self, BrokerOptions};
use hivebus::client::{Client, Hello};
use hivebus::frame::{Envelope, FrameType};
use hivebus::safety::Mode;
use hivebus::server::port::{self, Want};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A consumer frame about `lease` with `payload`, on the task's channel and trace.
fn about(lease: &Envelope, kind: FrameType, mut payload: Value) -> Envelope {
    payload["task"] = lease.payload["task"].clone();
    payload["lease"] = lease.payload["lease"].clone();
    let mut e = Envelope::new(kind, payload);
    e.room = lease.room.clone();
    e.channel = lease.channel.clone();
    e.trace_id = lease.trace_id.clone();
    e
}

fn payloads_again(corpus: &[super::corpus::Secret]) -> Vec<Value> {
    corpus.iter().map(|s| s.payload.clone()).collect()
}

#[tokio::test]
async fn no_corpus_secret_reaches_the_queue_trace_logs() {
    let dir = std::env::temp_dir().join(format!("hivebus-tracelog-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = BrokerOptions {
        host: [127, 0, 0, 1].into(),
        want: Want::Exactly(0),
        dir: dir.clone(),
        config: config_with(Mode::Enforce),
        config_path: None,
    };
    let broker = tokio::spawn(broker::run(opts, async {
        let _ = stop_rx.await;
    }));
    let mut port = None;
    for _ in 0..400 {
        if let Ok(p) = port::read_port_file(&port::port_file(&dir)) {
            port = Some(p);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let url = format!(
        "ws://127.0.0.1:{}/",
        port.expect("the broker wrote its port file")
    );
    let client = Client::connect(&url, Hello::role("client")).await.unwrap();
    let mut hello = Hello::role("consumer");
    hello.capabilities = vec!["implement_bip".into()];
    hello.slots = Some(1);
    let mut consumer = Client::connect(&url, hello).await.unwrap();
    consumer
        .command("op.queue.consume", json!({}))
        .await
        .unwrap();

    let corpus = secrets();
    let payloads: Vec<Value> = corpus.iter().map(|s| s.payload.clone()).collect();
    let submitted = client
        .command(
            "op.queue.submit",
            json!({"kind": "implement_bip", "bipId": 43, "idempotencyKey": "leaky",
                   "args": {"payloads": payloads}}),
        )
        .await
        .unwrap();
    let lease = loop {
        let e = consumer.next_event_within(WAIT).await.unwrap();
        if e.kind == FrameType::Task && e.payload.get("lease").is_some() {
            break e;
        }
    };
    // Each secret travels in its realistic context (the corpus payload), as in the
    // subscriber and history checks: a bare value with no context (a lone password)
    // is not something any redactor can recognise (docs/SECURITY.md).
    for s in &corpus {
        let event = json!({"stage": "run", "message": s.kind, "detail": s.payload});
        consumer
            .request(about(&lease, FrameType::Event, event))
            .await
            .unwrap();
    }
    let result = json!({"status": "ok", "summary": "done", "artifacts": payloads_again(&corpus)});
    consumer
        .request(about(&lease, FrameType::Result, result))
        .await
        .unwrap();
    let task = submitted["task"].as_str().unwrap().to_owned();
    let shown = client
        .command("op.queue.show", json!({"task": task}))
        .await
        .unwrap();
    assert_eq!(shown["state"], "succeeded", "{shown}");
    client.close().await;
    consumer.close().await;
    let _ = stop_tx.send(());
    broker.await.unwrap().unwrap();

    let mut logs = String::new();
    for entry in std::fs::read_dir(dir.join(".hive").join("logs")).unwrap() {
        logs.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let lines = logs.lines().count();
    assert!(
        lines >= corpus.len() + 2,
        "the trace log holds the task's stream: {lines} lines"
    );
    let leaked: Vec<&str> = corpus
        .iter()
        .filter(|s| leaks(&logs, &s.secret))
        .map(|s| s.kind.as_str())
        .collect();
    println!(
        "trace logs: {} of {} secrets redacted ({lines} ndjson lines)",
        corpus.len() - leaked.len(),
        corpus.len()
    );
    assert!(leaked.is_empty(), "secrets in the trace logs: {leaked:?}");
    let _ = std::fs::remove_dir_all(dir);
}
