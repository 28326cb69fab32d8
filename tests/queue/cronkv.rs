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

mod kv;

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
