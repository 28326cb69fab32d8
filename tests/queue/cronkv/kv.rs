//! The key-value operator over the wire, on the broker of the parent module:
//! compare-and-set races between two clients, TTL expiry, pagination by prefix, and
//! the bounds of both operators refused with stable codes.

use super::{broker, code, details};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn compare_and_set_races_have_exactly_one_winner_per_version() {
    let b = broker(json!({})).await;
    let alice = b.as_("alice").await;
    let carol = b.as_("carol").await;
    let first = alice
        .command(
            "op.store.set",
            json!({"ns": "room:team", "key": "counter", "value": 0, "expected_version": 0}),
        )
        .await
        .unwrap();
    let mut version = first["version"].as_u64().unwrap();
    for round in 0..20 {
        let set = |who: &str| json!({"ns": "room:team", "key": "counter", "value": format!("{who}-{round}"), "expected_version": version});
        let (a, c) = tokio::join!(
            alice.command("op.store.set", set("alice")),
            carol.command("op.store.set", set("carol"))
        );
        let (won, lost) = match (code(&a), code(&c)) {
            ("ok", "conflict") => (a, c),
            ("conflict", "ok") => (c, a),
            other => panic!("round {round}: {other:?}, not one winner"),
        };
        let won = won.unwrap()["version"].as_u64().unwrap();
        assert!(won > version);
        // The loser learns the winner's version, and can retry with it.
        assert_eq!(details(lost)["current_version"], won);
        version = won;
    }
    let got = carol
        .command("op.store.get", json!({"ns": "room:team", "key": "counter"}))
        .await
        .unwrap();
    assert_eq!(got["version"], version);
    // A delete is compare-and-set too.
    let stale = alice
        .command(
            "op.store.delete",
            json!({"ns": "room:team", "key": "counter", "expected_version": version - 1}),
        )
        .await;
    assert_eq!(code(&stale), "conflict");
    alice
        .command(
            "op.store.delete",
            json!({"ns": "room:team", "key": "counter", "expected_version": version}),
        )
        .await
        .unwrap();
    let gone = alice
        .command("op.store.get", json!({"ns": "room:team", "key": "counter"}))
        .await;
    assert_eq!(code(&gone), "not_found");
    b.stop().await;
}

#[tokio::test]
async fn values_expire_after_their_ttl() {
    let b = broker(json!({"kv": {"sweep_ms": 50}})).await;
    let alice = b.as_("alice").await;
    alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "lease/1", "value": "held", "ttl_ms": 300}),
        )
        .await
        .unwrap();
    alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "lease/2", "value": "kept"}),
        )
        .await
        .unwrap();
    let got = alice
        .command("op.store.get", json!({"ns": "@me", "key": "lease/1"}))
        .await
        .unwrap();
    assert!(got["expires_ms"].as_u64().is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = alice
        .command("op.store.get", json!({"ns": "@me", "key": "lease/1"}))
        .await;
    assert_eq!(code(&got), "not_found");
    let list = alice
        .command("op.store.list", json!({"ns": "@me", "prefix": "lease/"}))
        .await
        .unwrap();
    let keys: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["lease/2"]);
    // A compare-and-set against an expired value sees no value (version 0).
    alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "lease/1", "value": "mine", "expected_version": 0}),
        )
        .await
        .unwrap();
    let big_ttl = alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "x", "value": 1, "ttl_ms": 0}),
        )
        .await;
    assert_eq!(code(&big_ttl), "invalid_field");
    b.stop().await;
}

#[tokio::test]
async fn listing_pages_by_prefix_with_an_opaque_cursor() {
    let b = broker(json!({})).await;
    let alice = b.as_("alice").await;
    for i in 0..25 {
        alice
            .command(
                "op.store.set",
                json!({"ns": "@me", "key": format!("job/{i:02}"), "value": i}),
            )
            .await
            .unwrap();
    }
    for k in ["jo", "job0", "jobz", "other"] {
        alice
            .command("op.store.set", json!({"ns": "@me", "key": k, "value": k}))
            .await
            .unwrap();
    }
    let mut keys = Vec::new();
    let mut cursor = Value::Null;
    let mut pages = 0;
    loop {
        let page = alice
            .command(
                "op.store.list",
                json!({"ns": "@me", "prefix": "job/", "limit": 10, "cursor": cursor}),
            )
            .await
            .unwrap();
        pages += 1;
        for i in page["items"].as_array().unwrap() {
            keys.push(i["key"].as_str().unwrap().to_owned());
            assert_eq!(i["value"], json!(keys.len() - 1));
        }
        cursor = page["cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..25).map(|i| format!("job/{i:02}")).collect();
    assert_eq!(keys, want);
    for bad in [
        json!({"cursor": "job/03"}),
        json!({"limit": 0}),
        json!({"limit": 5000}),
        json!({"cursor": 7}),
    ] {
        let mut args = json!({"ns": "@me"});
        args.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let r = alice.command("op.store.list", args).await;
        assert_eq!(code(&r), "invalid_field", "{bad}");
    }
    b.stop().await;
}

#[tokio::test]
async fn bounds_are_refused_with_stable_codes() {
    let b = broker(json!({
        "kv": {"max_keys_per_namespace": 3, "max_value_bytes": 100, "max_key_bytes": 16},
        "cron": {"min_interval_ms": 60000, "max_per_identity": 2, "max_payload_bytes": 64}
    }))
    .await;
    let alice = b.as_("alice").await;
    let set = |k: &str, v: Value| json!({"ns": "@me", "key": k, "value": v});
    for k in ["a", "b", "c"] {
        alice
            .command("op.store.set", set(k, json!(1)))
            .await
            .unwrap();
    }
    let full = alice.command("op.store.set", set("d", json!(1))).await;
    assert_eq!(code(&full), "overloaded");
    assert_eq!(details(full)["limit"], "keys_per_namespace");
    // Overwriting an existing key is not a new key.
    alice
        .command("op.store.set", set("c", json!(2)))
        .await
        .unwrap();
    let big = alice
        .command("op.store.set", set("a", json!("x".repeat(200))))
        .await;
    assert_eq!(details(big)["limit"], "value_bytes");
    let long = alice
        .command("op.store.set", set(&"k".repeat(17), json!(1)))
        .await;
    assert_eq!(code(&long), "invalid_field");
    let typo = alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "a", "value": 1, "expected_versoin": 3}),
        )
        .await;
    assert_eq!(details(typo)["field"], "expected_versoin");
    // Cron: the minimum interval, the payload, the count per identity.
    let sched = |extra: Value| {
        let mut a = json!({"address": "team:tick", "payload": 1, "tz": "UTC"});
        a.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a
    };
    let fast = alice
        .command("op.cron.schedule", sched(json!({"cron": "*/5 * * * * *"})))
        .await;
    assert_eq!(details(fast)["limit"], "min_interval_ms");
    let heavy = alice
        .command(
            "op.cron.schedule",
            sched(json!({"cron": "* * * * *", "payload": "y".repeat(100)})),
        )
        .await;
    assert_eq!(details(heavy)["limit"], "payload_bytes");
    for _ in 0..2 {
        alice
            .command("op.cron.schedule", sched(json!({"cron": "* * * * *"})))
            .await
            .unwrap();
    }
    let third = alice
        .command("op.cron.schedule", sched(json!({"cron": "* * * * *"})))
        .await;
    assert_eq!(code(&third), "overloaded");
    assert_eq!(details(third)["limit"], "max_per_identity");
    b.stop().await;
}
