//! Publishing, fan-out, wildcards, private messages, embedding and slow consumers.

use crate::harness::*;
use hivebus::bus::SlowConsumer;
use hivebus::{Address, Config, Envelope, FrameType, Pattern, PeerInfo};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_publish_reaches_every_subscriber_but_not_the_sender_unless_echo() {
    let srv = start(Config::default()).await;
    let mut p = srv.client("client").await;
    let mut s1 = srv.client("client").await;
    let mut s2 = srv.client("client").await;
    for c in [&p, &s1, &s2] {
        c.join("bip-43:general").await.unwrap();
    }
    let pos = p
        .publish("bip-43:general", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(pos.offset, 1);
    for s in [&mut s1, &mut s2] {
        let m = s.next_event_within(WAIT).await.unwrap();
        assert_eq!(m.kind, FrameType::Message);
        assert_eq!(m.payload["text"], "hi");
        assert_eq!(m.from.as_deref(), Some(p.session()));
        assert_eq!(
            (m.room.as_deref(), m.channel.as_deref()),
            (Some("bip-43"), Some("general"))
        );
        assert_eq!(m.offset, Some(1));
        assert_eq!(m.epoch.as_deref(), Some(pos.epoch.as_str()));
        assert!(m.ts.is_some());
    }
    assert!(
        p.next_event_within(Duration::from_millis(200))
            .await
            .is_err(),
        "sender excluded"
    );
    let mut env = Envelope::new(FrameType::Message, json!({"text": "me too"}));
    env.room = Some("bip-43:general".into()); // room:channel in `room` works as well
    env.echo = Some(true);
    p.request(env).await.unwrap();
    let m = p.next_event_within(WAIT).await.unwrap();
    assert_eq!(m.payload["text"], "me too");
    assert_eq!(m.offset, Some(2));
    srv.stop().await;
}

#[tokio::test]
async fn offsets_are_consecutive_and_each_subscriber_sees_them_in_order() {
    let srv = start(Config::default()).await;
    let a = srv.client("client").await;
    let b = srv.client("client").await;
    let mut s = srv.client("client").await;
    for c in [&a, &b, &s] {
        c.join("r:order").await.unwrap();
    }
    let (ra, rb) = tokio::join!(
        async {
            for n in 0..50 {
                a.publish_nowait("r:order", json!({"a": n})).await.unwrap();
            }
        },
        async {
            for n in 0..50 {
                b.publish_nowait("r:order", json!({"b": n})).await.unwrap();
            }
        }
    );
    let _ = (ra, rb);
    let mut offsets = Vec::new();
    let (mut last_a, mut last_b) = (-1i64, -1i64);
    while offsets.len() < 100 {
        let m = s.next_event_within(WAIT).await.unwrap();
        offsets.push(m.offset.unwrap());
        if let Some(n) = m.payload["a"].as_i64() {
            assert_eq!(n, last_a + 1);
            last_a = n;
        }
        if let Some(n) = m.payload["b"].as_i64() {
            assert_eq!(n, last_b + 1);
            last_b = n;
        }
    }
    assert_eq!(offsets, (1..=100).collect::<Vec<u64>>());
    srv.stop().await;
}

#[tokio::test]
async fn wildcard_subscriptions_cover_channels_created_later_and_deliver_once() {
    let srv = start(Config::default()).await;
    let mut watcher = srv.client("observer").await;
    let p = srv.client("client").await;
    watcher.join("bip-43:*").await.unwrap();
    watcher.join("bip-*:review_*").await.unwrap();
    watcher.join("teams.*").await.unwrap();
    // Both wildcards cover this channel, which did not exist when they were joined.
    p.join("bip-43:review_bip").await.unwrap();
    p.publish("bip-43:review_bip", json!({"x": 1}))
        .await
        .unwrap();
    p.join("teams.dev:general").await.unwrap();
    p.publish("teams.dev:general", json!({"x": 2}))
        .await
        .unwrap();
    p.join("bip-44:implement_bip").await.unwrap();
    p.publish("bip-44:implement_bip", json!({"x": 3}))
        .await
        .unwrap();
    let first = watcher.next_event_within(WAIT).await.unwrap();
    assert_eq!(first.payload["x"], 1);
    let second = watcher.next_event_within(WAIT).await.unwrap();
    assert_eq!(
        second.payload["x"], 2,
        "delivered once despite two covering wildcards"
    );
    assert!(watcher
        .next_event_within(Duration::from_millis(200))
        .await
        .is_err());
    // Publishing through a wildcard subscription needs no exact join (and observers
    // may not publish at all: docs/ROLES.md).
    let writer = srv.client("client").await;
    writer.join("bip-43:*").await.unwrap();
    writer
        .publish("bip-43:vote_bip", json!({"x": 4}))
        .await
        .unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn private_messages_reach_only_the_named_sessions() {
    let srv = start(Config::default()).await;
    let a = srv.client("client").await;
    let mut b = srv.client("client").await;
    let mut c = srv.client("client").await;
    let mut env = Envelope::new(
        FrameType::Private,
        json!({"to": [b.session(), "s-nobody"], "text": "psst"}),
    );
    env.id = Some("pm1".into());
    let r = a.request(env).await.unwrap();
    assert_eq!(r["delivered"], 1);
    assert_eq!(r["missing"], json!(["s-nobody"]));
    let m = b.next_event_within(WAIT).await.unwrap();
    assert_eq!(m.kind, FrameType::Private);
    assert_eq!(m.payload["text"], "psst");
    assert_eq!(m.from.as_deref(), Some(a.session()));
    assert!(c
        .next_event_within(Duration::from_millis(200))
        .await
        .is_err());
    let env = Envelope::new(FrameType::Private, json!({"to": ["s-nobody"]}));
    let e = a.request(env).await.unwrap_err();
    assert_eq!(e.code(), Some("unknown_session"));
    srv.stop().await;
}

#[tokio::test]
async fn an_embedded_agent_and_a_websocket_client_share_channels() {
    let srv = start(Config::default()).await;
    let (agent, mut inbox) = srv.bus.connect(PeerInfo {
        role: "observer".into(),
        ..Default::default()
    });
    agent
        .join(&Pattern::parse("bip-43:*").unwrap(), &Default::default())
        .unwrap();
    let mut ws = srv.client("client").await;
    ws.join("bip-43:general").await.unwrap();
    ws.publish("bip-43:general", json!({"from": "ws"}))
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.envelope().payload["from"], "ws");
    let addr = Address::parse("bip-43:general").unwrap();
    agent
        .publish(
            &addr,
            Envelope::new(FrameType::Message, json!({"from": "agent"})),
            false,
        )
        .unwrap();
    let m = ws.next_event_within(WAIT).await.unwrap();
    assert_eq!(m.payload["from"], "agent");
    assert_eq!(m.from.as_deref(), Some(agent.id()));
    let info = srv.bus.channel_info(&addr).unwrap();
    assert!(info
        .participants
        .iter()
        .any(|p| p.session == agent.id() && p.info.role == "observer"));
    drop(agent);
    let info = srv.bus.channel_info(&addr).unwrap();
    assert_eq!(
        info.participants.len(),
        1,
        "a dropped member leaves every channel"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_closed_as_a_slow_consumer() {
    let mut config = Config::default();
    config.bus.outbound_queue = 8;
    let srv = start(config).await;
    let mut slow = srv.raw_hello("client").await;
    let j = slow
        .command("j", "join", json!({"address": "r:firehose"}))
        .await;
    reply_of(&j, "j");
    let p = srv.client("client").await;
    p.join("r:firehose").await.unwrap();
    let big = "x".repeat(32 * 1024);
    // The slow socket never reads: kernel buffers fill, then its 8-frame queue.
    for _ in 0..2000 {
        p.publish_nowait("r:firehose", json!({"pad": big}))
            .await
            .unwrap();
        if srv.bus.stats().dropped > 0 {
            break;
        }
    }
    assert!(
        srv.bus.stats().dropped > 0,
        "the queue should have overflowed"
    );
    // Read right away: the close frame sits behind what the socket already holds, and
    // the server gives a full socket CLOSE_WRITE_TIMEOUT to drain.
    assert_eq!(slow.closed_with().await, 4008);
    // The publisher is unaffected.
    p.publish("r:firehose", json!({"after": true}))
        .await
        .unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn under_the_drop_policy_a_lagging_session_is_told_where_to_recover_from() {
    let config = hivebus::bus::BusConfig {
        outbound_queue: 2,
        slow_consumer: SlowConsumer::Drop,
        ..Default::default()
    };
    let bus = hivebus::Bus::new(config).unwrap();
    let (m, mut inbox) = bus.connect(PeerInfo::default());
    let addr = Address::parse("r:lag").unwrap();
    m.join(&Pattern::Exact(addr.clone()), &Default::default())
        .unwrap();
    for n in 1..=5 {
        bus.publish(&addr, Envelope::new(FrameType::Message, json!(n)))
            .unwrap();
    }
    assert_eq!(inbox.try_recv().unwrap().envelope().offset, Some(1));
    assert_eq!(inbox.try_recv().unwrap().envelope().offset, Some(2));
    assert!(inbox.try_recv().is_none());
    let lag = inbox.take_lag().unwrap();
    assert_eq!(lag.dropped, 3);
    assert_eq!(lag.first_missed.get("r:lag"), Some(&3));
    assert!(inbox.take_lag().is_none());
    assert!(!inbox.is_kicked());
    assert_eq!(bus.stats().dropped, 3);
}

#[tokio::test]
async fn a_lagging_websocket_session_gets_a_lagged_system_notice() {
    let mut config = Config::default();
    config.bus.outbound_queue = 4;
    config.bus.slow_consumer = SlowConsumer::Drop;
    // The reader stalls until the publisher is done; on a loaded machine a debug
    // build can take longer than the default 10 s to get there, and this test is
    // about the notice, not the write timeout.
    config.server.write_timeout_ms = 120_000;
    let srv = start(config).await;
    let mut slow = srv.raw_hello("client").await;
    reply_of(
        &slow.command("j", "join", json!({"address": "r:lag"})).await,
        "j",
    );
    let p = srv.client("client").await;
    p.join("r:lag").await.unwrap();
    let big = "y".repeat(32 * 1024);
    for _ in 0..2000 {
        p.publish_nowait("r:lag", json!({"pad": big}))
            .await
            .unwrap();
        if srv.bus.stats().dropped > 0 {
            break;
        }
    }
    p.publish("r:lag", json!({"sync": true})).await.unwrap();
    assert!(srv.bus.stats().dropped > 0);
    // Now read everything: the notice comes after the queued frames.
    loop {
        let f = slow.recv().await;
        if f["type"] == "SYSTEM" {
            assert_eq!(f["payload"]["event"], "lagged");
            assert!(f["payload"]["dropped"].as_u64().unwrap() > 0);
            assert!(f["payload"]["first_missed"]["r:lag"].as_u64().unwrap() > 1);
            break;
        }
        assert_eq!(f["type"], "MESSAGE");
    }
    srv.stop().await;
}
