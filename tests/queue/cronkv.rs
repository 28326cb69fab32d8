//! The cron and key-value operators over the wire: the assembled broker
//! (`hivebus::broker::run_with`, as `hive broker` runs it: tokens, safety layer,
//! queue, cron, kv, each in `.hive/`), real WebSocket clients, real SQLite. A
//! schedule firing to a subscriber, compare-and-set races between two clients, TTL
//! expiry, pagination, bounds, durability across a broker restart, and the attacks
//! of a restricted token on other identities' and rooms' state and schedules.

use hivebus::broker::{run_with, BrokerOptions};
use hivebus::client::{Client, ClientError, Hello};
use hivebus::server::port::Want;
use hivebus::Config;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::oneshot;

const T: Duration = Duration::from_secs(10);

fn tokens() -> Value {
    json!({"tokens": [
        {"token": "tok-alice-000000000", "subject": "alice", "role": "client",
         "publish": ["team:*", "alice:*"], "subscribe": ["team:*", "alice:*"]},
        {"token": "tok-carol-000000000", "subject": "carol", "role": "client",
         "publish": ["team:*"], "subscribe": ["team:*"]},
        {"token": "tok-bob-00000000000", "subject": "bob", "role": "client",
         "publish": ["bob:*", "team:general"], "subscribe": ["bob:*", "team:general"]},
        {"token": "tok-dave-0000000000", "subject": "dave", "role": "client",
         "publish": [], "subscribe": ["team:*"]},
        {"token": "tok-root-0000000000", "subject": "root", "role": "admin"},
        {"token": "tok-watch-000000000", "subject": "watch", "role": "observer"}
    ]})
}

struct Broker {
    url: String,
    dir: PathBuf,
    extra: Value,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<Result<(), String>>,
}

/// A broker in `dir` with `[cron]` / `[kv]` settings from `extra`.
async fn broker_in(dir: &Path, extra: Value) -> Broker {
    let mut c = json!({"auth": tokens(), "cron": {"min_interval_ms": 1000, "grace_ms": 5000}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    let config: Config = serde_json::from_value(c).unwrap();
    let opts = BrokerOptions {
        host: "127.0.0.1".parse().unwrap(),
        want: Want::Any,
        dir: dir.to_owned(),
        config,
        config_path: None,
    };
    let (stop, rx) = oneshot::channel::<()>();
    let (ready, at) = oneshot::channel();
    let handle = tokio::spawn(run_with(
        opts,
        async {
            let _ = rx.await;
        },
        move |addr| {
            let _ = ready.send(addr);
        },
    ));
    let addr = at.await.expect("the broker started");
    Broker {
        url: format!("ws://{addr}/"),
        dir: dir.to_owned(),
        extra,
        stop: Some(stop),
        handle,
    }
}

async fn broker(extra: Value) -> Broker {
    broker_in(&crate::harness::temp_dir("cronkv"), extra).await
}

impl Broker {
    async fn as_(&self, who: &str) -> Client {
        let role = match who {
            "root" => "admin",
            "watch" => "observer",
            _ => "client",
        };
        let mut h = Hello::role(role);
        h.auth = Some(format!("tok-{who}-{}", "0".repeat(19 - 5 - who.len())));
        let mut c = Client::connect(&self.url, h).await.unwrap();
        c.set_timeout(T);
        c
    }

    async fn stop(mut self) -> (PathBuf, Value) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.handle).await.unwrap().unwrap();
        (self.dir.clone(), self.extra.clone())
    }

    async fn restart(self) -> Broker {
        let (dir, extra) = self.stop().await;
        broker_in(&dir, extra).await
    }
}

fn code(r: &Result<Value, ClientError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.code().unwrap_or("transport"),
    }
}

fn details(r: Result<Value, ClientError>) -> Value {
    match r {
        Err(ClientError::Server(e)) => e.details.unwrap_or_default(),
        other => panic!("not a refusal: {other:?}"),
    }
}

