//! Must-show 3: every cell of the role table (`docs/ROLES.md`) and every per-credential
//! permission is enforced over the wire.

use super::harness::{assert_error, reply_of, start, start_on};
use hivebus::auth::ROLES;
use hivebus::frame::FrameType;
use hivebus::Config;
use serde_json::{json, Value};

/// Frame types a peer may send after the handshake, and whether each role may: the
/// table of `docs/ROLES.md`, written out independently of `Role::may_send`.
const FRAME_TABLE: &[(&str, [bool; 4])] = &[
    //            client consumer admin observer
    ("MESSAGE", [true, true, true, false]),
    ("PRIVATE", [true, true, true, false]),
    ("TASK", [true, false, true, false]),
    ("EVENT", [false, true, true, false]),
    ("APPROVAL", [true, true, true, false]),
    ("RESULT", [false, true, true, false]),
    ("ERROR", [false, true, true, false]),
    ("HEARTBEAT", [true, true, true, true]),
    ("COMMAND", [true, true, true, true]),
];

fn frame(kind: &str, id: &str) -> Value {
    match kind {
        "PRIVATE" => json!({"id": id, "type": kind, "payload": {"to": ["s-nobody"]}}),
        "COMMAND" => json!({"id": id, "type": kind, "payload": {"name": "ping"}}),
        "HEARTBEAT" => json!({"id": id, "type": kind}),
        _ => json!({"id": id, "type": kind, "room": "t:c", "payload": {"x": 1}}),
    }
}

fn is_forbidden(v: &Value) -> bool {
    v["type"] == "ERROR" && v["payload"]["code"] == "forbidden"
}

#[tokio::test]
async fn every_role_may_send_exactly_the_frame_types_of_the_table() {
    let srv = start(Config::default()).await;
    for (col, role) in ROLES.iter().enumerate() {
        let mut s = srv.hello(role.as_str(), None).await;
        s.join("t:c").await;
        for (kind, allowed) in FRAME_TABLE {
            let id = format!("{}-{kind}", role.as_str());
            s.send(frame(kind, &id)).await;
            let answer = s.recv().await;
            assert_eq!(answer["payload"]["re"], id.as_str(), "{answer}");
            assert_eq!(
                !is_forbidden(&answer),
                allowed[col],
                "{} sending {kind}: {answer}",
                role.as_str()
            );
        }
    }
    // The table in the test and the one in the code agree on every cell.
    for (kind, allowed) in FRAME_TABLE {
        let ft: FrameType = serde_json::from_value(json!(kind)).unwrap();
        for (col, role) in ROLES.iter().enumerate() {
            assert_eq!(role.may_send(ft), allowed[col], "{role:?} {kind}");
        }
    }
    srv.stop().await;
}

fn args_for(name: &str) -> Value {
    match name {
        "status" | "ping" | "list_channels" => json!({}),
        "leave" | "leave_channel" => json!({"address": "t:c"}),
        _ => json!({"address": "t:c"}),
    }
}

/// Built-in commands (and the safety operator's) and whether each role may run them:
/// the commands table of `docs/ROLES.md`, written out independently of the code. The
/// queue's commands, which also depend on who owns the task, are checked cell by cell
/// in `tests/queue/authority.rs`.
const COMMAND_TABLE: &[(&str, [bool; 4])] = &[
    //                 client consumer admin observer
    ("status", [true, true, true, true]),
    ("ping", [true, true, true, true]),
    ("list_channels", [true, true, true, true]),
    ("join", [true, true, true, true]),
    ("join_channel", [true, true, true, true]),
    ("leave", [true, true, true, true]),
    ("leave_channel", [true, true, true, true]),
    ("history", [true, true, true, true]),
    ("channel_info", [true, true, true, true]),
    ("create_channel", [false, false, true, false]),
    ("delete_channel", [false, false, true, false]),
    ("op.safety.get", [false, false, true, false]),
    ("op.safety.reload", [false, false, true, false]),
];

