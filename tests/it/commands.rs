//! Every built-in command, over the wire.

use crate::harness::*;
use hivebus::bus::RoomConfig;
use hivebus::Config;
use serde_json::json;

#[tokio::test]
async fn status_reports_connections_rooms_channels_messages_and_uptime() {
    let srv = start(Config::default()).await;
    let c = srv.client("client").await;
    let _other = srv.client("consumer").await;
    c.join("bip-43:general").await.unwrap();
    c.publish("bip-43:general", json!({"n": 1})).await.unwrap();
    let s = c.command("status", json!({})).await.unwrap();
    assert_eq!(s["protocol"], 1);
    assert_eq!(s["session"], c.session());
    assert_eq!(s["stats"]["connections"], 2);
    assert_eq!(s["stats"]["channels"], 1);
    assert_eq!(s["stats"]["rooms"], 1);
    assert_eq!(s["stats"]["messages"], 1);
    assert!(s["stats"]["uptime_secs"].is_u64());
    assert_eq!(s["rooms"], json!(["bip-43"]));
    srv.stop().await;
}

#[tokio::test]
async fn ping_answers_pong_with_a_timestamp() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw_hello("client").await;
    let a = r.command("p1", "ping", json!(null)).await;
    let res = reply_of(&a, "p1");
    assert_eq!(res["pong"], true);
    assert!(res["ts"].as_str().unwrap().ends_with('Z'));
    srv.stop().await;
}

#[tokio::test]
async fn join_creates_the_channel_and_reports_its_position() {
    let srv = start(Config::default()).await;
    let c = srv.client("client").await;
    let j = c.join("science:explore").await.unwrap();
    assert_eq!(j["subscription"], "science:explore");
    assert_eq!(j["channels"][0]["address"], "science:explore");
    assert_eq!(j["channels"][0]["offset"], 0);
    assert!(j["channels"][0]["epoch"]
        .as_str()
        .unwrap()
        .starts_with("e-"));
    // The ArqonBus name is an alias.
    let j = c
        .command("join_channel", json!({"address": "science:design"}))
        .await
        .unwrap();
    assert_eq!(j["subscription"], "science:design");
    srv.stop().await;
}

#[tokio::test]
async fn leave_stops_delivery_and_leaving_twice_is_not_joined() {
    let srv = start(Config::default()).await;
    let p = srv.client("client").await;
    let mut s = srv.client("client").await;
    p.join("r:c").await.unwrap();
    s.join("r:c").await.unwrap();
    let left = s.command("leave", json!({"address": "r:c"})).await.unwrap();
    assert_eq!(left["left"], json!(["r:c"]));
    p.publish("r:c", json!({"after": "leave"})).await.unwrap();
    assert!(s
        .next_event_within(std::time::Duration::from_millis(200))
        .await
        .is_err());
    let again = s
        .command("leave_channel", json!({"address": "r:c"}))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some("not_joined"));
    srv.stop().await;
}

#[tokio::test]
async fn list_channels_filters_by_room_and_counts_subscribers() {
    let srv = start(Config::default()).await;
    let a = srv.client("client").await;
    let b = srv.client("client").await;
    a.join("bip-43:review_bip").await.unwrap();
    b.join("bip-43:review_bip").await.unwrap();
    b.join("bip-44:general").await.unwrap();
    let l = a
        .command("list_channels", json!({"room": "bip-43"}))
        .await
        .unwrap();
    let chans = l["channels"].as_array().unwrap();
    assert_eq!(chans.len(), 1);
    assert_eq!(chans[0]["address"], "bip-43:review_bip");
    assert_eq!(chans[0]["subscribers"], 2);
    assert_eq!(l["rooms"], json!(["bip-43", "bip-44"]));
    assert_eq!(l["subscriptions"], json!(["bip-43:review_bip"]));
    let all = a.command("list_channels", json!({})).await.unwrap();
    assert_eq!(all["channels"].as_array().unwrap().len(), 2);
    srv.stop().await;
}