#[tokio::test]
async fn a_schedule_fires_to_a_subscriber_and_both_stores_survive_a_restart() {
    let b = broker(json!({})).await;
    let mut alice = b.as_("alice").await;
    alice.join("team:tick").await.unwrap();
    let s = alice
        .command(
            "op.cron.schedule",
            json!({"address": "team:tick", "delay_ms": 200, "payload": {"hello": "team"}}),
        )
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    let env = alice.next_event_within(T).await.unwrap();
    assert_eq!(env.payload, json!({"hello": "team"}));
    assert_eq!(env.from.as_deref(), Some(format!("cron:{id}").as_str()));
    assert_eq!(env.channel.as_deref(), Some("tick"));
    // A yearly rule and a value, then a restart: both are still there.
    let yearly = alice
        .command(
            "op.cron.schedule",
            json!({"address": "team:tick", "cron": "0 9 1 1 *", "tz": "+02:00", "missed": "run_once", "payload": 1}),
        )
        .await
        .unwrap();
    let set = alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "k", "value": {"a": [1, 2]}}),
        )
        .await
        .unwrap();
    drop(alice);
    let b = b.restart().await;
    let alice = b.as_("alice").await;
    let list = alice.command("op.cron.list", json!({})).await.unwrap();
    let list = list["schedules"].as_array().unwrap();
    assert_eq!(list.len(), 1, "the one-shot fired and left: {list:?}");
    assert_eq!(list[0]["id"], yearly["id"]);
    assert_eq!(
        (list[0]["tz"].as_str(), list[0]["missed"].as_str()),
        (Some("+02:00"), Some("run_once"))
    );
    let got = alice
        .command("op.store.get", json!({"ns": "id:alice", "key": "k"}))
        .await
        .unwrap();
    assert_eq!(got["value"], json!({"a": [1, 2]}));
    assert_eq!(got["version"], set["version"]);
    b.stop().await;
}

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

#[tokio::test]
async fn restricted_tokens_stay_out_of_other_namespaces_and_schedules() {
    let b = broker(json!({})).await;
    let alice = b.as_("alice").await;
    let bob = b.as_("bob").await;
    let dave = b.as_("dave").await;
    let watch = b.as_("watch").await;
    let root = b.as_("root").await;
    alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "secret-plan", "value": "x"}),
        )
        .await
        .unwrap();
    alice
        .command(
            "op.store.set",
            json!({"ns": "room:team", "key": "shared", "value": "y"}),
        )
        .await
        .unwrap();
    // Another identity's namespace: neither read nor written nor listed.
    for (cmd, args) in [
        (
            "op.store.get",
            json!({"ns": "id:alice", "key": "secret-plan"}),
        ),
        (
            "op.store.set",
            json!({"ns": "id:alice", "key": "secret-plan", "value": "mine"}),
        ),
        (
            "op.store.delete",
            json!({"ns": "id:alice", "key": "secret-plan"}),
        ),
        ("op.store.list", json!({"ns": "id:alice"})),
    ] {
        let r = bob.command(cmd, args).await;
        assert_eq!(code(&r), "forbidden", "{cmd}");
    }
    // A room whose channels bob only partly reads: refused as a whole.
    let r = bob
        .command("op.store.get", json!({"ns": "room:team", "key": "shared"}))
        .await;
    assert_eq!(code(&r), "forbidden");
    let r = bob
        .command(
            "op.store.set",
            json!({"ns": "room:team", "key": "shared", "value": 1}),
        )
        .await;
    assert_eq!(code(&r), "forbidden");
    // Dave reads the room but may not write it; the observer writes nothing.
    dave.command("op.store.get", json!({"ns": "room:team", "key": "shared"}))
        .await
        .unwrap();
    let r = dave
        .command(
            "op.store.set",
            json!({"ns": "room:team", "key": "shared", "value": 1}),
        )
        .await;
    assert_eq!(details(r)["right"], "publish");
    let r = watch
        .command("op.store.set", json!({"ns": "@me", "key": "k", "value": 1}))
        .await;
    assert_eq!(code(&r), "forbidden");
    // Forged namespaces are refused, not guessed at.
    for ns in [
        "id:",
        "room:team:general",
        "room:*",
        "team",
        "@you",
        "id:a b",
    ] {
        let r = bob
            .command("op.store.get", json!({"ns": ns, "key": "k"}))
            .await;
        assert_eq!(code(&r), "invalid_field", "{ns}");
    }
    // An admin reads anyone's.
    let got = root
        .command(
            "op.store.get",
            json!({"ns": "id:alice", "key": "secret-plan"}),
        )
        .await
        .unwrap();
    assert_eq!(got["value"], "x");
    // Schedules: bob may not schedule into a channel he cannot publish to, nor see or
    // cancel alice's.
    let r = bob
        .command(
            "op.cron.schedule",
            json!({"address": "team:tick", "delay_ms": 60000, "payload": 1}),
        )
        .await;
    assert_eq!(details(r)["right"], "publish");
    let s = alice
        .command(
            "op.cron.schedule",
            json!({"address": "team:tick", "delay_ms": 60000, "payload": 1}),
        )
        .await
        .unwrap();
    let id = s["id"].as_str().unwrap();
    let listed = bob.command("op.cron.list", json!({})).await.unwrap();
    assert_eq!(listed["schedules"], json!([]));
    let r = bob.command("op.cron.cancel", json!({"id": id})).await;
    assert_eq!(code(&r), "forbidden");
    let r = watch.command("op.cron.cancel", json!({"id": id})).await;
    assert_eq!(code(&r), "forbidden");
    let all = root.command("op.cron.list", json!({})).await.unwrap();
    assert_eq!(all["schedules"][0]["owner"], "alice");
    root.command("op.cron.cancel", json!({"id": id}))
        .await
        .unwrap();
    let r = alice.command("op.cron.cancel", json!({"id": id})).await;
    assert_eq!(code(&r), "not_found");
    b.stop().await;
}