#[tokio::test]
async fn every_role_may_run_exactly_the_commands_of_the_table() {
    let srv = start(Config::default()).await;
    for (col, role) in ROLES.iter().enumerate() {
        let mut s = srv.hello(role.as_str(), None).await;
        s.join("t:c").await;
        for (name, allowed) in COMMAND_TABLE {
            let id = format!("{}-{name}", role.as_str());
            let args = match *name {
                "op.safety.reload" => json!({"mode": "monitor"}),
                n => args_for(n),
            };
            let answer = s.command(&id, name, args).await;
            assert_eq!(answer["payload"]["re"], id.as_str(), "{answer}");
            assert_eq!(
                !is_forbidden(&answer),
                allowed[col],
                "{} running {name}: {answer}",
                role.as_str()
            );
        }
    }
    srv.stop().await;
}

#[tokio::test]
async fn list_channels_shows_only_what_the_credential_may_read() {
    let srv = start_on("0.0.0.0:0", token_config()).await;
    let mut admin_view = srv.hello("client", Some("tok-narrow-0123456789")).await;
    admin_view.join("bip-43:general").await;
    reply_of(
        &admin_view
            .publish("p1", "bip-43:general", json!({"x": 1}))
            .await,
        "p1",
    );
    srv.bus
        .publish(
            &hivebus::Address::parse("ops:secrets").unwrap(),
            hivebus::Envelope::new(FrameType::Message, json!({"x": 1})),
        )
        .unwrap();
    let r = admin_view.command("l", "list_channels", json!({})).await;
    let v = reply_of(&r, "l");
    let names: Vec<&str> = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"bip-43:general"), "{v}");
    assert!(!names.contains(&"ops:secrets"), "{v}");
    assert!(
        !v["rooms"].as_array().unwrap().contains(&json!("ops")),
        "{v}"
    );
    srv.stop().await;
}

fn token_config() -> Config {
    Config {
        auth: serde_json::from_value(json!({
            "tokens": [
                {"token": "tok-narrow-0123456789", "subject": "narrow", "role": "client",
                 "publish": ["bip-43:*"], "subscribe": ["bip-*:*", "lobby:general"]},
                {"token": "tok-observer-0123456789", "subject": "watcher", "role": "observer"}
            ]
        }))
        .unwrap(),
        ..Default::default()
    }
}

#[tokio::test]
async fn token_permissions_limit_publish_and_subscribe_over_the_wire() {
    let srv = start_on("0.0.0.0:0", token_config()).await;
    let mut s = srv.hello("client", Some("tok-narrow-0123456789")).await;
    // Subscribe: exact, covered glob, and refusals.
    s.join("bip-43:general").await;
    s.join("bip-44:*").await;
    s.join("lobby:general").await;
    for (i, denied) in ["lobby:random", "*:*", "ops"].iter().enumerate() {
        let id = format!("j{i}");
        let r = s.command(&id, "join", json!({"address": denied})).await;
        assert_error(&r, "forbidden", Some(&id));
        assert_eq!(r["payload"]["details"]["permission"], "subscribe");
    }
    for (i, cmd) in ["history", "channel_info"].iter().enumerate() {
        let id = format!("r{i}");
        let r = s.command(&id, cmd, json!({"address": "ops:secrets"})).await;
        assert_error(&r, "forbidden", Some(&id));
    }
    // Publish: allowed inside bip-43, refused elsewhere even when subscribed.
    reply_of(
        &s.publish("p1", "bip-43:general", json!({"x": 1})).await,
        "p1",
    );
    let r = s.publish("p2", "lobby:general", json!({"x": 1})).await;
    assert_error(&r, "forbidden", Some("p2"));
    assert_eq!(r["payload"]["details"]["permission"], "publish");
    s.send(json!({"id": "t1", "type": "TASK", "room": "bip-44:review_bip", "payload": {}}))
        .await;
    assert_error(&s.recv().await, "forbidden", Some("t1"));
    // The observer token: reads, never writes.
    let mut o = srv.hello("observer", Some("tok-observer-0123456789")).await;
    o.join("bip-43:general").await;
    assert_error(
        &o.publish("op", "bip-43:general", json!({})).await,
        "forbidden",
        Some("op"),
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_hello_with_a_role_outside_the_table_is_refused_with_4002() {
    let srv = start(Config::default()).await;
    let mut r = srv.raw().await;
    let e = r.send_hello("root", None).await;
    assert_error(&e, "invalid_field", Some("h"));
    assert_eq!(r.closed_with().await, 4002);
    srv.stop().await;
}
