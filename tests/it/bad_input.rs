//! Bad input: every case gets a documented error code, the session survives unless the
//! protocol says it closes, and nothing already accepted is lost.

use crate::harness::*;
use futures_util::SinkExt;
use hivebus::Config;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A session joined to `r:c` with one accepted publish, for "nothing is lost" checks.
async fn session_with_one_publish(srv: &TestServer) -> Raw {
    let mut r = srv.raw_hello("client").await;
    reply_of(
        &r.command("j", "join", json!({"address": "r:c"})).await,
        "j",
    );
    r.send(
        json!({"id": "m1", "type": "MESSAGE", "room": "r", "channel": "c", "payload": {"keep": 1}}),
    )
    .await;
    assert_eq!(reply_of(&r.recv().await, "m1")["offset"], 1);
    r
}

/// The session still works and the accepted publish is still in history.
async fn still_alive_and_nothing_lost(r: &mut Raw, id: &str) {
    let h = r.command(id, "history", json!({"address": "r:c"})).await;
    let res = reply_of(&h, id);
    assert_eq!(res["messages"][0]["payload"]["keep"], 1);
}

#[tokio::test]
async fn invalid_json_is_refused_and_the_session_survives() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.send_text("{not json").await;
    assert_error(&r.recv().await, "invalid_json", None);
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn binary_frames_are_refused() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_error(&r.recv().await, "binary_not_supported", None);
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_frame_over_max_frame_is_refused_and_one_over_the_hard_limit_closes() {
    let mut config = Config::default();
    config.server.max_frame = 1024;
    let srv = start(config).await;
    let mut r = session_with_one_publish(&srv).await;
    let big = json!({"id": "big", "type": "MESSAGE", "room": "r", "channel": "c", "payload": {"pad": "x".repeat(2000)}});
    r.send(big).await;
    let e = r.recv().await;
    assert_error(&e, "frame_too_large", Some("big"));
    assert_eq!(e["payload"]["details"]["max_frame"], 1024);
    still_alive_and_nothing_lost(&mut r, "h").await;
    r.send_text(&"y".repeat(17 * 1024)).await;
    assert_eq!(r.closed_with().await, 1009);
    srv.stop().await;
}

#[tokio::test]
async fn unknown_type_missing_fields_and_wrong_types_each_have_a_code() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.send(json!({"id": "u", "type": "SHOUT"})).await;
    assert_error(&r.recv().await, "unknown_type", Some("u"));
    r.send(json!({"id": "t"})).await;
    assert_error(&r.recv().await, "missing_field", Some("t"));
    r.send(json!({"id": "m", "type": "MESSAGE", "payload": {}}))
        .await;
    assert_error(&r.recv().await, "missing_field", Some("m"));
    r.send(json!({"type": "COMMAND", "payload": {"name": "ping"}}))
        .await;
    assert_error(&r.recv().await, "missing_field", None);
    r.send(json!({"id": "w", "type": "MESSAGE", "room": 7}))
        .await;
    assert_error(&r.recv().await, "invalid_field", Some("w"));
    r.send(json!({"id": "w2", "type": "COMMAND", "payload": {"name": "history", "args": {"address": "r:c", "limit": "ten"}}}))
        .await;
    assert_error(&r.recv().await, "invalid_field", Some("w2"));
    r.send(json!({"id": "w3", "type": "COMMAND", "payload": {"name": "join", "args": {}}}))
        .await;
    assert_error(&r.recv().await, "missing_field", Some("w3"));
    r.send(json!({"id": "w4", "type": "COMMAND", "payload": {"name": "join", "args": {"address": "r:c", "bogus": 1}}}))
        .await;
    assert_error(&r.recv().await, "invalid_field", Some("w4"));
    r.send(json!({"id": "k", "type": "COMMAND", "payload": {"name": "teleport"}}))
        .await;
    assert_error(&r.recv().await, "unknown_command", Some("k"));
    r.send(json!({"id": "k2", "type": "COMMAND", "payload": {"name": "op.nobody.x"}}))
        .await;
    assert_error(&r.recv().await, "unknown_command", Some("k2"));
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn invalid_room_and_channel_names_are_refused() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    for (i, addr) in [
        "Bad:c",
        "r:",
        "r:c:d",
        "-r:c",
        "r:has space",
        &"x".repeat(65),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("a{i}");
        let e = r.command(&id, "join", json!({"address": addr})).await;
        assert_error(&e, "invalid_address", Some(&id));
    }
    r.send(json!({"id": "p", "type": "MESSAGE", "room": "r", "channel": "C!", "payload": {}}))
        .await;
    assert_error(&r.recv().await, "invalid_address", Some("p"));
    r.send(json!({"id": "p2", "type": "MESSAGE", "room": "r", "payload": {}}))
        .await;
    assert_error(&r.recv().await, "invalid_address", Some("p2"));
    r.send(json!({"id": "p3", "type": "MESSAGE", "room": "r:*", "payload": {}}))
        .await;
    assert_error(&r.recv().await, "invalid_address", Some("p3"));
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn joining_a_room_that_may_not_be_created_is_refused() {
    let mut config = Config::default();
    config.bus.auto_create = false;
    let srv = start(config).await;
    let mut r = srv.raw_hello("client").await;
    assert_error(
        &r.command("j", "join", json!({"address": "nope:c"})).await,
        "room_not_found",
        Some("j"),
    );
    srv.stop().await;
}

