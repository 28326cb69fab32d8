//! History and recovery: a reconnecting subscriber gets exactly what it missed, or is
//! told that it cannot.

use crate::harness::*;
use hivebus::bus::Position;
use hivebus::Config;
use serde_json::{json, Value};

fn payload_ns(reply: &Value) -> Vec<i64> {
    reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"]["n"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_reconnecting_subscriber_recovers_exactly_what_it_missed() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    p.join("bip-43:general").await.unwrap();
    let mut s = srv.client("client").await;
    s.join("bip-43:general").await.unwrap();
    let mut last = None;
    for n in 1..=3 {
        p.publish("bip-43:general", json!({"n": n})).await.unwrap();
        let m = s.next_event_within(WAIT).await.unwrap();
        last = Some(Position {
            offset: m.offset.unwrap(),
            epoch: m.epoch.unwrap(),
        });
    }
    s.close().await;
    for n in 4..=7 {
        p.publish("bip-43:general", json!({"n": n})).await.unwrap();
    }
    let mut s = srv.client("client").await;
    let r = s
        .join_recover("bip-43:general", &last.unwrap())
        .await
        .unwrap();
    assert_eq!(r["recovered"], true, "{r}");
    assert_eq!(payload_ns(&r), vec![4, 5, 6, 7]);
    assert_eq!(r["recovery"][0]["offset"], 7);
    // Live traffic continues right after the recovered range, without gap or repeat.
    p.publish("bip-43:general", json!({"n": 8})).await.unwrap();
    let m = s.next_event_within(WAIT).await.unwrap();
    assert_eq!((m.offset, m.payload["n"].as_i64()), (Some(8), Some(8)));
    srv.stop().await;
}

#[tokio::test]
async fn recovery_from_another_epoch_is_refused_as_not_recovered() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    p.join("r:c").await.unwrap();
    p.publish("r:c", json!({"n": 1})).await.unwrap();
    let s = srv.client("client").await;
    let stale = Position {
        offset: 1,
        epoch: "e-00000000".into(),
    };
    let r = s.join_recover("r:c", &stale).await.unwrap();
    assert_eq!(r["recovered"], false);
    assert!(
        payload_ns(&r).is_empty(),
        "offsets of another epoch mean nothing"
    );
    assert_ne!(r["recovery"][0]["epoch"], "e-00000000");
    srv.stop().await;
}

#[tokio::test]
async fn recovery_after_eviction_is_not_recovered_and_returns_only_what_is_left() {
    let mut config = Config::default();
    config.bus.history_size = 3;
    let srv = start(config).await;
    let p = srv.client("client").await;
    let j = p.join("r:small").await.unwrap();
    let start = Position {
        offset: 0,
        epoch: j["channels"][0]["epoch"].as_str().unwrap().to_owned(),
    };
    for n in 1..=6 {
        p.publish("r:small", json!({"n": n})).await.unwrap();
    }
    let s = srv.client("client").await;
    let r = s.join_recover("r:small", &start).await.unwrap();
    assert_eq!(r["recovered"], false, "offsets 1..3 were evicted");
    assert_eq!(payload_ns(&r), vec![4, 5, 6]);
    let h = s
        .command("history", json!({"address": "r:small", "since": 0}))
        .await
        .unwrap();
    assert_eq!(h["complete"], false);
    let from_3 = Position {
        offset: 3,
        epoch: start.epoch.clone(),
    };
    let r = s.join_recover("r:small", &from_3).await.unwrap();
    assert_eq!(r["recovered"], true);
    assert_eq!(payload_ns(&r), vec![4, 5, 6]);
    srv.stop().await;
}

#[tokio::test]
async fn a_position_ahead_of_the_channel_is_not_recovered() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    let j = p.join("r:c").await.unwrap();
    let ahead = Position {
        offset: 99,
        epoch: j["channels"][0]["epoch"].as_str().unwrap().to_owned(),
    };
    let r = p.join_recover("r:c", &ahead).await.unwrap();
    assert_eq!(r["recovered"], false);
    srv.stop().await;
}