#[tokio::test]
async fn channel_info_lists_participants_with_role_and_capabilities() {
    let srv = start(Config::default()).await;
    let mut hello = hivebus::client::Hello::role("consumer");
    hello.capabilities = vec!["implement_bip".into(), "review_bip".into()];
    hello.name = Some("cursor".into());
    hello.slots = Some(2);
    let consumer = hivebus::client::Client::connect(&srv.url(), hello)
        .await
        .unwrap();
    let client = srv.client("client").await;
    consumer.join("bip-43:*").await.unwrap();
    client.join("bip-43:implement_bip").await.unwrap();
    let info = client
        .command("channel_info", json!({"address": "bip-43:implement_bip"}))
        .await
        .unwrap();
    let ps = info["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 2, "{info}");
    let c = ps.iter().find(|p| p["role"] == "consumer").unwrap();
    assert_eq!(c["session"], consumer.session());
    assert_eq!(c["capabilities"], json!(["implement_bip", "review_bip"]));
    assert_eq!(c["name"], "cursor");
    assert_eq!(c["slots"], 2);
    assert!(ps
        .iter()
        .any(|p| p["role"] == "client" && p["session"] == client.session()));
    let missing = client
        .command("channel_info", json!({"address": "nope:x"}))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some("channel_not_found"));
    srv.stop().await;
}

#[tokio::test]
async fn history_returns_the_newest_page_or_what_follows_an_offset() {
    let srv = start(Config::default()).await;
    let c = srv.client("client").await;
    c.join("r:h").await.unwrap();
    for n in 1..=5 {
        c.publish("r:h", json!({"n": n})).await.unwrap();
    }
    let h = c
        .command("history", json!({"address": "r:h", "limit": 2}))
        .await
        .unwrap();
    let ns: Vec<_> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"]["n"].clone())
        .collect();
    assert_eq!(ns, vec![json!(4), json!(5)]);
    assert_eq!(h["offset"], 5);
    let h = c
        .command("history", json!({"address": "r:h", "since": 2}))
        .await
        .unwrap();
    let offs: Vec<_> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offs, vec![3, 4, 5]);
    assert_eq!(h["complete"], true);
    let h = c
        .command("history", json!({"address": "r:h", "since": 2, "limit": 1}))
        .await
        .unwrap();
    assert_eq!(h["messages"][0]["offset"], 3);
    srv.stop().await;
}

#[tokio::test]
async fn admin_creates_and_deletes_channels_and_others_may_not() {
    let srv = start(Config::default()).await;
    let admin = srv.client("admin").await;
    let user = srv.client("client").await;
    let r = admin
        .command("create_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap();
    assert_eq!(r["created"], "ops:alerts");
    let dup = admin
        .command("create_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Some("channel_exists"));
    let no = user
        .command("create_channel", json!({"address": "ops:x"}))
        .await
        .unwrap_err();
    assert_eq!(no.code(), Some("forbidden"));
    let no = user
        .command("delete_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap_err();
    assert_eq!(no.code(), Some("forbidden"));
    user.join("ops:alerts").await.unwrap();
    let busy = admin
        .command("delete_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Some("channel_not_empty"));
    user.command("leave", json!({"address": "ops:alerts"}))
        .await
        .unwrap();
    let r = admin
        .command("delete_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap();
    assert_eq!(r["deleted"], "ops:alerts");
    let gone = admin
        .command("delete_channel", json!({"address": "ops:alerts"}))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("channel_not_found"));
    srv.stop().await;
}

#[tokio::test]
async fn without_auto_create_only_bootstrap_and_admin_channels_can_be_joined() {
    let mut config = Config::default();
    config.bus.auto_create = false;
    config.bus.rooms = vec![RoomConfig {
        name: "science".into(),
        channels: vec!["general".into(), "explore".into()],
    }];
    let srv = start(config).await;
    let c = srv.client("client").await;
    c.join("science:explore").await.unwrap();
    c.join("science").await.unwrap();
    let e = c.join("science:nope").await.unwrap_err();
    assert_eq!(e.code(), Some("channel_not_found"));
    let e = c.join("other:general").await.unwrap_err();
    assert_eq!(e.code(), Some("room_not_found"));
    let e = c.join("other").await.unwrap_err();
    assert_eq!(e.code(), Some("room_not_found"));
    let l = c
        .command("list_channels", json!({"room": "science"}))
        .await
        .unwrap();
    assert!(l["channels"]
        .as_array()
        .unwrap()
        .iter()
        .all(|ch| ch["persistent"] == true));
    assert_eq!(l["channels"].as_array().unwrap().len(), 2);
    srv.stop().await;
}

#[tokio::test]
async fn too_many_subscriptions_is_refused_with_the_limit() {
    let mut config = Config::default();
    config.bus.max_subscriptions = 2;
    let srv = start(config).await;
    let c = srv.client("client").await;
    c.join("a:1").await.unwrap();
    c.join("a:*").await.unwrap();
    c.join("a:1").await.unwrap(); // rejoining an existing subscription is fine
    let e = c.join("a:2").await.unwrap_err();
    assert_eq!(e.code(), Some("too_many_subscriptions"));
    srv.stop().await;
}