#[tokio::test]
async fn admin_commands_from_a_non_admin_are_forbidden() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    let e = r
        .command("c", "create_channel", json!({"address": "r:new"}))
        .await;
    assert_error(&e, "forbidden", Some("c"));
    let e = r
        .command("d", "delete_channel", json!({"address": "r:c"}))
        .await;
    assert_error(&e, "forbidden", Some("d"));
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn publishing_to_a_channel_not_joined_is_refused() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.send(json!({"id": "x", "type": "MESSAGE", "room": "other", "channel": "c", "payload": {}}))
        .await;
    let e = r.recv().await;
    assert_error(&e, "not_joined", Some("x"));
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_duplicate_envelope_id_is_refused_and_not_applied_twice() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.send(
        json!({"id": "m1", "type": "MESSAGE", "room": "r", "channel": "c", "payload": {"keep": 2}}),
    )
    .await;
    assert_error(&r.recv().await, "duplicate_id", Some("m1"));
    let h = r.command("h", "history", json!({"address": "r:c"})).await;
    assert_eq!(reply_of(&h, "h")["messages"].as_array().unwrap().len(), 1);
    srv.stop().await;
}

#[tokio::test]
async fn a_reply_to_an_unknown_request_and_server_only_types_are_refused() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    r.send(json!({"id": "r1", "type": "REPLY", "payload": {"re": "srv-404", "ok": true}}))
        .await;
    assert_error(&r.recv().await, "unknown_request", Some("r1"));
    r.send(json!({"id": "w1", "type": "WELCOME"})).await;
    assert_error(&r.recv().await, "unexpected_type", Some("w1"));
    r.send(json!({"id": "s1", "type": "SYSTEM"})).await;
    assert_error(&r.recv().await, "unexpected_type", Some("s1"));
    r.send(json!({"id": "h2", "type": "HELLO", "payload": {"role": "client"}}))
        .await;
    assert_error(&r.recv().await, "already_handshaken", Some("h2"));
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_session_that_does_not_start_with_hello_is_closed_with_4002() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw().await;
    r.send(json!({"id": "1", "type": "COMMAND", "payload": {"name": "ping"}}))
        .await;
    assert_error(&r.recv().await, "unexpected_type", Some("1"));
    assert_eq!(r.closed_with().await, 4002);
    let mut r = srv.raw().await;
    r.send_text("hello?").await;
    assert_error(&r.recv().await, "invalid_json", None);
    assert_eq!(r.closed_with().await, 4002);
    let mut r = srv.raw().await;
    r.send(json!({"id": "1", "type": "HELLO", "payload": {"capabilities": []}}))
        .await;
    assert_error(&r.recv().await, "missing_field", Some("1"));
    assert_eq!(r.closed_with().await, 4002);
    srv.stop().await;
}

#[tokio::test]
async fn a_session_that_sends_nothing_is_closed_with_4001() {
    let mut config = Config::default();
    config.server.handshake_timeout_ms = 200;
    let srv = start(config).await;
    let mut r = srv.raw().await;
    assert_eq!(r.closed_with().await, 4001);
    srv.stop().await;
}

#[tokio::test]
async fn command_args_must_be_an_object_and_list_channels_takes_a_room_name() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    let e = r.command("a", "join", json!(["r:c"])).await;
    assert_error(&e, "invalid_field", Some("a"));
    for (i, room) in ["r:*", "bip-*", "r:c"].iter().enumerate() {
        let id = format!("l{i}");
        let e = r.command(&id, "list_channels", json!({"room": room})).await;
        assert_error(&e, "invalid_address", Some(&id));
    }
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_refused_frame_does_not_use_up_its_id() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw_hello("client").await;
    let publish =
        json!({"id": "p1", "type": "MESSAGE", "room": "r", "channel": "c", "payload": {}});
    r.send(publish.clone()).await;
    assert_error(&r.recv().await, "not_joined", Some("p1"));
    reply_of(
        &r.command("j", "join", json!({"address": "r:c"})).await,
        "j",
    );
    r.send(publish.clone()).await;
    assert_eq!(reply_of(&r.recv().await, "p1")["offset"], 1);
    r.send(publish).await;
    assert_error(&r.recv().await, "duplicate_id", Some("p1"));
    srv.stop().await;
}

