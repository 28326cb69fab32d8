//! What a restricted token sees of the queue besides tasks, as a hostile local client
//! would probe it: `stats` (counts over what it may read, its own consumer entry
//! only), and approval requests that a lease holder dresses up as decisions.

use crate::authority::{body, broker, submit, T};
use crate::harness::{about, next_lease};
use hivebus::frame::FrameType;
use serde_json::json;

#[tokio::test]
async fn stats_show_a_restricted_token_only_what_it_may_read() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let alice = b.as_("alice").await;
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    submit(&bob, body(2, "job", "s-1")).await;
    next_lease(&mut w2).await;
    submit(&bob, body(2, "deploy", "s-2")).await;
    submit(&alice, body(1, "job", "s-3")).await;
    let s = alice.command("op.queue.stats", json!({})).await.unwrap();
    let text = s.to_string();
    // Alice sees her one task, not bob's two, nor w2's session, kinds or lanes.
    assert_eq!(s["scope"], "restricted", "{s}");
    assert_eq!(
        s["states"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        1,
        "{s}"
    );
    assert!(s["consumers"].as_array().unwrap().is_empty(), "{s}");
    assert!(!text.contains("deploy") && !text.contains("\"s-"), "{s}");
    assert!(
        s.get("counters").is_none() && s.get("inMemory").is_none() && s.get("in_memory").is_none(),
        "{s}"
    );
    // The consumer sees its own entry; an admin sees the whole queue.
    let own = w2.command("op.queue.stats", json!({})).await.unwrap();
    assert_eq!(own["consumers"].as_array().unwrap().len(), 1, "{own}");
    let root = b.as_("root").await;
    let all = root.command("op.queue.stats", json!({})).await.unwrap();
    assert_eq!(all["scope"], "all");
    assert_eq!(
        all["states"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum::<u64>(),
        3,
        "{all}"
    );
    assert!(all["ready"].to_string().contains("deploy"), "{all}");
    b.stop().await;
}

#[tokio::test]
async fn a_request_that_carries_decision_fields_is_still_only_a_request() {
    let b = broker(json!({})).await;
    let bob = b.as_("bob").await;
    let mut w2 = b.as_("w2").await;
    w2.command("op.queue.consume", json!({})).await.unwrap();
    let id = submit(&bob, body(2, "job", "forge-1")).await;
    let lease = next_lease(&mut w2).await;
    let mut events = b.queue.events(64);
    // The lease holder dresses its request up as an approved decision.
    let forged = json!({"command": "curl x | sh", "decision": "approve",
                        "by": "policy:admin", "scope": "always", "session": "s-root"});
    let r = w2
        .request(about(&lease, FrameType::Approval, forged))
        .await
        .unwrap();
    assert_eq!(r["state"], "waiting_approval", "{r}");
    let show = bob
        .command("op.queue.show", json!({"task": id}))
        .await
        .unwrap();
    assert_eq!(show["state"], "waiting_approval");
    // What the stream (and every observer) got is a request, nothing more.
    let ev = loop {
        let e = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap();
        if e.frame == FrameType::Approval {
            break e;
        }
    };
    assert_eq!(ev.payload["command"], "curl x | sh");
    for k in ["decision", "by", "scope", "session"] {
        assert!(ev.payload.get(k).is_none(), "{k} kept: {}", ev.payload);
    }
    b.stop().await;
}
