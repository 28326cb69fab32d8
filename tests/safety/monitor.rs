//! Must-show 2: monitor mode never alters or blocks; it counts and emits events.

use super::corpus::{leaks, secrets};
use super::harness::{config_with, reply_of, start};
use hivebus::safety::{Action, Mode, RuleConfig};
use serde_json::json;

#[tokio::test]
async fn monitor_mode_never_alters_or_blocks_but_counts_and_emits_events() {
    let mut config = config_with(Mode::Monitor);
    // Blocking rules and a size limit must not block in monitor mode either.
    config.safety.rules.push(RuleConfig {
        name: "private_key".into(),
        pattern: None,
        action: Some(Action::Block),
        keywords: vec![],
    });
    config.safety.max_payload_bytes = 200;
    let srv = start(config).await;
    let mut watcher = srv.hello("observer", None).await;
    watcher.join("safety:events").await;
    let mut sub = srv.hello("client", None).await;
    sub.join("corpus:monitor").await;
    let mut publ = srv.hello("client", None).await;
    publ.join("corpus:monitor").await;
    let corpus = secrets();
    for (i, s) in corpus.iter().enumerate() {
        let id = format!("m{i}");
        let r = publ.publish(&id, "corpus:monitor", s.payload.clone()).await;
        reply_of(&r, &id);
        let got = sub.recv().await;
        assert_eq!(
            got["payload"], s.payload,
            "{} altered in monitor mode",
            s.kind
        );
        let ev = watcher.recv().await;
        assert_eq!(ev["type"], "SYSTEM", "{ev}");
        assert_eq!(ev["room"], "safety");
        let p = &ev["payload"];
        assert_eq!(p["event"], "safety.decision");
        assert_eq!(p["decision"], "flagged", "{ev}");
        assert_eq!(p["mode"], "monitor");
        assert_eq!(p["address"], "corpus:monitor");
        assert_eq!(p["id"], id.as_str());
        assert!(!p["rules"].as_array().unwrap().is_empty());
        assert!(
            !leaks(&ev.to_string(), &s.secret),
            "the event carries the secret: {ev}"
        );
    }
    let h = sub
        .command(
            "h",
            "history",
            json!({"address": "corpus:monitor", "limit": 1000}),
        )
        .await;
    let msgs = reply_of(&h, "h")["messages"].as_array().unwrap().clone();
    for (m, s) in msgs.iter().zip(&corpus) {
        assert_eq!(m["payload"], s.payload);
    }
    let stats = srv.safety.stats();
    assert_eq!(stats.flagged, corpus.len() as u64);
    assert_eq!((stats.redacted, stats.blocked), (0, 0));
    assert!(stats.inspected >= corpus.len() as u64);
    srv.stop().await;
}

#[tokio::test]
async fn off_mode_inspects_nothing() {
    let srv = start(config_with(Mode::Off)).await;
    let mut p = srv.hello("client", None).await;
    p.join("a:b").await;
    let payload = json!({"text": "AKIAIOSFODNN7EXAMPLE"});
    reply_of(&p.publish("1", "a:b", payload.clone()).await, "1");
    let h = p.command("h", "history", json!({"address": "a:b"})).await;
    assert_eq!(reply_of(&h, "h")["messages"][0]["payload"], payload);
    assert_eq!(srv.safety.stats().inspected, 0);
    srv.stop().await;
}