#[tokio::test]
async fn channels_past_max_channels_are_refused_as_overloaded() {
    let mut config = Config::default();
    config.bus.max_channels = 2;
    let srv = start(config).await;
    let mut r = srv.raw_hello("client").await;
    reply_of(
        &r.command("1", "join", json!({"address": "r:a"})).await,
        "1",
    );
    reply_of(
        &r.command("2", "join", json!({"address": "r:b"})).await,
        "2",
    );
    let e = r.command("3", "join", json!({"address": "r:c"})).await;
    assert_error(&e, "overloaded", Some("3"));
    assert_eq!(e["payload"]["details"]["max_channels"], 2);
    reply_of(
        &r.command("4", "join", json!({"address": "r:a"})).await,
        "4",
    );
    srv.stop().await;
}

#[tokio::test]
async fn hello_may_carry_fields_this_version_does_not_know() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw().await;
    r.send(json!({"id": "h", "type": "HELLO", "payload": {"role": "client", "protocol": 2, "x-future": true}}))
        .await;
    assert_eq!(r.recv().await["type"], "WELCOME");
    srv.stop().await;
}

#[tokio::test]
async fn ids_and_trace_ids_over_128_bytes_are_refused_and_not_echoed() {
    let srv = start(Config::default()).await;
    let mut r = session_with_one_publish(&srv).await;
    let long = "i".repeat(60_000);
    r.send(json!({"id": long, "type": "MESSAGE", "room": "r:c", "payload": {"x": 1}}))
        .await;
    let e = r.recv().await;
    assert_error(&e, "invalid_field", None);
    assert_eq!(e["payload"]["details"]["field"], "id");
    assert!(e["payload"]["re"].is_null(), "the id is not echoed back");
    assert!(e.to_string().len() < 1000);
    r.send(json!({"id": "t1", "type": "MESSAGE", "traceId": "t".repeat(129), "room": "r:c", "payload": {}}))
        .await;
    let e = r.recv().await;
    assert_error(&e, "invalid_field", Some("t1"));
    assert_eq!(e["payload"]["details"]["field"], "traceId");
    still_alive_and_nothing_lost(&mut r, "h").await;
    srv.stop().await;
}

#[tokio::test]
async fn a_flood_of_large_frames_into_many_channels_stays_within_the_history_budgets() {
    let mut config = Config::default();
    config.bus.history_bytes_per_channel = 100_000;
    config.bus.history_bytes_total = 300_000;
    let srv = start(config).await;
    let mut r = srv.raw_hello("client").await;
    let blob = "x".repeat(20_000);
    // 40 channels x 10 frames of 20 KB: 8 MB offered, 300 KB may stay.
    for ch in 0..40 {
        let addr = format!("flood:c{ch}");
        let j = format!("j{ch}");
        reply_of(&r.command(&j, "join", json!({"address": addr})).await, &j);
        for i in 0..10 {
            let id = format!("m{ch}-{i}");
            r.send(json!({"id": id, "type": "MESSAGE", "room": addr, "payload": {"b": blob}}))
                .await;
            reply_of(&r.recv().await, &id);
        }
    }
    let status = |v: &serde_json::Value| {
        v["payload"]["result"]["stats"]["history_bytes"]
            .as_u64()
            .unwrap()
    };
    let used = status(&r.command("s", "status", json!({})).await);
    assert!(used <= 300_000 && used > 100_000, "{used} bytes of history");
    // The first channel lost its history to the budget and says so.
    let h = r
        .command("h", "history", json!({"address": "flood:c0", "since": 0}))
        .await;
    assert_eq!(reply_of(&h, "h")["complete"], false);
    // Each channel holds at most its own budget (5 frames of 20 KB).
    for (ch, id) in [("flood:c0", "h1"), ("flood:c39", "h2")] {
        let h = r
            .command(id, "history", json!({"address": ch, "since": 0}))
            .await;
        let kept = reply_of(&h, id)["messages"].as_array().unwrap().len();
        assert!(kept <= 5, "{ch}: {kept}");
    }
    // The flood filled the total, yet a quiet channel published to afterwards keeps
    // its history: the largest channels are cut first, not the newest writer.
    reply_of(
        &r.command("jq", "join", json!({"address": "quiet:c"})).await,
        "jq",
    );
    for i in 0..3 {
        let id = format!("q{i}");
        let pad = "y".repeat(10_000);
        r.send(json!({"id": id, "type": "MESSAGE", "room": "quiet:c", "payload": {"n": i, "pad": pad}}))
            .await;
        reply_of(&r.recv().await, &id);
    }
    let h = r
        .command("hq", "history", json!({"address": "quiet:c", "since": 0}))
        .await;
    let page = reply_of(&h, "hq");
    assert_eq!(
        page["messages"].as_array().unwrap().len(),
        3,
        "quiet history kept"
    );
    assert_eq!(page["complete"], true);
    assert!(status(&r.command("s2", "status", json!({})).await) <= 300_000);
    srv.stop().await;
}