#[tokio::test]
async fn a_secret_in_a_payload_or_value_is_redacted_and_a_secret_key_refused() {
    let b = broker(json!({"safety": {"mode": "enforce"}})).await;
    let mut alice = b.as_("alice").await;
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let r = alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": token, "value": 1}),
        )
        .await;
    assert_eq!(details(r)["field"], "key");
    alice
        .command(
            "op.store.set",
            json!({"ns": "@me", "key": "cfg", "value": {"token": token}}),
        )
        .await
        .unwrap();
    let got = alice
        .command("op.store.get", json!({"ns": "@me", "key": "cfg"}))
        .await
        .unwrap();
    assert!(!got.to_string().contains(token), "{got}");
    alice.join("team:tick").await.unwrap();
    alice
        .command(
            "op.cron.schedule",
            json!({"address": "team:tick", "delay_ms": 50, "payload": {"t": token}}),
        )
        .await
        .unwrap();
    let env = alice.next_event_within(T).await.unwrap();
    assert!(!env.payload.to_string().contains(token), "{}", env.payload);
    b.stop().await;
}

#[test]
fn the_cli_sets_gets_and_schedules_with_json_for_scripts() {
    use crate::cli::{broker, json_of, run};
    let dir = crate::harness::temp_dir("cronkv-cli");
    let (_broker, _port) = broker(&dir, &[]);
    let set = run(
        &dir,
        &[
            "kv",
            "set",
            "deploy/last",
            r#"{"sha":"4f2a"}"#,
            "--ttl",
            "1h",
        ],
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let v = json_of(&set)["version"].as_u64().unwrap();
    let got = json_of(&run(&dir, &["kv", "get", "deploy/last", "--json"]));
    assert_eq!(
        (got["value"]["sha"].as_str(), got["version"].as_u64()),
        (Some("4f2a"), Some(v))
    );
    // A stale compare-and-set fails with exit code 2 and says what to do next.
    let stale = run(
        &dir,
        &[
            "kv",
            "set",
            "deploy/last",
            "1",
            "--if-version",
            &(v + 7).to_string(),
        ],
    );
    assert_eq!(stale.status.code(), Some(2));
    let err = String::from_utf8_lossy(&stale.stderr);
    assert!(
        err.contains("conflict") && err.contains("hive kv get deploy/last"),
        "{err}"
    );
    let s = json_of(&run(
        &dir,
        &[
            "cron", "schedule", "ops:ping", "--in", "10m", "--text", "ping",
        ],
    ));
    let id = s["id"].as_str().unwrap();
    let list = json_of(&run(&dir, &["cron", "list"]));
    assert_eq!(list["schedules"][0]["payload"], json!({"text": "ping"}));
    let table = run(&dir, &["--output", "table", "cron", "list"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains(id));
    assert!(run(&dir, &["cron", "cancel", id]).status.success());
    assert_eq!(
        json_of(&run(&dir, &["cron", "list"]))["schedules"],
        json!([])
    );
}
