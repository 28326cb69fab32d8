//! Limits: the per-session inbound rate limit and the subscription cap.

use super::harness::{assert_error, start};
use hivebus::Config;
use serde_json::json;

#[tokio::test]
async fn flooding_past_the_rate_limit_gets_rate_limited_then_close_4029() {
    let mut c = Config::default();
    c.limits.frames_per_sec = 5.0;
    c.limits.burst = 5;
    c.limits.max_refusals = 10;
    let srv = start(c).await;
    let mut s = srv.hello("client", None).await;
    for i in 0..5 {
        s.send(json!({"id": format!("ok{i}"), "type": "HEARTBEAT"}))
            .await;
        assert_eq!(s.recv().await["type"], "REPLY");
    }
    s.send(json!({"id": "over", "type": "HEARTBEAT"})).await;
    let e = s.recv().await;
    assert_error(&e, "rate_limited", Some("over"));
    assert!(e["payload"]["details"]["retry_after_ms"].as_u64().unwrap() >= 1);
    for i in 0..20 {
        s.send(json!({"id": format!("flood{i}"), "type": "HEARTBEAT"}))
            .await;
    }
    assert_eq!(s.closed_with().await, 4029);
    srv.stop().await;
}

#[tokio::test]
async fn a_session_that_slows_down_is_served_again() {
    let mut c = Config::default();
    c.limits.frames_per_sec = 50.0;
    c.limits.burst = 1;
    let srv = start(c).await;
    let mut s = srv.hello("client", None).await;
    s.send(json!({"id": "a", "type": "HEARTBEAT"})).await;
    assert_eq!(s.recv().await["type"], "REPLY");
    s.send(json!({"id": "b", "type": "HEARTBEAT"})).await;
    assert_error(&s.recv().await, "rate_limited", Some("b"));
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    s.send(json!({"id": "c", "type": "HEARTBEAT"})).await;
    assert_eq!(s.recv().await["type"], "REPLY");
    srv.stop().await;
}

#[tokio::test]
async fn joining_past_max_subscriptions_is_refused_with_too_many_subscriptions() {
    let mut c = Config::default();
    c.bus.max_subscriptions = 2;
    let srv = start(c).await;
    let mut s = srv.hello("client", None).await;
    s.join("a:one").await;
    s.join("a:two").await;
    let r = s.command("j3", "join", json!({"address": "a:three"})).await;
    assert_error(&r, "too_many_subscriptions", Some("j3"));
    srv.stop().await;
}