#[tokio::test]
async fn a_wildcard_join_recovers_each_named_channel() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    p.join("bip-43:a").await.unwrap();
    p.join("bip-43:b").await.unwrap();
    let ea = p.publish("bip-43:a", json!({"n": 1})).await.unwrap();
    let eb = p.publish("bip-43:b", json!({"n": 10})).await.unwrap();
    p.publish("bip-43:a", json!({"n": 2})).await.unwrap();
    p.publish("bip-43:b", json!({"n": 11})).await.unwrap();
    let s = srv.client("client").await;
    let r = s
        .command(
            "join",
            json!({"address": "bip-43:*", "recover": {
                "bip-43:a": {"offset": ea.offset, "epoch": ea.epoch},
                "bip-43:b": {"offset": eb.offset, "epoch": "e-wrong"},
            }}),
        )
        .await
        .unwrap();
    assert_eq!(r["recovered"], false, "b cannot be recovered: {r}");
    let per = r["recovery"].as_array().unwrap();
    let a = per.iter().find(|x| x["address"] == "bip-43:a").unwrap();
    let b = per.iter().find(|x| x["address"] == "bip-43:b").unwrap();
    assert_eq!(
        (a["recovered"].clone(), a["count"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(
        (b["recovered"].clone(), b["count"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(payload_ns(&r), vec![2]);
    srv.stop().await;
}

#[tokio::test]
async fn a_recreated_channel_has_a_new_epoch() {
    let srv = start(Config::default()).await;
    let admin = srv.client("admin").await;
    admin
        .command("create_channel", json!({"address": "r:x"}))
        .await
        .unwrap();
    admin.join("r:x").await.unwrap();
    let e1 = admin.publish("r:x", json!({"n": 1})).await.unwrap();
    admin
        .command("leave", json!({"address": "r:x"}))
        .await
        .unwrap();
    admin
        .command("delete_channel", json!({"address": "r:x"}))
        .await
        .unwrap();
    admin.join("r:x").await.unwrap();
    let r = admin.join_recover("r:x", &e1).await.unwrap();
    assert_eq!(r["recovered"], false);
    assert_ne!(r["recovery"][0]["epoch"], json!(e1.epoch));
    srv.stop().await;
}

#[tokio::test]
async fn large_history_is_paged_by_bytes_and_the_session_survives() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    let j = p.join("r:big").await.unwrap();
    let epoch = j["channels"][0]["epoch"].as_str().unwrap().to_owned();
    let pad = "z".repeat(60 * 1024);
    for n in 1..=30 {
        p.publish("r:big", json!({"n": n, "pad": pad}))
            .await
            .unwrap();
    }
    // 30 x 60 KiB is more than one page (1 MiB): paged, never a broken session.
    let mut since = 0;
    let mut got = Vec::new();
    loop {
        let h = p
            .command(
                "history",
                json!({"address": "r:big", "since": since, "limit": 1000}),
            )
            .await
            .unwrap();
        assert_eq!(h["complete"], true);
        let page = payload_ns(&h);
        assert!(!page.is_empty() && page.len() < 30, "paged: {}", page.len());
        since = *page.last().unwrap() as u64;
        got.extend(page);
        if h["more"] == false {
            break;
        }
    }
    assert_eq!(got, (1..=30).collect::<Vec<i64>>());
    // A recovery that does not fit in one reply says so instead of claiming success.
    let s = srv.client("client").await;
    let r = s
        .join_recover("r:big", &Position { offset: 0, epoch })
        .await
        .unwrap();
    assert_eq!(r["recovered"], false);
    assert_eq!(r["recovery"][0]["more"], true);
    let first = payload_ns(&r);
    assert_eq!(first, (1..=first.len() as i64).collect::<Vec<i64>>());
    s.command("ping", json!({})).await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn history_without_since_is_complete_unless_eviction_shortened_it() {
    let mut config = Config::default();
    config.bus.history_size = 3;
    let srv = start(config).await;
    let p = srv.client("client").await;
    p.join("r:h").await.unwrap();
    for n in 1..=5 {
        p.publish("r:h", json!({"n": n})).await.unwrap();
    }
    let h = p
        .command("history", json!({"address": "r:h", "limit": 2}))
        .await
        .unwrap();
    assert_eq!(
        (h["complete"].clone(), payload_ns(&h)),
        (json!(true), vec![4, 5])
    );
    let h = p
        .command("history", json!({"address": "r:h", "limit": 5}))
        .await
        .unwrap();
    assert_eq!(
        (h["complete"].clone(), payload_ns(&h)),
        (json!(false), vec![3, 4, 5])
    );
    srv.stop().await;
}
